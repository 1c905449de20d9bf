"""Hypothesis strategies for the Blood Pressure codecs (used by the generic round-trip test)."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import date_times, optional, sfloat_numbers, uint32, user_ids

from device_profiles import Unit
from device_profiles.blood_pressure import (
    BloodPressureFeature,
    BloodPressureFeatures,
    BloodPressureMeasurement,
    BloodPressureStatus,
    EnhancedBloodPressureMeasurement,
    EnhancedIntermediateCuffPressure,
    EpochStart,
    IntermediateCuffPressure,
)

pressure_units = st.sampled_from([Unit.MMHG, Unit.KPA])
# Bits 3 and 4 together are the reserved pulse-rate-range value 3, which decode drops.
statuses = st.integers(0, 0x3F).filter(lambda v: v & 0x18 != 0x18).map(BloodPressureStatus)

STRATEGIES = {
    BloodPressureMeasurement: st.builds(
        BloodPressureMeasurement,
        sfloat_numbers,
        sfloat_numbers,
        sfloat_numbers,
        pressure_units,
        optional(date_times),
        optional(sfloat_numbers),
        optional(user_ids),
        optional(statuses),
    ),
    IntermediateCuffPressure: st.builds(
        IntermediateCuffPressure,
        sfloat_numbers,
        pressure_units,
        optional(date_times),
        optional(sfloat_numbers),
        optional(user_ids),
        optional(statuses),
    ),
    BloodPressureFeature: st.builds(
        BloodPressureFeature, st.integers(0, 0x1FF).map(BloodPressureFeatures)
    ),
    EnhancedBloodPressureMeasurement: st.builds(
        EnhancedBloodPressureMeasurement,
        sfloat_numbers,
        sfloat_numbers,
        sfloat_numbers,
        pressure_units,
        optional(uint32),
        optional(sfloat_numbers),
        optional(user_ids),
        optional(statuses),
        optional(uint32),
        st.sampled_from(EpochStart),
    ),
    EnhancedIntermediateCuffPressure: st.builds(
        EnhancedIntermediateCuffPressure,
        sfloat_numbers,
        pressure_units,
        optional(uint32),
        optional(sfloat_numbers),
        optional(user_ids),
        optional(statuses),
        optional(uint32),
        st.sampled_from(EpochStart),
    ),
}
