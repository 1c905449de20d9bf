"""The daemon: one TaskGroup supervising scanner, sessions, publisher, status, control and watchdog.

`run_daemon(config)` opens the outbox, starts everything, tells systemd READY once the outbox is
open and the scanner and publisher are running, and runs until cancelled (SIGTERM, Ctrl-C).
Stopping is orderly: sessions commit what they received and hang up, the publisher says
``offline`` on its way out, and systemd hears STOPPING.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import signal
import time
from typing import TYPE_CHECKING, Final

import structlog

from gateway.audit import AuditLog
from gateway.ble.backend import load_backend
from gateway.ble.manager import SessionManager
from gateway.ble.registry import DeviceRegistry
from gateway.ble.scanner import Scanner
from gateway.ble.session import SessionDeps
from gateway.commands import CommandService
from gateway.control import SOCKET_NAME, serve_control
from gateway.errors import ConfigError
from gateway.hubclock import HubClockPolicy, kernel_clock_synchronised
from gateway.loglines import LogBuffer
from gateway.mqtt import Publisher
from gateway.outbox import Outbox, OutboxCorruptError
from gateway.state import DeviceStateStore
from gateway.systemd import Notifier, watchdog_loop
from gateway.web import PairingPage, RegistryHub

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.ble.session import SessionOutcome
    from gateway.config import DeviceProfile, HubConfig
    from gateway.state import DeviceState

__all__ = ["OUTBOX_FILE", "Daemon", "run_daemon"]

_log = structlog.get_logger("gateway.daemon")

OUTBOX_FILE: Final = "outbox.sqlite3"
_HEALTHY_LOOP_S: Final = 60.0
"""The supervision loop beats every few seconds; silence this long means it is stuck."""
_BEAT_S: Final = 5.0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _version() -> str:
    try:
        return importlib.metadata.version("vitalbridge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class _StopRequestedError(Exception):
    """Raised inside the task group to stop every part in order."""


class Daemon:
    """The running hub: its parts, its status, and the answers to control requests."""

    def __init__(
        self,
        config: HubConfig,
        outbox: Outbox,
        *,
        notifier: Notifier,
        log_buffer: LogBuffer | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.notifier = notifier
        self.started_at = _utc_now()
        self._started_monotonic = time.monotonic()
        self._beat = time.monotonic()
        state_dir = config.state_dir
        self.backend = load_backend(config.ble)
        self.registry = DeviceRegistry.load(config.devices, state_dir)
        self.store = DeviceStateStore(state_dir)
        self.publisher = Publisher(config.mqtt, outbox)
        policy = config.hub_clock
        deps = SessionDeps(
            hub_id=config.hub_id,
            zone=config.zone(),
            outbox=outbox,
            settings=config.ble,
            client_class=self.backend.client_class,
            hub_clock_synchronised=(
                kernel_clock_synchronised
                if policy is HubClockPolicy.AUTO
                else (lambda: policy is HubClockPolicy.TRUSTED)
            ),
            now=_utc_now,
            quiet_after_sync_s=config.ble.quiet_after_s,
        )
        self.sessions = SessionManager(
            deps,
            self.store,
            on_session_end=self._session_ended,
            resync_after_s=config.ble.resync_interval_s,
        )
        # A silent-scanner restart (and power cycle) must not cut a session's link.
        self.scanner = Scanner(
            self.backend,
            self.registry,
            self.sessions.on_device,
            config.ble,
            connected=lambda: bool(self.sessions.connected),
        )
        self._device_updates: asyncio.Queue[str] = asyncio.Queue()
        self._stop = asyncio.Event()
        self.log_buffer = log_buffer or LogBuffer()
        self.commands = CommandService(
            self,
            hub_topic=config.mqtt.topics.hub,
            audit=AuditLog.in_state_dir(state_dir),
            log_buffer=self.log_buffer,
            sync_now=self.sync_now,
            doctor=self.doctor,
        )
        self.publisher.set_command_handler(self.commands.handle)
        self.web = (
            PairingPage(config.web, RegistryHub(self.registry, self.devices))
            if config.web.enabled
            else None
        )

    def stop(self, reason: str = "requested") -> None:
        """Ask `run` to stop in order (from a signal handler or a test)."""
        if not self._stop.is_set():
            _log.info("stop_requested", reason=reason)
        self._stop.set()

    async def run(self) -> None:
        """Run every part until `stop()` (returns) or cancellation (raises CancelledError)."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._until_stopped(), name="stop")
                self._start(tasks)
        except* _StopRequestedError:
            pass

    async def _until_stopped(self) -> None:
        await self._stop.wait()
        raise _StopRequestedError

    def _start(self, tasks: asyncio.TaskGroup) -> None:
        tasks.create_task(self.publisher.run(), name="publisher")
        tasks.create_task(self.sessions.run(), name="sessions")
        tasks.create_task(self.scanner.run(), name="scanner")
        tasks.create_task(self._publish_status(), name="status")
        tasks.create_task(self._publish_devices(), name="device-state")
        tasks.create_task(
            serve_control(self.config.state_dir / SOCKET_NAME, self.handle),
            name="control",
        )
        tasks.create_task(self._supervise(), name="supervisor")
        tasks.create_task(watchdog_loop(self.notifier, self._healthy), name="watchdog")
        if self.web is not None:
            tasks.create_task(self._serve_web(self.web), name="web")
        self.notifier.ready(f"serving {len(self.registry.devices())} device(s)")
        _log.info(
            "daemon_started",
            hub_id=self.config.hub_id,
            version=_version(),
            devices=len(self.registry.devices()),
            backend=self.backend.name,
        )

    # Status.

    def status(self) -> dict[str, object]:
        """Return the hub status (retained on the status topic; `vitalbridge status` shows it)."""
        outbox = self.outbox.status()
        window = self.registry.pairing_window_remaining_s
        publisher = self.publisher.status.as_dict()
        alarms = [*publisher.get("alarms", []), *(a.value for a in outbox.alarms)]  # type: ignore[misc]
        return {
            "version": _version(),
            "hub_id": self.config.hub_id,
            "started_at": self.started_at.isoformat(),
            "uptime_s": round(time.monotonic() - self._started_monotonic),
            "adapter": self.scanner.status(),
            "devices": {
                "provisioned": len(self.registry.devices()),
                "seen": sum(1 for s in self.store.all() if s.last_seen is not None),
                "connected": self.sessions.connected,
                "unprovisioned_seen": len(self.registry.unprovisioned()),
            },
            "pairing_window_s": None if window is None else round(window),
            "outbox": {
                "depth": outbox.depth,
                "bytes": outbox.depth_bytes,
                "in_flight": outbox.in_flight,
                "oldest_measured_at": _iso(outbox.oldest_measured_at),
                "oldest_enqueued_at": _iso(outbox.oldest_enqueued_at),
                "dropped": outbox.dropped,
                "last_error": outbox.last_error,
            },
            "uplink": {
                "state": publisher.get("state"),
                "last_publish_at": publisher.get("last_publish_at"),
                "published": publisher.get("published"),
            },
            "counters": dict(self.sessions.counters),
            "alarms": sorted(set(alarms)),
        }

    def devices(self) -> list[dict[str, object]]:
        """Return every provisioned device with its remembered state (no patient references)."""
        result: list[dict[str, object]] = []
        for device in self.registry.devices():
            state = self.store.get(device.id)
            document = state.as_document()
            document.update(
                name=device.name,
                address=device.address,
                profile=device.profile.value,
                configured=self.registry.is_configured(device.id),
                connected=device.id in self.sessions.connected,
                users=sorted(device.patients) or None,
            )
            result.append(document)
        return result

    async def handle(self, command: str, args: dict[str, object]) -> object:
        """Answer one control request (`vitalbridge status`, `devices`, `pair`)."""
        match command:
            case "status":
                return self.status()
            case "devices":
                return self.devices()
            case "pair":
                minutes = args.get("minutes", 5)
                if not isinstance(minutes, int | float) or not 0 < minutes <= 60:  # noqa: PLR2004
                    raise ValueError("minutes must be a number from 1 to 60")
                profile = _profile(args.get("profile"))
                self.registry.open_pairing_window(float(minutes) * 60, profile)
                return {"pairing_window_s": round(float(minutes) * 60)}
            case "close_pairing":
                self.registry.close_pairing_window()
                return {"pairing_window_s": None}
            case "web_code":
                if self.web is None:
                    raise ValueError(
                        "the pairing page is off: set [web] enabled = true and restart the hub"
                    )
                return {"code": self.web.issue_code(), "valid_s": round(self.config.web.code_ttl_s)}
        raise ValueError(
            f"unknown command {command!r}: status, devices, pair, close_pairing, web_code"
        )

    async def sync_now(self, device_id: str) -> dict[str, object]:
        """Read a provisioned device as soon as it can be reached (a support request)."""
        if not any(d.id == device_id for d in self.registry.devices()):
            raise LookupError(f"no provisioned device has id {device_id!r}")
        return {"device_id": device_id, "sync": self.sessions.request_sync(device_id)}

    async def doctor(self) -> dict[str, object]:
        """Run the self-checks (off the event loop: some of them block) and return the report."""
        from gateway.doctor import run_doctor  # noqa: PLC0415 - only remote support needs it

        report = await asyncio.to_thread(run_doctor, self.config)
        return report.as_dict()

    # Tasks.

    async def _serve_web(self, page: PairingPage) -> None:
        try:
            await page.run()
        except OSError as exc:
            # A taken port must not stop the readings: the page stays off until fixed.
            _log.error(
                "pairing_page_failed",
                error=str(exc),
                advice="another program uses the port: change [web] port and restart the hub",
            )

    async def _publish_status(self) -> None:
        while True:
            await self.publisher.publish_status(self.status())
            await asyncio.sleep(self.config.status_interval_s)

    def _session_ended(self, state: DeviceState, outcome: SessionOutcome | None) -> None:
        del outcome
        self._device_updates.put_nowait(state.device_id)

    async def _publish_devices(self) -> None:
        while True:
            device_id = await self._device_updates.get()
            state = self.store.get(device_id).as_document()
            await self.publisher.publish_device_state(device_id, state)

    async def _supervise(self) -> None:
        while True:
            self._beat = time.monotonic()
            self.notifier.status(_summary(self.status()))
            await asyncio.sleep(_BEAT_S)

    def _healthy(self) -> bool:
        return time.monotonic() - self._beat < _HEALTHY_LOOP_S


