"""The outbox's value types: what goes in, what comes out, the status it reports, its errors."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol, Self

from gateway.errors import OutboxError, OutboxFullError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "DEFAULT_ALARM_RATIO",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ROWS",
    "DeviceLike",
    "OutboxAlarm",
    "OutboxBatchFullError",
    "OutboxCorruptError",
    "OutboxDiskFullError",
    "OutboxEntry",
    "OutboxItem",
    "OutboxPolicy",
    "OutboxStatus",
    "ReadingLike",
    "from_epoch_us",
    "to_epoch_us",
]

# Sizing for at least 30 days of a busy household without a broker. Six devices (cuff, oximeter,
# scale, thermometer, glucose meter, heart-rate strap) at 20 readings a day are 6 x 20 x 30 =
# 3,600 readings; a heart-rate strap worn 8 h a day and sampled once a minute adds
# 480 x 30 = 14,400. That is 18,000 readings; a safety factor of about 5.5 (more people, more
# devices, chatty firmware) gives 100,000 rows. A reading's JSON with its raw bytes is ~1.5 KB;
# at 2.5 KB per row (headroom for larger body-composition and glucose-context payloads)
# 100,000 rows are 250 MB, rounded to 256 MiB: a small share of even an 8 GB SD card.
DEFAULT_MAX_ROWS: Final = 100_000
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
DEFAULT_ALARM_RATIO: Final = 0.8

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def to_epoch_us(moment: datetime) -> int:
    """Return an aware datetime as integer microseconds since the Unix epoch (exact, sortable)."""
    if moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is naive; pass an aware datetime (UTC)")
    return (moment - _EPOCH) // _MICROSECOND


def from_epoch_us(epoch_us: int) -> datetime:
    """Return the UTC datetime for integer microseconds since the Unix epoch."""
    return _EPOCH + timedelta(microseconds=epoch_us)


class OutboxPolicy(enum.StrEnum):
    """What `put()` does when the outbox is at its row or byte bound."""

    REFUSE_NEW = "refuse_new"
    """Raise `OutboxFullError`: the caller keeps the record on the device (RACP cursor stays)."""
    DROP_OLDEST = "drop_oldest"
    """Delete the oldest readings not in flight to make room; each drop is counted and logged."""


class OutboxAlarm(enum.StrEnum):
    """A condition the hub status reports so that someone looks at the hub."""

    NEAR_FULL = "outbox_near_full"
    """Rows or bytes at or above the alarm ratio of their bound."""
    FULL = "outbox_full"
    """At the bound: readings are being refused or dropped, per the policy."""
    DISK_FULL = "outbox_disk_full"
    """The last write failed because the disk (or the file's size limit) is full."""
    STORAGE_ERROR = "outbox_storage_error"
    """The last write failed for another storage reason (I/O error, read-only file)."""


class DeviceLike(Protocol):
    """The part of a reading's device the outbox reads: its stable id."""

    @property
    def id(self) -> str:
        """Stable device id (the topic and ordering key)."""
        ...


class ReadingLike(Protocol):
    """The part of `gateway.reading.Reading` the outbox reads; any object with these names fits."""

    @property
    def reading_id(self) -> str:
        """Deterministic id: the same physical measurement always gets the same one."""
        ...

    @property
    def device(self) -> DeviceLike:
        """The device that measured."""
        ...

    @property
    def kind(self) -> str:
        """The reading kind, a str enum such as ``blood_pressure``."""
        ...

    @property
    def measured_at(self) -> datetime:
        """When the measurement happened (aware)."""
        ...

    def to_json_bytes(self) -> bytes:
        """Return the MQTT payload."""
        ...


def _plain(value: str) -> str:
    # A `class Kind(str, Enum)` prints as "Kind.BLOOD_PRESSURE"; its value is what topics need.
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One reading to store: its ids, ordering key and the exact MQTT payload bytes."""

    reading_id: str
    device_id: str
    kind: str
    measured_at: datetime
    payload: bytes

    def __post_init__(self) -> None:
        if not self.reading_id:
            raise ValueError("reading_id is empty; pass the reading's deterministic id")
        if not self.device_id:
            raise ValueError(f"device_id of {self.reading_id} is empty; pass the device's id")
        if self.measured_at.utcoffset() is None:
            raise ValueError(
                f"measured_at of {self.reading_id} is naive; pass an aware datetime (UTC)"
            )
        if not isinstance(self.payload, bytes):
            raise TypeError(f"payload of {self.reading_id} must be bytes, not {type(self.payload)}")

    @property
    def size(self) -> int:
        """Payload size in bytes, what the byte bound counts."""
        return len(self.payload)

    @classmethod
    def from_reading(cls, reading: ReadingLike) -> Self:
        """Build the entry for a reading: its ids, kind, measurement time and JSON payload."""
        return cls(
            reading_id=str(reading.reading_id),
            device_id=str(reading.device.id),
            kind=_plain(reading.kind),
            measured_at=reading.measured_at,
            payload=reading.to_json_bytes(),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxItem:
    """A stored reading handed out for publishing; ack or release it by `reading_id`."""

    reading_id: str
    device_id: str
    kind: str
    measured_at: datetime
    """In UTC (the original offset is not kept; the payload has it)."""
    payload: bytes
    enqueued_at: datetime
    attempts: int
    """Publishes that failed and were released so far."""
    last_error: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxStatus:
    """A snapshot of the outbox for the hub status and metrics."""

    depth: int
    """Rows stored (not yet acked), in flight or not."""
    depth_bytes: int
    """Sum of the stored payload sizes (what `max_bytes` bounds), not the file size."""
    max_rows: int
    max_bytes: int
    policy: OutboxPolicy
    in_flight: int
    """Rows handed out by `next_batch()` and neither acked nor released yet."""
    oldest_measured_at: datetime | None
    """Earliest measurement time among the stored rows."""
    oldest_enqueued_at: datetime | None
    """When the longest-waiting stored row was put."""
    dropped: int
    """Readings the DROP_OLDEST policy has deleted over the file's lifetime (persisted)."""
    alarms: tuple[OutboxAlarm, ...]
    last_error: str | None
    """The last storage error, until a write succeeds again."""
    commits: int
    """Write transactions committed since open (group commit makes this < puts)."""

    @property
    def pending(self) -> int:
        """Rows that `next_batch()` can hand out now."""
        return self.depth - self.in_flight


class OutboxCorruptError(OutboxError):
    """The database file is not a readable outbox: move it aside with `Outbox.quarantine`."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        super().__init__(
            f"outbox database {path} is corrupted ({detail}). Move it aside with "
            "Outbox.quarantine(path) (the daemon does this at start) and open a new one; the "
            "moved file is kept for inspection and for recovering undelivered readings."
        )


class OutboxDiskFullError(OutboxError):
    """A write failed because the disk or the file's size limit is full; nothing was stored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"outbox database {path} cannot grow: the disk is full. The reading was not stored; "
            "keep it on the device and free space on the hub's disk (acks still work)."
        )


class OutboxBatchFullError(OutboxFullError):
    """`put_many()` hit the bound: the first `stored` entries are durable, the rest are not."""

    def __init__(self, stored: int, total: int, reason: str) -> None:
        self.stored = stored
        self.total = total
        super().__init__(
            f"outbox full ({reason}): stored the first {stored} of {total} readings. Keep the "
            f"remaining {total - stored} on the device and retry after the outbox drains."
        )
