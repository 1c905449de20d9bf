"""`doctor`: each check's good and bad verdict, the exit codes, the text and the JSON.

Real parts: a mosquitto with mutual TLS for the broker check, the control server for the
daemon's answers, the outbox and device-state files. BlueZ cannot run here: its checks are
exercised against a private dbus-daemon where a fake org.bluez stands in for bluetoothd (the
fixture is the one tests/test_ble_backend.py uses), and against no bus at all. The kernel's
clock-sync flag and the free disk space cannot be set by a test, so those two are replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
from collections import namedtuple
from typing import TYPE_CHECKING

import pytest
from dbus_fast import BusType
from dbus_fast.aio import MessageBus
from typer.testing import CliRunner

from gateway import doctor
from gateway.config import config_from_mapping
from gateway.control import SOCKET_NAME, serve_control
from gateway.doctor import Check, DoctorReport, Status, run_doctor
from gateway.outbox import Outbox, OutboxEntry
from gateway.state import DeviceState, DeviceStateStore
from gateway.support_cli import app
from tests.conftest import free_port
from tests.test_ble_backend import FakeAdapter, system_bus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from gateway.config import HubConfig
    from tests.conftest import MosquittoFactory, Pki

__all__ = ["system_bus"]  # the fixture, imported for pytest to find

TIMEOUT_S = 10.0
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PATIENT = "pt-7f3a9c21"


def _config(tmp_path: Path, **overrides: object) -> HubConfig:
    state_dir = tmp_path / "state"
    state_dir.mkdir(exist_ok=True)
    mapping: dict[str, object] = {
        "hub_id": "hub-0042",
        "state_dir": str(state_dir),
        "timezone": "Europe/London",
        "mqtt": {"broker_url": f"mqtt://127.0.0.1:{free_port()}"},
        "devices": [
            {
                "id": "cuff-kitchen",
                "address": "C4:7C:8D:6A:12:34",
                "profile": "blood_pressure",
                "patient": PATIENT,
            }
        ],
    }
    mapping.update(overrides)
    return config_from_mapping(mapping)


def _one(report: DoctorReport, name: str) -> Check:
    [check] = [c for c in report.checks if c.name == name]
    return check


def test_exit_codes_and_rendering() -> None:
    ok = Check("a", Status.OK, "fine")
    skip = Check("b", Status.SKIP, "not here")
    warn = Check("c", Status.WARN, "meh", "do this")
    fail = Check("d", Status.FAIL, "broken", "do that")
    assert DoctorReport((ok, skip)).exit_code == 0
    assert DoctorReport((ok, warn)).exit_code == 1
    assert DoctorReport((warn, fail)).exit_code == 2
    text = DoctorReport((ok, warn, fail)).render()
    assert text.splitlines()[:3] == ["[ ok ] a: fine", "[warn] c: meh", "[FAIL] d: broken"]
    assert "  - c: do this" in text
    assert "  - d: do that" in text
    assert "Everything checked is fine." in DoctorReport((ok,)).render()
    assert DoctorReport((fail,)).as_dict() == {"exit_code": 2, "checks": [fail.as_dict()]}


def test_an_unknown_check_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown check"):
        run_doctor(_config(tmp_path), checks=["bluetoth"])


# Bluetooth.


def test_bluetooth_is_skipped_for_another_backend(tmp_path: Path) -> None:
    config = _config(tmp_path, ble={"backend": "simulators.bleak_backend"})
    report = run_doctor(config, checks=["bluetooth"])
    assert [c.status for c in report.checks] == [Status.SKIP, Status.SKIP]
    assert "simulators.bleak_backend, not BlueZ" in report.checks[0].message


def test_bluetooth_without_a_system_bus_fails_with_a_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on this machine: no D-Bus, so no BlueZ.
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    report = run_doctor(_config(tmp_path), checks=["bluetooth"])
    bluez = _one(report, "bluez")
    assert bluez.status is Status.FAIL
    assert "cannot reach the system D-Bus" in bluez.message
    assert bluez.fix is not None
    assert "systemctl start dbus bluetooth" in bluez.fix
    assert _one(report, "adapter").status is Status.SKIP
    assert report.exit_code == 2


@contextlib.asynccontextmanager
async def _bluez(adapter: FakeAdapter | None, path: str = "/org/bluez/hci0") -> AsyncIterator[None]:
    async with asyncio.timeout(TIMEOUT_S):
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        if adapter is not None:
            bus.export(path, adapter)
            await bus.request_name("org.bluez")
        yield
    finally:
        bus.disconnect()


async def _doctor_in_thread(config: HubConfig, *checks: str) -> DoctorReport:
    # run_doctor runs its own event loop; the fake BlueZ or daemon answers on this one.
    async with asyncio.timeout(TIMEOUT_S * 3):
        return await asyncio.to_thread(run_doctor, config, checks=list(checks), now=NOW)


@pytest.mark.asyncio
@pytest.mark.usefixtures("system_bus")
async def test_bluetooth_with_a_powered_adapter_is_ok(tmp_path: Path) -> None:
    async with _bluez(FakeAdapter()):
        report = await _doctor_in_thread(_config(tmp_path), "bluetooth")
    assert [(c.name, c.status) for c in report.checks] == [
        ("bluez", Status.OK),
        ("adapter", Status.OK),
    ]
    assert "hci0 is present and powered" in _one(report, "adapter").message


@pytest.mark.asyncio
@pytest.mark.usefixtures("system_bus")
async def test_bluetooth_with_an_adapter_powered_off_fails(tmp_path: Path) -> None:
    adapter = FakeAdapter()
    adapter.powered = False
    async with _bluez(adapter):
        report = await _doctor_in_thread(_config(tmp_path), "bluetooth")
    check = _one(report, "adapter")
    assert check.status is Status.FAIL
    assert "powered off" in check.message
    assert check.fix is not None
    assert "bluetoothctl power on" in check.fix


@pytest.mark.asyncio
@pytest.mark.usefixtures("system_bus")
async def test_bluetooth_with_another_adapter_than_configured_fails(tmp_path: Path) -> None:
    async with _bluez(FakeAdapter()):
        report = await _doctor_in_thread(_config(tmp_path, ble={"adapter": "hci3"}), "bluetooth")
    check = _one(report, "adapter")
    assert check.status is Status.FAIL
    assert "no adapter hci3" in check.message
    assert check.fix is not None
    assert "bluetoothctl list" in check.fix


@pytest.mark.asyncio
@pytest.mark.usefixtures("system_bus")
async def test_bluetooth_with_bluetoothd_not_running_fails(tmp_path: Path) -> None:
    async with _bluez(None):
        report = await _doctor_in_thread(_config(tmp_path), "bluetooth")
    check = _one(report, "bluez")
    assert check.status is Status.FAIL
    assert "bluetoothd is not running" in check.message


# Files and permissions.


def test_a_writable_state_dir_of_this_user_is_ok(tmp_path: Path) -> None:
    assert _one(run_doctor(_config(tmp_path), checks=["permissions"]), "state dir").status is (
        Status.OK
    )


def test_a_missing_state_dir_fails(tmp_path: Path) -> None:
    config = _config(tmp_path, state_dir=str(tmp_path / "missing"))
    check = _one(run_doctor(config, checks=["permissions"]), "state dir")
    assert check.status is Status.FAIL
    assert "does not exist" in check.message


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_a_state_dir_owned_by_another_user_fails(tmp_path: Path) -> None:
    config = _config(tmp_path)
    os.chown(config.state_dir, 12345, 12345)
    check = _one(run_doctor(config, checks=["permissions"]), "state dir")
    assert check.status is Status.FAIL
    assert "owned by uid 12345" in check.message
    assert check.fix is not None
    assert "chown" in check.fix


def test_secret_file_modes(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text("", encoding="utf-8")
    key = tmp_path / "client.key"
    key.write_text("", encoding="utf-8")
    password = tmp_path / "mqtt-password"
    password.write_text("", encoding="utf-8")
    config = _config(
        tmp_path,
        mqtt={
            "broker_url": "mqtts://127.0.0.1:8883",
            "client_cert": str(tmp_path / "client.pem"),
            "client_key": str(key),
            "username": "hub-0042",
            "password_file": str(password),
        },
    )
    config_file.chmod(0o640)
    key.chmod(0o600)
    password.chmod(0o600)
    good = run_doctor(config, config_path=config_file, checks=["secrets"])
    assert [c.status for c in good.checks] == [Status.OK] * 3

    config_file.chmod(0o644)
    key.chmod(0o640)
    password.unlink()
    bad = run_doctor(config, config_path=config_file, checks=["secrets"])
    assert [c.status for c in bad.checks] == [Status.FAIL] * 3
    assert _one(bad, "config file").fix == f"`chmod o-rwx {config_file}`"
    assert _one(bad, "client key").fix == f"`chmod 0600 {key}`"
    assert "cannot read" in _one(bad, "password file").message


# Broker, clock, disk.


def test_the_broker_with_the_configured_identity_is_ok(
    tmp_path: Path, pki: Pki, mosquitto: MosquittoFactory
) -> None:
    broker = mosquitto(tls=pki.broker_tls(require_certificate=True))
    tls = {
        "broker_url": broker.url,
        "ca_file": str(pki.ca_file),
        "client_cert": str(pki.client_cert),
        "client_key": str(pki.client_key),
    }
    check = _one(run_doctor(_config(tmp_path, mqtt=tls), checks=["broker"]), "broker")
    assert check.status is Status.OK
    assert "over TLS with this hub's identity" in check.message

    without_identity = {"broker_url": broker.url, "ca_file": str(pki.ca_file)}
    refused = _one(
        run_doctor(_config(tmp_path, mqtt=without_identity), checks=["broker"]), "broker"
    )
    assert refused.status is Status.FAIL
    assert refused.fix is not None


def test_an_unreachable_broker_fails_with_a_fix(tmp_path: Path) -> None:
    check = _one(run_doctor(_config(tmp_path), checks=["broker"]), "broker")
    assert check.status is Status.FAIL
    assert check.fix is not None
    assert "network" in check.fix
    assert "retrying" not in check.message  # the doctor connects once


def test_a_plain_mqtt_broker_is_a_warning(tmp_path: Path, mosquitto: MosquittoFactory) -> None:
    broker = mosquitto()
    check = _one(
        run_doctor(_config(tmp_path, mqtt={"broker_url": broker.url}), checks=["broker"]), "broker"
    )
    assert check.status is Status.WARN
    assert "WITHOUT TLS" in check.message


@pytest.mark.parametrize(("synchronised", "status"), [(True, Status.OK), (False, Status.WARN)])
def test_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synchronised: bool, status: Status
) -> None:
    # The kernel's flag cannot be set by a test: replaced.
    monkeypatch.setattr(doctor, "kernel_clock_synchronised", lambda: synchronised)
    check = _one(run_doctor(_config(tmp_path), checks=["clock"]), "clock")
    assert check.status is status
    assert (check.fix is None) == synchronised


Usage = namedtuple("Usage", "total used free")  # noqa: PYI024 - shutil's own shape


@pytest.mark.parametrize(
    ("free_mb", "status"), [(2000, Status.OK), (400, Status.WARN), (40, Status.FAIL)]
)
def test_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free_mb: int, status: Status
) -> None:
    # A test cannot fill the disk: the free space is replaced.
    free = free_mb * 1024 * 1024
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda _: Usage(10 * free, 9 * free, free))
    check = _one(run_doctor(_config(tmp_path), checks=["disk"]), "disk")
    assert check.status is status
    assert f"{free_mb} MB free" in check.message


# Outbox and devices.


async def _fill_outbox(state_dir: Path, enqueued_at: dt.datetime, count: int) -> None:
    outbox = await Outbox.open(state_dir / "outbox.sqlite3", clock=lambda: enqueued_at)
    try:
        for index in range(count):
            await outbox.put(
                OutboxEntry(
                    reading_id=f"r-{index}",
                    device_id="cuff-kitchen",
                    kind="blood_pressure",
                    measured_at=enqueued_at,
                    payload=b"{}",
                )
            )
    finally:
        await outbox.close()


def test_an_empty_or_missing_outbox_is_ok(tmp_path: Path) -> None:
    check = _one(run_doctor(_config(tmp_path), checks=["outbox"], now=NOW), "outbox")
    assert check.status is Status.OK
    assert "no readings waiting" in check.message
    assert "daemon is not running" in check.message


@pytest.mark.asyncio
async def test_an_outbox_file_with_old_readings_warns(tmp_path: Path) -> None:
    config = _config(tmp_path)
    await _fill_outbox(config.state_dir, NOW - dt.timedelta(days=2), 3)
    report = await _doctor_in_thread(config, "outbox")
    check = _one(report, "outbox")
    assert check.status is Status.WARN
    assert "3 reading(s) waiting, the oldest for 2 days" in check.message


@pytest.mark.asyncio
async def test_an_outbox_file_with_fresh_readings_is_ok(tmp_path: Path) -> None:
    config = _config(tmp_path)
    await _fill_outbox(config.state_dir, NOW - dt.timedelta(minutes=5), 2)
    check = _one(await _doctor_in_thread(config, "outbox"), "outbox")
    assert check.status is Status.OK
    assert "2 reading(s) waiting, the oldest for 5 min" in check.message


@contextlib.asynccontextmanager
async def _daemon(
    state_dir: Path, handler: Callable[[str, dict[str, object]], Awaitable[object]]
) -> AsyncIterator[None]:
    path = state_dir / SOCKET_NAME
    task = asyncio.create_task(serve_control(path, handler), name="fake-daemon-control")
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while not path.is_socket():  # bound and listening in one step of the task
                assert not task.done(), task
                await asyncio.sleep(0)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.asyncio
async def test_the_running_daemon_is_asked_first(tmp_path: Path) -> None:
    config = _config(tmp_path)
    # The file says nothing is waiting; the daemon says otherwise, and it is believed.
    old = (NOW - dt.timedelta(hours=7)).isoformat()
    seen = (NOW - dt.timedelta(days=4)).isoformat()

    async def handle(command: str, args: dict[str, object]) -> object:
        del args
        if command == "status":
            return {"outbox": {"depth": 12, "oldest_enqueued_at": old}}
        return [{"device_id": "cuff-kitchen", "last_seen": seen, "battery_level": 90}]

    async with _daemon(config.state_dir, handle):
        report = await _doctor_in_thread(config, "outbox", "devices")
    outbox = _one(report, "outbox")
    assert outbox.status is Status.WARN
    assert "12 reading(s) waiting, the oldest for 7 h (from the running daemon)" in outbox.message
    device = _one(report, "device cuff-kitchen")
    assert device.status is Status.WARN
    assert "last contact 4 days ago" in device.message


def _save(config: HubConfig, **fields: object) -> None:
    state = DeviceState.model_validate({"device_id": "cuff-kitchen", **fields})
    DeviceStateStore(config.state_dir).save(state)


def test_a_device_heard_from_recently_with_battery_is_ok(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _save(config, last_seen=NOW - dt.timedelta(hours=3), battery_level=80)
    check = _one(run_doctor(config, checks=["devices"], now=NOW), "device cuff-kitchen")
    assert check.status is Status.OK
    assert check.message == "last contact 3 h ago, battery 80%"
    assert PATIENT not in check.message


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"last_seen": NOW - dt.timedelta(hours=1), "battery_level": 20}, "batteries"),
        ({"last_seen": NOW - dt.timedelta(days=3, minutes=1)}, "still used"),
        ({}, "pair it"),
    ],
)
def test_a_device_that_is_quiet_or_low_warns(
    tmp_path: Path, fields: dict[str, object], words: str
) -> None:
    config = _config(tmp_path)
    if fields:
        _save(config, **fields)
    check = _one(run_doctor(config, checks=["devices"], now=NOW), "device cuff-kitchen")
    assert check.status is Status.WARN
    assert check.fix is not None
    assert words in check.fix


def test_no_devices_is_a_skip(tmp_path: Path) -> None:
    report = run_doctor(_config(tmp_path, devices=[]), checks=["devices"], now=NOW)
    assert [c.status for c in report.checks] == [Status.SKIP]


# The command.


def test_the_command_prints_checks_json_and_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'hub_id = "hub-0042"\nstate_dir = "{state_dir}"\ntimezone = "UTC"\n'
        f'[mqtt]\nbroker_url = "mqtt://127.0.0.1:{free_port()}"\n',
        encoding="utf-8",
    )
    config_file.chmod(0o640)
    runner = CliRunner()

    text = runner.invoke(app, ["doctor", "--config", str(config_file)])
    assert text.exit_code == 2, text.output
    assert "[FAIL] bluez: cannot reach the system D-Bus" in text.output
    assert "[FAIL] broker:" in text.output
    assert "To fix:" in text.output

    as_json = runner.invoke(app, ["doctor", "--config", str(config_file), "--json"])
    assert as_json.exit_code == 2
    document = json.loads(as_json.output)
    assert document["exit_code"] == 2
    names = [c["name"] for c in document["checks"]]
    assert names[:2] == ["bluez", "adapter"]
    assert {"state dir", "config file", "broker", "clock", "disk", "outbox", "devices"} <= set(
        names
    )

    missing = runner.invoke(app, ["doctor", "--config", str(tmp_path / "none.toml"), "--json"])
    assert missing.exit_code == 78
    assert json.loads(missing.output)["ok"] is False
