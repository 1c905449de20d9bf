"""Child process for test_outbox.py: puts readings until killed, printing each id once stored.

Usage: ``outbox_child.py DATABASE``. Puts go in waves of eight concurrent calls, so that a kill
lands inside group commits; after each `put()` returns, the reading id is written to stdout and
flushed: a line on stdout is a promise that the reading is durable.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

import structlog

from gateway.outbox import Outbox, OutboxEntry

BASE = datetime(2026, 1, 1, tzinfo=UTC)
WAVE = 8
MAX_READINGS = 1_000_000  # a bound in case the parent never kills us


def entry(number: int) -> OutboxEntry:
    return OutboxEntry(
        reading_id=f"child-{number:07d}",
        device_id=f"device-{number % 3}",
        kind="blood_pressure",
        measured_at=BASE + timedelta(seconds=number),
        payload=b'{"n": %d}' % number,
    )


async def put_and_report(outbox: Outbox, reading: OutboxEntry) -> None:
    await outbox.put(reading)
    sys.stdout.write(reading.reading_id + "\n")
    sys.stdout.flush()


async def run(path: str) -> None:
    async with await Outbox.open(path) as outbox:
        for start in range(0, MAX_READINGS, WAVE):
            async with asyncio.TaskGroup() as group:
                for number in range(start, start + WAVE):
                    group.create_task(put_and_report(outbox, entry(number)))


if __name__ == "__main__":
    # stdout carries only the ids the parent counts; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(run(sys.argv[1]))
