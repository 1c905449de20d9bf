"""The async face of the outbox: every SQLite call on one writer thread, puts group-committed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Self, TypeVar

import structlog

from gateway.errors import OutboxError
from gateway.outbox._models import (
    DEFAULT_ALARM_RATIO,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ROWS,
    OutboxBatchFullError,
    OutboxEntry,
    OutboxItem,
    OutboxPolicy,
    OutboxStatus,
)
from gateway.outbox._store import OutboxStore, PutOutcome

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable, Sequence
    from types import TracebackType

__all__ = ["Outbox"]

_log = structlog.get_logger(__name__)

_Request = TypeVar("_Request")
_Result = TypeVar("_Result")


class _GroupCommit(Generic[_Request, _Result]):
    """Requests staged in one event-loop turn, or while a transaction runs, share the next one.

    At most one transaction of this kind is on the writer thread at a time; whatever arrives
    meanwhile waits and goes in the next. Under load a transaction therefore carries every
    request that came in during the previous fsync (classic group commit), and with no load a
    lone request waits for nothing but its own commit.
    """

    def __init__(
        self, outbox: Outbox, run: Callable[[OutboxStore, list[_Request]], list[_Result]]
    ) -> None:
        self._outbox = outbox
        self._run = run
        self._staged: list[tuple[_Request, asyncio.Future[_Result]]] = []
        self._busy = False
        self._scheduled = False
        self._idle: list[asyncio.Future[None]] = []

    async def submit(self, request: _Request) -> _Result:
        """Stage one request; return its own result once its transaction has committed."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Result] = loop.create_future()
        self._staged.append((request, waiter))
        if not self._busy and not self._scheduled:
            # call_soon rather than now: every request made in this loop turn joins the flush.
            self._scheduled = True
            loop.call_soon(self._flush)
        # A cancelled caller's request may still commit: that is a duplicate at worst, since the
        # caller never learnt it was stored and keeps the record on the device.
        return await waiter

    async def drained(self) -> None:
        """Return once nothing is staged or running."""
        while self._busy or self._scheduled or self._staged:
            idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(idle)
            await idle

    def _flush(self) -> None:
        self._scheduled = False
        if self._busy:
            return  # _finish flushes what is staged when the running transaction ends
        if not self._staged:
            self._wake_idle()
            return
        batch, self._staged = self._staged, []
        self._busy = True
        requests = [request for request, _ in batch]
        run = self._run
        try:
            done = self._outbox._submit(lambda store: run(store, requests))  # noqa: SLF001
        except RuntimeError:
            # The executor is shut down (a close() was cancelled half-way): fail, never hang.
            self._busy = False
            closed = OutboxError("the outbox closed before committing; reopen it and put again")
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(closed)
            self._wake_idle()
            return
        done.add_done_callback(lambda finished: self._finish(batch, finished))

    def _finish(
        self,
        batch: list[tuple[_Request, asyncio.Future[_Result]]],
        done: asyncio.Future[list[_Result]],
    ) -> None:
        self._busy = False
        error = (
            OutboxError("the outbox's writer thread stopped before committing; reopen it")
            if done.cancelled()
            else done.exception()
        )
        if error is None:
            for (_, waiter), result in zip(batch, done.result(), strict=True):
                if not waiter.done():
                    waiter.set_result(result)
        else:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(error)
        self._flush()

    def _wake_idle(self) -> None:
        idle, self._idle = self._idle, []
        for waiter in idle:
            if not waiter.done():
                waiter.set_result(None)


def _put_groups(store: OutboxStore, groups: list[Sequence[OutboxEntry]]) -> list[PutOutcome]:
    return store.put_groups(groups)


def _ack_groups(store: OutboxStore, groups: list[Sequence[str]]) -> list[int]:
    return store.ack_groups(groups)


