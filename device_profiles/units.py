"""UCUM units the codecs report, and exact conversion to each quantity's canonical unit."""

from __future__ import annotations

import enum
from fractions import Fraction
from typing import Final

from device_profiles.ieee11073 import Number

__all__ = ["CANONICAL", "Unit", "can_convert", "convert", "to_canonical"]


class Unit(enum.StrEnum):
    """A unit as its UCUM case-sensitive code."""

    MMHG = "mm[Hg]"
    KPA = "kPa"
    PERCENT = "%"
    PER_MINUTE = "/min"
    KILOGRAM = "kg"
    POUND = "[lb_av]"
    METRE = "m"
    INCH = "[in_i]"
    KG_PER_M2 = "kg/m2"
    CELSIUS = "Cel"
    FAHRENHEIT = "[degF]"
    KG_PER_LITRE = "kg/L"
    MOL_PER_LITRE = "mol/L"
    MG_PER_DL = "mg/dL"
    MMOL_PER_LITRE = "mmol/L"
    GRAM = "g"
    LITRE = "L"
    MILLILITRE = "mL"
    MILLIGRAM = "mg"
    SECOND = "s"
    MILLISECOND = "ms"
    KILOJOULE = "kJ"
    OHM = "Ohm"


# The canonical unit each reported unit converts to (the one the gateway publishes).
CANONICAL: Final[dict[Unit, Unit]] = {
    Unit.MMHG: Unit.MMHG,
    Unit.KPA: Unit.MMHG,
    Unit.PERCENT: Unit.PERCENT,
    Unit.PER_MINUTE: Unit.PER_MINUTE,
    Unit.KILOGRAM: Unit.KILOGRAM,
    Unit.POUND: Unit.KILOGRAM,
    Unit.METRE: Unit.METRE,
    Unit.INCH: Unit.METRE,
    Unit.KG_PER_M2: Unit.KG_PER_M2,
    Unit.CELSIUS: Unit.CELSIUS,
    Unit.FAHRENHEIT: Unit.CELSIUS,
    Unit.KG_PER_LITRE: Unit.MG_PER_DL,
    Unit.MG_PER_DL: Unit.MG_PER_DL,
    Unit.MOL_PER_LITRE: Unit.MMOL_PER_LITRE,
    Unit.MMOL_PER_LITRE: Unit.MMOL_PER_LITRE,
    Unit.GRAM: Unit.GRAM,
    Unit.MILLIGRAM: Unit.MILLIGRAM,
    Unit.LITRE: Unit.MILLILITRE,
    Unit.MILLILITRE: Unit.MILLILITRE,
    Unit.SECOND: Unit.SECOND,
    Unit.MILLISECOND: Unit.SECOND,
    Unit.KILOJOULE: Unit.KILOJOULE,
    Unit.OHM: Unit.OHM,
}

# target = source * factor + offset, all exact rationals (defined constants, not measurements):
# 1 mmHg = 133.322387415 Pa (ISO 80000-4 / NIST SP 811); 1 lb = 0.45359237 kg and 1 in = 0.0254 m
# (international yard and pound, 1959); degF -> Cel = (F - 32) * 5/9.
_MMHG_PER_KPA: Final = Fraction(1000) / Fraction("133.322387415")
_LINEAR: Final[dict[tuple[Unit, Unit], tuple[Fraction, Fraction]]] = {
    (Unit.KPA, Unit.MMHG): (_MMHG_PER_KPA, Fraction(0)),
    (Unit.POUND, Unit.KILOGRAM): (Fraction("0.45359237"), Fraction(0)),
    (Unit.INCH, Unit.METRE): (Fraction("0.0254"), Fraction(0)),
    (Unit.FAHRENHEIT, Unit.CELSIUS): (Fraction(5, 9), Fraction(-32 * 5, 9)),
    # kg/L to mg/dL: 1 kg/L = 1e6 mg per 10 dL.
    (Unit.KG_PER_LITRE, Unit.MG_PER_DL): (Fraction(100_000), Fraction(0)),
    (Unit.MOL_PER_LITRE, Unit.MMOL_PER_LITRE): (Fraction(1000), Fraction(0)),
    (Unit.MILLIGRAM, Unit.GRAM): (Fraction(1, 1000), Fraction(0)),
    (Unit.KILOGRAM, Unit.MILLIGRAM): (Fraction(1_000_000), Fraction(0)),
    (Unit.KILOGRAM, Unit.GRAM): (Fraction(1000), Fraction(0)),
    (Unit.LITRE, Unit.MILLILITRE): (Fraction(1000), Fraction(0)),
    (Unit.MILLISECOND, Unit.SECOND): (Fraction(1, 1000), Fraction(0)),
}


def convert(number: Number, source: Unit, target: Unit) -> Number:
    """Convert `number` from `source` to `target`, exact to the field's resolution.

    An exact conversion (a power-of-ten factor) keeps every digit. Otherwise the result is rounded
    half-even to the power of ten just finer than the converted resolution, so it claims no more
    precision than the device measured (0.1 kPa becomes 0.75 mmHg, reported to 0.1 mmHg).
    Special values stay special.
    """
    if source is target or number.special is not None:
        return number
    try:
        factor, offset = _LINEAR[(source, target)]
    except KeyError:
        raise ValueError(f"no conversion from {source.value} to {target.value}") from None
    exact = Fraction(number.mantissa) * Fraction(10) ** number.exponent * factor + offset
    resolution = Fraction(number.step) * Fraction(10) ** number.exponent * factor
    exponent = _floor_log10(resolution)
    scaled = exact / Fraction(10) ** exponent
    if scaled.denominator == 1 and offset == 0:
        # Exact: keep the field's own step so that 0.005 kg stays 0.005 kg.
        step_scaled = resolution / Fraction(10) ** exponent
        if step_scaled.denominator == 1:
            return Number(scaled.numerator, exponent, None, step_scaled.numerator)
    return Number(round(scaled), exponent)


def can_convert(source: Unit, target: Unit) -> bool:
    """Whether `convert` knows how to go from `source` to `target`."""
    return source is target or (source, target) in _LINEAR


def to_canonical(number: Number, unit: Unit) -> tuple[Number, Unit]:
    """Convert a value to the canonical unit of its kind (mm[Hg], kg, m, Cel, mg/dL, ...)."""
    target = CANONICAL[unit]
    return convert(number, unit, target), target


def _floor_log10(value: Fraction) -> int:
    """Return the largest n with 10**n <= value (value > 0)."""
    exponent = len(str(value.numerator)) - len(str(value.denominator))
    while Fraction(10) ** exponent > value:
        exponent -= 1
    while Fraction(10) ** (exponent + 1) <= value:
        exponent += 1
    return exponent
