"""The durable outbox: put, hand out, ack, release, bounds, migrations, damage and crashes."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.errors import OutboxError, OutboxFullError
from gateway.outbox import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ROWS,
    SCHEMA_VERSION,
    Outbox,
    OutboxAlarm,
    OutboxBatchFullError,
    OutboxCorruptError,
    OutboxDiskFullError,
    OutboxEntry,
    OutboxItem,
    OutboxPolicy,
)
from gateway.outbox._fairness import plan_turns
from gateway.outbox._store import OutboxStore

BOUND_S = 20
CHILD = Path(__file__).with_name("outbox_child.py")
BASE = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
ENQUEUED = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def entry(
    reading_id: str, device_id: str = "cuff", minute: int = 0, payload: bytes | None = None
) -> OutboxEntry:
    return OutboxEntry(
        reading_id=reading_id,
        device_id=device_id,
        kind="blood_pressure",
        measured_at=BASE + timedelta(minutes=minute),
        payload=payload if payload is not None else b'{"reading_id": "%s"}' % reading_id.encode(),
    )


def fixed_clock() -> datetime:
    return ENQUEUED


def committed_ids(path: Path) -> set[str]:
    """What another connection sees: committed rows only."""
    with sqlite3.connect(path) as connection:
        ids = {rid for (rid,) in connection.execute("SELECT reading_id FROM readings")}
    connection.close()
    return ids


def ids_of(items: list[OutboxItem]) -> list[str]:
    return [item.reading_id for item in items]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


# put, idempotency, ack, release


@pytest.mark.asyncio
async def test_put_is_durable_on_return_and_idempotent_by_reading_id(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db, clock=fixed_clock) as outbox:
        assert await outbox.put(entry("bp-1")) is True
        assert await asyncio.to_thread(committed_ids, db) == {"bp-1"}
        assert await outbox.put(entry("bp-1", minute=5, payload=b"other")) is False

        status = outbox.status()
        assert status.depth == 1
        assert status.depth_bytes == len(entry("bp-1").payload)
        assert status.oldest_measured_at == BASE
        assert status.oldest_enqueued_at == ENQUEUED
        (item,) = await outbox.next_batch(10)
        assert item == OutboxItem(
            reading_id="bp-1",
            device_id="cuff",
            kind="blood_pressure",
            measured_at=BASE,
            payload=entry("bp-1").payload,
            enqueued_at=ENQUEUED,
            attempts=0,
            last_error=None,
        )


@pytest.mark.asyncio
async def test_items_are_handed_out_once_until_acked_and_ack_removes_them(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        assert await outbox.put_many([entry("a", minute=0), entry("b", minute=1)]) == 2
        assert ids_of(await outbox.next_batch(10)) == ["a", "b"]
        assert await outbox.next_batch(10) == []
        assert outbox.status().in_flight == 2
        assert outbox.status().pending == 0

        assert await outbox.ack("a") is True
        assert await outbox.ack("a") is False
        assert await outbox.ack_many(["b", "never-stored"]) == 1
        assert await outbox.ack_many([]) == 0
        assert outbox.status().depth == 0
        assert outbox.status().in_flight == 0
        assert await asyncio.to_thread(committed_ids, db) == set()


@pytest.mark.asyncio
async def test_release_hands_an_item_out_again_and_counts_the_attempt(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        await outbox.put(entry("a"))
        (first,) = await outbox.next_batch(1)
        assert await outbox.release("a", "PUBACK reason 0x97 quota exceeded") is True
        assert await outbox.release("a", "again") is False  # no longer in flight
        assert await outbox.release("never-stored", None) is False

        (second,) = await outbox.next_batch(1)
        assert (first.attempts, second.attempts) == (0, 1)
        assert second.last_error == "PUBACK reason 0x97 quota exceeded"
        assert await outbox.release("a", None) is True
        (third,) = await outbox.next_batch(1)
        assert (third.attempts, third.last_error) == (2, None)


@pytest.mark.asyncio
async def test_an_acked_reading_put_again_is_stored_again(db):
    # At-least-once: the outbox keeps no tombstones; the deterministic id lets the backend
    # recognise the duplicate.
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        await outbox.put(entry("a"))
        await outbox.ack("a")
        assert await outbox.put(entry("a")) is True


# ordering and fairness


@pytest.mark.asyncio
async def test_each_device_is_handed_out_in_measurement_order(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        # Stored records arrive newest first from some devices; equal times keep put order.
        await outbox.put_many(
            [entry("c3", minute=30), entry("c1", minute=10), entry("c2a", minute=20)]
        )
        await outbox.put(entry("c2b", minute=20))
        await outbox.put(entry("c0", minute=-5))
        assert ids_of(await outbox.next_batch(10)) == ["c0", "c1", "c2a", "c2b", "c3"]


@pytest.mark.asyncio
async def test_devices_take_turns_within_a_batch(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        await outbox.put_many(entry(f"cuff-{i}", "cuff", i) for i in range(4))
        await outbox.put_many(entry(f"scale-{i}", "scale", i) for i in range(2))
        await outbox.put(entry("thermo-0", "thermo", 0))
        batch = await outbox.next_batch(10)
        assert ids_of(batch) == [
            "cuff-0",
            "scale-0",
            "thermo-0",
            "cuff-1",
            "scale-1",
            "cuff-2",
            "cuff-3",
        ]


@pytest.mark.asyncio
async def test_small_batches_rotate_across_devices(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        # A busy device cannot starve a quiet one, whichever way the publisher asks.
        await outbox.put_many(entry(f"hr-{i}", "heart-rate", i) for i in range(50))
        await outbox.put(entry("bp-0", "cuff", 100))
        await outbox.put(entry("kg-0", "scale", 100))
        first = [(await outbox.next_batch(1))[0].device_id for _ in range(4)]
        assert first == ["cuff", "heart-rate", "scale", "heart-rate"]
        nxt = await outbox.next_batch(3)
        assert ids_of(nxt) == ["hr-2", "hr-3", "hr-4"]


def test_turns_rotate_after_the_device_served_last():
    assert plan_turns({"cuff": 2, "scale": 1, "thermo": 0}, None, 10) == ["cuff", "scale", "cuff"]
    assert plan_turns({"cuff": 2, "scale": 1}, "cuff", 2) == ["scale", "cuff"]
    assert plan_turns({"cuff": 2, "scale": 1}, "scale", 2) == ["cuff", "scale"]
    assert plan_turns({"cuff": 5}, "gone-device", 3) == ["cuff"] * 3
    assert plan_turns({}, "cuff", 5) == []


# group commit


@pytest.mark.asyncio
async def test_puts_that_arrive_together_share_one_transaction(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        before = outbox.status().commits

        async def put_then_check(reading: OutboxEntry) -> bool:
            new = await outbox.put(reading)
            # Returned means committed: a second connection sees the row.
            assert reading.reading_id in await asyncio.to_thread(committed_ids, db)
            return new

        results = await asyncio.gather(*(put_then_check(entry(f"r{i}")) for i in range(200)))
        assert all(results)
        assert outbox.status().depth == 200
        assert outbox.status().commits - before == 1

        before = outbox.status().commits
        assert await outbox.put_many(entry(f"m{i}") for i in range(500)) == 500
        assert outbox.status().commits - before == 1


@pytest.mark.asyncio
async def test_acks_that_arrive_together_share_one_transaction(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        await outbox.put_many(entry(f"r{i}") for i in range(50))
        items = await outbox.next_batch(50)
        before = outbox.status().commits
        acked = await asyncio.gather(*(outbox.ack(item.reading_id) for item in items))
        assert all(acked)
        assert outbox.status().commits - before == 1
        assert outbox.status().depth == 0


@pytest.mark.asyncio
async def test_puts_staged_during_a_commit_go_in_the_next_one(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        gate = threading.Event()
        blocker = outbox._submit(lambda _store: gate.wait(BOUND_S))
        before = outbox.status().commits
        async with asyncio.TaskGroup() as group:
            puts = [group.create_task(outbox.put(entry(f"r{i}"))) for i in range(3)]
            await asyncio.sleep(0)  # the first wave is now queued behind the blocker
            puts += [group.create_task(outbox.put(entry(f"s{i}"))) for i in range(3)]
            await asyncio.sleep(0)
            gate.set()
            assert await blocker is True
        assert all(put.result() for put in puts)
        assert outbox.status().commits - before == 2


# wait_for_pending, close, cancellation


@pytest.mark.asyncio
async def test_wait_for_pending_returns_when_there_is_something_to_hand_out(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        async with asyncio.TaskGroup() as group:
            waiter = group.create_task(outbox.wait_for_pending())
            await asyncio.sleep(0)
            assert not waiter.done()
            await outbox.put(entry("a"))
            await waiter

        await outbox.wait_for_pending()  # returns at once: "a" is pending
        await outbox.next_batch(1)
        async with asyncio.TaskGroup() as group:
            waiter = group.create_task(outbox.wait_for_pending())
            await asyncio.sleep(0)
            assert not waiter.done()  # everything is in flight
            await outbox.release("a", "broker gone")
            await waiter


@pytest.mark.asyncio
async def test_close_wakes_waiters_and_later_calls_raise(db):
    async with asyncio.timeout(BOUND_S):
        outbox = await Outbox.open(db)

        async def wait_until_closed() -> None:
            with pytest.raises(OutboxError, match="closed"):
                await outbox.wait_for_pending()

        async with asyncio.TaskGroup() as group:
            waiter = group.create_task(wait_until_closed())
            await asyncio.sleep(0)
            assert not waiter.done()
            await outbox.close()
        await outbox.close()  # twice is fine
        with pytest.raises(OutboxError, match=r"closed; open it again"):
            await outbox.put(entry("a"))
        with pytest.raises(OutboxError, match="closed"):
            await outbox.next_batch(1)


@pytest.mark.asyncio
async def test_a_cancelled_next_batch_puts_its_items_back(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        await outbox.put_many([entry("a"), entry("b", minute=1)])
        gate = threading.Event()
        blocker = outbox._submit(lambda _store: gate.wait(BOUND_S))
        async with asyncio.TaskGroup() as group:
            handing = group.create_task(outbox.next_batch(10))
            await asyncio.sleep(0)  # queued on the writer thread behind the blocker
            handing.cancel()
            gate.set()
            await blocker
            await outbox._submit(lambda _store: None)  # the thread has handed a, b out
        assert handing.cancelled()
        assert ids_of(await outbox.next_batch(10)) == ["a", "b"]


@pytest.mark.asyncio
async def test_ack_and_next_batch_acks_then_hands_out_in_one_trip(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        await outbox.put_many(
            [entry(f"c{i}", "cuff", i) for i in range(4)]
            + [entry(f"s{i}", "scale", i) for i in range(2)]
        )
        first = await outbox.next_batch(3)
        assert ids_of(first) == ["c0", "s0", "c1"]
        before = outbox.status().commits
        # The acked rows' slots are free before the hand-out: 3 in flight, 2 acked, 2 more out.
        acked, more = await outbox.ack_and_next_batch(["c0", "s0"], 2)
        assert acked == 2
        # Round-robin goes on where it left off, each device in measurement order.
        assert ids_of(more) == ["s1", "c2"]
        status = outbox.status()
        assert (status.depth, status.in_flight, status.commits - before) == (4, 3, 1)
        assert {"c0", "s0"}.isdisjoint(await asyncio.to_thread(committed_ids, db))
        # Limit 0 only acks; an id that is not stored is not counted.
        assert await outbox.ack_and_next_batch(["c1", "s1", "gone"], 0) == (2, [])
        assert outbox.status().in_flight == 1
        # No ids: a plain hand-out.
        acked, last = await outbox.ack_and_next_batch([], 5)
        assert (acked, ids_of(last)) == (0, ["c3"])
        with pytest.raises(ValueError, match="negative"):
            await outbox.ack_and_next_batch(["c2"], -1)


@pytest.mark.asyncio
async def test_a_cancelled_ack_and_next_batch_keeps_the_acks_and_puts_the_items_back(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        await outbox.put_many([entry("a"), entry("b", minute=1), entry("c", minute=2)])
        assert ids_of(await outbox.next_batch(1)) == ["a"]
        gate = threading.Event()
        blocker = outbox._submit(lambda _store: gate.wait(BOUND_S))
        async with asyncio.TaskGroup() as group:
            settling = group.create_task(outbox.ack_and_next_batch(["a"], 10))
            await asyncio.sleep(0)  # queued on the writer thread behind the blocker
            settling.cancel()
            gate.set()
            await blocker
            await outbox._submit(lambda _store: None)  # the thread has acked a, handed b, c out
        assert settling.cancelled()
        assert outbox.status().depth == 2
        assert ids_of(await outbox.next_batch(10)) == ["b", "c"]


def test_acks_commit_without_fsync_and_puts_stay_fsynced(db):
    store = OutboxStore(db)
    try:
        store.put_groups([[entry("a"), entry("b", minute=1), entry("c", minute=2)]])
        store.next_batch(3)
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)

        def transaction_statements() -> list[str]:
            seen = [sql for sql in statements if sql.startswith(("PRAGMA", "BEGIN", "COMMIT"))]
            statements.clear()
            return seen

        # An ack lost to a power cut is a duplicate later, never a loss: its commit skips the
        # WAL fsync (synchronous NORMAL), and acks in a row switch nothing.
        assert store.ack_many(["a"]) == 1
        assert transaction_statements() == [
            "PRAGMA synchronous = NORMAL",
            "BEGIN IMMEDIATE",
            "COMMIT",
        ]
        assert store.ack_many(["b"]) == 1
        assert transaction_statements() == ["BEGIN IMMEDIATE", "COMMIT"]
        # A put is fsynced again, whatever came before it.
        store.put_groups([[entry("d", minute=3)]])
        assert transaction_statements() == [
            "PRAGMA synchronous = FULL",
            "BEGIN IMMEDIATE",
            "COMMIT",
        ]
        store._conn.set_trace_callback(None)
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        # Acked in flight or not, each stored reading counts once.
        assert store.ack_many(["c", "c", "d", "gone"]) == 2
        assert store.status().depth == 0
        assert committed_ids(db) == set()
    finally:
        store.close()


def test_the_wal_is_fsynced_at_each_put_and_checkpointed_at_4000_pages(db):
    store = OutboxStore(db)
    try:
        pragma = store._conn.execute
        assert pragma("PRAGMA journal_mode").fetchone() == ("wal",)
        assert pragma("PRAGMA synchronous").fetchone() == (2,)  # FULL
        # A drain rewrites the same index pages commit after commit; a longer WAL writes
        # each back once for many of them.
        assert pragma("PRAGMA wal_autocheckpoint").fetchone() == (4000,)
    finally:
        store.close()


@pytest.mark.asyncio
async def test_next_batch_limit_must_be_positive(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        with pytest.raises(ValueError, match="at least 1"):
            await outbox.next_batch(0)


# reopen and crash


@pytest.mark.asyncio
async def test_rows_survive_close_and_reopen(db):
    async with asyncio.timeout(BOUND_S):
        async with await Outbox.open(db, clock=fixed_clock) as outbox:
            await outbox.put_many([entry("a", "cuff", 1), entry("b", "scale", 2)])
            await outbox.put(entry("c", "cuff", 3, payload=bytes(range(256))))
            before = await outbox.next_batch(10)
            for item in before:
                await outbox.release(item.reading_id, None)
        async with await Outbox.open(db, clock=fixed_clock) as outbox:
            assert outbox.status().depth == 3
            after = await outbox.next_batch(10)
        assert [dataclasses.replace(item, attempts=0) for item in after] == before
        assert {item.attempts for item in after} == {1}


@pytest.mark.asyncio
async def test_items_in_flight_at_a_crash_are_pending_after_reopening(db):
    async with asyncio.timeout(BOUND_S):
        crashed = await Outbox.open(db)
        try:
            await crashed.put_many([entry("a"), entry("b", minute=1), entry("c", minute=2)])
            assert ids_of(await crashed.next_batch(2)) == ["a", "b"]
            await crashed.ack("a")
            # The process "dies" here: no close, no release; another one opens the file.
            async with await Outbox.open(db) as reopened:
                assert reopened.status().in_flight == 0
                assert ids_of(await reopened.next_batch(10)) == ["b", "c"]
        finally:
            await crashed.close()


@pytest.mark.asyncio
async def test_a_sigkilled_writer_loses_no_reading_it_reported_stored(db):
    async with asyncio.timeout(BOUND_S * 3):
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            str(db),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None
        assert child.stderr is not None
        reported: list[str] = []
        killed = False
        try:
            while len(reported) < 300:
                line = await child.stdout.readline()
                if not line:
                    pytest.fail(f"child ended early: {(await child.stderr.read()).decode()}")
                reported.append(line.decode().strip())
            os.kill(child.pid, signal.SIGKILL)
            killed = True
            rest = await child.stdout.read()
            await child.stderr.read()
        finally:
            # Not child.kill() after os.kill: Popen.send_signal polls first and could reap the
            # child behind asyncio's watcher, which then reports returncode 255.
            if not killed and child.returncode is None:
                child.kill()
            await child.wait()
        assert child.returncode == -signal.SIGKILL
        # Only complete lines count: a kill can cut the last one short.
        reported += rest.decode().split("\n")[:-1]

        async with await Outbox.open(db) as outbox:
            stored = ids_of(await outbox.next_batch(len(reported) + 1000))
        missing = set(reported) - set(stored)
        assert missing == set()
        assert len(stored) == len(set(stored))


# bounds and policies


@pytest.mark.asyncio
async def test_refuse_new_raises_at_the_row_bound_after_an_alarm_at_80_percent(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db, max_rows=5) as outbox:
        for i in range(3):
            await outbox.put(entry(f"r{i}", minute=i))
        assert outbox.status().alarms == ()
        await outbox.put(entry("r3", minute=3))
        assert outbox.status().alarms == (OutboxAlarm.NEAR_FULL,)
        await outbox.put(entry("r4", minute=4))
        assert outbox.status().alarms == (OutboxAlarm.NEAR_FULL, OutboxAlarm.FULL)

        with pytest.raises(OutboxFullError, match=r"r5 was not stored\. Keep it on the device"):
            await outbox.put(entry("r5", minute=5))
        assert await outbox.put(entry("r0")) is False  # already durable: not refused
        assert outbox.status().depth == 5
        assert outbox.status().dropped == 0

        await outbox.ack_many(["r0", "r1"])
        assert outbox.status().alarms == ()
        assert await outbox.put(entry("r5", minute=5)) is True


@pytest.mark.asyncio
async def test_refuse_new_raises_at_the_byte_bound(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db, max_bytes=100) as outbox:
        for i in range(3):
            await outbox.put(entry(f"r{i}", payload=b"x" * 30))
        assert outbox.status().alarms == (OutboxAlarm.NEAR_FULL,)
        with pytest.raises(OutboxFullError, match="90 \\+ 30 bytes over max_bytes=100"):
            await outbox.put(entry("r3", payload=b"x" * 30))
        assert await outbox.put(entry("small", payload=b"x" * 10)) is True
        assert outbox.status().depth_bytes == 100
        assert OutboxAlarm.FULL in outbox.status().alarms


@pytest.mark.asyncio
async def test_put_many_at_the_bound_says_how_many_leading_readings_are_stored(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db, max_rows=3) as outbox:
        await outbox.put(entry("r1", minute=1))
        batch = [entry(f"r{i}", minute=i) for i in range(5)]
        with pytest.raises(OutboxBatchFullError) as raised:
            await outbox.put_many(batch)
        assert (raised.value.stored, raised.value.total) == (3, 5)  # r0, r1 (duplicate), r2
        assert "Keep the remaining 2 on the device" in str(raised.value)
        assert await asyncio.to_thread(committed_ids, db) == {"r0", "r1", "r2"}


@pytest.mark.asyncio
async def test_drop_oldest_deletes_the_oldest_readings_not_in_flight_and_counts_them(db):
    async with asyncio.timeout(BOUND_S):
        with structlog.testing.capture_logs() as logs:
            async with await Outbox.open(db, max_rows=3, policy=OutboxPolicy.DROP_OLDEST) as outbox:
                await outbox.put_many(
                    [entry("a", minute=0), entry("b", minute=1), entry("c", minute=2)]
                )
                assert ids_of(await outbox.next_batch(1)) == ["a"]  # in flight: kept
                assert await outbox.put(entry("d", minute=3)) is True
                assert await outbox.put(entry("e", "scale", minute=4)) is True
                status = outbox.status()
                assert await asyncio.to_thread(committed_ids, db) == {"a", "d", "e"}
                assert status.dropped == 2
                assert OutboxAlarm.FULL in status.alarms
        drops = [log for log in logs if log["event"] == "outbox_reading_dropped"]
        assert drops == [
            {
                "event": "outbox_reading_dropped",
                "log_level": "warning",
                "reading_id": "b",
                "device_id": "cuff",
                "policy": "drop_oldest",
                "dropped_total": 1,
            },
            {
                "event": "outbox_reading_dropped",
                "log_level": "warning",
                "reading_id": "c",
                "device_id": "cuff",
                "policy": "drop_oldest",
                "dropped_total": 2,
            },
        ]
        assert [log["event"] for log in logs].count("outbox_bound_reached") == 1

        async with await Outbox.open(db, max_rows=3, policy=OutboxPolicy.DROP_OLDEST) as outbox:
            assert outbox.status().dropped == 2  # persisted


@pytest.mark.asyncio
async def test_drop_oldest_by_bytes_drops_as_many_as_needed(db):
    async with asyncio.timeout(BOUND_S):
        outbox = await Outbox.open(db, max_bytes=100, policy=OutboxPolicy.DROP_OLDEST)
        async with outbox:
            await outbox.put_many(entry(f"r{i}", minute=i, payload=b"x" * 20) for i in range(5))
            await outbox.put(entry("big", minute=9, payload=b"x" * 55))
            assert await asyncio.to_thread(committed_ids, db) == {"r3", "r4", "big"}
            assert outbox.status().dropped == 3


@pytest.mark.asyncio
async def test_drop_oldest_refuses_when_everything_is_in_flight_or_too_big(db):
    async with asyncio.timeout(BOUND_S):
        outbox = await Outbox.open(db, max_rows=2, max_bytes=1000, policy=OutboxPolicy.DROP_OLDEST)
        async with outbox:
            await outbox.put_many([entry("a"), entry("b", minute=1)])
            with pytest.raises(OutboxFullError, match="exceed max_bytes=1000"):
                await outbox.put(entry("huge", payload=b"x" * 1001))
            await outbox.next_batch(2)
            with pytest.raises(OutboxFullError, match="every stored reading is in flight"):
                await outbox.put(entry("c", minute=2))
            assert outbox.status().dropped == 0
            assert await asyncio.to_thread(committed_ids, db) == {"a", "b"}


def test_default_bounds_hold_30_days_of_a_busy_household():
    busy_month = 6 * 20 * 30 + 480 * 30  # six devices at 20 a day, plus a heart-rate strap
    assert 5 * busy_month <= DEFAULT_MAX_ROWS
    assert DEFAULT_MAX_ROWS * 2500 <= DEFAULT_MAX_BYTES


@pytest.mark.asyncio
async def test_bad_bounds_are_rejected(db):
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(ValueError, match="must be positive"):
            await Outbox.open(db, max_rows=0)
        with pytest.raises(ValueError, match=r"alarm_ratio=1.5 must be in \(0, 1\]"):
            await Outbox.open(db, alarm_ratio=1.5)


# schema versions and migration


V1_SCHEMA = """
CREATE TABLE outbox (
    reading_id  TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    measured_at TEXT NOT NULL,
    payload     BLOB NOT NULL,
    enqueued_at TEXT NOT NULL
);
INSERT INTO outbox VALUES
    ('bp-2', 'cuff', 'blood_pressure', '2026-02-01T07:05:00+00:00', X'7B7D',
     '2026-02-01T07:06:00.250000+00:00'),
    ('bp-1', 'cuff', 'blood_pressure', '2026-02-01T07:00:00+00:00', X'7B2231227D',
     '2026-02-01T07:06:00.500000+00:00'),
    ('kg-1', 'scale', 'body_weight', '2026-02-01T06:00:00.123456', X'',
     '2026-02-01T06:01:00+00:00');
