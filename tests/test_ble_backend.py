"""The BLE backend loader: BlueZ by default, a module named in the configuration, every mistake.

BlueZ itself cannot run here (no Bluetooth adapter, no bluetoothd), so the BlueZ backend is only
constructed, and its adapter power cycle is checked against a fake ``org.bluez`` adapter object
served on a private D-Bus daemon. The simulated backend connects for real, over the simulated
radio, through bleak-retry-connector as the gateway does.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import types
from typing import TYPE_CHECKING

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak_retry_connector import establish_connection
from dbus_fast import BusType
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool  # noqa: TC002 - dbus-fast evaluates annotations at runtime
from dbus_fast.service import ServiceInterface, dbus_property
from structlog.testing import capture_logs

from gateway.ble.backend import BLEAK, BleBackend, load_backend
from gateway.config import BleSettings
from gateway.errors import ConfigError
from simulators import bleak_backend
from simulators.bleak_backend import (
    AdapterNotConfiguredError,
    AdapterSettings,
    BumbleClient,
    BumbleScanner,
    get_adapter,
    reset_adapter,
    use_radio,
)
from simulators.devices import BloodPressureCuff, SimulatorConfig
from simulators.radio import Radio

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SIMULATED = "simulators.bleak_backend"
ADDRESS = "F0:10:20:30:40:60"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
TIMEOUT_S = 30


# bleak's platform default (BlueZ): constructed only.


def test_bleak_is_the_platform_default_with_the_configured_adapter():
    backend = load_backend(BleSettings(adapter="hci1"))
    assert backend == BleBackend(BLEAK, None, None, "hci1")
    assert backend.is_bluez
    scanner = backend.scanner(lambda _d, _a: None, ["00001810-0000-1000-8000-00805f9b34fb"])
    # BlueZ is not running here: look at what bleak would ask it for.
    assert scanner._backend._adapter == "hci1"
    assert scanner._backend._service_uuids == ["00001810-0000-1000-8000-00805f9b34fb"]
    device = BLEDevice("AA:BB:CC:DD:EE:FF", "cuff", {"path": "/org/bluez/hci1/dev_AA_BB"})
    client = backend.client_class(device)
    assert isinstance(client, BleakClient)
    assert client._backend._adapter == "hci1"


def test_bleak_without_an_adapter_uses_bluez_default():
    backend = load_backend(BleSettings())
    assert backend.adapter is None
    scanner = backend.scanner(lambda _d, _a: None, [])
    assert scanner._backend._adapter is None


def test_bleak_refuses_backend_options():
    with pytest.raises(ConfigError, match=r"ble\.backend_options.*remove backend_options"):
        load_backend(BleSettings(backend_options={"hci_spec": "unix:/x"}))


# The simulated backend, by module name.


def test_the_simulated_module_provides_both_backend_classes():
    backend = load_backend(BleSettings(backend=SIMULATED, adapter="hci9"))
    assert backend.name == SIMULATED
    assert backend.scanner_backend is BumbleScanner
    assert backend.client_backend is BumbleClient
    assert not backend.is_bluez
    assert bleak_backend.scanner_backend is BumbleScanner
    assert bleak_backend.client_backend is BumbleClient
    assert {"scanner_backend", "client_backend"} <= set(bleak_backend.__all__)
    assert backend.client_class is backend.client_class
    assert issubclass(backend.client_class, BleakClient)
    scanner = backend.scanner(lambda _d, _a: None, [])
    assert isinstance(scanner._backend, BumbleScanner)


@pytest.mark.asyncio
async def test_backend_options_reach_the_modules_configure():
    spec = "tcp-client:127.0.0.1:1"  # nothing listens on port 1 of loopback
    try:
        load_backend(BleSettings(backend=SIMULATED, backend_options={"hci_spec": spec}))
        with pytest.raises(AdapterNotConfiguredError, match=re.escape(spec)):
            await get_adapter()
    finally:
        await reset_adapter()


@pytest.mark.asyncio
async def test_client_class_connects_through_bleak_retry_connector():
    backend = load_backend(BleSettings(backend=SIMULATED))
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=21)
        cuff = BloodPressureCuff.on_radio(radio, ADDRESS, SimulatorConfig(seed=4))
        await cuff.start()
        try:
            async with use_radio(radio, AdapterSettings(connect_timeout_s=2.0)):
                found = await BleakScanner.find_device_by_address(
                    ADDRESS, timeout=5.0, backend=backend.scanner_backend
                )
                assert found is not None
                client = await establish_connection(backend.client_class, found, "cuff")
                try:
                    assert isinstance(client, backend.client_class)
                    assert client.is_connected
                    level = await client.read_gatt_char(BATTERY_LEVEL)
                    assert level == bytes([cuff.battery_percent])
                finally:
                    await client.disconnect()
        finally:
            await cuff.stop()


# Every ConfigError path names ble.backend and says what to write.


def _module(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: object) -> None:
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_a_module_that_cannot_be_imported():
    with pytest.raises(ConfigError, match=r"ble\.backend: cannot import 'no_such_backend_x'") as e:
        load_backend(BleSettings(backend="no_such_backend_x"))
    assert 'write backend = "bleak"' in str(e.value)


def test_a_module_without_backend_classes():
    with pytest.raises(ConfigError, match=r"ble\.backend: module 'json' has nothing as scanner"):
        load_backend(BleSettings(backend="json"))


def test_a_module_whose_scanner_backend_is_not_a_scanner_class(monkeypatch):
    _module(
        monkeypatch, "vb_fake_backend", scanner_backend=BumbleClient, client_backend=BumbleClient
    )
    with pytest.raises(ConfigError, match=r"ble\.backend: .* as scanner_backend, not a subclass"):
        load_backend(BleSettings(backend="vb_fake_backend"))


def test_a_module_whose_client_backend_is_not_a_class(monkeypatch):
    _module(monkeypatch, "vb_fake_backend", scanner_backend=BumbleScanner, client_backend="client")
    with pytest.raises(ConfigError, match=r"has 'client' as client_backend, not a subclass"):
        load_backend(BleSettings(backend="vb_fake_backend"))


def test_options_for_a_module_without_configure(monkeypatch):
    _module(
        monkeypatch, "vb_fake_backend", scanner_backend=BumbleScanner, client_backend=BumbleClient
    )
    settings = BleSettings(backend="vb_fake_backend", backend_options={"x": "1"})
    with pytest.raises(ConfigError, match=r"ble\.backend_options: .* has no configure\(\)"):
        load_backend(settings)
    # Without options the same module is fine.
    assert load_backend(BleSettings(backend="vb_fake_backend")).scanner_backend is BumbleScanner


def test_options_the_modules_configure_refuses():
    settings = BleSettings(backend=SIMULATED, backend_options={"hci_socket": "unix:/x"})
    with pytest.raises(ConfigError, match=r"ble\.backend_options: .*refused") as e:
        load_backend(settings)
    assert "hci_spec" in str(e.value)


# Power-cycling the adapter.


@pytest.mark.asyncio
async def test_the_simulated_backend_has_no_power_cycle():
    assert await load_backend(BleSettings(backend=SIMULATED)).power_cycle() is False


@pytest.mark.asyncio
@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_modules_power_cycle_hook_is_called(monkeypatch, asynchronous):
    calls: list[str] = []

    def hook() -> bool:
        calls.append("sync")
        return True

    async def async_hook() -> bool:
        calls.append("async")
        return True

    _module(
        monkeypatch,
        "vb_fake_backend",
        scanner_backend=BumbleScanner,
        client_backend=BumbleClient,
        power_cycle=async_hook if asynchronous else hook,
    )
    assert await load_backend(BleSettings(backend="vb_fake_backend")).power_cycle() is True
    assert calls == ["async" if asynchronous else "sync"]


@pytest.mark.asyncio
async def test_a_failing_power_cycle_hook_is_a_warning_not_a_crash(monkeypatch):
    def hook() -> bool:
        raise RuntimeError("adapter gone")

    _module(
        monkeypatch,
        "vb_fake_backend",
        scanner_backend=BumbleScanner,
        client_backend=BumbleClient,
        power_cycle=hook,
    )
    with capture_logs() as logs:
        assert await load_backend(BleSettings(backend="vb_fake_backend")).power_cycle() is False
    [event] = [e for e in logs if e["event"] == "adapter_power_cycle_failed"]
    assert event["log_level"] == "warning"
    assert "adapter gone" in event["error"]


class FakeAdapter(ServiceInterface):
    """Stands in for bluetoothd's org.bluez.Adapter1 object (BlueZ cannot run here)."""

    def __init__(self) -> None:
        super().__init__("org.bluez.Adapter1")
        self.powered = True
        self.changes: list[bool] = []

    @dbus_property()
    def Powered(self) -> DBusBool:  # noqa: N802 - BlueZ's property name
        return self.powered

    @Powered.setter
    def Powered(self, value: DBusBool) -> None:  # noqa: N802 - BlueZ's property name
        self.changes.append(value)
        self.powered = value


