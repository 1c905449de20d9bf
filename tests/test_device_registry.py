"""The device registry: who is provisioned, the pairing window, paired devices kept on disk.

(tests/test_registry.py is the codec registry of device_profiles; this is the gateway's.)
"""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from structlog.testing import capture_logs

from gateway.ble.registry import (
    HEALTH_SERVICE_UUIDS,
    PAIRED_DEVICES_FILE,
    AdmissionOutcome,
    ConfiguredDeviceError,
    DeviceRegistry,
    DeviceRegistryError,
    UnknownDeviceError,
    profile_for_services,
)
from gateway.config import DeviceConfig, DeviceProfile
from gateway.errors import VitalbridgeError
from gateway.state import write_atomically


def _uuid(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


BPS = _uuid(0x1810)
WSS = _uuid(0x181D)
BCS = _uuid(0x181B)
HRS = _uuid(0x180D)
GLS = _uuid(0x1808)
BATTERY = _uuid(0x180F)
CUFF = "F0:10:20:30:40:51"
OTHER = "F0:10:20:30:40:52"
CONFIGURED = DeviceConfig(
    id="cuff-kitchen", address="AA:BB:CC:00:00:01", profile="blood_pressure", patient="p-1"
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def registry(tmp_path, clock):
    return DeviceRegistry.load([CONFIGURED], tmp_path, clock=clock)


def test_the_health_services_are_the_seven_profiles_in_bleaks_spelling():
    assert sorted(HEALTH_SERVICE_UUIDS) == sorted(
        _uuid(s) for s in (0x1810, 0x1822, 0x181D, 0x181B, 0x1809, 0x1808, 0x180D)
    )
    assert all(u == u.lower() and len(u) == 36 for u in HEALTH_SERVICE_UUIDS)


@pytest.mark.parametrize(
    ("services", "profile"),
    [
        ([BPS], DeviceProfile.BLOOD_PRESSURE),
        ([WSS, BCS], DeviceProfile.BODY_COMPOSITION),
        ([WSS], DeviceProfile.WEIGHT_SCALE),
        ([HRS, BPS], DeviceProfile.BLOOD_PRESSURE),
        ([BPS.upper()], DeviceProfile.BLOOD_PRESSURE),
        ([BATTERY], None),
        ([], None),
    ],
)
def test_profile_from_advertised_services(services, profile):
    assert profile_for_services(services) is profile


def test_a_configured_device_is_provisioned(registry):
    admission = registry.consider(CONFIGURED.address.lower(), [BPS], "cuff", -60)
    assert admission.outcome is AdmissionOutcome.PROVISIONED
    assert admission.device == CONFIGURED
    assert admission.admitted
    assert registry.lookup(CONFIGURED.address) == CONFIGURED
    assert registry.devices() == (CONFIGURED,)
    assert registry.unprovisioned() == []


def test_a_stranger_is_reported_once_with_address_and_profile_only(registry, clock):
    with capture_logs() as logs:
        first = registry.consider(CUFF, [BPS], "BP-7", -70)
        clock.now += 5
        again = registry.consider(CUFF, [BPS], "BP-7 Anne", -50)
    assert first.outcome is AdmissionOutcome.UNPROVISIONED_FIRST_SEEN
    assert not first.admitted
    assert first.profile is DeviceProfile.BLOOD_PRESSURE
    assert again.outcome is AdmissionOutcome.IGNORED
    assert logs == [
        {
            "event": "device_not_provisioned",
            "log_level": "info",
            "address": CUFF,
            "profile": "blood_pressure",
        }
    ]
    [sighting] = registry.unprovisioned()
    assert sighting.as_dict() == {
        "address": CUFF,
        "profile": "blood_pressure",
        "name": "BP-7 Anne",
        "first_seen": 1000.0,
        "last_seen": 1005.0,
        "rssi": -50,
    }


def test_a_device_without_a_health_service_is_ignored_and_not_listed(registry):
    with capture_logs() as logs:
        assert registry.consider(OTHER, [BATTERY], "tv", -40).outcome is AdmissionOutcome.IGNORED
    assert logs == []
    assert registry.unprovisioned() == []


def test_the_pairing_window_accepts_a_new_device_and_saves_it(registry, tmp_path, clock):
    registry.consider(CUFF, [BPS], "BP-7", -70)  # reported before the window opened
    registry.open_pairing_window(120)
    assert registry.pairing_window_remaining_s == 120
    clock.now += 20
    assert registry.pairing_window_remaining_s == 100
    with capture_logs() as logs:
        admission = registry.consider(CUFF, [BPS], "BP-7", -70)
    assert admission.outcome is AdmissionOutcome.PAIRED_NOW
    device = admission.device
    assert device is not None
    assert device.id == "blood_pressure-304051"
    assert device.address == CUFF
    assert device.profile is DeviceProfile.BLOOD_PRESSURE
    assert device.name == "BP-7"
    assert device.patient is None
    assert device.patients == {}
    assert [e["event"] for e in logs] == ["device_paired"]
    assert registry.unprovisioned() == []
    assert registry.consider(CUFF, [BPS], None, -70).outcome is AdmissionOutcome.PROVISIONED
    assert registry.devices() == (CONFIGURED, device)
    assert registry.paired_devices() == (device,)
    assert not registry.is_configured(device.id)
    path = tmp_path / PAIRED_DEVICES_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["version"] == 1
    assert [d["id"] for d in document["devices"]] == ["blood_pressure-304051"]
    reloaded = DeviceRegistry.load([CONFIGURED], tmp_path, clock=clock)
    assert reloaded.lookup(CUFF) == device
    assert reloaded.pairing_window_remaining_s is None


def test_the_window_closes_itself_when_its_time_is_up(registry, clock):
    registry.open_pairing_window(60)
    clock.now += 60
    with capture_logs() as logs:
        admission = registry.consider(CUFF, [BPS], None, None)
    assert admission.outcome is AdmissionOutcome.UNPROVISIONED_FIRST_SEEN
    assert [(e["event"], e.get("reason")) for e in logs] == [
        ("pairing_window_closed", "expired"),
        ("device_not_provisioned", None),
    ]
    assert registry.pairing_window_remaining_s is None


def test_the_remaining_time_closes_an_expired_window_too(registry, clock):
    registry.open_pairing_window(10)
    clock.now += 11
    assert registry.pairing_window_remaining_s is None
    assert registry.consider(CUFF, [BPS], None, None).device is None


def test_a_window_for_one_profile_leaves_other_devices_alone(registry):
    registry.open_pairing_window(60, DeviceProfile.GLUCOSE)
    assert registry.consider(CUFF, [BPS], None, None).outcome is (
        AdmissionOutcome.UNPROVISIONED_FIRST_SEEN
    )
    meter = registry.consider(OTHER, [GLS], None, None)
    assert meter.outcome is AdmissionOutcome.PAIRED_NOW
    assert meter.device is not None
    assert meter.device.profile is DeviceProfile.GLUCOSE


def test_a_window_with_a_limit_closes_after_that_many(registry):
    registry.open_pairing_window(60, limit=1)
    assert registry.consider(CUFF, [BPS], None, None).outcome is AdmissionOutcome.PAIRED_NOW
    assert registry.pairing_window_remaining_s is None
    assert registry.consider(OTHER, [BPS], None, None).outcome is (
        AdmissionOutcome.UNPROVISIONED_FIRST_SEEN
    )


def test_closing_the_window_by_hand(registry):
    registry.close_pairing_window()  # none open: nothing happens
    registry.open_pairing_window(60)
    with capture_logs() as logs:
        registry.close_pairing_window()
    assert logs == [
        {"event": "pairing_window_closed", "log_level": "info", "reason": "closed", "paired": 0}
    ]
    assert registry.consider(CUFF, [BPS], None, None).device is None


@pytest.mark.parametrize(("duration", "limit"), [(0, None), (-1, None), (10, 0)])
def test_a_window_must_have_a_duration_and_a_positive_limit(registry, duration, limit):
    with pytest.raises(ValueError, match="pairing window"):
        registry.open_pairing_window(duration, limit=limit)


@pytest.mark.asyncio
async def test_wait_window_closed_returns_when_the_window_is_closed(registry):
    await registry.wait_window_closed()  # none open
    registry.open_pairing_window(3600)
    waiter = asyncio.create_task(registry.wait_window_closed(), name="wait-window")
    await asyncio.sleep(0)  # let the waiter start waiting
    assert not waiter.done()
    registry.consider(CUFF, [BPS], None, None)
    registry.close_pairing_window()
    async with asyncio.timeout(10):
        await waiter


@pytest.mark.asyncio
async def test_wait_window_closed_returns_when_its_time_is_up(tmp_path):
    registry = DeviceRegistry.load([], tmp_path)  # the real monotonic clock
    registry.open_pairing_window(0.05)
    async with asyncio.timeout(10):
        await registry.wait_window_closed()
    assert registry.pairing_window_remaining_s is None


def test_ids_do_not_collide_with_configured_ones(tmp_path, clock):
    taken = DeviceConfig(
        id="blood_pressure-304051", address="AA:BB:CC:00:00:09", profile="blood_pressure"
    )
    registry = DeviceRegistry.load([taken], tmp_path, clock=clock)
    registry.open_pairing_window(60)
    device = registry.consider(CUFF, [BPS], None, None).device
    assert device is not None
    assert device.id == "blood_pressure-f01020304051"


def test_forget_a_paired_device(registry, tmp_path, clock):
    registry.open_pairing_window(60)
    device = registry.consider(CUFF, [BPS], None, None).device
    assert device is not None
    registry.close_pairing_window()
    assert registry.forget(device.id) is True
    assert registry.lookup(CUFF) is None
    assert registry.consider(CUFF, [BPS], None, None).outcome is (
        AdmissionOutcome.UNPROVISIONED_FIRST_SEEN
    )
    assert DeviceRegistry.load([CONFIGURED], tmp_path, clock=clock).lookup(CUFF) is None
    assert registry.forget(device.id) is False
    assert registry.forget("no-such-device") is False


def test_a_configured_device_cannot_be_forgotten_or_reassigned(registry):
    with pytest.raises(ConfiguredDeviceError, match="configuration file") as forgotten:
        registry.forget(CONFIGURED.id)
    assert isinstance(forgotten.value, VitalbridgeError)
    with pytest.raises(ConfiguredDeviceError, match=r"\[\[devices\]\] in the configuration file"):
        registry.set_patient(CONFIGURED.id, None, "p-2")
    assert registry.lookup(CONFIGURED.address) == CONFIGURED


def test_set_patient_on_a_paired_device_is_saved(registry, tmp_path, clock):
    registry.open_pairing_window(60)
    device = registry.consider(CUFF, [WSS], None, None).device
    assert device is not None
    with capture_logs() as logs:
        registry.set_patient(device.id, None, "patient-77")
        registry.set_patient(device.id, 1, "patient-78")
        registry.set_patient(device.id, 2, "patient-79")
        registry.set_patient(device.id, 2, None)
    assert "patient-7" not in repr(logs)  # patient references never go to the log
    updated = registry.lookup(CUFF)
    assert updated is not None
    assert updated.patient == "patient-77"
    assert updated.patients == {1: "patient-78"}
    assert updated.patient_map() == {None: "patient-77", 1: "patient-78"}
    reloaded = DeviceRegistry.load([CONFIGURED], tmp_path, clock=clock).lookup(CUFF)
    assert reloaded == updated


def test_set_patient_refusals(registry):
    with pytest.raises(UnknownDeviceError, match="no paired device has id 'nope'"):
        registry.set_patient("nope", None, "p")
    registry.open_pairing_window(60)
    device = registry.consider(CUFF, [BPS], None, None).device
    assert device is not None
    with pytest.raises(DeviceRegistryError, match="cannot set the patient") as bad:
        registry.set_patient(device.id, None, "not a valid ref!")
    assert "not a valid ref" not in str(bad.value)
    with pytest.raises(DeviceRegistryError, match="0-254"):
        registry.set_patient(device.id, 300, "p-3")
    assert registry.lookup(CUFF) == device


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xffnot json",
        b"[]",
        b'{"version": 2, "devices": []}',
        b'{"version": 1}',
        b'{"version": 1, "devices": {}}',
        b'{"version": 1, "devices": [7]}',
        b'{"version": 1, "devices": [{"id": "x", "address": "nope", "profile": "glucose"}]}',
        (
            b'{"version": 1, "devices": ['
            b'{"id": "a", "address": "F0:10:20:30:40:51", "profile": "glucose"},'
            b'{"id": "b", "address": "F0:10:20:30:40:51", "profile": "glucose"}]}'
        ),
    ],
)
def test_a_corrupt_file_is_moved_aside_with_a_warning(tmp_path, content):
    path = tmp_path / PAIRED_DEVICES_FILE
    path.write_bytes(content)
    with capture_logs() as logs:
        registry = DeviceRegistry.load([CONFIGURED], tmp_path)
    assert registry.devices() == (CONFIGURED,)
    aside = tmp_path / f"{PAIRED_DEVICES_FILE}.corrupt-1"
    assert aside.read_bytes() == content
    assert not path.exists()
    [event] = logs
    assert event["event"] == "paired_devices_corrupt"
    assert event["log_level"] == "warning"
    assert event["moved_to"] == str(aside)
    # A second corrupt file does not overwrite the first one kept aside.
    path.write_bytes(content)
    DeviceRegistry.load([], tmp_path)
    assert (tmp_path / f"{PAIRED_DEVICES_FILE}.corrupt-2").read_bytes() == content


