"""The scanner over the simulated radio, through bleak's public API, as the gateway runs it.

The backend is loaded by name from the configuration, exactly as on a hub; the devices are the
simulated health devices. Tests wait on the scanner's status changes, on callbacks and on the
registry's decisions, never on the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import types
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from bleak import BleakScanner
from sim_helpers import advertising_data
from structlog.testing import capture_logs

from gateway.ble.backend import load_backend
from gateway.ble.registry import (
    PAIRED_DEVICES_FILE,
    Admission,
    AdmissionOutcome,
    DeviceRegistry,
)
from gateway.ble.scanner import Scanner, ScannerState
from gateway.config import BleSettings, DeviceConfig, DeviceProfile
from simulators.bleak_backend import BumbleClient, BumbleScanner, get_adapter, use_radio
from simulators.devices import BloodPressureCuff, GlucoseMeter, SimulatorConfig
from simulators.radio import Radio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

SIMULATED = "simulators.bleak_backend"
TIMEOUT_S = 30
CUFF = "F0:10:20:30:40:51"
STRANGER = "F0:10:20:30:40:52"
TV = "F0:10:20:30:40:53"
PROVISIONED_CUFF = DeviceConfig(id="cuff-kitchen", address=CUFF, profile="blood_pressure")


class WatchedRegistry(DeviceRegistry):
    """The real registry, also counting its decisions per address so tests can wait on them."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: Counter[str] = Counter()
        self.outcomes: list[tuple[str, AdmissionOutcome]] = []
        self._waiters: list[tuple[str, int, asyncio.Event]] = []

    def consider(
        self, address: str, service_uuids: Sequence[str], name: str | None, rssi: int | None
    ) -> Admission:
        admission = super().consider(address, service_uuids, name, rssi)
        self.seen[address] += 1
        self.outcomes.append((address, admission.outcome))
        for waited, count, event in self._waiters:
            if waited == address and self.seen[address] >= count:
                event.set()
        return admission

    async def considered(self, address: str, count: int) -> None:
        event = asyncio.Event()
        self._waiters.append((address, count, event))
        if self.seen[address] >= count:
            event.set()
        await event.wait()


class Handed:
    """The hub's on_device callback: records every device handed over."""

    def __init__(self) -> None:
        self.devices: asyncio.Queue[tuple[DeviceConfig, BLEDevice, AdvertisementData]] = (
            asyncio.Queue()
        )

    def __call__(self, config: DeviceConfig, device: BLEDevice, adv: AdvertisementData) -> None:
        self.devices.put_nowait((config, device, adv))

    def drain(self) -> list[tuple[DeviceConfig, BLEDevice, AdvertisementData]]:
        items = []
        while not self.devices.empty():
            items.append(self.devices.get_nowait())
        return items


def _settings(**changes: object) -> BleSettings:
    values: dict[str, object] = {
        "backend": SIMULATED,
        "scan_silence_s": 600.0,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
    }
    values.update(changes)
    return BleSettings.model_validate(values)


@contextlib.asynccontextmanager
async def scanning(scanner: Scanner) -> AsyncIterator[Scanner]:
    async with asyncio.TaskGroup() as group:
        task = group.create_task(scanner.run(), name="scanner")
        try:
            yield scanner
        finally:
            task.cancel()


@pytest.mark.asyncio
async def test_a_provisioned_cuff_is_handed_to_the_hub(tmp_path):
    radio = Radio(seed=31)
    cuff = BloodPressureCuff.on_radio(radio, CUFF, SimulatorConfig(seed=1))
    registry = WatchedRegistry.load([PROVISIONED_CUFF], tmp_path)
    handed = Handed()
    settings = _settings()
    scanner = Scanner(load_backend(settings), registry, handed, settings)
    async with asyncio.timeout(TIMEOUT_S):
        await cuff.start()
        try:
            async with use_radio(radio), scanning(scanner):
                config, device, adv = await handed.devices.get()
                status = await scanner.wait_until(lambda s: s.state is ScannerState.SCANNING)
        finally:
            await cuff.stop()
    assert config == PROVISIONED_CUFF
    assert device.address == CUFF
    assert "00001810-0000-1000-8000-00805f9b34fb" in adv.service_uuids
    assert status.adverts_seen >= 1
    assert status.seconds_since_last_advert is not None
    assert status.restarts == 0


