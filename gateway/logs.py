"""The daemon's logging: one structlog chain for its own events and for the stdlib loggers.

Every line has one format whoever wrote it (the gateway through structlog; bleak, aiomqtt/paho
and Bumble through `logging`): JSON lines for journald and log shippers, or readable console
lines on a terminal. Context bound with ``structlog.contextvars`` (``hub_id``, ``device_id``)
appears on every line, the stdlib ones included.

Health values and patient references are kept out of logs by the code that logs (it logs ids
and counts, never readings). The redaction processor here is the safety net behind that, not
the plan: at info level and above it replaces the values of keys that can carry them.
Tracebacks are rendered without local variables for the same reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, TextIO

import structlog

if TYPE_CHECKING:
    from collections.abc import Iterator

    from structlog.typing import EventDict, Processor, WrappedLogger

    from gateway.config import LoggingSettings
    from gateway.loglines import LogBuffer

__all__ = ["REDACTED", "bind_device", "configure_logging", "redact_sensitive"]

REDACTED: Final = "[redacted]"

# Keys that can carry a health value or a patient reference: redacted at info level and above.
_HEALTH_KEYS: Final = frozenset(
    {"patient", "patients", "value", "values", "components", "payload", "raw"}
)
_HEALTH_SUFFIX: Final = "_value"
# Secrets are no debugging aid: redacted at every level.
_SECRET_KEYS: Final = frozenset({"password", "secret", "token"})
_SECRET_SUFFIXES: Final = ("_password", "_secret", "_token")
# A value nested deeper than this is replaced whole rather than walked.
_MAX_DEPTH: Final = 4

# Third-party loggers that are noisy below these levels (Bumble logs every HCI packet at debug,
# paho every MQTT packet); they never log below them, whatever the configured level.
_QUIET: Final = {"bumble": logging.WARNING, "mqtt": logging.INFO}

# Our handler on the root logger, found by name when configure_logging runs again.
_HANDLER_NAME: Final = "vitalbridge"

# journald reads a "<N>" syslog priority at the start of a stdout line (SyslogLevelPrefix=).
_SYSLOG_PRIORITY: Final = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY: Final = 7


def configure_logging(
    settings: LoggingSettings,
    *,
    stream: TextIO | None = None,
    is_tty: bool | None = None,
    journal: bool | None = None,
    hub_id: str | None = None,
    ring: LogBuffer | None = None,
    cache: bool = True,
) -> None:
    """Send structlog and stdlib logging to ``stream`` (stdout) in the configured format.

    ``format="auto"`` picks console lines when ``stream`` is a terminal (``is_tty`` overrides
    the check) and JSON otherwise. ``journal`` prefixes each line with its syslog priority so
    journald files it at the right level; by default it is on when ``JOURNAL_STREAM`` says the
    stream is the journal. ``hub_id`` goes on every line, from every thread (context bound with
    contextvars reaches only the tasks that inherit it). Call once at start-up: loggers are
    cached on first use.
    """
    out = sys.stdout if stream is None else stream
    tty = _isatty(out) if is_tty is None else is_tty
    as_json = settings.format == "json" or (settings.format == "auto" and not tty)
    level = logging.getLevelNamesMapping()[settings.level.upper()]

    # Run in the caller's context (contextvars) for both origins, before any hand-off.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        *([_StaticFields({"hub_id": hub_id})] if hub_id is not None else []),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # The remote `logs` command reads from here; it redacts as it stores.
        *([ring.processor] if ring is not None else []),
    ]
    renderer: list[Processor]
    if as_json:
        # format_exc_info renders a plain traceback; structlog's dict tracebacks would include
        # local variables, which can hold readings.
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        renderer = [
            structlog.dev.ConsoleRenderer(
                colors=tty, exception_formatter=structlog.dev.plain_traceback
            )
        ]
    use_journal = _is_journal(out) if journal is None else journal
    formatter_class = _JournalFormatter if use_journal else structlog.stdlib.ProcessorFormatter
    formatter = formatter_class(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_sensitive,
            structlog.processors.StackInfoRenderer(),
            *renderer,
        ],
    )

    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, floor in _QUIET.items():
        logging.getLogger(name).setLevel(max(level, floor))

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        # Below the level, a log call returns at once without building an event.
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        context_class=dict,
        # Cached for speed in the daemon; a short command that runs inside another program (a
        # test) passes cache=False so that the configuration can be undone.
        cache_logger_on_first_use=cache,
    )


def redact_sensitive(_logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Replace health values, patient references and secrets with ``[redacted]``.

    At debug level only secrets are replaced, so a developer can still see what a device sent.
    Nested mappings and lists are walked, so a reading logged whole is covered too.
    """
    level = event_dict.get("level", method_name)
    health = level != "debug"
    for key, value in event_dict.items():
        if key in {"event", "level", "logger", "timestamp"}:
            continue
        event_dict[key] = _redact(key, value, health=health, depth=0)
    return event_dict


def _redact(key: object, value: object, *, health: bool, depth: int) -> object:
    if isinstance(key, str) and (_is_secret(key) or (health and _is_health(key))):
        return REDACTED
    if depth >= _MAX_DEPTH and isinstance(value, Mapping | list | tuple):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _redact(k, v, health=health, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(None, v, health=health, depth=depth + 1) for v in value]
    return value


def _is_health(key: str) -> bool:
    lowered = key.lower()
    return lowered in _HEALTH_KEYS or lowered.endswith(_HEALTH_SUFFIX)


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES)


@contextlib.contextmanager
def bind_device(device_id: str) -> Iterator[None]:
    """Add ``device_id`` to every log line in this block (and tasks started in it)."""
    with structlog.contextvars.bound_contextvars(device_id=device_id):
        yield


class _StaticFields:
    """Adds fixed fields to every event (bound context of the same name wins)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._fields = dict(fields)

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        for key, value in self._fields.items():
            event_dict.setdefault(key, value)
        return event_dict


class _JournalFormatter(structlog.stdlib.ProcessorFormatter):
    """Prefixes each line with the ``<N>`` syslog priority journald reads and strips."""

    def format(self, record: logging.LogRecord) -> str:
        priority = next(
            (prio for level, prio in _SYSLOG_PRIORITY if record.levelno >= level), _DEBUG_PRIORITY
        )
        return f"<{priority}>{super().format(record)}"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or minimal stream is not a terminal
        return False


def _is_journal(stream: TextIO) -> bool:
    # systemd sets JOURNAL_STREAM=<device>:<inode> of the journal socket on stdout/stderr; a
    # match with the stream's own means the lines go to journald (see systemd.exec(5)).
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        stat = os.fstat(stream.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):
        return False