def test_a_paired_device_added_to_the_configuration_is_taken_from_there(tmp_path, clock):
    registry = DeviceRegistry.load([], tmp_path, clock=clock)
    registry.open_pairing_window(60)
    registry.consider(CUFF, [BPS], None, None)
    configured = DeviceConfig(id="cuff-hall", address=CUFF, profile="blood_pressure", patient="p")
    clash = DeviceConfig(id="blood_pressure-304051", address=OTHER, profile="blood_pressure")
    assert DeviceRegistry.load([configured], tmp_path).devices() == (configured,)
    with capture_logs() as logs:
        assert DeviceRegistry.load([clash], tmp_path).devices() == (clash,)
    assert [e["event"] for e in logs] == ["paired_device_id_taken"]


def _unwritable_state_dir(tmp_path: Path) -> Path:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    return blocker / "state"  # mkdir and writes under a regular file fail, even as root


def test_an_unreadable_state_directory_is_a_typed_error(tmp_path):
    with pytest.raises(DeviceRegistryError, match="check the permissions of the state directory"):
        DeviceRegistry.load([], _unwritable_state_dir(tmp_path))


def test_a_pairing_that_cannot_be_saved_still_admits_the_device(tmp_path):
    registry = DeviceRegistry.load([], tmp_path)
    registry._path = _unwritable_state_dir(tmp_path) / PAIRED_DEVICES_FILE
    registry.open_pairing_window(60)
    with capture_logs() as logs:
        admission = registry.consider(CUFF, [BPS], None, None)
    assert admission.outcome is AdmissionOutcome.PAIRED_NOW
    [error] = [e for e in logs if e["event"] == "device_pair_not_saved"]
    assert error["log_level"] == "error"
    assert "check that the state directory exists" in error["error"]


