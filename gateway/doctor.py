"""`vitalbridge doctor`: check everything a hub needs, in plain words, with a fix for each failure.

Each check gives a `Check` (ok, warn, fail or skip), never an exception: one broken part must
not hide the others. The outbox and the devices are read from the running daemon over its
control socket when it answers, and from the state directory (read-only) when it does not.
Messages name devices by id and never quote patient references or health values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import os
import shutil
import sqlite3
import stat
from typing import TYPE_CHECKING, Final

from gateway.control import SOCKET_NAME, ControlError, call
from gateway.hubclock import kernel_clock_synchronised
from gateway.mqtt import BrokerConnectError
from gateway.provision import probe_broker
from gateway.state import DeviceStateStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from pathlib import Path

    from gateway.config import HubConfig

__all__ = [
    "ALL_CHECKS",
    "BATTERY_WARN_PERCENT",
    "DISK_FAIL_BYTES",
    "DISK_WARN_BYTES",
    "SILENCE_WARN",
    "Check",
    "DoctorReport",
    "Status",
    "run_doctor",
]

DISK_WARN_BYTES: Final = 500 * 1024 * 1024
DISK_FAIL_BYTES: Final = 50 * 1024 * 1024
SILENCE_WARN: Final = dt.timedelta(days=3)
BATTERY_WARN_PERCENT: Final = 20
OUTBOX_AGE_WARN: Final = dt.timedelta(hours=6)
_OUTBOX_FILE: Final = "outbox.sqlite3"
_DBUS_TIMEOUT_S: Final = 5.0
_BLUEZ: Final = "org.bluez"


class Status(enum.StrEnum):
    """A check's verdict."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict, what was found, and (unless ok) what to do about it."""

    name: str
    status: Status
    message: str
    fix: str | None = None

    def as_dict(self) -> dict[str, object]:
        """Return the JSON form."""
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix,
        }


_MARKS: Final = {
    Status.OK: "[ ok ]",
    Status.WARN: "[warn]",
    Status.FAIL: "[FAIL]",
    Status.SKIP: "[skip]",
}


@dataclasses.dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every check's verdict, for the terminal (`render`), scripts (`as_dict`, `exit_code`)."""

    checks: tuple[Check, ...]

    @property
    def exit_code(self) -> int:
        """0 all ok (or skipped), 1 warnings only, 2 at least one failure."""
        statuses = {check.status for check in self.checks}
        if Status.FAIL in statuses:
            return 2
        return 1 if Status.WARN in statuses else 0

    def as_dict(self) -> dict[str, object]:
        """Return the JSON form: the verdicts and the exit code."""
        return {"exit_code": self.exit_code, "checks": [c.as_dict() for c in self.checks]}

    def render(self) -> str:
        """Return one line per check, then how to fix each failure and warning."""
        lines = [f"{_MARKS[c.status]} {c.name}: {c.message}" for c in self.checks]
        fixes = [c for c in self.checks if c.fix and c.status in {Status.FAIL, Status.WARN}]
        if fixes:
            lines += ["", "To fix:"]
            lines += [f"  - {c.name}: {c.fix}" for c in fixes]
        else:
            lines += ["", "Everything checked is fine."]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    config: HubConfig
    config_path: Path | None
    now: dt.datetime


def run_doctor(
    config: HubConfig,
    *,
    config_path: Path | None = None,
    checks: Sequence[str] | None = None,
    now: dt.datetime | None = None,
) -> DoctorReport:
    """Run the named checks (all by default) and return their verdicts; blocking."""
    context = _Context(config, config_path, now or dt.datetime.now(dt.UTC))
    names = list(ALL_CHECKS) if checks is None else list(checks)
    unknown = sorted(set(names) - set(ALL_CHECKS))
    if unknown:
        msg = f"unknown check(s) {', '.join(unknown)}: choose from {', '.join(ALL_CHECKS)}"
        raise ValueError(msg)
    return asyncio.run(_run(context, names))


async def _run(context: _Context, names: Sequence[str]) -> DoctorReport:
    results: list[Check] = []
    for name in names:
        results += await ALL_CHECKS[name](context)
    return DoctorReport(tuple(results))


# Bluetooth.


