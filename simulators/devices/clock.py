"""Time for the simulated devices: the household wall clock (injectable), each device's own clock.

Every device reads the time through a `Clock`, never from the system, so that tests run on a
`ManualClock` whose sleeps return at once and whose time only moves when something sleeps or the
test advances it. A device keeps its own `DeviceClock` on top: it may drift, may start at 1970 or
be reset by a battery change, and is set by a Current Time write, as the clocks of real cuffs,
scales and meters are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Final, Protocol

__all__ = ["EPOCH_1970", "Clock", "DeviceClock", "ManualClock", "SystemClock"]

EPOCH_1970: Final = dt.datetime(1970, 1, 1)  # noqa: DTZ001 - device clocks keep naive local time
"""Where a device clock starts when it has never been set (or after its battery was changed)."""

_PPM: Final = 1_000_000


class Clock(Protocol):
    """The household's wall clock: naive local time, and a way to wait on it."""

    def now(self) -> dt.datetime:
        """Return the current local wall-clock time (naive, as a home device shows it)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class SystemClock:
    """The real time of the machine, for the CLI and hardware-in-the-loop runs."""

    def now(self) -> dt.datetime:
        """Return the machine's local time."""
        return dt.datetime.now()  # noqa: DTZ005 - device clocks show local time without a zone

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of real time."""
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock for tests: time moves only by `advance` or by a sleep, which returns at once.

    A sleep adds its duration to the shared time, so a device that waits 1 s between
    notifications stamps them 1 s apart while the test runs at full speed.
    """

    def __init__(self, start: dt.datetime) -> None:
        self._now = start

    def now(self) -> dt.datetime:
        """Return the current simulated time."""
        return self._now

    def advance(self, delta: dt.timedelta) -> None:
        """Move the time forward by `delta`."""
        if delta < dt.timedelta(0):
            raise ValueError("a clock does not go backwards")
        self._now += delta

    async def sleep(self, seconds: float) -> None:
        """Advance the time by `seconds` and let other tasks run once."""
        self.advance(dt.timedelta(seconds=seconds))
        await asyncio.sleep(0)


class DeviceClock:
    """A device's own clock: it runs from the household clock, drifts, and can be set or reset.

    `start` None means the clock was set at the factory or by the user and shows the household
    time when the device is made; a datetime (typically `EPOCH_1970`) means it starts there and
    counts as not set until a Current Time write sets it.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        drift_ppm: float = 0.0,
        start: dt.datetime | None = None,
        reset_to: dt.datetime = EPOCH_1970,
    ) -> None:
        self._clock = clock
        self.drift_ppm = drift_ppm
        self._reset_to = reset_to
        self._anchor_true = clock.now()
        self._anchor_device = self._anchor_true if start is None else start
        self.is_set = start is None

    def now(self) -> dt.datetime:
        """Return what the device's clock shows now (drift included)."""
        elapsed = self._clock.now() - self._anchor_true
        return self._anchor_device + elapsed * (1 + self.drift_ppm / _PPM)

    def set(self, value: dt.datetime) -> None:
        """Set the clock (a Current Time write or the user's buttons)."""
        self._anchor_true = self._clock.now()
        self._anchor_device = value
        self.is_set = True

    def reset(self) -> None:
        """Lose the time, as a battery change does: back to the reset epoch, not set."""
        self._anchor_true = self._clock.now()
        self._anchor_device = self._reset_to
        self.is_set = False