def test_a_forget_that_cannot_be_saved_changes_nothing(tmp_path):
    good = tmp_path / "good"
    registry = DeviceRegistry.load([], good)
    registry.open_pairing_window(60)
    device = registry.consider(CUFF, [BPS], None, None).device
    assert device is not None
    registry._path = _unwritable_state_dir(tmp_path) / PAIRED_DEVICES_FILE
    with pytest.raises(DeviceRegistryError, match="cannot save the paired devices"):
        registry.forget(device.id)
    assert registry.lookup(CUFF) == device
    with pytest.raises(DeviceRegistryError, match="cannot save the paired devices"):
        registry.set_patient(device.id, None, "p-1")
    assert registry.lookup(CUFF) == device


def test_concurrent_atomic_writes_never_show_a_partial_file(tmp_path):
    path = tmp_path / PAIRED_DEVICES_FILE
    payloads = [json.dumps({"writer": n, "pad": "x" * 20_000}).encode() for n in range(4)]
    write_atomically(path, payloads[0])
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(json.loads(path.read_bytes())["writer"])
            except BaseException as exc:  # noqa: BLE001 - any failure is the test's finding
                errors.append(exc)

    def writer(payload: bytes) -> None:
        for _ in range(25):
            write_atomically(path, payload)

    reading = threading.Thread(target=reader, name="reader")
    reading.start()
    writers = [threading.Thread(target=writer, args=(p,), name="writer") for p in payloads]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reading.join()
    assert errors == []
    assert seen
    assert set(seen) <= set(range(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == [PAIRED_DEVICES_FILE]


# A model of the product rule, checked against the registry step by step.

ADDRESSES = ("F0:00:00:00:00:01", "F0:00:00:00:00:02", "F0:00:00:00:00:03", CONFIGURED.address)
SERVICES = st.sampled_from([[BPS], [GLS], [WSS, BCS], [BATTERY], []])


class RegistryModel(RuleBasedStateMachine):
    """Outside a window nothing new is admitted; a stranger is reported once; pairings persist."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="vb-registry-"))
        self.clock = FakeClock()
        self.registry = DeviceRegistry.load([CONFIGURED], self.directory, clock=self.clock)
        self.paired: set[str] = set()
        self.reported: set[str] = set()
        self.deadline: float | None = None

    @initialize()
    def start(self) -> None:
        assert self.registry.devices() == (CONFIGURED,)

    def window_open(self) -> bool:
        return self.deadline is not None and self.clock.now < self.deadline

    @rule(address=st.sampled_from(ADDRESSES), services=SERVICES)
    def advertise(self, address: str, services: list[str]) -> None:
        admission = self.registry.consider(address, services, None, -60)
        health = profile_for_services(services) is not None
        if address == CONFIGURED.address or address in self.paired:
            expected = AdmissionOutcome.PROVISIONED
        elif not health:
            expected = AdmissionOutcome.IGNORED
        elif self.window_open():
            expected = AdmissionOutcome.PAIRED_NOW
            self.paired.add(address)
            self.reported.discard(address)
        elif address in self.reported:
            expected = AdmissionOutcome.IGNORED
        else:
            expected = AdmissionOutcome.UNPROVISIONED_FIRST_SEEN
            self.reported.add(address)
        assert admission.outcome is expected
        assert admission.admitted == (
            expected in {AdmissionOutcome.PROVISIONED, AdmissionOutcome.PAIRED_NOW}
        )

    @rule(duration=st.floats(min_value=1, max_value=100))
    def open_window(self, duration: float) -> None:
        self.registry.open_pairing_window(duration)
        self.deadline = self.clock.now + duration

    @rule()
    def close_window(self) -> None:
        self.registry.close_pairing_window()
        self.deadline = None

    @rule(seconds=st.floats(min_value=0, max_value=60))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @precondition(lambda self: self.paired)
    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        address = data.draw(st.sampled_from(sorted(self.paired)))
        device = self.registry.lookup(address)
        assert device is not None
        assert self.registry.forget(device.id)
        self.paired.discard(address)

    @rule()
    def restart(self) -> None:
        self.registry = DeviceRegistry.load([CONFIGURED], self.directory, clock=self.clock)
        self.reported.clear()
        self.deadline = None

    @invariant()
    def provisioned_are_the_configured_and_the_paired(self) -> None:
        addresses = {d.address for d in self.registry.devices()}
        assert addresses == {CONFIGURED.address} | self.paired
        assert {s.address for s in self.registry.unprovisioned()} == self.reported

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


RegistryModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_registry_follows_the_model = RegistryModel.TestCase