async def _bluez_call(
    path: str, interface: str, member: str, signature: str, body: list[object]
) -> object:
    from dbus_fast import BusType, Message, MessageType  # noqa: PLC0415 - Linux-only dependency
    from dbus_fast.aio import MessageBus  # noqa: PLC0415 - same reason

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.freedesktop.DBus" if path == "/org/freedesktop/DBus" else _BLUEZ,
                path=path,
                interface=interface,
                member=member,
                signature=signature,
                body=body,
            )
        )
    finally:
        bus.disconnect()
    if reply is None or reply.message_type == MessageType.ERROR:
        raise _DBusError(None if reply is None else reply.error_name)
    return reply.body[0] if reply.body else None


class _DBusError(Exception):
    def __init__(self, name: str | None) -> None:
        self.name = name
        super().__init__(name or "no reply")


_NO_BUS_FIX: Final = (
    "start D-Bus and BlueZ: `systemctl start dbus bluetooth`; on a container without them, "
    "Bluetooth cannot work"
)


async def _check_bluez(context: _Context) -> list[Check]:
    if context.config.ble.backend != "bleak":
        reason = f"the configured Bluetooth backend is {context.config.ble.backend}, not BlueZ"
        return [
            Check("bluez", Status.SKIP, reason),
            Check("adapter", Status.SKIP, reason),
        ]
    try:
        async with asyncio.timeout(_DBUS_TIMEOUT_S):
            running = await _bluez_call(
                "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", [_BLUEZ]
            )
    except (OSError, TimeoutError, ValueError, EOFError, _DBusError) as exc:
        # ValueError and EOFError: dbus-fast's answer to a bad bus address or a dropped socket.
        message = f"cannot reach the system D-Bus ({exc!r}), so BlueZ cannot be asked"
        return [
            Check("bluez", Status.FAIL, message, _NO_BUS_FIX),
            Check("adapter", Status.SKIP, "BlueZ is not reachable"),
        ]
    if not running:
        return [
            Check(
                "bluez",
                Status.FAIL,
                "bluetoothd is not running (nobody owns org.bluez on the system bus)",
                "start it: `systemctl enable --now bluetooth`; check `journalctl -u bluetooth`",
            ),
            Check("adapter", Status.SKIP, "BlueZ is not running"),
        ]
    return [Check("bluez", Status.OK, "bluetoothd is running"), await _check_adapter(context)]


async def _check_adapter(context: _Context) -> Check:
    adapter = context.config.ble.adapter or "hci0"
    try:
        async with asyncio.timeout(_DBUS_TIMEOUT_S):
            powered = await _bluez_call(
                f"/org/bluez/{adapter}",
                "org.freedesktop.DBus.Properties",
                "Get",
                "ss",
                ["org.bluez.Adapter1", "Powered"],
            )
    except _DBusError as exc:
        return Check(
            "adapter",
            Status.FAIL,
            f"BlueZ has no adapter {adapter} ({exc.name})",
            "plug in the Bluetooth adapter; `bluetoothctl list` shows those BlueZ sees (set "
            "ble.adapter to one of them)",
        )
    except (OSError, TimeoutError, ValueError, EOFError) as exc:
        return Check("adapter", Status.FAIL, f"BlueZ did not answer ({exc!r})", _NO_BUS_FIX)
    value = getattr(powered, "value", powered)
    if value is not True:
        return Check(
            "adapter",
            Status.FAIL,
            f"adapter {adapter} is present but powered off",
            f"`rfkill unblock bluetooth`, then `bluetoothctl power on` (adapter {adapter})",
        )
    return Check("adapter", Status.OK, f"adapter {adapter} is present and powered")


# Files and permissions.


async def _check_state_dir(context: _Context) -> list[Check]:
    state_dir = context.config.state_dir
    try:
        info = state_dir.stat()
    except FileNotFoundError:
        return [
            Check(
                "state dir",
                Status.FAIL,
                f"{state_dir} does not exist",
                f"create it: `install -d -o vitalbridge -m 0750 {state_dir}` (systemd's "
                "StateDirectory does this when the service starts)",
            )
        ]
    except OSError as exc:
        return [Check("state dir", Status.FAIL, f"cannot look at {state_dir} ({exc.strerror})")]
    problems: list[str] = []
    if info.st_uid != os.geteuid():
        problems.append(f"it is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})")
    if not os.access(state_dir, os.W_OK | os.X_OK):
        problems.append("this user cannot write in it")
    if problems:
        return [
            Check(
                "state dir",
                Status.FAIL,
                f"{state_dir}: {'; '.join(problems)}",
                f"run the doctor as the service user (`sudo -u vitalbridge vitalbridge doctor`), "
                f"or give it the directory: `chown -R vitalbridge: {state_dir}`",
            )
        ]
    return [Check("state dir", Status.OK, f"{state_dir} is writable by its owner, this user")]


