"""The durable outbox: readings stored in SQLite until the broker acknowledges them.

Usage::

    async with await Outbox.open(state_dir / "outbox.sqlite3") as outbox:
        await outbox.put(OutboxEntry.from_reading(reading))  # durable: advance the RACP cursor
        items = await outbox.next_batch(100)  # publisher: publish each item, then
        await outbox.ack(items[0].reading_id)  # after its PUBACK, or on failure:
        await outbox.release(items[1].reading_id, "reason code 0x97")

`Outbox.open()` is a coroutine that returns the open outbox, which is an async context manager
that closes it (hence ``async with await``). A corrupt file raises `OutboxCorruptError`: move it
aside with `Outbox.quarantine(path)` and open again.
"""

from __future__ import annotations

from gateway.outbox._models import (
    DEFAULT_ALARM_RATIO,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ROWS,
    DeviceLike,
    OutboxAlarm,
    OutboxBatchFullError,
    OutboxCorruptError,
    OutboxDiskFullError,
    OutboxEntry,
    OutboxItem,
    OutboxPolicy,
    OutboxStatus,
    ReadingLike,
)
from gateway.outbox._outbox import Outbox
from gateway.outbox._schema import SCHEMA_VERSION

__all__ = [
    "DEFAULT_ALARM_RATIO",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ROWS",
    "SCHEMA_VERSION",
    "DeviceLike",
    "Outbox",
    "OutboxAlarm",
    "OutboxBatchFullError",
    "OutboxCorruptError",
    "OutboxDiskFullError",
    "OutboxEntry",
    "OutboxItem",
    "OutboxPolicy",
    "OutboxStatus",
    "ReadingLike",
]