@pytest.mark.asyncio
async def test_a_stranger_is_reported_once_and_never_handed_over(tmp_path):
    radio = Radio(seed=32)
    cuff = BloodPressureCuff.on_radio(radio, CUFF, SimulatorConfig(seed=1))
    stranger = GlucoseMeter.on_radio(radio, STRANGER, SimulatorConfig(seed=2))
    registry = WatchedRegistry.load([PROVISIONED_CUFF], tmp_path)
    handed = Handed()
    settings = _settings()
    scanner = Scanner(load_backend(settings), registry, handed, settings)
    async with asyncio.timeout(TIMEOUT_S):
        await cuff.start()
        await stranger.start()
        try:
            with capture_logs() as logs:
                async with use_radio(radio), scanning(scanner):
                    await registry.considered(STRANGER, 5)
        finally:
            await stranger.stop()
            await cuff.stop()
    reports = [e for e in logs if e["event"] == "device_not_provisioned"]
    assert reports == [
        {
            "event": "device_not_provisioned",
            "log_level": "info",
            "address": STRANGER,
            "profile": "glucose",
        }
    ]
    stranger_outcomes = [o for a, o in registry.outcomes if a == STRANGER]
    assert stranger_outcomes[0] is AdmissionOutcome.UNPROVISIONED_FIRST_SEEN
    assert set(stranger_outcomes[1:]) == {AdmissionOutcome.IGNORED}
    assert {config.id for config, _, _ in handed.drain()} == {"cuff-kitchen"}
    [sighting] = registry.unprovisioned()
    assert (sighting.address, sighting.profile) == (STRANGER, DeviceProfile.GLUCOSE)


@pytest.mark.asyncio
async def test_the_pairing_window_accepts_a_stranger_saves_it_and_hands_it_over(tmp_path):
    radio = Radio(seed=33)
    stranger = BloodPressureCuff.on_radio(radio, STRANGER, SimulatorConfig(seed=3))
    registry = WatchedRegistry.load([], tmp_path)
    handed = Handed()
    settings = _settings()
    scanner = Scanner(load_backend(settings), registry, handed, settings)
    async with asyncio.timeout(TIMEOUT_S):
        await stranger.start()
        try:
            async with use_radio(radio), scanning(scanner):
                await registry.considered(STRANGER, 1)
                registry.open_pairing_window(60, limit=1)
                config, device, _ = await handed.devices.get()
        finally:
            await stranger.stop()
    assert config.id == "blood_pressure-304052"
    assert config.profile is DeviceProfile.BLOOD_PRESSURE
    assert device.address == STRANGER
    assert (STRANGER, AdmissionOutcome.PAIRED_NOW) in registry.outcomes
    saved = json.loads((tmp_path / PAIRED_DEVICES_FILE).read_text(encoding="utf-8"))
    assert [d["address"] for d in saved["devices"]] == [STRANGER]
    assert DeviceRegistry.load([], tmp_path).lookup(STRANGER) == config


@pytest.mark.asyncio
async def test_a_device_without_a_health_service_never_reaches_the_registry(tmp_path):
    radio = Radio(seed=34)
    tv = radio.device("living-room-tv", TV)
    registry = WatchedRegistry.load([], tmp_path)
    handed = Handed()
    settings = _settings()
    scanner = Scanner(load_backend(settings), registry, handed, settings)
    tv_seen = asyncio.Event()
    tv_sightings = Counter[str]()

    def everything(device: BLEDevice, _adv: AdvertisementData) -> None:
        tv_sightings[device.address] += 1
        if tv_sightings[TV] >= 5:
            tv_seen.set()

    async with asyncio.timeout(TIMEOUT_S):
        await tv.power_on()
        await tv.start_advertising(
            advertising_data=advertising_data("TV", service_uuid16=0x180F),
            advertising_interval_min=20,
            advertising_interval_max=20,
        )
        try:
            async with use_radio(radio), scanning(scanner):
                await scanner.wait_until(lambda s: s.state is ScannerState.SCANNING)
                # An unfiltered scanner on the same adapter proves the TV is on the air: each
                # report reaches every scanner in the same dispatch.
                async with BleakScanner(everything, backend=BumbleScanner):
                    await tv_seen.wait()
        finally:
            await tv.stop_advertising()
    assert registry.seen[TV] == 0
    assert registry.unprovisioned() == []
    assert handed.drain() == []


