"""Hypothesis strategies for the Weight Scale codecs (used by the generic round-trip test)."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import date_times, fixed_numbers, optional, user_ids

from device_profiles import Number, Scale
from device_profiles.weight_scale import (
    HeightMeasurementResolution,
    MeasurementUnits,
    WeightMeasurement,
    WeightMeasurementResolution,
    WeightScaleFeature,
    WeightScaleFeatures,
)

# Resolutions written as literals from the GSS field table, not taken from the module.
MASS_SCALES = {MeasurementUnits.SI: Scale(5, -3), MeasurementUnits.IMPERIAL: Scale(1, -2)}
LENGTH_SCALES = {MeasurementUnits.SI: Scale(1, -3), MeasurementUnits.IMPERIAL: Scale(1, -1)}
BMI_SCALE = Scale(1, -1)

units = st.sampled_from(MeasurementUnits)


@st.composite
def weight_measurements(draw: st.DrawFn) -> WeightMeasurement:
    """Every valid Weight Measurement: an unsuccessful weight comes without BMI and height."""
    measurement_units = draw(units)
    weight: Number = draw(fixed_numbers(MASS_SCALES[measurement_units], unsuccessful=True))
    bmi = height = None
    if weight.special is None and draw(st.booleans()):
        bmi = draw(fixed_numbers(BMI_SCALE))
        height = draw(fixed_numbers(LENGTH_SCALES[measurement_units]))
    return WeightMeasurement(
        weight,
        measurement_units,
        draw(optional(date_times)),
        draw(optional(user_ids)),
        bmi,
        height,
    )


# Reserved resolution codes are kept as sent, so they round-trip like defined ones.
weight_resolutions = st.integers(0, 15).map(WeightMeasurementResolution)
height_resolutions = st.integers(0, 7).map(HeightMeasurementResolution)

STRATEGIES = {
    WeightMeasurement: weight_measurements(),
    WeightScaleFeature: st.builds(
        WeightScaleFeature,
        st.integers(0, 0x07).map(WeightScaleFeatures),
        weight_resolutions,
        height_resolutions,
    ),
}