async def _check_secrets(context: _Context) -> list[Check]:
    results: list[Check] = []
    if context.config_path is not None:
        results.append(_mode_check("config file", context.config_path, world=True))
    mqtt = context.config.mqtt
    for label, path in (("client key", mqtt.client_key), ("password file", mqtt.password_file)):
        if path is not None:
            results.append(_mode_check(label, path, world=False))
    if not results:
        results.append(Check("secrets", Status.SKIP, "no key or password file is configured"))
    return results


def _mode_check(label: str, path: Path, *, world: bool) -> Check:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        return Check(
            label,
            Status.FAIL,
            f"cannot read {path} ({exc.strerror})",
            "provision the hub again (`vitalbridge provision BUNDLE`) or restore the file",
        )
    if world:
        if mode & stat.S_IROTH:
            return Check(
                label,
                Status.FAIL,
                f"{path} is readable by every user (mode {mode:04o})",
                f"`chmod o-rwx {path}`",
            )
        return Check(label, Status.OK, f"{path} is not readable by other users")
    if mode & 0o077:
        return Check(
            label,
            Status.FAIL,
            f"{path} is readable by other users (mode {mode:04o}); it must be 0600",
            f"`chmod 0600 {path}`",
        )
    return Check(label, Status.OK, f"{path} is readable by its owner only")


# The broker and the clock.


async def _check_broker(context: _Context) -> list[Check]:
    settings = context.config.mqtt
    endpoint = settings.endpoint
    try:
        await probe_broker(settings)
    except BrokerConnectError as exc:
        # The publisher's message speaks of its own retries; the doctor connects only once.
        message = str(exc).removesuffix("; retrying with backoff")
        return [Check("broker", Status.FAIL, message, _BROKER_FIXES[exc.failure.value])]
    except TimeoutError:
        return [
            Check(
                "broker",
                Status.FAIL,
                f"{endpoint} did not answer in time",
                "check the hub's internet connection and that the broker is up",
            )
        ]
    how = "over TLS with this hub's identity" if endpoint.tls else "WITHOUT TLS"
    status = Status.OK if endpoint.tls else Status.WARN
    fix = None if endpoint.tls else "use an mqtts:// broker_url: readings are health data"
    return [Check("broker", status, f"{endpoint} accepts this hub {how}", fix)]


_BROKER_FIXES: Final = {
    "unreachable": "check the network (`ping`, DNS, firewall on the broker's port) and that the "
    "broker is up",
    "tls_untrusted": "the broker's certificate is not signed by ca_file's CA: provision the hub "
    "again with the right bundle",
    "tls_failed": "check that the port speaks TLS (mqtts://) and the hub's clock is right",
    "client_certificate": "the broker refused this hub's certificate: it may be expired or "
    "revoked; provision the hub again with a new bundle",
    "credentials": "the broker refused the username or password: provision the hub again",
    "refused": "the broker refused the connection: ask the service's operators",
    "config": "fix the mqtt section of the configuration (see the message)",
}


async def _check_clock(context: _Context) -> list[Check]:
    del context
    synchronised = await asyncio.to_thread(kernel_clock_synchronised)
    if synchronised:
        return [Check("clock", Status.OK, "the hub clock is synchronised (NTP)")]
    return [
        Check(
            "clock",
            Status.WARN,
            "the kernel does not report the hub clock synchronised; device clocks are not set "
            "from it and readings' times may be off",
            "enable time sync: `timedatectl set-ntp true`, and check `timedatectl timesync-status`",
        )
    ]


async def _check_disk(context: _Context) -> list[Check]:
    state_dir = context.config.state_dir
    target = state_dir if state_dir.exists() else state_dir.parent
    try:
        free = shutil.disk_usage(target).free
    except OSError as exc:
        return [Check("disk", Status.FAIL, f"cannot measure free space at {target} ({exc})")]
    text = f"{free / 1024 / 1024:.0f} MB free for {state_dir}"
    if free < DISK_FAIL_BYTES:
        fix = "free space now: `journalctl --vacuum-size=50M`, remove old files; readings stop"
        return [Check("disk", Status.FAIL, text, fix)]
    if free < DISK_WARN_BYTES:
        fix = "free some space: `journalctl --vacuum-size=100M`, `apt-get clean`"
        return [Check("disk", Status.WARN, text, fix)]
    return [Check("disk", Status.OK, text)]


# The outbox and the devices: the daemon's view first, the files when it is not running.


async def _daemon(context: _Context, command: str) -> object | None:
    try:
        return await call(context.config.state_dir / SOCKET_NAME, command)
    except ControlError:
        return None