class Outbox:
    """The durable outbox: readings in with `put()`, out with `next_batch()`, gone on `ack()`.

    Open it with ``async with await Outbox.open(path) as outbox:``. A reading is on disk
    (committed, WAL fsynced) when `put()` returns: only then may the session advance the
    device's RACP cursor. The publisher hands items out with `next_batch()`, acks each after the
    broker's PUBACK, and releases it when a publish fails. Items handed out but neither acked nor
    released when the process dies are pending again after the next open (at-least-once).

    Every SQLite call runs on one writer thread that owns the connection, so the event loop
    never blocks on disk; puts (and acks) that arrive together share one transaction.
    """

    def __init__(
        self,
        store: OutboxStore,
        status: OutboxStatus,
        executor: concurrent.futures.ThreadPoolExecutor,
    ) -> None:
        """Wrap an open store; use `Outbox.open()` rather than calling this."""
        self._store = store
        self._status = status
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._available = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._puts: _GroupCommit[Sequence[OutboxEntry], PutOutcome] = _GroupCommit(
            self, _put_groups
        )
        self._acks: _GroupCommit[Sequence[str], int] = _GroupCommit(self, _ack_groups)
        self._refresh()

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        policy: OutboxPolicy = OutboxPolicy.REFUSE_NEW,
        alarm_ratio: float = DEFAULT_ALARM_RATIO,
        clock: Callable[[], datetime] | None = None,
    ) -> Outbox:
        """Open (creating or migrating) the outbox at `path`; raise OutboxError if it cannot."""
        file = Path(path)
        now = clock if clock is not None else _utc_now

        def open_store() -> tuple[OutboxStore, OutboxStatus]:
            store = OutboxStore(
                file,
                max_rows=max_rows,
                max_bytes=max_bytes,
                policy=policy,
                alarm_ratio=alarm_ratio,
                clock=now,
            )
            return store, store.status()

        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="outbox-writer"
        )
        opening = executor.submit(open_store)
        try:
            store, status = await asyncio.wrap_future(opening)
        except asyncio.CancelledError:
            # The open goes on in the thread; close what it opens there, after it, on that thread.
            executor.submit(_close_opened, opening)
            executor.shutdown(wait=False)
            raise
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(store, status, executor)

    @staticmethod
    def quarantine(path: str | os.PathLike[str], *, now: datetime | None = None) -> Path:
        """Move a corrupt outbox file (with its -wal and -shm) aside; return where it went.

        The new name is ``<name>.corrupt-<UTC timestamp>``, next to the original, so that
        undelivered readings can still be recovered from it by hand.
        """
        source = Path(path)
        stamp = (now if now is not None else datetime.now(UTC)).astimezone(UTC)
        base = f"{source.name}.corrupt-{stamp:%Y%m%dT%H%M%SZ}"
        target = source.with_name(base)
        suffixes = ("-wal", "-shm")
        counter = 1
        while any(Path(f"{target}{suffix}").exists() for suffix in ("", *suffixes)):
            target = source.with_name(f"{base}-{counter}")
            counter += 1
        try:
            # The WAL goes first: a stale WAL left beside a new, empty database could be
            # replayed into it.
            for suffix in suffixes:
                side = Path(f"{source}{suffix}")
                if side.exists():
                    side.rename(f"{target}{suffix}")
            source.rename(target)
        except OSError as error:
            raise OutboxError(
                f"could not move the outbox database {source} aside to {target} ({error}). "
                "Move or delete it by hand, then restart the daemon."
            ) from error
        _log.warning("outbox_quarantined", path=str(source), moved_to=str(target))
        return target

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._store.path

    # -- the API ----------------------------------------------------------------------------------

    async def put(self, entry: OutboxEntry) -> bool:
        """Store a reading durably; True if new, False if its reading_id was already stored.

        Raises OutboxFullError when the REFUSE_NEW policy refuses it (keep it on the device) and
        OutboxError when the disk is full or broken.
        """
        self._check_open()
        outcome = await self._puts.submit((entry,))
        if outcome.refused is not None:
            raise outcome.refused
        return outcome.new[0]

    async def put_many(self, entries: Iterable[OutboxEntry]) -> int:
        """Store readings in order in one transaction; return how many were new.

        Raises OutboxBatchFullError (an OutboxFullError) when the bound refuses one: its `stored`
        says how many leading entries are durable; keep the rest on the device.
        """
        self._check_open()
        group = tuple(entries)
        if not group:
            return 0
        outcome = await self._puts.submit(group)
        if outcome.refused is not None:
            raise OutboxBatchFullError(
                len(outcome.new), len(group), outcome.reason or "bound reached"
            ) from outcome.refused
        return sum(outcome.new)

    async def next_batch(self, limit: int) -> list[OutboxItem]:
        """Hand out up to `limit` pending items: per device in measurement order, fair to each.

        Items already handed out and not yet acked or released are skipped; devices take turns
        (round-robin), starting after the one served last. Ack or release every item.
        """
        self._check_open()
        if limit < 1:
            raise ValueError(f"limit={limit} must be at least 1")
        handed = self._submit(lambda store: store.next_batch(limit))
        try:
            return await asyncio.shield(handed)
        except asyncio.CancelledError:
            # The thread hands the items out anyway; put them back rather than leave them in
            # flight, unpublished, until the next restart.
            handed.add_done_callback(self._return_unsent)
            raise

    async def ack(self, reading_id: str) -> bool:
        """Delete a reading after the broker's PUBACK; True if it was stored."""
        self._check_open()
        return await self._acks.submit((reading_id,)) == 1

    async def ack_many(self, reading_ids: Iterable[str]) -> int:
        """Delete delivered readings in one transaction; return how many were stored."""
        self._check_open()
        group = tuple(reading_ids)
        if not group:
            return 0
        return await self._acks.submit(group)

    async def ack_and_next_batch(
        self, reading_ids: Iterable[str], limit: int
    ) -> tuple[int, list[OutboxItem]]:
        """Ack delivered readings, then hand out up to `limit` (0: none), in one writer trip.

        The same as `ack_many()` followed by `next_batch()`, for a publisher that frees window
        slots by acking and fills them at once: one round trip to the writer thread instead of
        two. Returns how many of the readings were stored, and the items handed out. If the ack
        fails, nothing is handed out.
        """
        self._check_open()
        if limit < 0:
            raise ValueError(f"limit={limit} must not be negative")
        group = tuple(reading_ids)

        def ack_then_hand_out(store: OutboxStore) -> tuple[int, list[OutboxItem]]:
            acked = store.ack_many(group) if group else 0
            return acked, store.next_batch(limit) if limit else []

        handed = self._submit(ack_then_hand_out)
        try:
            return await asyncio.shield(handed)
        except asyncio.CancelledError:
            # As in next_batch(): the acks stand, the items go back rather than stay in flight.
            handed.add_done_callback(self._return_unsent_of_pair)
            raise

    async def release(self, reading_id: str, error: str | None) -> bool:
        """Hand an item out again later because its publish failed; count the attempt.

        Returns False if the item was not in flight. `error` is stored for diagnosis; pass a
        reason (a reason code, an exception class), never the payload.
        """
        self._check_open()
        return await self._submit(lambda store: store.release(reading_id, error))

    async def wait_for_pending(self) -> None:
        """Return when there is something to hand out; raise OutboxError if the outbox closes."""
        self._check_open()
        await self._available.wait()
        self._check_open()

    def status(self) -> OutboxStatus:
        """Return the latest snapshot: depth, bytes, ages, in flight, drops, alarms, last error."""
        return self._status

    async def close(self) -> None:
        """Finish staged puts and acks, then close the database; later calls raise OutboxError."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self._refresh()  # wakes wait_for_pending() callers, which then raise
        try:
            await self._puts.drained()
            await self._acks.drained()
            await self._loop.run_in_executor(self._executor, self._store.close)
        finally:
            self._executor.shutdown(wait=False)
            self._closed.set()

    # -- plumbing ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise OutboxError(f"outbox {self.path} is closed; open it again with Outbox.open()")

    def _submit(self, call: Callable[[OutboxStore], _Result]) -> asyncio.Future[_Result]:
        """Run `call(store)` on the writer thread; the status refreshes when it finishes."""
        # The caller's context (structlog's bound hub_id, device_id) goes along to the thread.
        context = contextvars.copy_context()
        done = self._loop.run_in_executor(self._executor, context.run, self._in_thread, call)
        done.add_done_callback(lambda _: self._refresh())
        return done

    def _in_thread(self, call: Callable[[OutboxStore], _Result]) -> _Result:
        try:
            return call(self._store)
        finally:
            # A plain attribute swap of an immutable snapshot; the loop reads it after the
            # future completes, so it always sees this call's effect.
            self._status = self._store.status()

    def _refresh(self) -> None:
        if self._closing or self._status.pending > 0:
            self._available.set()
        else:
            self._available.clear()

    def _return_unsent(self, handed: asyncio.Future[list[OutboxItem]]) -> None:
        if handed.cancelled() or handed.exception() is not None or self._closing:
            return
        ids = [item.reading_id for item in handed.result()]
        if ids:
            self._submit(lambda store: store.return_unsent(ids))

    def _return_unsent_of_pair(self, handed: asyncio.Future[tuple[int, list[OutboxItem]]]) -> None:
        if handed.cancelled() or handed.exception() is not None or self._closing:
            return
        ids = [item.reading_id for item in handed.result()[1]]
        if ids:
            self._submit(lambda store: store.return_unsent(ids))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _close_opened(opening: concurrent.futures.Future[tuple[OutboxStore, OutboxStatus]]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result()[0].close()