def _profile(value: object) -> DeviceProfile | None:
    from gateway.config import DeviceProfile  # noqa: PLC0415 - the enum is only needed here

    if value is None:
        return None
    try:
        return DeviceProfile(str(value))
    except ValueError:
        names = ", ".join(p.value for p in DeviceProfile)
        raise ValueError(f"profile must be one of {names}") from None


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _summary(status: dict[str, object]) -> str:
    outbox = status["outbox"]
    uplink = status["uplink"]
    depth = outbox.get("depth") if isinstance(outbox, dict) else None
    state = uplink.get("state") if isinstance(uplink, dict) else None
    return f"uplink {state}, outbox {depth} pending"


async def open_outbox(config: HubConfig) -> Outbox:
    """Open the outbox; a corrupt database is moved aside (kept for support) and a new one made."""
    _make_state_dir(config.state_dir)
    path = config.state_dir / OUTBOX_FILE
    settings = config.outbox
    try:
        return await Outbox.open(
            path, max_rows=settings.max_rows, max_bytes=settings.max_bytes, policy=settings.policy
        )
    except OutboxCorruptError as exc:
        aside = Outbox.quarantine(path)
        _log.error(
            "outbox_quarantined",
            error=str(exc),
            moved_to=str(aside),
            advice="readings not yet sent may be in the quarantined file: contact support",
        )
        return await Outbox.open(
            path, max_rows=settings.max_rows, max_bytes=settings.max_bytes, policy=settings.policy
        )


async def run_daemon(
    config: HubConfig,
    *,
    notifier: Notifier | None = None,
    log_buffer: LogBuffer | None = None,
) -> None:
    """Run the hub until SIGTERM/SIGINT (or cancellation); raise ConfigError/OutboxError early."""
    notifier = notifier or Notifier.from_environment()
    loop = asyncio.get_running_loop()
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    try:
        async with await open_outbox(config) as outbox:
            daemon = Daemon(config, outbox, notifier=notifier, log_buffer=log_buffer)
            for signum in stop_signals:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, daemon.stop, signal.Signals(signum).name)
            try:
                await daemon.run()
            finally:
                notifier.stopping()
                _log.info("daemon_stopping")
    finally:
        for signum in stop_signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)


def _make_state_dir(state_dir: Path) -> None:
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        msg = f"state_dir {state_dir} cannot be created ({exc}); set state_dir or fix permissions"
        raise ConfigError(msg) from exc
