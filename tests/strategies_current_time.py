"""Hypothesis strategies for the Current Time Service codecs."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st
from strategies import date_times, uint8

from device_profiles.current_time import (
    AdjustReason,
    CurrentTime,
    DayOfWeek,
    DstOffset,
    LocalTimeInformation,
)

adjust_reasons = st.integers(0, 0x0F).map(AdjustReason)


@st.composite
def current_times(draw: st.DrawFn) -> CurrentTime:
    """Current Time values whose known weekday agrees with a known date (else decode warns)."""
    date_time = draw(date_times)
    day = draw(uint8)  # 8-255 are reserved codes, kept as RESERVED_<n>
    known = date_time.timestamp
    if known is not None and 1 <= day <= 7:
        day = draw(st.sampled_from([0, known.isoweekday()]))
    return CurrentTime(date_time, DayOfWeek(day), draw(uint8), draw(adjust_reasons))


from_datetimes = st.builds(
    CurrentTime.from_datetime,
    st.datetimes(min_value=dt.datetime(1582, 1, 1)),  # noqa: DTZ001
    adjust_reasons,
)

STRATEGIES = {
    CurrentTime: st.one_of(current_times(), from_datetimes),
    LocalTimeInformation: st.builds(
        LocalTimeInformation,
        st.one_of(st.integers(-48, 56), st.just(-128)),
        uint8.map(DstOffset),  # reserved DST codes are kept as RESERVED_<n>
    ),
}
