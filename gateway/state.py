"""What the hub remembers about each device between sessions and restarts: cursor, identity, health.

One small JSON file per device in the state directory, replaced atomically (write a temporary
file, fsync, rename, fsync the directory), so that a power cut leaves either the old or the new
state, never half of one. The RACP cursor lives here: it names the last stored record the outbox
has committed, and a session asks the device only for records after it.
"""

from __future__ import annotations

import contextlib
import datetime as dt  # noqa: TC003 - pydantic resolves the field types at runtime
import json
import os
import tempfile
from pathlib import Path
from typing import Final

import structlog
from pydantic import BaseModel, ConfigDict

__all__ = ["DeviceIdentity", "DeviceState", "DeviceStateStore", "write_atomically"]

_log = structlog.get_logger("gateway.state")

_FORMAT: Final = 1


class DeviceIdentity(BaseModel):
    """The Device Information a device served once, cached so later sessions skip reading it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    hardware: str | None = None


class DeviceState(BaseModel):
    """One device's remembered state; `DeviceStateStore.save` makes a change durable."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)

    device_id: str
    racp_cursor: int | None = None
    """Sequence number of the last stored record the outbox committed (glucose RACP)."""
    identity: DeviceIdentity | None = None
    battery_level: int | None = None
    rssi: int | None = None
    last_seen: dt.datetime | None = None
    last_connected: dt.datetime | None = None
    last_reading_at: dt.datetime | None = None
    """When the hub last stored a reading of this device (hub clock, UTC)."""
    readings: int = 0
    sessions: int = 0
    failures: int = 0
    """Sessions in a row that ended in an error (0 after a good one)."""
    last_error: str | None = None
    clock_offset_s: float | None = None

    def as_document(self) -> dict[str, object]:
        """Return the JSON-ready form (also the retained device state's payload)."""
        return self.model_dump(mode="json")


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class DeviceStateStore:
    """The per-device state files under ``{state_dir}/devices/``, kept in memory once read."""

    def __init__(self, state_dir: Path) -> None:
        self._directory = state_dir / "devices"
        self._states: dict[str, DeviceState] = {}

    def get(self, device_id: str) -> DeviceState:
        """Return the device's state, read from disk the first time (fresh if there is none)."""
        state = self._states.get(device_id)
        if state is None:
            state = self._read(device_id)
            self._states[device_id] = state
        return state

    def save(self, state: DeviceState) -> None:
        """Write the state durably (blocking; small: call it off the event loop when it matters)."""
        document = {"format": _FORMAT, **state.as_document()}
        data = json.dumps(document, indent=1, sort_keys=True).encode()
        write_atomically(self._file(state.device_id), data)
        self._states[state.device_id] = state

    def all(self) -> list[DeviceState]:
        """Return every state read or saved so far."""
        return list(self._states.values())

    def _file(self, device_id: str) -> Path:
        return self._directory / f"{device_id}.json"

    def _read(self, device_id: str) -> DeviceState:
        file = self._file(device_id)
        try:
            state = DeviceState.model_validate_json(file.read_bytes())
            if state.device_id != device_id:
                # A file copied or renamed onto another device's name: saving it would
                # overwrite that device's state with a stranger's.
                msg = f"the file belongs to device {state.device_id!r}"
                raise ValueError(msg)  # noqa: TRY301 - one handler for every unreadable file
        except FileNotFoundError:
            return DeviceState(device_id=device_id)
        except (OSError, ValueError) as exc:
            # A damaged file costs a re-read of the device's identity and a full RACP report
            # (duplicates the backend drops by id), never a crash loop.
            aside = file.with_suffix(".corrupt")
            with contextlib.suppress(OSError):
                file.replace(aside)
            _log.warning(
                "device_state_unreadable",
                device_id=device_id,
                moved_to=str(aside),
                error=str(exc).splitlines()[0],
                advice="the device's identity is read again and its stored records re-sent",
            )
            return DeviceState(device_id=device_id)
        return state
