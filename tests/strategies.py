"""Hypothesis strategies for the building blocks shared by every codec's property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from device_profiles import DateTime, Number, Scale, SpecialValue
from device_profiles.ieee11073 import FLOAT_SPECIALS, SFLOAT_SPECIALS

# Wire words of special values, written as literals on purpose (not taken from the enum).
_SFLOAT_SPECIAL_WORDS = {0x07FF, 0x0800, 0x07FE, 0x0802, 0x0801}
_FLOAT_SPECIAL_WORDS = {0x007FFFFF, 0x00800000, 0x007FFFFE, 0x00800002, 0x00800001}
assert set(SFLOAT_SPECIALS) == _SFLOAT_SPECIAL_WORDS
assert set(FLOAT_SPECIALS) == _FLOAT_SPECIAL_WORDS

_WIRE_SPECIALS = [s for s in SpecialValue if s is not SpecialValue.MEASUREMENT_UNSUCCESSFUL]


def _sfloat_number(mantissa: int, exponent: int) -> bool:
    return (
        exponent != 0 or ((exponent & 0xF) << 12 | (mantissa & 0xFFF)) not in _SFLOAT_SPECIAL_WORDS
    )


def _float_number(mantissa: int, exponent: int) -> bool:
    word = (exponent & 0xFF) << 24 | (mantissa & 0xFFFFFF)
    return exponent != 0 or word not in _FLOAT_SPECIAL_WORDS


sfloat_numbers = st.one_of(
    st.builds(Number.of, st.integers(-2048, 2047), st.integers(-8, 7)).filter(
        lambda n: _sfloat_number(n.mantissa, n.exponent)
    ),
    st.sampled_from(_WIRE_SPECIALS).map(Number.special_value),
)
"""Every value an SFLOAT can carry, special values included."""

float_numbers = st.one_of(
    st.builds(Number.of, st.integers(-(2**23), 2**23 - 1), st.integers(-128, 127)).filter(
        lambda n: _float_number(n.mantissa, n.exponent)
    ),
    st.sampled_from(_WIRE_SPECIALS).map(Number.special_value),
)
"""Every value a FLOAT can carry, special values included."""


def fixed_numbers(
    scale: Scale, max_raw: int = 0xFFFF, *, unsuccessful: bool = False
) -> st.SearchStrategy[Number]:
    """Values of a fixed-point field; with `unsuccessful`, 0xFFFF is the special value instead."""
    top = max_raw - 1 if unsuccessful else max_raw
    numbers = st.integers(0, top).map(lambda raw: Number.fixed(raw, scale))
    if unsuccessful:
        return st.one_of(
            numbers, st.just(Number.special_value(SpecialValue.MEASUREMENT_UNSUCCESSFUL))
        )
    return numbers


date_times = st.one_of(
    st.datetimes(min_value=__import__("datetime").datetime(1582, 1, 1)).map(DateTime.from_datetime),
    st.builds(
        DateTime,
        st.sampled_from([0, 2024]),
        st.integers(0, 12),
        st.integers(0, 28),
        st.integers(0, 23),
        st.integers(0, 59),
        st.integers(0, 59),
    ),
)
"""Valid Date Time values, including ones with an unknown (0) year, month or day."""

user_ids = st.integers(0, 255)
uint8 = st.integers(0, 0xFF)
uint16 = st.integers(0, 0xFFFF)
uint24 = st.integers(0, 0xFFFFFF)
uint32 = st.integers(0, 0xFFFFFFFF)


def optional(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """The strategy's values, or None (an absent optional field)."""
    return st.none() | strategy
