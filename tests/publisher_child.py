"""Child process for test_publisher.py: a publisher in its own process, for the test to SIGKILL.

Usage: ``publisher_child.py BROKER_URL HUB_ID TOPIC_PREFIX [OUTBOX_PATH WINDOW]``.

Without an outbox it connects with nothing to send, announces itself online on the retained
status topic and waits to be killed; the broker then publishes its last will (``offline``).
With one it drains that SQLite outbox with the given in-flight window and exits 0 once the
outbox is empty.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.mqtt import OutboxRecord, Publisher, PublisherSettings
from gateway.outbox import Outbox


class EmptyOutbox:
    """An outbox with nothing in it, ever: the child only keeps a connection open."""

    async def next_batch(self, limit: int) -> list[OutboxRecord]:
        """Hand out nothing."""
        del limit
        return []

    async def ack(self, reading_id: str) -> None:
        """Never called: nothing is handed out."""
        raise AssertionError(reading_id)

    async def release(self, reading_id: str, error: str | None) -> None:
        """Never called: nothing is handed out."""
        raise AssertionError(reading_id, error)

    async def wait_for_pending(self) -> None:
        """Wait forever: nothing ever arrives."""
        await asyncio.Event().wait()


class DrainingOutbox:
    """The real outbox, which says when an ack has left it empty."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.drained = asyncio.Event()
        if outbox.status().depth == 0:
            self.drained.set()

    async def next_batch(self, limit: int) -> list[OutboxRecord]:
        """Hand out what the outbox hands out."""
        return list(await self.outbox.next_batch(limit))

    async def ack(self, reading_id: str) -> bool:
        """Ack, and note when nothing is left."""
        stored = await self.outbox.ack(reading_id)
        if self.outbox.status().depth == 0:
            self.drained.set()
        return stored

    async def release(self, reading_id: str, error: str | None) -> bool:
        """Release in the outbox."""
        return await self.outbox.release(reading_id, error)

    async def wait_for_pending(self) -> None:
        """Wait in the outbox."""
        await self.outbox.wait_for_pending()


async def main(broker_url: str, hub_id: str, prefix: str, *drain: str) -> None:
    """Run the publisher until killed, or until the given outbox is empty."""
    settings = PublisherSettings(
        broker_url=broker_url,
        hub_id=hub_id,
        topic_prefix=prefix,
        window=int(drain[1]) if drain else 20,
        backoff_base_s=0.05,
        backoff_cap_s=0.5,
    )
    if not drain:
        await Publisher(settings, EmptyOutbox()).run()
        return
    async with await Outbox.open(Path(drain[0])) as outbox:
        draining = DrainingOutbox(outbox)
        async with asyncio.TaskGroup() as tasks:
            running = tasks.create_task(Publisher(settings, draining).run(), name="publisher")
            await draining.drained.wait()
            running.cancel()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