PRAGMA user_version = 1;
"""


def write_v1_database(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.executescript(V1_SCHEMA)
    connection.close()


def schema_of(path: Path) -> tuple[int, list[str]]:
    connection = sqlite3.connect(path)
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master")]
    connection.close()
    return version, tables


@pytest.mark.asyncio
async def test_a_version_1_database_is_migrated_and_keeps_its_readings(db):
    await asyncio.to_thread(write_v1_database, db)
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        status = outbox.status()
        assert (status.depth, status.depth_bytes) == (3, 7)
        items = await outbox.next_batch(10)
    assert items == [
        OutboxItem(
            reading_id="bp-1",
            device_id="cuff",
            kind="blood_pressure",
            measured_at=datetime(2026, 2, 1, 7, 0, tzinfo=UTC),
            payload=b'{"1"}',
            enqueued_at=datetime(2026, 2, 1, 7, 6, 0, 500000, tzinfo=UTC),
            attempts=0,
            last_error=None,
        ),
        OutboxItem(
            reading_id="kg-1",
            device_id="scale",
            kind="body_weight",
            measured_at=datetime(2026, 2, 1, 6, 0, 0, 123456, tzinfo=UTC),
            payload=b"",
            enqueued_at=datetime(2026, 2, 1, 6, 1, tzinfo=UTC),
            attempts=0,
            last_error=None,
        ),
        OutboxItem(
            reading_id="bp-2",
            device_id="cuff",
            kind="blood_pressure",
            measured_at=datetime(2026, 2, 1, 7, 5, tzinfo=UTC),
            payload=b"{}",
            enqueued_at=datetime(2026, 2, 1, 7, 6, 0, 250000, tzinfo=UTC),
            attempts=0,
            last_error=None,
        ),
    ]
    version, tables = await asyncio.to_thread(schema_of, db)
    assert version == SCHEMA_VERSION == 2
    assert "outbox" not in tables
    assert {"readings", "counters"} <= set(tables)


@pytest.mark.asyncio
async def test_a_database_from_a_newer_version_is_refused_untouched(db):
    def write_newer() -> None:
        connection = sqlite3.connect(db)
        connection.execute("PRAGMA user_version = 7")
        connection.close()

    await asyncio.to_thread(write_newer)
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(OutboxError, match="schema version 7, newer than") as raised:
            await Outbox.open(db)
    assert not isinstance(raised.value, OutboxCorruptError)  # not to be quarantined
    assert await asyncio.to_thread(schema_of, db) == (7, [])


@pytest.mark.asyncio
async def test_another_applications_database_is_refused_untouched(db):
    def write_foreign() -> None:
        connection = sqlite3.connect(db)
        connection.execute("CREATE TABLE notes (text TEXT)")
        connection.commit()
        connection.close()

    await asyncio.to_thread(write_foreign)
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(OutboxError, match="not a Vitalbridge outbox"):
            await Outbox.open(db)
    assert await asyncio.to_thread(schema_of, db) == (0, ["notes"])


# damage: corruption and a full disk


GARBAGE = b"\x00\xffnot an sqlite database, a torn write\x13\x37" * 200


@pytest.mark.asyncio
async def test_a_garbage_file_is_a_clear_error_and_can_be_quarantined(db):
    await asyncio.to_thread(db.write_bytes, GARBAGE)
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(OutboxCorruptError) as raised:
            await Outbox.open(db)
        message = str(raised.value)
        assert str(db) in message
        assert "Outbox.quarantine(path)" in message
        assert raised.value.path == db

        moved = Outbox.quarantine(
            db, now=datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
        )
        assert moved == db.with_name("outbox.sqlite3.corrupt-20260301T120000Z")
        assert await asyncio.to_thread(moved.read_bytes) == GARBAGE
        assert not await asyncio.to_thread(db.exists)

        async with await Outbox.open(db) as outbox:
            assert await outbox.put(entry("a")) is True


@pytest.mark.asyncio
async def test_damaged_pages_inside_a_valid_file_are_a_corruption_error(db):
    async with asyncio.timeout(BOUND_S):
        async with await Outbox.open(db) as outbox:
            await outbox.put_many(entry(f"r{i}", minute=i, payload=b"x" * 3000) for i in range(20))

        def damage() -> None:
            data = bytearray(db.read_bytes())
            data[4096 : 4096 * 3] = GARBAGE[: 4096 * 2]
            db.write_bytes(bytes(data))

        await asyncio.to_thread(damage)
        with pytest.raises(OutboxCorruptError, match="is corrupted"):
            await Outbox.open(db)


def test_quarantine_moves_the_wal_too_and_never_overwrites(tmp_path):
    db = tmp_path / "outbox.sqlite3"
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for round_ in range(2):
        db.write_bytes(b"main %d" % round_)
        Path(f"{db}-wal").write_bytes(b"wal %d" % round_)
        Outbox.quarantine(db, now=when)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "outbox.sqlite3.corrupt-20260301T120000Z",
        "outbox.sqlite3.corrupt-20260301T120000Z-1",
        "outbox.sqlite3.corrupt-20260301T120000Z-1-wal",
        "outbox.sqlite3.corrupt-20260301T120000Z-wal",
    ]
    assert (tmp_path / "outbox.sqlite3.corrupt-20260301T120000Z-1-wal").read_bytes() == b"wal 1"
    with pytest.raises(OutboxError, match="Move or delete it by hand"):
        Outbox.quarantine(db, now=when)


@pytest.mark.asyncio
async def test_a_missing_directory_is_a_clear_error(tmp_path):
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(OutboxError, match="writable by the daemon"):
            await Outbox.open(tmp_path / "no-such-dir" / "outbox.sqlite3")


def limit_growth(store: OutboxStore, pages: int | None) -> None:
    """Cap the file at its current size (or `pages`): SQLITE_FULL, as on a full disk."""
    (current,) = store._conn.execute("PRAGMA page_count").fetchone()
    store._conn.execute(f"PRAGMA max_page_count = {pages or current}")


async def fill(outbox: Outbox) -> None:
    """Put large readings until a put fails (the file cannot grow past a few of them)."""
    for i in range(100):
        await outbox.put(entry(f"big-{i}", minute=10 + i, payload=b"x" * 5000))


@pytest.mark.asyncio
async def test_a_full_disk_fails_puts_with_an_alarm_and_acks_keep_working(db):
    async with asyncio.timeout(BOUND_S), await Outbox.open(db) as outbox:
        await outbox.put_many([entry("a"), entry("b", minute=1)])
        await outbox._submit(lambda store: limit_growth(store, None))

        with pytest.raises(OutboxDiskFullError) as raised:
            await fill(outbox)
        assert "free space on the hub's disk" in str(raised.value)
        assert isinstance(raised.value, OutboxError)
        status = outbox.status()
        assert OutboxAlarm.DISK_FULL in status.alarms
        assert status.last_error == str(raised.value)
        assert status.depth == len(await asyncio.to_thread(committed_ids, db))

        # Concurrent puts in the failing transaction all get the error; none is half-stored.
        results = await asyncio.gather(
            *(outbox.put(entry(f"c{i}", payload=b"y" * 5000)) for i in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(result, OutboxDiskFullError) for result in results)

        handed = await outbox.next_batch(2)
        assert ids_of(handed) == ["a", "b"]
        assert await outbox.ack_many(["a", "b"]) == 2
        assert outbox.status().depth == status.depth - 2
        assert OutboxAlarm.DISK_FULL in outbox.status().alarms  # an ack says nothing of room

        await outbox._submit(lambda store: limit_growth(store, 1_000_000))
        assert await outbox.put(entry("after", payload=b"z" * 5000)) is True
        assert outbox.status().alarms == ()
        assert outbox.status().last_error is None


# entries from readings


class Kind(enum.StrEnum):
    BLOOD_PRESSURE = "blood_pressure"


class LegacyKind(str, enum.Enum):  # noqa: UP042 (the pre-StrEnum form readings may use)
    BODY_WEIGHT = "body_weight"


@dataclasses.dataclass(frozen=True)
class FakeDevice:
    id: str


@dataclasses.dataclass(frozen=True)
class FakeReading:
    reading_id: str
    device: FakeDevice
    kind: str
    measured_at: datetime

    def to_json_bytes(self) -> bytes:
        return b'{"reading_id": "%s"}' % self.reading_id.encode()


def test_an_entry_is_built_from_any_reading_shaped_object():
    when = datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    reading = FakeReading("rid-1", FakeDevice("cuff-01"), Kind.BLOOD_PRESSURE, when)
    assert OutboxEntry.from_reading(reading) == OutboxEntry(
        reading_id="rid-1",
        device_id="cuff-01",
        kind="blood_pressure",
        measured_at=when,
        payload=b'{"reading_id": "rid-1"}',
    )
    legacy = FakeReading("rid-2", FakeDevice("scale"), LegacyKind.BODY_WEIGHT, when)
    built = OutboxEntry.from_reading(legacy)
    assert built.kind == "body_weight"
    assert type(built.kind) is str


def test_an_entry_needs_ids_an_aware_time_and_bytes():
    with pytest.raises(ValueError, match="naive; pass an aware datetime"):
        OutboxEntry("r", "d", "k", datetime(2026, 3, 1), b"")  # noqa: DTZ001 (the point)
    with pytest.raises(ValueError, match="reading_id is empty"):
        OutboxEntry("", "d", "k", BASE, b"")
    with pytest.raises(ValueError, match="device_id of r is empty"):
        OutboxEntry("r", "", "k", BASE, b"")
    with pytest.raises(TypeError, match="must be bytes"):
        OutboxEntry("r", "d", "k", BASE, "text")  # type: ignore[arg-type]


# the state machine: nothing committed is lost, nothing acked comes back

READING_IDS = st.sampled_from([f"r{i}" for i in range(12)])
DEVICES = st.sampled_from(["cuff", "scale", "oximeter"])


class OutboxMachine(RuleBasedStateMachine):
    """Drives the synchronous core the writer thread runs, with crashes and reopens between."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="vb-outbox-"))
        self.path = self.directory / "outbox.sqlite3"
        self.store = self.open_store()
        self.abandoned: list[OutboxStore] = []
        # reading_id -> (device, minute, put order, size) for every committed, unacked reading.
        self.model: dict[str, tuple[str, int, int, int]] = {}
        self.in_flight: set[str] = set()
        self.put_order = 0
        self.dropped = 0

    def open_store(self) -> OutboxStore:
        return OutboxStore(self.path)

    def key(self, reading_id: str) -> tuple[int, int]:
        """Measurement order: minute, then put order."""
        return self.model[reading_id][1:3]

    def remember(self, reading_id: str, device: str, minute: int) -> None:
        self.put_order += 1
        self.model[reading_id] = (device, minute, self.put_order, entry(reading_id).size)

    @rule(reading_id=READING_IDS, device=DEVICES, minute=st.integers(0, 5))
    def put(self, reading_id, device, minute):
        new = self.store.put(entry(reading_id, device, minute))
        assert new == (reading_id not in self.model)
        if new:
            self.remember(reading_id, device, minute)

    @rule(limit=st.integers(1, 6))
    def hand_out(self, limit):
        items = self.store.next_batch(limit)
        handed = ids_of(items)
        pending = {rid: row for rid, row in self.model.items() if rid not in self.in_flight}
        assert len(handed) == min(limit, len(pending))
        assert set(handed) <= set(pending)
        per_device = collections.defaultdict(list)
        for rid in handed:
            per_device[self.model[rid][0]].append(rid)
        for device, rids in per_device.items():
            # Each device's items are its earliest pending ones, in measurement order.
            queue = sorted(
                (rid for rid, row in pending.items() if row[0] == device),
                key=self.key,
            )
            assert rids == queue[: len(rids)]
        counts = collections.Counter(self.model[rid][0] for rid in handed)
        available = collections.Counter(row[0] for row in pending.values())
        for device, count in available.items():
            if counts[device] < count:  # a device with more to give got its fair share
                assert counts[device] >= max(counts.values(), default=0) - 1
        self.in_flight |= set(handed)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def ack(self, data):
        reading_id = data.draw(st.sampled_from(sorted(self.in_flight)))
        assert self.store.ack(reading_id) is True
        self.in_flight.discard(reading_id)
        del self.model[reading_id]

    @rule(reading_id=READING_IDS)
    def ack_any(self, reading_id):
        assert self.store.ack(reading_id) == (reading_id in self.model)
        self.model.pop(reading_id, None)
        self.in_flight.discard(reading_id)

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def release(self, data):
        reading_id = data.draw(st.sampled_from(sorted(self.in_flight)))
        assert self.store.release(reading_id, "publish failed") is True
        self.in_flight.discard(reading_id)

    @rule()
    def crash(self):
        # No close: the old connection is left as a killed process leaves its file.
        self.abandoned.append(self.store)
        self.store = self.open_store()
        self.in_flight.clear()

    @rule()
    def close_and_reopen(self):
        self.store.close()
        self.store = self.open_store()
        self.in_flight.clear()

    @invariant()
    def committed_rows_are_exactly_the_unacked_ones(self):
        assert committed_ids(self.path) == set(self.model)
        status = self.store.status()
        assert status.depth == len(self.model)
        assert status.depth_bytes == sum(row[3] for row in self.model.values())
        assert status.in_flight == len(self.in_flight)
        assert status.dropped == self.dropped

    def teardown(self):
        for store in (*self.abandoned, self.store):
            store.close()
        shutil.rmtree(self.directory)


