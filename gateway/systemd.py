"""Telling systemd how the daemon is doing: the sd_notify protocol, in the standard library.

Under ``Type=notify`` systemd hands the daemon a datagram socket in ``NOTIFY_SOCKET`` and reads
newline-separated assignments from it: ``READY=1`` once start-up is done, ``STATUS=...`` for
``systemctl status``, ``STOPPING=1`` when shutting down and ``WATCHDOG=1`` as a keep-alive when
the unit sets ``WatchdogSec=``. Outside systemd (a terminal, the tests, a container) the variable
is unset and every call here is a cheap no-op, so the daemon calls these unconditionally.

Nothing here raises into the daemon: a notification that cannot be sent is logged once with what
to check and counted, because losing a status line must never stop readings flowing. The only
consequence of persistent failure is the one systemd itself imposes (a start-up timeout, or a
watchdog restart), which is the right outcome when the service manager cannot hear us.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING, Final

import structlog

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Notifier", "watchdog_loop"]

_log = structlog.get_logger(__name__)

# systemd's recommendation (sd_watchdog_enabled(3)): ping at half of WatchdogSec, so one late
# ping on a busy hub does not already cost a restart.
_PING_FRACTION: Final = 0.5
_USEC_PER_S: Final = 1_000_000
_SOCKET_HINT: Final = (
    "check that the unit has Type=notify and NotifyAccess=main and that the daemon is systemd's "
    "main process (ExecStart runs vitalbridge directly, not through a shell or wrapper)"
)


class Notifier:
    """Sends sd_notify messages to systemd; every method is a no-op when not run by systemd."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        """Notify the socket at ``address`` (a path, ``@abstract``, or None: notify nobody)."""
        self._address = _socket_address(address) if address else None
        self._display = address or ""
        self._watchdog_usec = watchdog_usec if self._address is not None else None
        self._failures = 0
        self._warned = False

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] = os.environ, *, pid: int | None = None
    ) -> Notifier:
        """Build the notifier systemd asked for in ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``.

        The watchdog is enabled as ``sd_watchdog_enabled`` decides: ``WATCHDOG_USEC`` is a
        positive integer and ``WATCHDOG_PID``, when set, is this process (``pid``, by default
        ``os.getpid()``); a watchdog meant for another process is not ours to feed.
        """
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and not address.startswith(("/", "@")):
            # systemd also speaks vsock: for virtual machines; a hub never runs that way, and a
            # relative path would depend on the working directory.
            _log.warning(
                "systemd_notify_socket_unsupported",
                notify_socket=address,
                hint="NOTIFY_SOCKET must be an absolute path or @abstract name; notifications "
                "are off, so a Type=notify unit will time out at start-up",
            )
            address = None
        return cls(address, watchdog_usec=_watchdog_usec(env, os.getpid() if pid is None else pid))

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening (``NOTIFY_SOCKET`` was set)."""
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Seconds between keep-alive pings (half of ``WatchdogSec``); None without a watchdog."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec * _PING_FRACTION / _USEC_PER_S

    @property
    def failures(self) -> int:
        """How many notifications could not be sent."""
        return self._failures

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (``READY=1``), with an optional status line."""
        return self.notify("READY=1", *self._status(status))

    def stopping(self) -> bool:
        """Tell systemd the daemon is shutting down (``STOPPING=1``)."""
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        """Tell systemd the daemon is reloading its configuration; call `ready` when done."""
        # MONOTONIC_USEC lets systemd (Type=notify-reload) match this message to the reload.
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def status(self, text: str) -> bool:
        """Set the one-line status ``systemctl status`` shows (no health values: it is public)."""
        return self.notify(*self._status(text))

    def watchdog(self) -> bool:
        """Send one keep-alive ping (``WATCHDOG=1``)."""
        return self.notify("WATCHDOG=1")

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; True if systemd got it."""
        if self._address is None or not assignments:
            return False
        datagram = "\n".join(assignments).encode()
        try:
            # A socket per message, as libsystemd's sd_notify does: nothing to keep open or to
            # leak across a fork, and a message every few seconds costs nothing.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the event loop: a full queue on systemd's side is a failed send.
                sock.sendto(datagram, socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: OSError) -> None:
        self._failures += 1
        if self._warned:
            _log.debug("systemd_notify_failed", error=str(exc), failures=self._failures)
            return
        self._warned = True
        _log.warning(
            "systemd_notify_failed",
            notify_socket=self._display,
            error=exc.strerror or str(exc),
            hint=_SOCKET_HINT,
        )

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        # A newline would start a new assignment: a status could otherwise forge READY=1.
        return (f"STATUS={' '.join(text.splitlines())}",)


def _socket_address(address: str) -> str:
    # A leading @ names Linux's abstract socket namespace, which the kernel spells with a NUL.
    return "\0" + address[1:] if address.startswith("@") else address


def _watchdog_usec(env: Mapping[str, str], pid: int) -> int | None:
    usec_text = env.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = env.get("WATCHDOG_PID")
    try:
        usec = int(usec_text)
        watchdog_pid = int(pid_text) if pid_text else None
    except ValueError:
        _log.warning(
            "systemd_watchdog_invalid",
            watchdog_usec=usec_text,
            watchdog_pid=pid_text,
            hint="WATCHDOG_USEC and WATCHDOG_PID must be integers; the watchdog is off",
        )
        return None
    if usec <= 0:
        return None
    if watchdog_pid is not None and watchdog_pid != pid:
        # The variables were inherited from a parent that systemd watches, not set for us.
        return None
    return usec


async def watchdog_loop(notifier: Notifier, is_healthy: Callable[[], bool]) -> None:
    """Feed systemd's watchdog while ``is_healthy()`` holds; return at once without a watchdog.

    The pings run on the daemon's event loop, so a loop that is stuck (a blocking call, a busy
    coroutine) stops them by itself and systemd restarts the service after ``WatchdogSec``.
    ``is_healthy`` covers what a live loop cannot show: the daemon passes a check that its
    supervision loop is still making progress. When it first returns False the pings stop for
    good (logged at error level, with a status line), so systemd restarts us: an unhealthy hub
    that recovers by itself is rarer than one that stays wedged, and a restart is cheap.
    """
    interval = notifier.watchdog_interval_s
    if interval is None:
        return
    while True:
        if not is_healthy():
            check = getattr(is_healthy, "__qualname__", repr(is_healthy))
            _log.error(
                "systemd_watchdog_stopped",
                check=check,
                hint="the health check failed, so keep-alive pings stopped; systemd restarts "
                "the service after WatchdogSec (see the lines before this one for the cause)",
            )
            notifier.status(f"unhealthy: {check} failed; waiting for the watchdog to restart")
            return
        notifier.watchdog()
        # The period of the keep-alive itself, not a wait for something to happen.
        await asyncio.sleep(interval)
