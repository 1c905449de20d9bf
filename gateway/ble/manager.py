"""Sessions for many devices at once: bounded, isolated, and retried with backoff, never in a loop.

The scanner reports each advertisement of a provisioned device; the manager starts a session if
the device has none running, is not waiting out a backoff, and an adapter slot is free (a home
hub's controller handles a few connections at a time). A session that fails is logged with its
device and the device waits (exponential, capped, jittered, longer after each failure in a
row); an exception in one session never touches the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

import structlog

from gateway.ble.session import DeviceSession, SessionOutcome
from gateway.errors import DeviceSessionError, DeviceUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable

    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

    from gateway.ble.session import SessionDeps
    from gateway.config import DeviceConfig
    from gateway.state import DeviceState, DeviceStateStore

__all__ = ["FRESH_ADVERT_S", "RESYNC_AFTER_S", "Session", "SessionManager"]

_log = structlog.get_logger("gateway.sessions")

RESYNC_AFTER_S: Final = 30.0
"""After a good session, leave a device alone this long even if it keeps advertising."""


FRESH_ADVERT_S: Final = 10.0
"""A device is connected only if it advertised this recently (it may have gone quiet)."""


class Session(Protocol):
    """What the manager needs of a session (DeviceSession; a stand-in in tests)."""

    outcome: SessionOutcome

    async def run(self, ble_device: BLEDevice) -> SessionOutcome:
        """Connect, sync and hang up; raise a DeviceSessionError if it went wrong."""
        ...


if TYPE_CHECKING:
    SessionFactory: TypeAlias = Callable[[DeviceConfig, DeviceState, SessionDeps], Session]


@dataclasses.dataclass(slots=True)
class _Tracked:
    device: DeviceConfig
    ble_device: BLEDevice
    seen_at: float
    """Event-loop time of its last advertisement."""
    next_attempt: float = 0.0
    running: bool = False
    last_good: float | None = None
    """Event-loop time its last good session ended; None if it never had one here."""


class SessionManager:
    """Starts and supervises device sessions as the scanner reports devices."""

    def __init__(
        self,
        deps: SessionDeps,
        store: DeviceStateStore,
        *,
        on_session_end: Callable[[DeviceState, SessionOutcome | None], None] | None = None,
        resync_after_s: float = RESYNC_AFTER_S,
        rng: random.Random | None = None,
        session_factory: Callable[
            [DeviceConfig, DeviceState, SessionDeps], Session
        ] = DeviceSession,
    ) -> None:
        self._deps = deps
        self._store = store
        self._on_session_end = on_session_end
        self._session_factory = session_factory
        self._resync_after_s = resync_after_s
        # Jitter only spreads reconnects; it needs no cryptographic randomness.
        self._rng = rng or random.Random()  # noqa: S311
        self._slots = deps.settings.max_connections
        self._tracked: dict[str, _Tracked] = {}
        self._waiting: set[str] = set()
        """Devices due for a session that advertised while every slot was taken."""
        self._running = 0
        self._tasks: asyncio.TaskGroup | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.counters: dict[str, int] = {
            "sessions": 0,
            "session_failures": 0,
            "readings_stored": 0,
            "values_malformed": 0,
            "readings_refused": 0,
        }

    @property
    def connected(self) -> list[str]:
        """Device ids with a session running now."""
        return [device_id for device_id, t in self._tracked.items() if t.running]

    def on_device(
        self, device: DeviceConfig, ble_device: BLEDevice, advertisement: AdvertisementData
    ) -> None:
        """Note an advertisement of a provisioned device; start its session if it is due."""
        now = asyncio.get_running_loop().time()
        tracked = self._tracked.get(device.id)
        if tracked is None:
            tracked = self._tracked[device.id] = _Tracked(device, ble_device, now)
        tracked.device, tracked.ble_device, tracked.seen_at = device, ble_device, now
        state = self._store.get(device.id)
        state.last_seen = self._deps.now()
        state.rssi = advertisement.rssi
        if self._tasks is None or tracked.running or now < tracked.next_attempt:
            return
        self._waiting.add(device.id)
        if self._running < self._slots:
            self._dispatch(now)

    def _dispatch(self, now: float) -> None:
        """Give free slots to the waiting devices that went longest without a good session.

        First come would starve some devices for ever: advertisements arrive in a steady
        order, and a device synced a minute ago would keep winning a slot over one never synced.
        """
        tasks = self._tasks
        while tasks is not None and self._running < self._slots and self._waiting:
            candidates: list[_Tracked] = []
            for device_id in list(self._waiting):
                tracked = self._tracked[device_id]
                if tracked.running or now - tracked.seen_at > FRESH_ADVERT_S:
                    self._waiting.discard(device_id)
                elif now >= tracked.next_attempt:
                    candidates.append(tracked)
            if not candidates:
                return
            chosen = min(
                candidates,
                key=lambda t: (t.last_good is not None, t.last_good or 0.0, t.seen_at),
            )
            self._waiting.discard(chosen.device.id)
            session = self._session(chosen.device, chosen.ble_device)
            try:
                tasks.create_task(session, name=f"session-{chosen.device.id}")
            except RuntimeError:
                session.close()  # the task group is stopping: no new sessions
                return
            chosen.running = True
            self._running += 1
            self._idle.clear()

    def request_sync(self, device_id: str) -> str:
        """Make a device due now (a support request); return what happens next, in words."""
        tracked = self._tracked.get(device_id)
        if tracked is None:
            return "not seen since the hub started: it is read when it next advertises"
        if tracked.running:
            return "being read now"
        loop_now = asyncio.get_running_loop().time()
        tracked.next_attempt = 0.0
        if loop_now - tracked.seen_at <= FRESH_ADVERT_S:
            self._waiting.add(device_id)
            self._dispatch(loop_now)
            return "being read now" if tracked.running else "queued for the next free connection"
        return "it is read as soon as it advertises (take a measurement or press its button)"

    async def run(self) -> None:
        """Hold the sessions' task group until cancelled; cancelled sessions still commit."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                await asyncio.Event().wait()
            finally:
                self._tasks = None

    async def wait_idle(self) -> None:
        """Wait until no session is running (for tests and an orderly stop)."""
        await self._idle.wait()

    async def _session(self, device: DeviceConfig, ble_device: BLEDevice) -> None:
        loop = asyncio.get_running_loop()
        tracked = self._tracked[device.id]
        state = self._store.get(device.id)
        session = self._session_factory(device, state, self._deps)
        outcome: SessionOutcome | None = None
        try:
            outcome = await session.run(ble_device)
        except DeviceSessionError as exc:
            self._failed(device, state, tracked, exc, loop.time())
        except Exception as exc:  # noqa: BLE001 - one device's bug must not stop the others
            self._failed(device, state, tracked, exc, loop.time())
        else:
            state.failures = 0
            state.last_error = None
            tracked.last_good = loop.time()
            tracked.next_attempt = loop.time() + self._resync_after_s
            _log.info(
                "session_finished",
                device_id=device.id,
                stored=outcome.stored,
                duplicates=outcome.duplicates,
                malformed=outcome.malformed,
                refused=outcome.refused,
                clock=outcome.clock,
            )
        finally:
            tracked.running = False
            self._running -= 1
            self._count(session.outcome)
            try:
                await asyncio.shield(asyncio.to_thread(self._store.save, state))
            except OSError as exc:
                # The readings are in the outbox; a lost cursor costs duplicates, not data.
                _log.error(
                    "device_state_not_saved",
                    device_id=device.id,
                    error=str(exc),
                    advice="check free space and permissions of the state directory",
                )
            if not self._running:
                self._idle.set()
            if self._on_session_end is not None:
                self._on_session_end(state, outcome)
            self._dispatch(loop.time())

    def _failed(
        self,
        device: DeviceConfig,
        state: DeviceState,
        tracked: _Tracked,
        exc: Exception,
        now: float,
    ) -> None:
        state.failures += 1
        state.last_error = str(exc)
        self.counters["session_failures"] += 1
        settings = self._deps.settings
        exponent = min(state.failures - 1, 16)
        delay = min(settings.backoff_cap_s, settings.backoff_base_s * 2**exponent)
        delay *= 0.5 + self._rng.random() / 2
        tracked.next_attempt = now + delay
        event = "session_failed"
        if isinstance(exc, DeviceSessionError):
            log = _log.info if isinstance(exc, DeviceUnavailableError) else _log.warning
            log(event, device_id=device.id, error=str(exc), retry_in_s=round(delay, 1))
        else:
            _log.error(
                event,
                device_id=device.id,
                error=f"{type(exc).__name__}: {exc}",
                retry_in_s=round(delay, 1),
                exc_info=exc,
            )

    def _count(self, outcome: SessionOutcome) -> None:
        counters = self.counters
        counters["sessions"] += 1
        counters["readings_stored"] += outcome.stored
        counters["values_malformed"] += outcome.malformed
        counters["readings_refused"] += outcome.refused
