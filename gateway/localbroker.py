"""A throwaway MQTT broker on loopback for the demo: mosquitto if installed, else amqtt in-process.

``vitalbridge demo`` must work on a fresh machine. `local_broker` starts mosquitto (MQTT 5) from a
config file of its own in a work directory, on a free loopback port (never 1883, the system
broker's), waits until it accepts connections and stops it by PID on exit. Without mosquitto it
runs amqtt's broker on the caller's event loop instead; amqtt speaks MQTT 3.1.1 only, so the
publisher must be configured with ``broker.protocol``.

Nothing here is for production: the broker allows anonymous clients and keeps nothing on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import getpass
import logging
import os
import shutil
import signal
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from gateway.errors import VitalbridgeError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

__all__ = [
    "HOST",
    "MOSQUITTO_FALLBACKS",
    "READY_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "SYSTEM_BROKER_PORT",
    "BrokerKind",
    "BrokerPreference",
    "BrokerStartError",
    "EmbeddedBrokerUnavailableError",
    "LocalBroker",
    "LocalBrokerError",
    "MosquittoNotFoundError",
    "MqttProtocol",
    "find_mosquitto",
    "local_broker",
]

HOST: Final = "127.0.0.1"
# Distributions install the broker in /usr/sbin, which is not on every user's PATH.
MOSQUITTO_FALLBACKS: Final = (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto"))
# The system broker's port: the demo must never talk to, or collide with, a broker it did not start.
SYSTEM_BROKER_PORT: Final = 1883
READY_TIMEOUT_S: Final = 10.0
STOP_TIMEOUT_S: Final = 5.0
_PORT_ATTEMPTS: Final = 3
_POLL_S: Final = 0.02
_LOG_TAIL_LINES: Final = 20
# Loggers amqtt writes INFO lines to for every connection and state change.
_NOISY_LOGGERS: Final = ("amqtt", "transitions")

BrokerKind = Literal["mosquitto", "embedded"]
BrokerPreference = Literal["auto", "mosquitto", "embedded"]
MqttProtocol = Literal["5", "3.1.1"]


class LocalBrokerError(VitalbridgeError):
    """The demo's local broker cannot be started."""


class MosquittoNotFoundError(LocalBrokerError):
    """mosquitto was asked for and is not installed (or the given path is not an executable)."""


class EmbeddedBrokerUnavailableError(LocalBrokerError):
    """The embedded broker was needed and amqtt (the ``demo`` extra) is not installed."""


class BrokerStartError(LocalBrokerError):
    """The broker exited at start or did not accept connections in time; carries its log's end."""


