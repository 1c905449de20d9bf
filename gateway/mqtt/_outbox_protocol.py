"""The outbox as the publisher sees it: a seam that ``gateway.outbox.Outbox`` fits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["OutboxRecord", "PublisherOutbox"]


class OutboxRecord(Protocol):
    """A stored reading as the publisher needs it."""

    @property
    def reading_id(self) -> str:
        """Deterministic id; ack and release go by it."""
        ...

    @property
    def kind(self) -> str:
        """The reading kind, the last topic level."""
        ...

    @property
    def payload(self) -> bytes:
        """The JSON payload, published byte for byte."""
        ...


class PublisherOutbox(Protocol):
    """The four calls the publisher drains an outbox with."""

    async def next_batch(self, limit: int) -> Sequence[OutboxRecord]:
        """Hand out up to ``limit`` readings, in the order they should go, marked in flight."""
        ...

    async def ack(self, reading_id: str) -> object:
        """Delete a reading: the broker has it."""
        ...

    async def release(self, reading_id: str, error: str | None) -> object:
        """Put a reading back to be handed out again, noting why it did not go."""
        ...

    async def wait_for_pending(self) -> object:
        """Return once there is something for ``next_batch`` to hand out."""
        ...