@pytest.fixture
def system_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private dbus-daemon, made the "system" bus for this test."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed (apt-get install dbus)")
    socket = tmp_path / "bus"
    config = tmp_path / "bus.conf"
    config.write_text(
        f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*"/>
    <allow own="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
""",
        encoding="utf-8",
    )
    with subprocess.Popen(  # noqa: S603 - a fixed test binary and arguments
        [daemon, f"--config-file={config}", "--nofork", "--print-address"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            address = process.stdout.readline().strip()  # printed once it listens
            assert address.startswith("unix:")
            monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
            yield address
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.mark.asyncio
async def test_bluez_power_cycle_turns_the_adapter_off_then_on(system_bus):
    del system_bus
    async with asyncio.timeout(TIMEOUT_S):
        bluez = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        adapter = FakeAdapter()
        bluez.export("/org/bluez/hci1", adapter)
        await bluez.request_name("org.bluez")
        backend = load_backend(BleSettings(adapter="hci1"))
        with capture_logs() as logs:
            assert await backend.power_cycle() is True
        assert adapter.changes == [False, True]
        assert adapter.powered
        assert [e["event"] for e in logs] == ["adapter_power_cycled"]
    finally:
        bluez.disconnect()


@pytest.mark.asyncio
async def test_bluez_power_cycle_of_a_missing_adapter_says_what_to_check(system_bus):
    del system_bus
    async with asyncio.timeout(TIMEOUT_S):
        bluez = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        bluez.export("/org/bluez/hci0", FakeAdapter())
        await bluez.request_name("org.bluez")
        with capture_logs() as logs:
            assert await load_backend(BleSettings(adapter="hci7")).power_cycle() is False
        [event] = logs
        assert event["event"] == "adapter_power_cycle_failed"
        assert event["log_level"] == "warning"
        assert "bluetoothctl list" in event["hint"]
    finally:
        bluez.disconnect()


@pytest.mark.asyncio
async def test_bluez_power_cycle_without_a_system_bus_says_what_to_check(tmp_path, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
    with capture_logs() as logs:
        assert await load_backend(BleSettings()).power_cycle() is False
    [event] = logs
    assert event["event"] == "adapter_power_cycle_failed"
    assert event["adapter"] == "hci0"
    assert "systemctl status bluetooth" in event["hint"]