@pytest.mark.asyncio
async def test_a_silent_adapter_restarts_the_scanner(tmp_path):
    radio = Radio(seed=35)  # nobody on the air: silence from the start
    registry = WatchedRegistry.load([], tmp_path)
    settings = _settings(scan_silence_s=0.05)
    scanner = Scanner(load_backend(settings), registry, Handed(), settings)
    async with asyncio.timeout(TIMEOUT_S):
        with capture_logs() as logs:
            async with use_radio(radio), scanning(scanner):
                status = await scanner.wait_until(
                    lambda s: s.restarts >= 3 and s.state is ScannerState.SCANNING
                )
    assert status.last_error == "no advertisement for 0.05 s"
    events = [e["event"] for e in logs]
    # Said once; the same silence after each restart is only debug.
    assert events.count("scanner_silent") == 1
    [silent] = [e for e in logs if e["event"] == "scanner_silent"]
    assert silent["log_level"] == "warning"
    assert silent["action"] == "restarting the scanner"
    assert "bluetoothctl show" in silent["hint"]
    assert events.count("scanner_still_silent") >= 2
    assert events.count("scanner_restarted") >= 3


@pytest.mark.asyncio
async def test_a_device_falling_silent_restarts_the_scanner_and_power_cycles(tmp_path, monkeypatch):
    cycles: list[str] = []
    # The simulated backend with a power-cycle hook, as a backend module may provide one.
    module = types.ModuleType("vb_cycling_backend")
    module.scanner_backend = BumbleScanner  # type: ignore[attr-defined]
    module.client_backend = BumbleClient  # type: ignore[attr-defined]
    module.power_cycle = lambda: cycles.append("cycled") or True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vb_cycling_backend", module)
    radio = Radio(seed=36)
    cuff = BloodPressureCuff.on_radio(radio, CUFF, SimulatorConfig(seed=1))
    registry = WatchedRegistry.load([PROVISIONED_CUFF], tmp_path)
    handed = Handed()
    settings = _settings(backend="vb_cycling_backend", scan_silence_s=0.2, power_cycle_adapter=True)
    scanner = Scanner(load_backend(settings), registry, handed, settings)
    async with asyncio.timeout(TIMEOUT_S):
        await cuff.start()
        with capture_logs() as logs:
            async with use_radio(radio), scanning(scanner):
                await handed.devices.get()
                await cuff.stop()  # switched off: no advertisement any more
                status = await scanner.wait_until(
                    lambda s: s.restarts >= 1 and s.state is ScannerState.SCANNING
                )
    assert cycles
    assert status.adverts_seen >= 1
    [silent] = [e for e in logs if e["event"] == "scanner_silent"]
    assert silent["action"] == "restarting the scanner and power-cycling the adapter"
    assert silent["adverts_seen"] >= 1


