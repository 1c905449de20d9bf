"""When a measurement happened: the device's own clock, corrected and checked, or the hub's.

Health devices stamp measurements with a naive local time from a cheap clock that drifts, resets
to 1970 or 2000 when the battery is changed, and may never have been set at all. The session
that talks to the device knows what it did about that clock (set it from the hub's synchronised
clock, or read it and measured its offset), and hands that knowledge in as a `ClockState`;
`resolve_measured_at` turns the device time into UTC and says, in a `TimeSource`, how far that
time can be trusted. Pure: the hub's receive time comes in as an argument, nothing reads a clock.

Local times are read in the hub's time zone with `fold=0`: a wall time that happens twice (the
hour after clocks go back) is taken as its first occurrence (summer time), and a wall time that
never happens (the hour skipped when clocks go forward) is read with the offset in force before
the change, so it lands one hour later in summer time. Either way the answer is deterministic:
the same device time always gives the same `measured_at`.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = [
    "FUTURE_TOLERANCE",
    "MIN_PLAUSIBLE_YEAR",
    "ClockState",
    "ClockSync",
    "TimeResolution",
    "TimeSource",
    "resolve_measured_at",
    "resolve_time",
]

MIN_PLAUSIBLE_YEAR: Final = 2000
"""A device time before this year is a reset clock (1970, or a 2000 default), never a reading."""

FUTURE_TOLERANCE: Final = dt.timedelta(minutes=5)
"""How far after the hub's receive time a device time may lie before it is not believed.

A clock the hub set or corrected is seconds off; five minutes leaves room for an unverified
clock's drift without believing one set to the wrong day or hour.
"""


class TimeSource(enum.StrEnum):
    """Where `measured_at` comes from, most trustworthy first."""

    DEVICE_CLOCK_SYNCED = "device_clock_synced"
    """The device's time; the hub set the device clock from its own synchronised clock."""
    DEVICE_CLOCK_OFFSET = "device_clock_offset"
    """The device's time, corrected by the device-minus-hub offset the hub measured."""
    DEVICE_CLOCK_UNVERIFIED = "device_clock_unverified"
    """The device's time as it stands: nobody set or checked the device clock."""
    HUB_RECEIVE_TIME = "hub_receive_time"
    """No usable device time (absent, reset, in the future or flagged wrong by the device)."""


class ClockSync(enum.StrEnum):
    """What the hub knows about a device's clock."""

    SYNCED = "synced"
    """The hub wrote its synchronised local time to the device (Current Time Service)."""
    OFFSET = "offset"
    """The hub read the device clock and measured its offset from the hub clock."""
    UNKNOWN = "unknown"
    """The hub neither set nor read the device clock."""


@dataclass(frozen=True, slots=True)
class ClockState:
    """What the hub did about one device's clock in this session; build with the classmethods.

    `offset_s` (OFFSET only) is the device's wall-clock reading minus the hub's wall-clock time
    in the hub's zone, in seconds, at the same instant: positive when the device is fast. Both
    are wall clocks, as for SYNCED, so a device clock that does not follow summer time is an
    hour out for records stored on the other side of a clock change from the measurement of
    the offset; the hub measures again at each connection, which keeps that window short.
    SYNCED describes measurements taken after the sync: for records stored before it, the
    session should pass the OFFSET it measured before setting the clock.
    """

    sync: ClockSync
    offset_s: float | None = None

    def __post_init__(self) -> None:
        if (self.sync is ClockSync.OFFSET) != (self.offset_s is not None):
            raise ValueError("offset_s is given exactly when sync is ClockSync.OFFSET")
        if self.offset_s is not None and not math.isfinite(self.offset_s):
            raise ValueError(f"offset_s must be a finite number of seconds, not {self.offset_s}")

    @classmethod
    def synced(cls) -> ClockState:
        """Return the state of a clock the hub set from its synchronised clock."""
        return cls(ClockSync.SYNCED)

    @classmethod
    def measured_offset(cls, offset_s: float) -> ClockState:
        """Return the state of a clock the hub measured as `offset_s` seconds ahead of its own."""
        return cls(ClockSync.OFFSET, offset_s)

    @classmethod
    def unknown(cls) -> ClockState:
        """Return the state of a clock the hub neither set nor read."""
        return cls(ClockSync.UNKNOWN)


