"""systemd integration: sd_notify datagrams on a real socket, the unit file and the example config.

The notify tests bind a real AF_UNIX datagram socket where systemd would have its own and read
what the daemon sends; nothing is mocked. systemd itself is not PID 1 here, so the unit is
checked statically (parsed, and with systemd-analyze when it is installed).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from gateway.config import (
    BleSettings,
    DeviceConfig,
    DeviceProfile,
    HubConfig,
    LoggingSettings,
    OutboxSettings,
    PairingMethod,
    load_config,
)
from gateway.mqtt.settings import PublisherSettings
from gateway.systemd import Notifier, watchdog_loop
from gateway.web.server import WebSettings

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "vitalbridge.service"
EXAMPLE = ROOT / "systemd" / "config.example.toml"


# --- sd_notify ---------------------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path_factory):
    """systemd's side of NOTIFY_SOCKET: a bound datagram socket and its path."""
    # tmp_path_factory's directories are short: AF_UNIX paths are limited to 107 bytes.
    path = tmp_path_factory.mktemp("notify") / "s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    # A guard against a hang if nothing arrives, not a timing assertion.
    sock.settimeout(10)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def _nothing_more(sock: socket.socket) -> bool:
    guard = sock.gettimeout()
    sock.settimeout(0)  # non-blocking: everything sent has already been queued
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(guard)
    return False


def test_each_message_is_the_exact_datagram_systemd_reads(receiver):
    sock, path = receiver
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path})
    assert notifier.enabled

    assert notifier.ready()
    assert _recv(sock) == "READY=1"
    assert notifier.ready(status="2 devices, broker connected")
    assert _recv(sock) == "READY=1\nSTATUS=2 devices, broker connected"
    assert notifier.status("scanning")
    assert _recv(sock) == "STATUS=scanning"
    assert notifier.watchdog()
    assert _recv(sock) == "WATCHDOG=1"
    assert notifier.stopping()
    assert _recv(sock) == "STOPPING=1"
    assert notifier.reloading()
    reloading, monotonic = _recv(sock).split("\n")
    assert reloading == "RELOADING=1"
    assert monotonic.startswith("MONOTONIC_USEC=")
    assert int(monotonic.removeprefix("MONOTONIC_USEC=")) > 0
    assert _nothing_more(sock)
    assert notifier.failures == 0


def test_a_status_cannot_smuggle_another_assignment(receiver):
    sock, path = receiver
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path})

    notifier.status("starting\nREADY=1")

    assert _recv(sock) == "STATUS=starting READY=1"


def test_abstract_namespace_socket():
    name = f"vitalbridge-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@" + name})

        assert notifier.ready(status="up")
        assert _recv(sock) == "READY=1\nSTATUS=up"


def test_without_notify_socket_every_call_is_a_no_op():
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "30000000"})

    with capture_logs() as logs:
        sent = [
            notifier.ready("up"),
            notifier.status("x"),
            notifier.watchdog(),
            notifier.stopping(),
            notifier.reloading(),
        ]

    assert not notifier.enabled
    assert sent == [False] * 5
    # A watchdog without a socket to feed it is no watchdog.
    assert notifier.watchdog_interval_s is None
    assert notifier.failures == 0
    assert logs == []


def test_an_empty_notify_socket_is_unset():
    assert not Notifier.from_environment({"NOTIFY_SOCKET": ""}).enabled


def test_an_unreachable_socket_warns_once_and_counts_every_failure(tmp_path):
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "missing")})

    with capture_logs() as logs:
        results = [notifier.ready(), notifier.watchdog(), notifier.watchdog()]

    assert results == [False, False, False]
    assert notifier.failures == 3
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1
    (warning,) = warnings
    assert warning["event"] == "systemd_notify_failed"
    assert warning["notify_socket"] == str(tmp_path / "missing")
    assert "NotifyAccess=main" in warning["hint"]


def test_a_socket_nobody_reads_is_a_failure_not_an_exception(tmp_path):
    # A stale socket file: it exists but no process is bound to it any more.
    path = tmp_path / "stale"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(path)})

    with capture_logs() as logs:
        assert not notifier.ready()

    assert notifier.failures == 1
    assert [entry["event"] for entry in logs] == ["systemd_notify_failed"]


def test_a_relative_notify_socket_is_refused_with_a_warning():
    with capture_logs() as logs:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"})

    assert not notifier.enabled
    assert not notifier.ready()
    assert [entry["event"] for entry in logs] == ["systemd_notify_socket_unsupported"]