@pytest.mark.asyncio
async def test_a_scanner_without_an_adapter_retries_and_recovers(tmp_path):
    # No adapter at first: the simulated backend raises AdapterNotConfiguredError (a
    # BleakError), as BlueZ raises when the adapter is missing or powered off.
    radio = Radio(seed=37)
    cuff = BloodPressureCuff.on_radio(radio, CUFF, SimulatorConfig(seed=1))
    registry = WatchedRegistry.load([PROVISIONED_CUFF], tmp_path)
    handed = Handed()
    settings = _settings()
    scanner = Scanner(load_backend(settings), registry, handed, settings)
    async with asyncio.timeout(TIMEOUT_S):
        await cuff.start()
        try:
            with capture_logs() as logs:
                async with scanning(scanner):
                    failed = await scanner.wait_until(lambda s: s.start_failures >= 3)
                    assert failed.state is ScannerState.FAILED
                    assert failed.last_error is not None
                    assert "AdapterNotConfiguredError" in failed.last_error
                    async with use_radio(radio):
                        recovered = await scanner.wait_until(
                            lambda s: s.state is ScannerState.SCANNING
                        )
                        config, _, _ = await handed.devices.get()
        finally:
            await cuff.stop()
    assert config == PROVISIONED_CUFF
    assert recovered.start_failures >= 3
    events = [e["event"] for e in logs]
    # One line per change of state, not one per retry.
    assert events.count("scanner_start_failed") == 1
    assert events.count("scanner_recovered") == 1
    assert events.count("scanner_start_retry_failed") >= 2
    [failed_event] = [e for e in logs if e["event"] == "scanner_start_failed"]
    assert failed_event["log_level"] == "error"
    assert "bluetoothctl show" in failed_event["hint"]


@pytest.mark.asyncio
async def test_cancelling_the_scanner_stops_the_scan(tmp_path):
    radio = Radio(seed=38)
    registry = WatchedRegistry.load([], tmp_path)
    settings = _settings()
    scanner = Scanner(load_backend(settings), registry, Handed(), settings)
    async with asyncio.timeout(TIMEOUT_S), use_radio(radio):
        adapter = await get_adapter()
        async with scanning(scanner):
            await scanner.wait_until(lambda s: s.state is ScannerState.SCANNING)
            assert len(adapter._sinks) == 1
        assert adapter._sinks == []


@pytest.mark.asyncio
async def test_a_failing_hub_callback_does_not_stop_the_scan(tmp_path):
    radio = Radio(seed=39)
    cuff = BloodPressureCuff.on_radio(radio, CUFF, SimulatorConfig(seed=1))
    registry = WatchedRegistry.load([PROVISIONED_CUFF], tmp_path)
    calls = 0

    def broken(_config: DeviceConfig, _device: BLEDevice, _adv: AdvertisementData) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("handler bug")

    settings = _settings()
    scanner = Scanner(load_backend(settings), registry, broken, settings)
    async with asyncio.timeout(TIMEOUT_S):
        await cuff.start()
        try:
            with capture_logs() as logs:
                async with use_radio(radio), scanning(scanner):
                    await registry.considered(CUFF, 3)
        finally:
            await cuff.stop()
    assert calls >= 3
    assert [e["event"] for e in logs].count("device_handler_failed") >= 3


def test_status_document(tmp_path):
    settings = _settings()
    scanner = Scanner(load_backend(settings), DeviceRegistry.load([], tmp_path), Handed(), settings)
    assert scanner.status() == {
        "state": "starting",
        "adverts_seen": 0,
        "seconds_since_last_advert": None,
        "restarts": 0,
        "start_failures": 0,
        "last_error": None,
    }


@pytest.mark.asyncio
async def test_silence_while_a_device_is_connected_is_not_a_fault(tmp_path):
    radio = Radio(seed=40)  # nobody advertising: the only device is connected to the hub
    asked = asyncio.Event()
    answers = 0

    def connected() -> bool:
        nonlocal answers
        answers += 1
        if answers >= 3:
            asked.set()
        return True

    settings = _settings(scan_silence_s=0.05, power_cycle_adapter=True)
    scanner = Scanner(
        load_backend(settings),
        DeviceRegistry.load([], tmp_path),
        Handed(),
        settings,
        connected=connected,
    )
    async with asyncio.timeout(TIMEOUT_S):
        with capture_logs() as logs:
            async with use_radio(radio), scanning(scanner):
                await asked.wait()
                status = scanner.snapshot()
    assert status.restarts == 0
    assert status.state is ScannerState.SCANNING
    events = [e["event"] for e in logs]
    assert "scanner_silent" not in events
    assert events.count("scanner_silent_while_connected") >= 3