@dataclass(frozen=True, slots=True)
class LocalBroker:
    """A running local broker: where to connect and which MQTT version it speaks."""

    kind: BrokerKind
    host: str
    port: int
    protocol: MqttProtocol
    """``"5"`` for mosquitto; ``"3.1.1"`` for the embedded amqtt, which refuses MQTT 5."""
    pid: int | None = None
    """mosquitto's process id; None for the embedded broker, which runs in this process."""
    config_file: Path | None = None
    log_file: Path | None = None
    """mosquitto's stdout and stderr; None for the embedded broker (it logs through `logging`)."""

    @property
    def url(self) -> str:
        """The broker URL for `PublisherSettings.broker_url`: ``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{self.host}:{self.port}"


def find_mosquitto(
    search_path: str | None = None, fallbacks: Sequence[Path] = MOSQUITTO_FALLBACKS
) -> Path | None:
    """Return the mosquitto executable on ``search_path`` (default: PATH) or in ``fallbacks``."""
    found = shutil.which("mosquitto", path=search_path)
    if found is not None:
        return Path(found)
    return next((path for path in fallbacks if _is_executable(path)), None)


@asynccontextmanager
async def local_broker(
    work_dir: Path,
    *,
    prefer: BrokerPreference = "auto",
    mosquitto_path: Path | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> AsyncIterator[LocalBroker]:
    """Run a loopback broker for the ``async with`` block; stop it (and reap it) on the way out.

    ``prefer="auto"`` takes mosquitto when it is found, else the embedded broker. ``mosquitto_path``
    replaces the search (PATH, then `MOSQUITTO_FALLBACKS`); a path that is not an executable
    counts as mosquitto not being installed. mosquitto's config and log are written to
    ``work_dir`` (created if missing); the embedded broker writes nothing there.
    """
    binary = _mosquitto(mosquitto_path) if prefer != "embedded" else None
    if prefer == "mosquitto" and binary is None:
        raise MosquittoNotFoundError(_not_found_message(mosquitto_path))
    if binary is not None:
        async with _run_mosquitto(binary, work_dir, ready_timeout_s, stop_timeout_s) as broker:
            yield broker
        return
    async with _run_embedded(
        ready_timeout_s, stop_timeout_s, mosquitto_missing=prefer == "auto"
    ) as broker:
        yield broker


def _mosquitto(path: Path | None) -> Path | None:
    if path is None:
        return find_mosquitto()
    return path if _is_executable(path) else None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _not_found_message(path: Path | None) -> str:
    if path is not None:
        return (
            f"mosquitto_path {path} is not an executable file: point it at the mosquitto binary, "
            "or use the embedded broker"
        )
    places = ", ".join(str(p) for p in MOSQUITTO_FALLBACKS)
    return (
        f"mosquitto is not installed (looked on PATH, {places}): install it "
        "(`apt-get install mosquitto`) or use the embedded broker"
    )


def _free_port() -> int:
    """Return a loopback TCP port nobody listens on right now (never the system broker's)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        if port != SYSTEM_BROKER_PORT:
            return port


# --- mosquitto, a child process --------------------------------------------------------------


def _mosquitto_config(port: int) -> str:
    lines = [
        f"listener {port} {HOST}",
        "allow_anonymous true",
        "persistence false",
        # Started as root, mosquitto would switch to the "mosquitto" user, who may not be able to
        # read the work directory; naming the current user keeps it as is (ignored otherwise).
        f"user {getpass.getuser()}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        # Without it Nagle delays each PUBACK and pipelined QoS 1 slows several-fold.
        "set_tcp_nodelay true",
    ]
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def _run_mosquitto(
    binary: Path, work_dir: Path, ready_timeout_s: float, stop_timeout_s: float
) -> AsyncIterator[LocalBroker]:
    config_file = work_dir / "mosquitto.conf"
    log_file = work_dir / "mosquitto.log"
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = _free_port()
        log_fd = await asyncio.to_thread(_prepare_mosquitto, work_dir, config_file, log_file, port)
        try:
            process = await asyncio.create_subprocess_exec(
                binary,
                "-c",
                config_file,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            os.close(log_fd)  # the child has its own copy
        try:
            ready = await _wait_until_listening(process, port, log_file, ready_timeout_s)
        except TimeoutError:
            await _stop_process(process, stop_timeout_s)
            msg = (
                f"{binary} did not accept connections on {HOST}:{port} within "
                f"{ready_timeout_s:g}s; its log ({log_file}) ends:\n{_tail(log_file)}"
            )
            raise BrokerStartError(msg) from None
        except BaseException:
            await _stop_process(process, stop_timeout_s)
            raise
        if ready:
            break
        # Someone took the free port between our probe and mosquitto's bind: try another.
        if attempt < _PORT_ATTEMPTS and "Address already in use" in _tail(log_file):
            continue
        msg = (
            f"{binary} exited at start with status {process.returncode}; its log ({log_file}) "
            f"ends:\n{_tail(log_file)}"
        )
        raise BrokerStartError(msg)
    broker = LocalBroker(
        kind="mosquitto",
        host=HOST,
        port=port,
        protocol="5",
        pid=process.pid,
        config_file=config_file,
        log_file=log_file,
    )
    try:
        yield broker
    finally:
        await _stop_process(process, stop_timeout_s)


def _prepare_mosquitto(work_dir: Path, config_file: Path, log_file: Path, port: int) -> int:
    """Write its config and open an empty log for it; return the log's file descriptor."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config_file.write_text(_mosquitto_config(port), encoding="utf-8")
    return os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)


async def _wait_until_listening(
    process: asyncio.subprocess.Process, port: int, log_file: Path, timeout_s: float
) -> bool:
    """Return True once it listens on the port, False if it exits; TimeoutError if neither."""
    marker = f"listen socket on port {port}."
    async with asyncio.timeout(timeout_s):
        while True:
            if process.returncode is not None:
                return False
            # Its own log line first: a connect alone could reach whoever took the port.
            if marker in _read_log(log_file) and await _accepts_connections(port):
                return True
            # Polling a process's log and a port: there is no event to wait on.
            await asyncio.sleep(_POLL_S)


async def _accepts_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _stop_process(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """Stop it by PID: SIGTERM, then SIGKILL if it has not exited in time; reap it either way."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout_s):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    except asyncio.CancelledError:
        # Cancelled while waiting: do not leave a broker running behind us.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise


def _read_log(log_file: Path) -> str:
    try:
        return log_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _tail(log_file: Path) -> str:
    lines = _read_log(log_file).splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(empty)"


# --- amqtt, in this process ------------------------------------------------------------------


@asynccontextmanager
async def _run_embedded(
    ready_timeout_s: float, stop_timeout_s: float, *, mosquitto_missing: bool
) -> AsyncIterator[LocalBroker]:
    try:
        # Imported here: amqtt is the optional "demo" extra, and untyped (no py.typed marker).
        from amqtt.broker import Broker  # type: ignore[import-untyped]  # noqa: PLC0415
        from amqtt.errors import BrokerError  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as exc:
        msg = (
            "no MQTT broker for the demo: install mosquitto (`apt-get install mosquitto`) or the "
            "embedded broker (`pip install 'vitalbridge[demo]'`)"
            if mosquitto_missing
            else "the embedded broker needs amqtt: `pip install 'vitalbridge[demo]'`"
        )
        raise EmbeddedBrokerUnavailableError(msg) from exc
    with _quiet_amqtt_logging():
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = _free_port()
            broker: Any = Broker(_amqtt_config(port))
            try:
                async with asyncio.timeout(ready_timeout_s):
                    await broker.start()
            except TimeoutError:
                msg = f"the embedded broker did not start on {HOST}:{port} in {ready_timeout_s:g}s"
                raise BrokerStartError(msg) from None
            except BrokerError as exc:
                if attempt < _PORT_ATTEMPTS and _address_in_use(exc):
                    continue
                msg = f"the embedded broker could not start on {HOST}:{port}: {exc}"
                raise BrokerStartError(msg) from exc
            break
        try:
            yield LocalBroker(kind="embedded", host=HOST, port=port, protocol="3.1.1")
        finally:
            try:
                async with asyncio.timeout(stop_timeout_s):
                    await broker.shutdown()
            except TimeoutError as exc:
                # Chained, not replaced: an error of the block itself stays in the traceback.
                msg = (
                    f"the embedded broker on {HOST}:{port} did not shut down within "
                    f"{stop_timeout_s:g}s; its clients may still be connected"
                )
                raise LocalBrokerError(msg) from exc


def _amqtt_config(port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
        # Only anonymous access: no $SYS publisher, no packet or event loggers, no persistence.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def _address_in_use(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE


class _LogQuieter:
    """Raise amqtt's loggers to WARNING while any embedded broker runs, unless set by the app."""

    def __init__(self) -> None:
        self._depth = 0
        self._raised: list[logging.Logger] = []

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self._depth == 0:
            for name in _NOISY_LOGGERS:
                logger = logging.getLogger(name)
                # A level the application chose itself is left as it is.
                if logger.level == logging.NOTSET:
                    logger.setLevel(logging.WARNING)
                    self._raised.append(logger)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                for logger in self._raised:
                    logger.setLevel(logging.NOTSET)
                self._raised.clear()


_quiet_amqtt_logging: Final = _LogQuieter()
