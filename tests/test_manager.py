"""The session manager's scheduling: bounded slots, fairness, backoff, isolation of failures.

Sessions are stand-ins here (the radio is not what is under test: the end-to-end tests run real
sessions); advertisements are fed as the scanner would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from gateway.ble.manager import SessionManager
from gateway.ble.session import SessionDeps, SessionOutcome
from gateway.config import BleSettings, DeviceConfig
from gateway.errors import DeviceUnavailableError
from gateway.state import DeviceState, DeviceStateStore

if TYPE_CHECKING:
    from pathlib import Path

ADVERT = AdvertisementData(
    local_name=None,
    manufacturer_data={},
    service_data={},
    service_uuids=[],
    tx_power=None,
    rssi=-60,
    platform_data=(),
)


class StandIn:
    """A session that takes `hold` (an event) to finish, and may fail."""

    log: list[str]
    hold: dict[str, asyncio.Event]
    fail: set[str]

    def __init__(self, device: DeviceConfig, state: DeviceState, deps: SessionDeps) -> None:
        del state, deps
        self.device = device
        self.outcome = SessionOutcome()

    async def run(self, ble_device: BLEDevice) -> SessionOutcome:
        del ble_device
        StandIn.log.append(self.device.id)
        event = StandIn.hold.get(self.device.id)
        if event is not None:
            await event.wait()
        else:
            await asyncio.sleep(0)
        if self.device.id in StandIn.fail:
            raise DeviceUnavailableError(self.device.id, "out of range")
        if self.device.id == "buggy":
            raise RuntimeError("a bug in one session")
        return self.outcome


def devices(*ids: str) -> list[DeviceConfig]:
    return [
        DeviceConfig(id=d, address=f"F0:00:00:00:00:{i:02X}", profile="blood_pressure")
        for i, d in enumerate(ids, start=1)
    ]


def manager(tmp_path: Path, slots: int, **kwargs) -> SessionManager:
    settings = BleSettings(max_connections=slots, backoff_base_s=30, backoff_cap_s=60)
    deps = SessionDeps(
        hub_id="hub-1",
        zone=ZoneInfo("UTC"),
        outbox=None,  # type: ignore[arg-type] - the stand-in sessions store nothing
        settings=settings,
        client_class=object,  # type: ignore[arg-type]
        hub_clock_synchronised=lambda: False,
        now=lambda: dt.datetime.now(dt.UTC),
    )
    return SessionManager(
        deps,
        DeviceStateStore(tmp_path),
        session_factory=StandIn,  # type: ignore[arg-type] - a structural stand-in
        rng=random.Random(1),  # noqa: S311 - backoff jitter
        **kwargs,
    )


@pytest.fixture(autouse=True)
def reset_stand_in():
    StandIn.log, StandIn.hold, StandIn.fail = [], {}, set()


async def advertise_rounds(mgr: SessionManager, fleet: list[DeviceConfig], rounds: int) -> None:
    """Advertise every device in the same order, round after round, as a steady radio does."""
    for _ in range(rounds):
        for device in fleet:
            mgr.on_device(device, BLEDevice(device.address, None, {}), ADVERT)
        await asyncio.sleep(0)
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_a_freed_slot_goes_to_the_device_that_waited_longest_not_the_first_to_advertise(
    tmp_path: Path,
):
    fleet = devices("a", "b", "c", "d")
    mgr = manager(tmp_path, slots=1, resync_after_s=0)
    runner = asyncio.create_task(mgr.run())
    await asyncio.sleep(0)
    try:
        await advertise_rounds(mgr, fleet, rounds=12)
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    # Every device had a session before any had a second one.
    first_four = StandIn.log[:4]
    assert sorted(first_four) == ["a", "b", "c", "d"], StandIn.log
    assert {d: StandIn.log.count(d) for d in "abcd"} == {d: StandIn.log.count("a") for d in "abcd"}


@pytest.mark.asyncio
async def test_never_more_sessions_than_slots_and_waiting_devices_get_the_next_slot(
    tmp_path: Path,
):
    fleet = devices("a", "b", "c")
    StandIn.hold = {d.id: asyncio.Event() for d in fleet}
    mgr = manager(tmp_path, slots=2)
    runner = asyncio.create_task(mgr.run())
    await asyncio.sleep(0)
    try:
        await advertise_rounds(mgr, fleet, rounds=3)
        assert sorted(mgr.connected) == ["a", "b"]
        StandIn.hold["a"].set()
        async with asyncio.timeout(10):
            while "c" not in mgr.connected:  # a's session ends once its state is saved
                await advertise_rounds(mgr, fleet, rounds=1)
        assert sorted(mgr.connected) == ["b", "c"]
    finally:
        for event in StandIn.hold.values():
            event.set()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert StandIn.log == ["a", "b", "c"]


@pytest.mark.asyncio
async def test_a_failing_device_backs_off_and_a_buggy_session_does_not_stop_the_others(
    tmp_path: Path,
):
    fleet = devices("flaky", "buggy", "good")
    StandIn.fail = {"flaky"}
    mgr = manager(tmp_path, slots=3, resync_after_s=0)
    runner = asyncio.create_task(mgr.run())
    await asyncio.sleep(0)
    try:
        await advertise_rounds(mgr, fleet, rounds=10)
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    # Failures wait out a backoff (30 s here): one attempt each, not one per advertisement.
    assert StandIn.log.count("flaky") == 1
    assert StandIn.log.count("buggy") == 1
    assert StandIn.log.count("good") >= 5
    assert mgr.counters["session_failures"] == 2
    state = mgr._store.get("flaky")
    assert state.failures == 1
    assert "out of range" in (state.last_error or "")
