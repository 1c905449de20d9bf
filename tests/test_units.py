"""Conversion to canonical UCUM units: exact where the factor allows, honest resolution else."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import CODES, Number, Observation, Quantity, Scale, SpecialValue, Unit
from device_profiles.codes import canonical, loinc_for
from device_profiles.units import CANONICAL, can_convert, convert, to_canonical


def test_every_unit_has_a_canonical_unit_that_is_its_own_canonical():
    for unit in Unit:
        target = CANONICAL[unit]
        assert CANONICAL[target] is target
        assert can_convert(unit, target)


@pytest.mark.parametrize(
    ("number", "source", "expected"),
    [
        # 1 lb = 0.45359237 kg exactly; 0.01 lb resolution -> reported to 0.001 kg.
        (Number(15025, -2), Unit.POUND, "68.152"),
        # 0.1 in resolution -> 0.00254 m -> reported to 0.001 m; 70.0 in = 1.778 m.
        (Number(700, -1), Unit.INCH, "1.778"),
        # 98.6 degF = 37 Cel; 0.1 degF resolution -> reported to 0.01 Cel.
        (Number(986, -1), Unit.FAHRENHEIT, "37.00"),
        # 16.0 kPa = 120.0102... mmHg; 0.1 kPa resolution (0.75 mmHg) -> reported to 0.1 mmHg.
        (Number(160, -1), Unit.KPA, "120.0"),
        # kg/L -> mg/dL is a power of ten: exact, every digit kept.
        (Number(95, -5), Unit.KG_PER_LITRE, "95"),
        (Number(55, -4), Unit.MOL_PER_LITRE, "5.5"),
        (Number(5, 0), Unit.MILLISECOND, "0.005"),
    ],
)
def test_to_canonical_examples(number, source, expected):
    value, unit = to_canonical(number, source)
    assert unit is CANONICAL[source]
    assert str(value) == expected


def test_same_unit_is_returned_unchanged():
    number = Number.fixed(14000, Scale(5, -3))
    assert to_canonical(number, Unit.KILOGRAM) == (number, Unit.KILOGRAM)


def test_exact_conversion_keeps_the_fields_step():
    # 0.005 kg steps become 5 g steps, not 1 g.
    value = convert(Number.fixed(3, Scale(5, -3)), Unit.KILOGRAM, Unit.GRAM)
    assert value.value == Decimal(15)
    assert value.resolution == Decimal(5)


def test_special_values_stay_special():
    nan = Number.special_value(SpecialValue.NAN)
    assert to_canonical(nan, Unit.KPA) == (nan, Unit.MMHG)


def test_unknown_conversion_is_refused():
    with pytest.raises(ValueError, match="no conversion"):
        convert(Number(1, 0), Unit.KILOGRAM, Unit.METRE)


def test_canonical_observation_uses_the_quantity_unit_then_the_dimension():
    mass = Observation("medication", Quantity.MEDICATION, Number(2, -6), Unit.KILOGRAM)
    assert canonical(mass) == (Number(2, 0), Unit.MILLIGRAM)
    volume = Observation("medication", Quantity.MEDICATION, Number(15, -4), Unit.LITRE)
    assert canonical(volume) == (Number(15, -1), Unit.MILLILITRE)
    carbs = Observation("carbohydrate", Quantity.CARBOHYDRATE, Number(45, -3), Unit.KILOGRAM)
    assert canonical(carbs) == (Number(45, 0), Unit.GRAM)
    assert CODES[Quantity.CARBOHYDRATE].ucum is Unit.GRAM


@given(st.integers(0, 0xFFFE))
def test_pounds_to_kilograms_is_within_half_a_reported_step(raw):
    number = Number.fixed(raw, Scale(1, -2))
    value, _ = to_canonical(number, Unit.POUND)
    exact = Decimal(raw) / 100 * Decimal("0.45359237")
    assert value.value is not None
    assert value.resolution == Decimal("0.001")
    assert abs(value.value - exact) <= Decimal("0.0005")


@given(st.integers(-2048, 2047), st.integers(-3, 2))
def test_power_of_ten_conversions_are_exact(mantissa, exponent):
    number = Number(mantissa, exponent)
    value, _ = to_canonical(number, Unit.MOL_PER_LITRE)
    assert value.value == number.value * 1000  # type: ignore[operator]


def test_glucose_loinc_follows_the_published_unit():
    mass = Observation(
        "glucose_concentration", Quantity.GLUCOSE_CONCENTRATION, Number(95, -5), Unit.KG_PER_LITRE
    )
    moles = Observation(
        "glucose_concentration", Quantity.GLUCOSE_CONCENTRATION, Number(55, -4), Unit.MOL_PER_LITRE
    )
    assert [loinc_for(o.quantity, canonical(o)[1]) for o in (mass, moles)] == ["41653-7", "14743-9"]
    assert loinc_for(Quantity.SYSTOLIC_PRESSURE, Unit.MMHG) == "8480-6"
