"""The last log lines in memory, redacted, for the remote ``logs`` command.

`LogBuffer.processor` sits in the structlog chain (after the level and time stamp are added) and
keeps a copy of each event in a bounded ring. The copy is redacted when it is taken, at info
level whatever the event's own level, with `gateway.logs.redact_sensitive`: the keys that can
carry a health value or a patient reference are dropped, so the buffer never holds them and a
debug line a developer needs locally never leaves the hub.
"""

from __future__ import annotations

import collections
import json
import threading
from typing import TYPE_CHECKING, Final

from gateway.logs import REDACTED, redact_sensitive

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["DEFAULT_CAPACITY", "LogBuffer"]

DEFAULT_CAPACITY: Final = 1000
# Longer text is cut: a line is for support staff to read, not a data channel.
_MAX_TEXT: Final = 1000


class LogBuffer:
    """A bounded ring of recent log events, redacted on the way in."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"a log buffer holds at least one line: capacity={capacity}")
        self._lines: collections.deque[dict[str, object]] = collections.deque(maxlen=capacity)
        # Events come from every thread that logs (paho's, the outbox writer's).
        self._lock = threading.Lock()

    def processor(
        self, logger: WrappedLogger, method_name: str, event_dict: EventDict
    ) -> EventDict:
        """Keep a redacted copy of the event (a structlog processor); pass the event on as is."""
        line = _redacted_copy(logger, method_name, event_dict)
        with self._lock:
            self._lines.append(line)
        return event_dict

    def last(self, count: int) -> list[dict[str, object]]:
        """Return the last ``count`` lines, oldest first."""
        if count <= 0:
            return []
        with self._lock:
            lines = list(self._lines)
        return lines[-count:]

    def __len__(self) -> int:
        """Return how many lines are held."""
        with self._lock:
            return len(self._lines)


def _redacted_copy(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> dict[str, object]:
    level = str(event_dict.get("level", method_name))
    # structlog's and the stdlib bridge's own keys (_record, _from_structlog), and tracebacks.
    copy = {
        key: value
        for key, value in event_dict.items()
        if isinstance(key, str) and not key.startswith("_") and key not in {"exc_info", "level"}
    }
    # Redacted as if logged at info, whatever the level: health keys go too.
    copy["level"] = "info"
    redacted = redact_sensitive(logger, "info", copy)
    line: dict[str, object] = {
        key: _plain(value)
        for key, value in redacted.items()
        if value != REDACTED or key in {"event", "timestamp", "logger"}
    }
    line["level"] = level
    return line


def _plain(value: object) -> object:
    # JSON-ready now, so a later read never meets an object that changed or cannot be encoded.
    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > _MAX_TEXT:
        return text[:_MAX_TEXT] + "..."
    decoded: object = json.loads(text)
    return decoded
