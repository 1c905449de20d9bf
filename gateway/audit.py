"""The audit log of remote commands: who asked for what, and what came of it.

An append-only JSON-lines file in the state directory (``audit.log``, mode 0600), one line per
request, answered or not. When the file would grow past ``max_bytes`` it is moved to
``audit.log.1`` (older ones shift up to ``backups``) and a new one started. Patient references
in the arguments are masked before they are written, with the logs' own redaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from gateway.errors import VitalbridgeError
from gateway.logs import redact_sensitive

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["AUDIT_FILE", "AuditEntry", "AuditError", "AuditLog"]

AUDIT_FILE: Final = "audit.log"
_FILE_MODE: Final = 0o600
_DEFAULT_MAX_BYTES: Final = 1024 * 1024
_DEFAULT_BACKUPS: Final = 3


class AuditError(VitalbridgeError):
    """The audit log cannot be written (permissions, full disk)."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One remote request: when, which request, who, what, and the outcome (None: ok)."""

    request_id: str | None
    requester: str | None
    command: str
    args: Mapping[str, object] | None = None
    error_code: str | None = None
    time: dt.datetime = field(default_factory=_utc_now)

    def as_dict(self) -> dict[str, object]:
        """Return the JSON line's document, patient references masked."""
        args = None if self.args is None else _masked(self.args)
        return {
            "time": self.time.isoformat(),
            "request_id": self.request_id,
            "requester": self.requester,
            "command": self.command,
            "args": args,
            "result": "ok" if self.error_code is None else "error",
            "error_code": self.error_code,
        }


def _masked(args: Mapping[str, object]) -> dict[str, object]:
    # Redacted as at info level: the keys that can carry a patient reference are replaced.
    document: dict[str, object] = {"level": "info", **args}
    masked = dict(redact_sensitive(None, "info", document))
    masked.pop("level", None)
    return masked


class AuditLog:
    """Appends audit entries to ``state_dir/audit.log``, rotating it by size."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = _DEFAULT_MAX_BYTES,
        backups: int = _DEFAULT_BACKUPS,
    ) -> None:
        if max_bytes < 1 or backups < 1:
            raise ValueError(f"max_bytes and backups must be positive: {max_bytes}, {backups}")
        self.path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._lock = threading.Lock()

    @classmethod
    def in_state_dir(cls, state_dir: Path, **kwargs: int) -> AuditLog:
        """Return the audit log of a hub whose state directory is ``state_dir``."""
        return cls(state_dir / AUDIT_FILE, **kwargs)

    def write(self, entry: AuditEntry) -> None:
        """Append one entry (blocking); AuditError if the file cannot be written."""
        line = (json.dumps(entry.as_dict(), default=str, ensure_ascii=False) + "\n").encode()
        with self._lock:
            try:
                self._rotate_if_full(len(line))
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)
                try:
                    # A file made by hand (or by an older release) with wider rights is narrowed.
                    os.fchmod(fd, _FILE_MODE)
                    os.write(fd, line)
                finally:
                    os.close(fd)
            except OSError as exc:
                msg = (
                    f"cannot write the audit log {self.path}: {exc.strerror}; check that the "
                    "state directory is writable by the gateway user and the disk is not full"
                )
                raise AuditError(msg) from exc

    async def record(self, entry: AuditEntry) -> None:
        """Append one entry without blocking the event loop."""
        await asyncio.to_thread(self.write, entry)

    def entries(self) -> list[dict[str, object]]:
        """Return the current file's entries, oldest first (for support tools and tests)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line]

    def _rotate_if_full(self, adding: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + adding <= self._max_bytes:
            return
        for index in range(self._backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