@pytest.mark.parametrize(
    ("env", "pid", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 100, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "100"}, 100, 15.0),
        ({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": ""}, 100, 2.5),
        # The watchdog belongs to another process (inherited variables): not ours to feed.
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "101"}, 100, None),
        ({"WATCHDOG_USEC": "0"}, 100, None),
        ({"WATCHDOG_USEC": "-5"}, 100, None),
        ({}, 100, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_sec_for_this_process(env, pid, interval, receiver):
    _, path = receiver
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path, **env}, pid=pid)

    assert notifier.watchdog_interval_s == interval


def test_watchdog_pid_defaults_to_this_process(receiver):
    _, path = receiver
    mine = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    other = {**mine, "WATCHDOG_PID": str(os.getpid() + 1)}

    assert Notifier.from_environment(mine).watchdog_interval_s == 2.0
    assert Notifier.from_environment(other).watchdog_interval_s is None


@pytest.mark.parametrize(
    "env",
    [{"WATCHDOG_USEC": "thirty"}, {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "init"}],
)
def test_unparsable_watchdog_variables_disable_it_with_a_warning(env, receiver):
    _, path = receiver

    with capture_logs() as logs:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": path, **env})

    assert notifier.watchdog_interval_s is None
    assert [entry["event"] for entry in logs] == ["systemd_watchdog_invalid"]


@pytest.mark.asyncio
async def test_watchdog_loop_pings_while_healthy_then_stops_and_says_why(receiver):
    sock, path = receiver
    # 2 ms WatchdogSec: a 1 ms ping period keeps the test short; nothing here depends on it.
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000"})
    answers = iter([True, True, True, False])

    def supervisor_alive() -> bool:
        return next(answers)

    with capture_logs() as logs:
        await watchdog_loop(notifier, supervisor_alive)

    assert [_recv(sock) for _ in range(3)] == ["WATCHDOG=1"] * 3
    status = _recv(sock)
    assert status.startswith("STATUS=unhealthy: ")
    assert "supervisor_alive" in status
    assert _nothing_more(sock)
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert [entry["event"] for entry in errors] == ["systemd_watchdog_stopped"]
    assert "supervisor_alive" in errors[0]["check"]


@pytest.mark.asyncio
async def test_watchdog_loop_returns_at_once_without_a_watchdog(receiver):
    sock, path = receiver
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path})
    checks: list[bool] = []

    def healthy() -> bool:
        checks.append(True)
        return True

    await watchdog_loop(notifier, healthy)

    assert checks == []
    assert _nothing_more(sock)


@pytest.mark.asyncio
async def test_watchdog_loop_is_cancelled_cleanly(receiver):
    sock, path = receiver
    sock.settimeout(0)  # the event loop's sock_recv needs a non-blocking socket
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "60000000"})
    loop = asyncio.get_running_loop()

    async with asyncio.TaskGroup() as group:
        task = group.create_task(watchdog_loop(notifier, lambda: True), name="watchdog")
        # The first ping is sent at once; then the loop sleeps for 30 s until cancelled.
        async with asyncio.timeout(10):
            first = await loop.sock_recv(sock, 4096)
        task.cancel()

    assert first == b"WATCHDOG=1"
    assert task.cancelled()


# --- the unit file ------------------------------------------------------------------------------


def _parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value given (systemd allows repeating a key)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line}"
        assert not line.endswith("\\"), "continuation lines are not used in the unit"
        key, sep, value = line.partition("=")
        assert sep, f"not a KEY=value line: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return _parse_unit(UNIT.read_text(encoding="utf-8"))


def test_unit_runs_the_daemon_as_a_notify_service_with_a_watchdog(unit):
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": "/usr/bin/vitalbridge run --config /etc/vitalbridge/config.toml",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "TimeoutStopSec": "15",
        "User": "vitalbridge",
        "Group": "vitalbridge",
        "SupplementaryGroups": "bluetooth",
        "StateDirectory": "vitalbridge",
        "StateDirectoryMode": "0700",
        "ConfigurationDirectory": "vitalbridge",
        "UMask": "0077",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], key
    restart_s = int(service["RestartSec"][0])
    assert 1 <= restart_s <= 60
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_is_sandboxed(unit):
    service = unit["Service"]
    hardening = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectHostname": "yes",
        "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
    }
    for key, value in hardening.items():
        assert service.get(key) == [value], key
    # D-Bus and the notify socket, MQTT over IPv4/IPv6; nothing else (no netlink, no raw HCI).
    assert service["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged @resources", "adjtimex"]
    # ProtectClock=yes would block adjtimex(2), which tells the daemon whether NTP has synced the
    # clock; changing the clock stays impossible without CAP_SYS_TIME (empty bounding set).
    assert service["ProtectClock"] == ["no"]
    assert "CAP_SYS_TIME" not in service["CapabilityBoundingSet"][0]


