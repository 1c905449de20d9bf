"""Hypothesis strategies for the Pulse Oximeter codecs (used by the generic round-trip test)."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import date_times, optional, sfloat_numbers

from device_profiles.pulse_oximeter import (
    PLXContinuousMeasurement,
    PLXDeviceAndSensorStatus,
    PLXFeatures,
    PLXMeasurementStatus,
    PLXSpotCheckMeasurement,
    PLXSupportedFeatures,
    SpO2PR,
)

pairs = st.builds(SpO2PR, sfloat_numbers, sfloat_numbers)
# Measurement Status bits 0-4 are reserved: only bits 5-15 are drawn.
measurement_statuses = st.integers(0, 0x7FF).map(lambda v: PLXMeasurementStatus(v << 5))
device_and_sensor_statuses = st.integers(0, 0xFFFF).map(PLXDeviceAndSensorStatus)


@st.composite
def _features(draw: st.DrawFn) -> PLXFeatures:
    # Bits 0 and 1 announce the two support fields, so they follow the fields drawn.
    status_support = draw(st.none() | measurement_statuses)
    device_support = draw(st.none() | device_and_sensor_statuses)
    bits = draw(st.integers(0, 0x3F)) << 2
    if status_support is not None:
        bits |= 0x01
    if device_support is not None:
        bits |= 0x02
    return PLXFeatures(PLXSupportedFeatures(bits), status_support, device_support)


STRATEGIES = {
    PLXSpotCheckMeasurement: st.builds(
        PLXSpotCheckMeasurement,
        pairs,
        optional(date_times),
        optional(measurement_statuses),
        optional(device_and_sensor_statuses),
        optional(sfloat_numbers),
        st.booleans(),
    ),
    PLXContinuousMeasurement: st.builds(
        PLXContinuousMeasurement,
        pairs,
        optional(pairs),
        optional(pairs),
        optional(measurement_statuses),
        optional(device_and_sensor_statuses),
        optional(sfloat_numbers),
    ),
    PLXFeatures: _features(),
}
