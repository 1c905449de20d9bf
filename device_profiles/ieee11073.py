"""IEEE 11073-20601 SFLOAT/FLOAT numbers and the exact decimal `Number` every codec returns.

SFLOAT is 16 bits: a 4-bit two's-complement exponent (high nibble) and a 12-bit two's-complement
mantissa. FLOAT is 32 bits: an 8-bit two's-complement exponent (high byte) and a 24-bit
two's-complement mantissa. Value = mantissa * 10**exponent. The special values are whole words
with exponent 0 (IEEE 11073-20601 clause F.8; HL7 PHD IG "Mder FLOATs and SFLOATs"):

=========  ======  ==========
special    SFLOAT  FLOAT
=========  ======  ==========
NaN        0x07FF  0x007FFFFF
NRes       0x0800  0x00800000
+INFINITY  0x07FE  0x007FFFFE
-INFINITY  0x0802  0x00800002
Reserved   0x0801  0x00800001
=========  ======  ==========

Fixed-point GATT fields (a weight in units of 0.005 kg, an RR interval in 1/1024 s) are returned
as the same `Number`, with a `step` so that the resolution stays exact.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, NamedTuple

from device_profiles._errors import EncodeError

__all__ = [
    "FLOAT_SPECIALS",
    "SFLOAT_SPECIALS",
    "Number",
    "Scale",
    "SpecialValue",
    "decode_float",
    "decode_sfloat",
    "encode_float",
    "encode_sfloat",
]


class SpecialValue(enum.Enum):
    """A value that is not a number; it never converts to one."""

    NAN = "NaN"
    NRES = "NRes"
    POSITIVE_INFINITY = "+INFINITY"
    NEGATIVE_INFINITY = "-INFINITY"
    RESERVED = "Reserved"
    MEASUREMENT_UNSUCCESSFUL = "MeasurementUnsuccessful"
    """0xFFFF in a Weight Scale or Body Composition fixed-point field."""


SFLOAT_SPECIALS: Final[dict[int, SpecialValue]] = {
    0x07FF: SpecialValue.NAN,
    0x0800: SpecialValue.NRES,
    0x07FE: SpecialValue.POSITIVE_INFINITY,
    0x0802: SpecialValue.NEGATIVE_INFINITY,
    0x0801: SpecialValue.RESERVED,
}
FLOAT_SPECIALS: Final[dict[int, SpecialValue]] = {
    0x007FFFFF: SpecialValue.NAN,
    0x00800000: SpecialValue.NRES,
    0x007FFFFE: SpecialValue.POSITIVE_INFINITY,
    0x00800002: SpecialValue.NEGATIVE_INFINITY,
    0x00800001: SpecialValue.RESERVED,
}
_SFLOAT_BY_SPECIAL: Final = {v: k for k, v in SFLOAT_SPECIALS.items()}
_FLOAT_BY_SPECIAL: Final = {v: k for k, v in FLOAT_SPECIALS.items()}


class Scale(NamedTuple):
    """The resolution of a fixed-point field: `step * 10**exponent` per raw unit."""

    step: int
    exponent: int


@dataclass(frozen=True, slots=True)
class Number:
    """An exact decimal measured value with its resolution, or a special value.

    value = mantissa * 10**exponent; resolution = step * 10**exponent. For a special value,
    mantissa and exponent are 0 and `special` names it.
    """

    mantissa: int
    exponent: int
    special: SpecialValue | None = None
    step: int = 1

    @classmethod
    def of(cls, mantissa: int, exponent: int = 0) -> Number:
        """Build a number from its mantissa and power-of-ten exponent."""
        return cls(mantissa, exponent)

    @classmethod
    def special_value(cls, special: SpecialValue) -> Number:
        """Build the special value `special`."""
        return cls(0, 0, special)

    @classmethod
    def from_decimal(cls, value: Decimal | str | int) -> Number:
        """Build a number from a decimal, keeping its written precision ("2.00" has exponent -2)."""
        dec = Decimal(value)
        if not dec.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        sign, digits, exponent = dec.as_tuple()
        assert isinstance(exponent, int)  # finite decimals have an int exponent  # noqa: S101
        mantissa = int("".join(map(str, digits)) or "0")
        return cls(-mantissa if sign else mantissa, exponent)

    @classmethod
    def fixed(cls, raw: int, scale: Scale) -> Number:
        """Build the value of a fixed-point field holding `raw` units of `scale`."""
        return cls(raw * scale.step, scale.exponent, None, scale.step)

    @property
    def is_number(self) -> bool:
        """Whether this is a real number rather than a special value."""
        return self.special is None

    @property
    def value(self) -> Decimal | None:
        """The exact decimal value, or None for a special value."""
        if self.special is not None:
            return None
        return Decimal(self.mantissa).scaleb(self.exponent)

    @property
    def resolution(self) -> Decimal | None:
        """The smallest step the device can report at this exponent, or None for a special."""
        if self.special is not None:
            return None
        return Decimal(self.step).scaleb(self.exponent)

    def raw_units(self, scale: Scale, characteristic: str, field: str) -> int:
        """Return how many `scale` units this number is, exactly, or raise EncodeError."""
        if self.special is not None:
            raise EncodeError(characteristic, field, f"{self.special.value} is not a number")
        numerator = self.mantissa
        denominator = scale.step
        shift = self.exponent - scale.exponent
        if shift >= 0:
            numerator *= 10**shift
        else:
            denominator *= 10**-shift
        raw, remainder = divmod(numerator, denominator)
        if remainder:
            raise EncodeError(
                characteristic,
                field,
                f"{self} is not a whole multiple of {Decimal(scale.step).scaleb(scale.exponent)}",
            )
        return raw

    def __str__(self) -> str:
        if self.special is not None:
            return self.special.value
        # Plain notation, as the HL7 PHD IG writes FHIR values: "20", not "2E+1"; "2.00" stays.
        return format(Decimal(self.mantissa).scaleb(self.exponent), "f")


def _build_sfloat(raw: int) -> Number:
    special = SFLOAT_SPECIALS.get(raw)
    if special is not None:
        return Number(0, 0, special)
    # Both parts are two's complement: subtract the full range when the sign bit is set.
    mantissa = raw & 0x0FFF
    if mantissa & 0x0800:
        mantissa -= 0x1000
    exponent = raw >> 12
    if exponent & 0x8:
        exponent -= 0x10
    return Number(mantissa, exponent)


# An SFLOAT has only 65,536 possible words and a Number is immutable, so each decoded word is
# kept: decoding a repeated reading becomes one dict lookup (bench/decode.py measures it).
_SFLOAT_CACHE: Final[dict[int, Number]] = {}


def decode_sfloat(raw: int) -> Number:
    """Decode a 16-bit SFLOAT word (already read little-endian) into a Number."""
    number = _SFLOAT_CACHE.get(raw)
    if number is None:
        number = _SFLOAT_CACHE[raw] = _build_sfloat(raw & 0xFFFF)
    return number


def encode_sfloat(number: Number, characteristic: str = "SFLOAT", field: str = "value") -> int:
    """Encode a Number as a 16-bit SFLOAT word; raise EncodeError if it does not fit exactly."""
    if number.special is not None:
        word = _SFLOAT_BY_SPECIAL.get(number.special)
        if word is None:
            raise EncodeError(characteristic, field, f"{number.special.value} has no SFLOAT form")
        return word
    mantissa, exponent = _fit(number, 2047, 7, characteristic, field)
    word = ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)
    if word in SFLOAT_SPECIALS:
        raise EncodeError(characteristic, field, f"{number} collides with an SFLOAT special value")
    return word


def decode_float(raw: int) -> Number:
    """Decode a 32-bit FLOAT word (already read little-endian) into a Number."""
    special = FLOAT_SPECIALS.get(raw)
    if special is not None:
        return Number(0, 0, special)
    mantissa = raw & 0x00FFFFFF
    if mantissa & 0x00800000:
        mantissa -= 0x01000000
    exponent = raw >> 24
    if exponent & 0x80:
        exponent -= 0x100
    return Number(mantissa, exponent)


def encode_float(number: Number, characteristic: str = "FLOAT", field: str = "value") -> int:
    """Encode a Number as a 32-bit FLOAT word; raise EncodeError if it does not fit exactly."""
    if number.special is not None:
        word = _FLOAT_BY_SPECIAL.get(number.special)
        if word is None:
            raise EncodeError(characteristic, field, f"{number.special.value} has no FLOAT form")
        return word
    mantissa, exponent = _fit(number, 0x7FFFFF, 127, characteristic, field)
    word = ((exponent & 0xFF) << 24) | (mantissa & 0x00FFFFFF)
    if word in FLOAT_SPECIALS:
        raise EncodeError(characteristic, field, f"{number} collides with a FLOAT special value")
    return word


def _fit(
    number: Number, max_mantissa: int, max_exponent: int, characteristic: str, field: str
) -> tuple[int, int]:
    """Return the number's mantissa and exponent if the word can carry them as they are."""
    mantissa, exponent = number.mantissa, number.exponent
    # Rescaling would change the stated resolution, so a number that does not fit is refused.
    if not (
        -max_mantissa - 1 <= mantissa <= max_mantissa
        and -max_exponent - 1 <= exponent <= max_exponent
    ):
        raise EncodeError(
            characteristic,
            field,
            f"mantissa {mantissa} and exponent {exponent} are beyond the word's range",
        )
    return mantissa, exponent