def test_unit_does_not_restart_after_a_configuration_error(unit):
    cli = pytest.importorskip("gateway.cli", reason="the vitalbridge CLI is not in this tree")

    assert unit["Service"]["RestartPreventExitStatus"] == [str(cli.EXIT_CONFIG)]


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (it comes with systemd)")
    # verify insists that ExecStart's binary exists; the package is not installed system-wide
    # here, so the copy runs this Python instead. Everything else is the unit as shipped.
    text = UNIT.read_text(encoding="utf-8")
    exec_line = "ExecStart=/usr/bin/vitalbridge run --config /etc/vitalbridge/config.toml"
    assert exec_line in text
    copy = tmp_path / "vitalbridge.service"
    copy.write_text(text.replace(exec_line, f"ExecStart={sys.executable} -c pass"), "utf-8")

    # Errors in other units of this machine are not ours to report.
    result = _verify(analyze, ["--man=no", "--recursive-errors=no"], copy)
    if "unrecognized option" in result.stderr:  # systemd before 250
        result = _verify(analyze, ["--man=no"], copy)

    assert result.returncode == 0, result.stderr
    # verify prints problems (unknown keys, bad values) to stderr even when it succeeds.
    assert result.stderr.strip() == ""


def _verify(analyze: str, options: list[str], unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed tool and a file this test wrote
        [analyze, "verify", *options, str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


# --- the example configuration ------------------------------------------------------------------


def test_example_config_loads_with_both_kinds_of_device(monkeypatch):
    for name in list(os.environ):
        if name.startswith("VITALBRIDGE_"):
            monkeypatch.delenv(name)

    config = load_config(EXAMPLE)

    assert config.hub_id == "hub-0042"
    assert config.mqtt.hub_id == "hub-0042"
    assert config.mqtt.endpoint.tls
    cuff, scale = config.devices
    assert cuff.profile is DeviceProfile.BLOOD_PRESSURE
    assert cuff.patient is not None
    assert cuff.patients == {}
    assert scale.profile is DeviceProfile.WEIGHT_SCALE
    assert scale.patient is None
    assert set(scale.patients) == {1, 2}
    assert set(scale.consent_codes) == {1, 2}
    assert scale.pairing is PairingMethod.PASSKEY


def _documented_keys(text: str) -> dict[str, set[str]]:
    """Table -> keys written in it, commented-out examples included."""
    keys: dict[str, set[str]] = {"": set()}
    table = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            table = line.strip("[]")
            keys.setdefault(table, set())
            continue
        candidate = line.removeprefix("#").strip()
        name, sep, value = candidate.partition("=")
        name = name.strip()
        if sep and value.strip() and name.isidentifier():
            keys[table].add(name)
    return keys


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_example_config_shows_every_setting_of_the_model():
    keys = _documented_keys(EXAMPLE.read_text(encoding="utf-8"))
    sections: dict[str, type[BaseModel]] = {
        "mqtt": PublisherSettings,
        "ble": BleSettings,
        "outbox": OutboxSettings,
        "logging": LoggingSettings,
        "web": WebSettings,
        "devices": DeviceConfig,
    }
    # The tables are the model's nested sections, and nothing else.
    nested = {
        name
        for name, field in HubConfig.model_fields.items()
        if _is_model(field.annotation) or name == "devices"
    }
    assert nested == set(sections)
    assert keys[""] == _fields(HubConfig) - nested
    for table, model in sections.items():
        expected = _fields(model) - ({"hub_id"} if table == "mqtt" else set())
        assert keys[table] == expected, table
    assert set(keys) == {"", *sections}


def _is_model(annotation: Any) -> bool:
    candidates = get_args(annotation) or (annotation,)
    return any(isinstance(c, type) and issubclass(c, BaseModel) for c in candidates)


def test_example_config_holds_no_password():
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))

    assert "password" not in data["mqtt"]
    assert data["mqtt"]["password_file"].startswith("/etc/vitalbridge/")
