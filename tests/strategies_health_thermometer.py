"""Hypothesis strategies for the Health Thermometer codecs (used by the generic round-trip test)."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import date_times, float_numbers, optional, uint8, uint16

from device_profiles import Unit
from device_profiles.health_thermometer import (
    IntermediateTemperature,
    MeasurementInterval,
    TemperatureMeasurement,
    TemperatureType,
    TemperatureTypeDescription,
)

temperature_units = st.sampled_from([Unit.CELSIUS, Unit.FAHRENHEIT])
# Every uint8 code, reserved ones (0, 10-255) included: they decode to RESERVED_n members.
temperature_types = uint8.map(TemperatureTypeDescription)

STRATEGIES = {
    TemperatureMeasurement: st.builds(
        TemperatureMeasurement,
        float_numbers,
        temperature_units,
        optional(date_times),
        optional(temperature_types),
    ),
    IntermediateTemperature: st.builds(
        IntermediateTemperature,
        float_numbers,
        temperature_units,
        optional(date_times),
        optional(temperature_types),
    ),
    TemperatureType: st.builds(TemperatureType, temperature_types),
    MeasurementInterval: st.builds(MeasurementInterval, uint16),
}
