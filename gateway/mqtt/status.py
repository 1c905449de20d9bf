"""What the publisher reports for the hub status: its state, counters and alarms."""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["PublisherAlarm", "PublisherState", "PublisherStatus"]


class PublisherState(enum.StrEnum):
    """Where the publisher's connection is."""

    STARTING = "starting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RETRYING = "retrying"
    """Disconnected, waiting out a backoff before the next connect."""
    STOPPED = "stopped"


class PublisherAlarm(enum.StrEnum):
    """A condition that needs someone to look at the hub or the broker."""

    BROKER_UNREACHABLE = "broker_unreachable"
    """Several connects in a row failed for network reasons."""
    BROKER_AUTH_FAILED = "broker_auth_failed"
    """The broker's certificate is untrusted, or it refused our certificate or credentials, or
    those cannot be loaded: a configuration to fix, not an outage to wait out."""
    PUBLISH_REFUSED = "publish_refused"
    """The broker keeps answering PUBACKs with a failure reason code; readings wait."""


@dataclasses.dataclass(frozen=True, slots=True)
class PublisherStatus:
    """A snapshot of the publisher for the hub status; counters run since the process started."""

    state: PublisherState
    broker: str
    last_publish_at: datetime | None
    """When the last reading's successful PUBACK arrived."""
    last_error: str | None
    """The last connect failure, lost connection or refused publish; None once delivery works."""
    last_failure: str | None
    """The ``ConnectFailure`` value of the last failed connect (None once connected)."""
    in_flight: int
    published: int
    """PUBLISH packets sent for readings, repeats included."""
    acked: int
    """Readings acked in the outbox after a successful PUBACK."""
    republished: int
    """Readings sent again after a send whose PUBACK never came: possible duplicates."""
    refused: int
    """PUBACKs with a failure reason code (MQTT 5); those readings were released, not acked."""
    connects: int
    connect_failures: int
    connections_lost: int
    alarms: tuple[PublisherAlarm, ...]
    refused_kinds: tuple[str, ...]
    """Reading kinds whose refusals have lasted long enough to raise PUBLISH_REFUSED."""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form, for merging into the hub status."""
        out = dataclasses.asdict(self)
        out["state"] = self.state.value
        out["alarms"] = [alarm.value for alarm in self.alarms]
        out["refused_kinds"] = list(self.refused_kinds)
        out["last_publish_at"] = (
            self.last_publish_at.isoformat() if self.last_publish_at is not None else None
        )
        return out
