"""The outbox's synchronous core: one SQLite connection, used from one thread only.

`gateway.outbox.Outbox` runs every call of this class on its single writer thread. Everything
here is plain blocking code, which is what the property tests drive directly.

In-memory mirrors (row and byte totals, rows per device, items in flight) are loaded at open and
changed only after a transaction commits, so a failed write leaves them true. Items in flight are
deliberately not persisted: after a crash every stored row is pending again (at-least-once).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import structlog

from gateway.errors import OutboxError, OutboxFullError
from gateway.outbox._fairness import plan_turns
from gateway.outbox._models import (
    DEFAULT_ALARM_RATIO,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ROWS,
    OutboxAlarm,
    OutboxDiskFullError,
    OutboxEntry,
    OutboxItem,
    OutboxPolicy,
    OutboxStatus,
    from_epoch_us,
    to_epoch_us,
)
from gateway.outbox._schema import SCHEMA_VERSION, connect, storage_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

__all__ = ["OutboxStore", "PutOutcome"]

_log = structlog.get_logger(__name__)

# Rows read per device beyond those asked for, so that most hand-outs need no query.
_READ_AHEAD: Final = 32
# SQLite's default bound on ? placeholders in one statement is 32766; stay far below.
_SQL_VARIABLES: Final = 500

# Publisher error strings are kept for diagnosis, not as logs: a bounded prefix is enough.
_MAX_ERROR_CHARS: Final = 500


_INSERT: Final = (
    "INSERT INTO readings (reading_id, device_id, kind, measured_at_us, enqueued_at_us, size, "
    "payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _row_of(entry: OutboxEntry, enqueued_at_us: int) -> tuple[object, ...]:
    return (
        entry.reading_id,
        entry.device_id,
        entry.kind,
        to_epoch_us(entry.measured_at),
        enqueued_at_us,
        entry.size,
        entry.payload,
    )


class _MirrorDriftError(sqlite3.DatabaseError):
    """An in-flight row was missing when its ack deleted it: the in-memory mirror is wrong."""

    def __init__(self) -> None:
        super().__init__("an acked in-flight reading was not stored; the outbox state drifted")


@dataclasses.dataclass(slots=True)
class PutOutcome:
    """What happened to one group of puts: new-or-duplicate per stored entry, then a refusal."""

    new: list[bool] = dataclasses.field(default_factory=list)
    """One flag per entry stored, in order: True if new, False if it was already there."""
    refused: OutboxFullError | None = None
    """Set when the group stopped at an entry the bound refused; later entries were skipped."""
    reason: str | None = None
    """Why the bound refused that entry, e.g. ``100 of max_rows=100 rows``."""


@dataclasses.dataclass(slots=True)
class _Totals:
    rows: int
    size: int
    per_device: collections.Counter[str]


class OutboxStore:
    """The outbox's state and rules on one SQLite connection; not thread-safe, not async."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        policy: OutboxPolicy = OutboxPolicy.REFUSE_NEW,
        alarm_ratio: float = DEFAULT_ALARM_RATIO,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if max_rows < 1 or max_bytes < 1:
            raise ValueError(f"max_rows={max_rows} and max_bytes={max_bytes} must be positive")
        if not 0.0 < alarm_ratio <= 1.0:
            raise ValueError(f"alarm_ratio={alarm_ratio} must be in (0, 1], e.g. 0.8")
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.policy = OutboxPolicy(policy)
        self.alarm_ratio = alarm_ratio
        self._clock = clock
        self._conn, found_version = connect(path)
        self._commits = 0
        # reading_id -> (seq, device_id) for items handed out and not yet acked or released.
        # reading_id -> (seq, device_id, size): what an ack needs, so it need not look it up.
        self._in_flight: dict[str, tuple[int, str, int]] = {}
        # The connection's synchronous setting: FULL unless an ack left it at NORMAL.
        self._fsync = True
        # device_id -> its first pending rows (not in flight) in hand-out order, as
        # (measured_at_us, seq, item): read ahead so that most hand-outs need no query. Always a
        # prefix of what the query would return; dropped for a device whenever a write could
        # put a row of it before the prefix's end (an earlier put, a release, a drop).
        self._ahead: dict[str, collections.deque[tuple[int, int, OutboxItem]]] = {}
        self._cursor: str | None = None  # the device served last, for round-robin
        self._bound_hit = False
        # Storage trouble, for the status: a full disk clears only when a put stores a row
        # again (an ack succeeding says nothing about room), other errors on any good write.
        self._disk_full = False
        self._storage_failed = False
        self._last_error: str | None = None
        self._totals = self._load_totals()
        (dropped,) = self._conn.execute(
            "SELECT value FROM counters WHERE name = 'dropped'"
        ).fetchone()
        self._dropped: int = dropped
        _log.info(
            "outbox_opened",
            path=str(path),
            schema_version=SCHEMA_VERSION,
            found_schema_version=found_version,  # 0: a new file
            depth=self._totals.rows,
            dropped_total=self._dropped,
        )

    # -- lifecycle and plumbing ------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; SQLite checkpoints the WAL into the main file on the way."""
        self._conn.close()

    @property
    def commits(self) -> int:
        """Write transactions committed since open."""
        return self._commits

    def _load_totals(self) -> _Totals:
        per_device: collections.Counter[str] = collections.Counter()
        rows = size = 0
        for device_id, count, device_size in self._conn.execute(
            "SELECT device_id, COUNT(*), SUM(size) FROM readings GROUP BY device_id"
        ):
            per_device[device_id] = count
            rows += count
            size += device_size
        return _Totals(rows, size, per_device)

    @contextlib.contextmanager
    def _write(self, action: str, *, fsync: bool = True) -> Iterator[sqlite3.Connection]:
        """Run the block in one IMMEDIATE transaction; map SQLite errors to OutboxError.

        ``fsync=False`` commits without syncing the WAL (synchronous=NORMAL until the next
        fsynced write switches back): it survives a crash of the process, and a power cut may
        undo it, never tear it. Only for writes whose loss costs a duplicate, not a reading: the
        acks. The next fsynced commit (a put) syncs the WAL up to itself, these frames included.
        """
        conn = self._conn
        try:
            if fsync != self._fsync:
                # Switched only when it changes: a drain of acks alone pays for no PRAGMA.
                conn.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
                self._fsync = fsync
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLITE_FULL and some I/O errors already rolled the transaction back.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            failure = storage_error(self.path, error, action)
            if isinstance(failure, OutboxDiskFullError):
                self._disk_full = True
            else:
                self._storage_failed = True
            self._last_error = str(failure)
            _log.error(
                "outbox_write_failed",
                path=str(self.path),
                action=action,
                error=getattr(error, "sqlite_errorname", type(error).__name__),
            )
            raise failure from error
        self._commits += 1
        self._storage_failed = False
        if not self._disk_full:
            self._last_error = None

    # -- put --------------------------------------------------------------------------------------

    def put(self, entry: OutboxEntry) -> bool:
        """Store one entry durably; True if new, False if its reading_id was already stored."""
        (outcome,) = self.put_groups([[entry]])
        if outcome.refused is not None:
            raise outcome.refused
        return outcome.new[0]

    def put_groups(self, groups: Sequence[Sequence[OutboxEntry]]) -> list[PutOutcome]:
        """Store several callers' entries in one transaction (group commit), each group in order.

        A group stops at its first entry that the bound refuses, so the stored entries are always
        a prefix of the group (the caller advances its RACP cursor to the prefix's end).
        """
        outcomes = [PutOutcome() for _ in groups]
        rows, size = self._totals.rows, self._totals.size
        added: collections.Counter[str] = collections.Counter()
        removed: collections.Counter[str] = collections.Counter()
        dropped: list[tuple[str, str]] = []
        needed_room = False
        now_us = to_epoch_us(self._clock())
        with self._write("storing readings") as conn:
            for group, outcome in zip(groups, outcomes, strict=True):
                for entry in group:
                    if not self._over_bound(entry, rows, size):
                        # Room for it whether new or not: one statement stores it, or finds it
                        # stored already (a put costs a lookup less than the general path).
                        stored = conn.execute(
                            _INSERT + " ON CONFLICT (reading_id) DO NOTHING",
                            _row_of(entry, now_us),
                        ).rowcount
                        if stored:
                            self._forget_ahead(entry.device_id, to_epoch_us(entry.measured_at))
                            rows += 1
                            size += entry.size
                            added[entry.device_id] += 1
                        outcome.new.append(bool(stored))
                        continue
                    if conn.execute(
                        "SELECT 1 FROM readings WHERE reading_id = ?", (entry.reading_id,)
                    ).fetchone():
                        outcome.new.append(False)
                        continue
                    needed_room = needed_room or self._over_bound(entry, rows, size)
                    refusal = self._refusal(entry, rows, size)
                    if refusal is None and self._over_bound(entry, rows, size):
                        # DROP_OLDEST (REFUSE_NEW has refused already): make room, if any can be.
                        victims = self._victims(entry, rows, size)
                        if victims is None:
                            refusal = "every stored reading is in flight, none can be dropped"
                        for seq, reading_id, device_id, victim_size in victims or ():
                            self._forget_ahead(device_id)
                            conn.execute("DELETE FROM readings WHERE seq = ?", (seq,))
                            rows -= 1
                            size -= victim_size
                            removed[device_id] += 1
                            dropped.append((reading_id, device_id))
                    if refusal is not None:
                        outcome.reason = refusal
                        outcome.refused = OutboxFullError(
                            f"outbox {self.path} is full ({refusal}); reading "
                            f"{entry.reading_id} was not stored. Keep it on the device (do not "
                            "advance the RACP cursor) and retry after the outbox drains."
                        )
                        break
                    conn.execute(_INSERT, _row_of(entry, now_us))
                    self._forget_ahead(entry.device_id, to_epoch_us(entry.measured_at))
                    rows += 1
                    size += entry.size
                    added[entry.device_id] += 1
                    outcome.new.append(True)
            if dropped:
                conn.execute(
                    "UPDATE counters SET value = value + ? WHERE name = 'dropped'", (len(dropped),)
                )
        if added:
            # A row was stored, so there is room again.
            self._disk_full = False
            self._last_error = None
        self._totals.rows, self._totals.size = rows, size
        self._totals.per_device.update(added)
        self._totals.per_device.subtract(removed)
        self._totals.per_device = +self._totals.per_device  # forget devices with no rows
        self._dropped += len(dropped)
        for reading_id, device_id in dropped:
            _log.warning(
                "outbox_reading_dropped",
                reading_id=reading_id,
                device_id=device_id,
                policy=str(self.policy),
                dropped_total=self._dropped,
            )
        self._note_bound(hit=needed_room)
        return outcomes

    def _over_bound(self, entry: OutboxEntry, rows: int, size: int) -> bool:
        return rows + 1 > self.max_rows or size + entry.size > self.max_bytes

    def _refusal(self, entry: OutboxEntry, rows: int, size: int) -> str | None:
        if entry.size > self.max_bytes:
            # Dropping everything would not make room: refuse whatever the policy.
            return f"the reading's {entry.size} bytes exceed max_bytes={self.max_bytes}"
        if self.policy is OutboxPolicy.REFUSE_NEW and self._over_bound(entry, rows, size):
            return self._bound_text(entry, rows, size)
        return None

    def _bound_text(self, entry: OutboxEntry, rows: int, size: int) -> str:
        if rows + 1 > self.max_rows:
            return f"{rows} of max_rows={self.max_rows} rows"
        return f"{size} + {entry.size} bytes over max_bytes={self.max_bytes}"

    def _victims(
        self, entry: OutboxEntry, rows: int, size: int
    ) -> list[tuple[int, str, str, int]] | None:
        """Pick the oldest rows not in flight whose removal makes room, or None if none can."""
        flying = {seq for seq, _, _ in self._in_flight.values()}
        victims: list[tuple[int, str, str, int]] = []
        cursor = self._conn.execute(
            "SELECT seq, reading_id, device_id, size FROM readings ORDER BY measured_at_us, seq"
        )
        try:
            for row in cursor:
                if not self._over_bound(entry, rows, size):
                    break
                if row[0] in flying:
                    continue
                victims.append(row)
                rows -= 1
                size -= row[3]
        finally:
            cursor.close()
        return None if self._over_bound(entry, rows, size) else victims

    def _note_bound(self, *, hit: bool) -> None:
        was = self._bound_hit
        self._bound_hit = hit or (self._bound_hit and self._near_full())
        if self._bound_hit and not was:
            _log.warning(
                "outbox_bound_reached",
                path=str(self.path),
                depth=self._totals.rows,
                depth_bytes=self._totals.size,
                max_rows=self.max_rows,
                max_bytes=self.max_bytes,
                policy=str(self.policy),
            )

    def _near_full(self) -> bool:
        return (
            self._totals.rows >= self.alarm_ratio * self.max_rows
            or self._totals.size >= self.alarm_ratio * self.max_bytes
        )

    # -- hand out, ack, release -------------------------------------------------------------------

    def next_batch(self, limit: int) -> list[OutboxItem]:
        """Hand out up to `limit` pending items: per device in measurement order, round-robin."""
        if limit < 1:
            raise ValueError(f"limit={limit} must be at least 1")
        flying = collections.Counter(device for _, device, _ in self._in_flight.values())
        available = {
            device: count - flying[device]
            for device, count in self._totals.per_device.items()
            if count > flying[device]
        }
        turns = plan_turns(available, self._cursor, limit)
        if not turns:
            return []
        quota = collections.Counter(turns)
        flying_seqs: set[int] | None = None
        for device, wanted in quota.items():
            ahead = self._ahead.get(device)
            if ahead is None or len(ahead) < wanted:
                if flying_seqs is None:
                    flying_seqs = {seq for seq, _, _ in self._in_flight.values()}
                self._ahead[device] = self._read_ahead(device, wanted, flying[device], flying_seqs)
        batch: list[OutboxItem] = []
        for device in turns:
            ahead = self._ahead[device]
            _, seq, item = ahead.popleft()
            if not ahead:
                del self._ahead[device]
            self._in_flight[item.reading_id] = (seq, device, len(item.payload))
            batch.append(item)
        self._cursor = turns[-1]
        return batch

    def _read_ahead(
        self, device: str, wanted: int, flying: int, flying_seqs: set[int]
    ) -> collections.deque[tuple[int, int, OutboxItem]]:
        # In the index's (device_id, measured_at_us, seq) order, one query. At most `flying` of
        # the rows it returns are in flight (the window bounds those), so it returns enough.
        rows = self._conn.execute(
            "SELECT seq, reading_id, device_id, kind, measured_at_us, payload, enqueued_at_us, "
            "attempts, last_error FROM readings WHERE device_id = ? "
            "ORDER BY measured_at_us, seq LIMIT ?",
            (device, wanted + flying + _READ_AHEAD),
        ).fetchall()
        return collections.deque(
            (row[4], row[0], _item_of(row[1:])) for row in rows if row[0] not in flying_seqs
        )

    def _forget_ahead(self, device: str, measured_at_us: int | None = None) -> None:
        """Drop a device's read-ahead if a row at `measured_at_us` (None: any) precedes its end."""
        ahead = self._ahead.get(device)
        if ahead is not None and (measured_at_us is None or measured_at_us < ahead[-1][0]):
            del self._ahead[device]

    def return_unsent(self, reading_ids: Iterable[str]) -> None:
        """Make handed-out items pending again without counting an attempt (never published)."""
        for reading_id in reading_ids:
            flying = self._in_flight.pop(reading_id, None)
            if flying is not None:
                self._forget_ahead(flying[1])

    def ack(self, reading_id: str) -> bool:
        """Delete a delivered reading; True if it was stored."""
        return self.ack_many([reading_id]) == 1

    def ack_many(self, reading_ids: Iterable[str]) -> int:
        """Delete delivered readings in one transaction; return how many were stored."""
        (count,) = self.ack_groups([list(reading_ids)])
        return count

    def ack_groups(self, groups: Sequence[Sequence[str]]) -> list[int]:
        """Delete several callers' delivered readings in one transaction; a count per group."""
        counts = [0 for _ in groups]
        removed: collections.Counter[str] = collections.Counter()
        removed_size = 0
        # Not fsynced: an ack undone by a power cut sends its reading again (a duplicate, which
        # at-least-once allows); a crash of the process keeps it. The WAL fsync per ack commit
        # would otherwise cost the drain a third of its rate.
        # Items in flight are stored (nothing else deletes them) and their rows are known: one
        # statement deletes them all. The SQLite calls are few because each one hands the GIL
        # back and waits to take it again from the busy event loop.
        flying: list[int] = []
        seen: set[str] = set()
        with self._write("deleting delivered readings", fsync=False) as conn:
            for index, group in enumerate(groups):
                for reading_id in group:
                    if reading_id in seen:
                        continue
                    seen.add(reading_id)
                    known = self._in_flight.get(reading_id)
                    if known is not None:
                        flying.append(known[0])
                        counts[index] += 1
                        removed[known[1]] += 1
                        removed_size += known[2]
                        continue
                    row = conn.execute(
                        "DELETE FROM readings WHERE reading_id = ? RETURNING device_id, size",
                        (reading_id,),
                    ).fetchone()
                    if row is None:
                        continue
                    # A pending row acked without being handed out: maybe in the read-ahead.
                    self._forget_ahead(row[0])
                    counts[index] += 1
                    removed[row[0]] += 1
                    removed_size += row[1]
            for first in range(0, len(flying), _SQL_VARIABLES):
                chunk = flying[first : first + _SQL_VARIABLES]
                deleted = conn.execute(
                    f"DELETE FROM readings WHERE seq IN ({','.join('?' * len(chunk))})",  # noqa: S608 - only placeholders
                    chunk,
                ).rowcount
                if deleted != len(chunk):
                    raise _MirrorDriftError
        self._totals.rows -= sum(counts)
        self._totals.size -= removed_size
        self._totals.per_device.subtract(removed)
        self._totals.per_device = +self._totals.per_device
        for group in groups:
            for reading_id in group:
                self._in_flight.pop(reading_id, None)
        self._note_bound(hit=False)
        return counts

    def release(self, reading_id: str, error: str | None) -> bool:
        """Hand an item out again later (its publish failed) and count the attempt.

        Returns False for an id that was not in flight. The attempt count is bookkeeping: if
        writing it fails the item is still pending again, and the failure shows in the status.
        """
        flying = self._in_flight.pop(reading_id, None)
        if flying is None:
            return False
        self._forget_ahead(flying[1])
        text = None if error is None else error[:_MAX_ERROR_CHARS]
        with contextlib.suppress(OutboxError), self._write("counting a failed publish") as conn:
            conn.execute(
                "UPDATE readings SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (text, flying[0]),
            )
        return True

    # -- status -----------------------------------------------------------------------------------

    def status(self) -> OutboxStatus:
        """Return a snapshot of depth, bounds, age, in-flight count, drops and alarms."""
        oldest_measured = oldest_enqueued = None
        storage_ok = True
        try:
            (measured_us,) = self._conn.execute(
                "SELECT MIN(measured_at_us) FROM readings"
            ).fetchone()
            enqueued = self._conn.execute(
                "SELECT enqueued_at_us FROM readings ORDER BY seq LIMIT 1"
            ).fetchone()
        except sqlite3.Error:
            storage_ok = False
        else:
            oldest_measured = None if measured_us is None else from_epoch_us(measured_us)
            oldest_enqueued = None if enqueued is None else from_epoch_us(enqueued[0])
        alarms: list[OutboxAlarm] = []
        if self._near_full() or self._bound_hit:
            alarms.append(OutboxAlarm.NEAR_FULL)
        if self._bound_hit or (
            self._totals.rows >= self.max_rows or self._totals.size >= self.max_bytes
        ):
            alarms.append(OutboxAlarm.FULL)
        if self._disk_full:
            alarms.append(OutboxAlarm.DISK_FULL)
        if self._storage_failed or not storage_ok:
            alarms.append(OutboxAlarm.STORAGE_ERROR)
        return OutboxStatus(
            depth=self._totals.rows,
            depth_bytes=self._totals.size,
            max_rows=self.max_rows,
            max_bytes=self.max_bytes,
            policy=self.policy,
            in_flight=len(self._in_flight),
            oldest_measured_at=oldest_measured,
            oldest_enqueued_at=oldest_enqueued,
            dropped=self._dropped,
            alarms=tuple(alarms),
            last_error=self._last_error,
            commits=self._commits,
        )


def _item_of(row: Sequence[Any]) -> OutboxItem:
    """Build the item from (reading_id, device_id, kind, measured_at_us, payload, ...) columns."""
    return OutboxItem(
        reading_id=row[0],
        device_id=row[1],
        kind=row[2],
        measured_at=from_epoch_us(row[3]),
        payload=bytes(row[4]),
        enqueued_at=from_epoch_us(row[5]),
        attempts=row[6],
        last_error=row[7],
    )