class BoundedOutboxMachine(OutboxMachine):
    """The same at a four-row bound with DROP_OLDEST: every reading lost is a counted drop."""

    def open_store(self) -> OutboxStore:
        return OutboxStore(self.path, max_rows=4, policy=OutboxPolicy.DROP_OLDEST)

    @rule(reading_id=READING_IDS, device=DEVICES, minute=st.integers(0, 5))
    def put(self, reading_id, device, minute):
        before = self.store.status().dropped
        try:
            new = self.store.put(entry(reading_id, device, minute))
        except OutboxFullError:
            # Only when nothing can be dropped: every stored reading is in flight.
            assert reading_id not in self.model
            assert set(self.model) == self.in_flight
            return
        assert new == (reading_id not in self.model)
        lost = set(self.model) - committed_ids(self.path)
        assert len(lost) == self.store.status().dropped - before
        assert not lost & self.in_flight
        kept = [rid for rid in self.model if rid not in lost | self.in_flight]
        assert all(self.key(gone) <= self.key(rid) for gone in lost for rid in kept)
        for gone in lost:
            del self.model[gone]
        self.dropped += len(lost)
        if new:
            self.remember(reading_id, device, minute)


MACHINE_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,  # every put is an fsync; its duration is the disk's, not the code's
    suppress_health_check=[HealthCheck.too_slow],
)
OutboxMachine.TestCase.settings = MACHINE_SETTINGS
BoundedOutboxMachine.TestCase.settings = MACHINE_SETTINGS
TestOutboxMachine = OutboxMachine.TestCase
TestBoundedOutboxMachine = BoundedOutboxMachine.TestCase
