"""Running a scenario: build its devices on a radio or a controller, and play their schedules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from typing import TYPE_CHECKING, Literal

from simulators.devices import SimulatedDevice, SystemClock, WeightScale

if TYPE_CHECKING:
    from collections.abc import Callable

    from bumble.device import Device

    from simulators.devices import Clock
    from simulators.radio import Radio
    from simulators.scenario import DeviceSpec, Scenario

__all__ = [
    "Activity",
    "ActivityKind",
    "ReplayClock",
    "ScenarioDevice",
    "build_device",
    "build_household",
    "run_device",
]


class ReplayClock:
    """The household clock as one device sees it: real time, wound back while it takes a backlog.

    A device built `behind_s` in the past takes its backlog readings while the clock catches up,
    so they carry the times at which a patient would have taken them, hours or days ago.
    """

    def __init__(self, base: Clock, behind_s: float = 0.0) -> None:
        self._base = base
        self.behind_s = behind_s

    def now(self) -> dt.datetime:
        """Return the household time, less what the device has not caught up on yet."""
        return self._base.now() - dt.timedelta(seconds=self.behind_s)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of the household clock."""
        await self._base.sleep(seconds)

    def catch_up(self, seconds: float | None = None) -> None:
        """Move towards the present by `seconds` (None: all the way)."""
        self.behind_s = 0.0 if seconds is None else max(0.0, self.behind_s - seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class ScenarioDevice:
    """A device built from a scenario entry, with the clock its schedule runs on."""

    spec: DeviceSpec
    device: SimulatedDevice
    clock: ReplayClock


ActivityKind = Literal["started", "button", "sent", "stored", "unsent"]


@dataclasses.dataclass(frozen=True, slots=True)
class Activity:
    """Something a scheduled device did: a button press, or a reading and where it went."""

    at: dt.datetime
    kind: ActivityKind
    """sent: to a hub; stored: kept for one; unsent: nobody listened and nothing was kept."""
    reading: object = None
    """What `measure` returned (a `device_profiles` value, or a record holding some)."""
    backlog: bool = False
    """Taken before power-on, from the schedule's backlog."""


def build_device(
    spec: DeviceSpec, seed: int, host: Device, *, clock: Clock | None = None
) -> ScenarioDevice:
    """Make the simulated device of `spec` on a Bumble `host` (on a radio or a real controller)."""
    behind_s = spec.schedule.backlog * spec.schedule.backlog_every_s
    replay = ReplayClock(clock or SystemClock(), behind_s)
    device = spec.device_type(host, spec.config(seed), clock=replay)
    if isinstance(device, WeightScale):
        for index, code in enumerate(spec.registered_users):
            device.users.consent_codes[index] = code
    return ScenarioDevice(spec, device, replay)


def build_household(
    scenario: Scenario, radio: Radio, *, clock: Clock | None = None
) -> list[ScenarioDevice]:
    """Make every device of the scenario on `radio` (not started: `run_device` does that)."""
    return [
        build_device(
            spec,
            scenario.device_seed(index),
            radio.device(spec.display_name, spec.address),
            clock=clock,
        )
        for index, spec in enumerate(scenario.devices)
    ]


async def _measure(member: ScenarioDevice, user: int | None) -> tuple[object, ActivityKind]:
    device = member.device
    sent_before = len(device.sent)
    if user is not None and isinstance(device, WeightScale):
        reading: object = await device.measure(user_index=user)
    else:
        reading = await device.measure()
    if len(device.sent) > sent_before:
        return reading, "sent"
    # Every device returns the very object it keeps (a full memory forgets its oldest instead).
    stored = device.stored_records
    return reading, "stored" if stored and stored[-1] is reading else "unsent"


async def run_device(
    member: ScenarioDevice, observer: Callable[[ScenarioDevice, Activity], object] | None = None
) -> None:
    """Take the backlog (before power-on), start the device, then measure on its schedule.

    Returns when the schedule ends; the device stays on (the caller stops it). `observer` hears
    of each button press and reading, and where the reading went.
    """
    schedule = member.spec.schedule
    device, clock = member.device, member.clock
    users = itertools.cycle(schedule.users) if schedule.users else None

    def report(kind: ActivityKind, reading: object = None, *, backlog: bool = False) -> None:
        if observer is not None:
            observer(member, Activity(clock.now(), kind, reading, backlog))

    for _ in range(schedule.backlog):
        reading, outcome = await _measure(member, next(users) if users else None)
        report(outcome, reading, backlog=True)
        clock.catch_up(schedule.backlog_every_s)
    clock.catch_up()
    await device.start()
    report("started")
    start = clock.now()
    counter = itertools.count() if schedule.measurements is None else range(schedule.measurements)
    for index in counter:
        due = start + dt.timedelta(seconds=schedule.first_after_s + index * schedule.every_s)
        # Sleep to a deadline, not by a fixed step, so slow sends do not stretch the period.
        await clock.sleep(max(0.0, (due - clock.now()).total_seconds()))
        if member.spec.presses_button:
            await device.press_button()
            report("button")
        reading, outcome = await _measure(member, next(users) if users else None)
        report(outcome, reading)