class TimeResolution(NamedTuple):
    """The outcome of `resolve_time`: `measured_at` and how it was found."""

    measured_at: dt.datetime
    time_source: TimeSource
    clock_offset_s: float | None
    rejected: str | None
    """Why a device time was not believed, or None (also None when there was no device time)."""


def resolve_time(
    device_time: dt.datetime | None,
    clock: ClockState,
    hub_tz: ZoneInfo,
    received_at: dt.datetime,
    *,
    future_tolerance: dt.timedelta = FUTURE_TOLERANCE,
) -> TimeResolution:
    """Like `resolve_measured_at`, and say why a device time was rejected (for warnings)."""
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be an aware datetime (the hub clock in UTC)")
    received_utc = received_at.astimezone(dt.UTC)
    if device_time is None:
        return TimeResolution(received_utc, TimeSource.HUB_RECEIVE_TIME, None, None)
    if device_time.tzinfo is not None:
        raise ValueError("device_time must be naive: the device sends local time without a zone")

    def rejected(reason: str) -> TimeResolution:
        return TimeResolution(received_utc, TimeSource.HUB_RECEIVE_TIME, None, reason)

    offset_s: float | None = None
    if clock.sync is ClockSync.SYNCED:
        source = TimeSource.DEVICE_CLOCK_SYNCED
    elif clock.offset_s is not None:
        source = TimeSource.DEVICE_CLOCK_OFFSET
        offset_s = clock.offset_s
    else:
        source = TimeSource.DEVICE_CLOCK_UNVERIFIED
    try:
        local = device_time if offset_s is None else device_time - dt.timedelta(seconds=offset_s)
        # fold=0 on purpose (see the module notes): the first of two repeated wall times, and
        # the pre-change offset for a skipped one.
        candidate = local.replace(tzinfo=hub_tz, fold=0).astimezone(dt.UTC)
    except OverflowError:
        return rejected(f"device time {device_time.isoformat()} leaves the calendar range")
    # The checks apply after the offset: a clock reset to 1970 whose offset the hub measured
    # after the reset still gives the right time.
    if local.year < MIN_PLAUSIBLE_YEAR:
        corrected = "" if offset_s is None else f" (corrected by {offset_s} s)"
        return rejected(
            f"device time {device_time.isoformat()}{corrected} is before "
            f"{MIN_PLAUSIBLE_YEAR}: a reset clock"
        )
    ahead = candidate - received_utc
    if ahead > future_tolerance:
        return rejected(
            f"device time {device_time.isoformat()} is {ahead.total_seconds():.0f} s after "
            f"the hub received it"
        )
    return TimeResolution(candidate, source, offset_s, None)


def resolve_measured_at(
    device_time: dt.datetime | None,
    clock: ClockState,
    hub_tz: ZoneInfo,
    received_at: dt.datetime,
    *,
    future_tolerance: dt.timedelta = FUTURE_TOLERANCE,
) -> tuple[dt.datetime, TimeSource, float | None]:
    """Return `measured_at` (UTC), its time source, and the clock offset applied (or None).

    `device_time` is the naive device-local time as sent, or None when the device sent none;
    `received_at` is the hub's aware receive time. A SYNCED clock's time is read in `hub_tz`;
    an OFFSET clock's after subtracting its offset; an UNKNOWN clock's as it stands, labelled
    DEVICE_CLOCK_UNVERIFIED. No device time, or a (corrected) time before the year 2000 or more
    than `future_tolerance` after `received_at`, gives `received_at` (HUB_RECEIVE_TIME).
    """
    resolution = resolve_time(
        device_time, clock, hub_tz, received_at, future_tolerance=future_tolerance
    )
    return resolution.measured_at, resolution.time_source, resolution.clock_offset_s
