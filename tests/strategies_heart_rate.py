"""Hypothesis strategies for the Heart Rate codecs (used by the generic round-trip test)."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import fixed_numbers, optional, uint8

from device_profiles import Scale
from device_profiles.heart_rate import (
    BodySensorLocation,
    HeartRateMeasurement,
    HeartRateValueFormat,
    SensorContactStatus,
    SensorLocation,
)

WHOLE = Scale(1, 0)
RR_SCALE = Scale(9765625, -10)  # 1/1024 s


@st.composite
def _contact(draw: st.DrawFn) -> tuple[SensorContactStatus, int]:
    """A contact status with the "not supported" code it may carry (0 or 1)."""
    status = draw(st.sampled_from(SensorContactStatus))
    code = draw(st.sampled_from([0, 1])) if status is SensorContactStatus.NOT_SUPPORTED else 0
    return status, code


@st.composite
def heart_rate_measurements(draw: st.DrawFn) -> HeartRateMeasurement:
    """Every valid measurement; a UINT16-format value may be below 256, a UINT8 one stays <= 255."""
    value_format = draw(st.sampled_from(HeartRateValueFormat))
    top = 0xFF if value_format is HeartRateValueFormat.UINT8 else 0xFFFF
    status, code = draw(_contact())
    return HeartRateMeasurement(
        draw(fixed_numbers(WHOLE, top)),
        value_format,
        status,
        draw(optional(fixed_numbers(WHOLE))),
        tuple(draw(st.lists(fixed_numbers(RR_SCALE), max_size=9))),
        code,
    )


STRATEGIES = {
    HeartRateMeasurement: heart_rate_measurements(),
    BodySensorLocation: st.builds(BodySensorLocation, uint8.map(SensorLocation)),
}
