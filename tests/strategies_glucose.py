"""Hypothesis strategies for the Glucose codecs (used by the generic round-trip test)."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import date_times, sfloat_numbers, uint16

from device_profiles import Number, SpecialValue, Unit
from device_profiles.glucose import (
    CarbohydrateId,
    GlucoseFeature,
    GlucoseFeatures,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseType,
    Health,
    Meal,
    MedicationId,
    SampleLocation,
    SensorStatus,
    Tester,
)

# Codes as enum members, reserved ones included (CodeEnum keeps them as RESERVED_<n>).
nibble = st.integers(0, 0xF)
code8 = st.integers(0, 0xFF)
glucose_types = nibble.map(GlucoseType)
sample_locations = nibble.map(SampleLocation)
testers = nibble.map(Tester)
healths = nibble.map(Health)
sensor_statuses = st.integers(0, 0x0FFF).map(SensorStatus)
# 0xFFFF is the overrun value, decoded as +INFINITY.
exercise_durations = st.one_of(
    st.integers(0, 0xFFFE).map(lambda raw: Number(raw, 0)),
    st.just(Number.special_value(SpecialValue.POSITIVE_INFINITY)),
)
exercise_intensities = code8.map(lambda raw: Number(raw, 0))


@st.composite
def measurements(draw: st.DrawFn) -> GlucoseMeasurement:
    concentration = draw(st.booleans())
    return GlucoseMeasurement(
        draw(uint16),
        draw(date_times),
        draw(st.none() | st.integers(-0x8000, 0x7FFF)),
        draw(sfloat_numbers) if concentration else None,
        draw(st.sampled_from([Unit.KG_PER_LITRE, Unit.MOL_PER_LITRE])),
        draw(glucose_types) if concentration else None,
        draw(sample_locations) if concentration else None,
        draw(st.none() | sensor_statuses),
        draw(st.booleans()),
    )


@st.composite
def contexts(draw: st.DrawFn) -> GlucoseMeasurementContext:
    carbohydrate = draw(st.booleans())
    tester_health = draw(st.booleans())
    exercise = draw(st.booleans())
    medication = draw(st.booleans())
    return GlucoseMeasurementContext(
        draw(uint16),
        # Every extended flag bit is reserved: a set bit decodes with a warning.
        draw(st.sampled_from([None, 0])),
        draw(code8.map(CarbohydrateId)) if carbohydrate else None,
        draw(sfloat_numbers) if carbohydrate else None,
        draw(st.none() | code8.map(Meal)),
        draw(testers) if tester_health else None,
        draw(healths) if tester_health else None,
        draw(exercise_durations) if exercise else None,
        draw(exercise_intensities) if exercise else None,
        draw(code8.map(MedicationId)) if medication else None,
        draw(sfloat_numbers) if medication else None,
        draw(st.sampled_from([Unit.KILOGRAM, Unit.LITRE])),
        draw(st.none() | sfloat_numbers),
    )


STRATEGIES = {
    GlucoseMeasurement: measurements(),
    GlucoseMeasurementContext: contexts(),
    GlucoseFeature: st.builds(GlucoseFeature, st.integers(0, 0x07FF).map(GlucoseFeatures)),
}