async def _check_outbox(context: _Context) -> list[Check]:
    status = await _daemon(context, "status")
    if isinstance(status, dict) and isinstance(status.get("outbox"), dict):
        outbox = status["outbox"]
        depth = int(outbox.get("depth") or 0)
        oldest_text = outbox.get("oldest_enqueued_at")
        oldest = dt.datetime.fromisoformat(oldest_text) if isinstance(oldest_text, str) else None
        source = "the running daemon"
    else:
        try:
            depth, oldest = await asyncio.to_thread(_read_outbox, context.config.state_dir)
        except sqlite3.Error as exc:
            return [
                Check(
                    "outbox",
                    Status.FAIL,
                    f"cannot read the outbox ({exc})",
                    "check `journalctl -u vitalbridge` for outbox errors; do not delete the file",
                )
            ]
        source = "the outbox file, as the daemon is not running"
    if depth == 0 or oldest is None:
        return [Check("outbox", Status.OK, f"no readings waiting (from {source})")]
    age = context.now - oldest
    text = f"{depth} reading(s) waiting, the oldest for {_duration(age)} (from {source})"
    if age > OUTBOX_AGE_WARN:
        return [
            Check(
                "outbox",
                Status.WARN,
                text,
                "readings are not reaching the broker: see the broker check and "
                "`journalctl -u vitalbridge`",
            )
        ]
    return [Check("outbox", Status.OK, text)]


def _read_outbox(state_dir: Path) -> tuple[int, dt.datetime | None]:
    file = state_dir / _OUTBOX_FILE
    if not file.exists():
        return 0, None
    # Read-only: the doctor must never create, migrate or lock the daemon's database.
    connection = sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT COUNT(*), MIN(enqueued_at_us) FROM readings").fetchone()
    finally:
        connection.close()
    count, oldest_us = int(row[0]), row[1]
    oldest = None if oldest_us is None else dt.datetime.fromtimestamp(oldest_us / 1e6, dt.UTC)
    return count, oldest


async def _check_devices(context: _Context) -> list[Check]:
    documents = await _daemon(context, "devices")
    if isinstance(documents, list):
        states = {str(d.get("device_id")): d for d in documents if isinstance(d, dict)}
    else:
        store = DeviceStateStore(context.config.state_dir)
        states = {
            device.id: store.get(device.id).as_document() for device in context.config.devices
        }
    if not context.config.devices and not states:
        return [Check("devices", Status.SKIP, "no devices are provisioned")]
    return [
        _device_check(device_id, states.get(device_id, {}), context.now)
        for device_id in sorted({d.id for d in context.config.devices} | set(states))
    ]


def _device_check(device_id: str, state: dict[str, object], now: dt.datetime) -> Check:
    name = f"device {device_id}"
    last = state.get("last_seen") or state.get("last_connected")
    if not isinstance(last, str):
        return Check(
            name,
            Status.WARN,
            "never heard from",
            "take a measurement with it next to the hub; if it still does not appear, pair it "
            "again (`vitalbridge pairing open`)",
        )
    silence = now - dt.datetime.fromisoformat(last)
    battery = state.get("battery_level")
    parts = [f"last contact {_duration(silence)} ago"]
    problems: list[str] = []
    if isinstance(battery, int):
        parts.append(f"battery {battery}%")
        if battery <= BATTERY_WARN_PERCENT:
            problems.append("replace or charge its batteries")
    if silence > SILENCE_WARN:
        problems.append(
            "ask the household whether it is still used and in range of the hub, and check its "
            "batteries"
        )
    if problems:
        return Check(name, Status.WARN, ", ".join(parts), "; ".join(problems))
    return Check(name, Status.OK, ", ".join(parts))


def _duration(span: dt.timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    if seconds < 120:  # noqa: PLR2004 - two minutes
        return f"{seconds} s"
    if seconds < 7200:  # noqa: PLR2004 - two hours
        return f"{seconds // 60} min"
    if seconds < 172_800:  # noqa: PLR2004 - two days
        return f"{seconds // 3600} h"
    return f"{seconds // 86_400} days"


ALL_CHECKS: Final[dict[str, Callable[[_Context], Awaitable[list[Check]]]]] = {
    "bluetooth": _check_bluez,
    "permissions": _check_state_dir,
    "secrets": _check_secrets,
    "broker": _check_broker,
    "clock": _check_clock,
    "disk": _check_disk,
    "outbox": _check_outbox,
    "devices": _check_devices,
}
