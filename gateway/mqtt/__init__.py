"""The MQTT uplink: settings, the publisher that drains the outbox, and the status it reports."""

from __future__ import annotations

from gateway.mqtt._client import BrokerConnectError, ConnectFailure
from gateway.mqtt._outbox_protocol import OutboxRecord, PublisherOutbox
from gateway.mqtt._policy import backoff_delay
from gateway.mqtt.publisher import Publisher
from gateway.mqtt.settings import BrokerEndpoint, PublisherSettings, Topics
from gateway.mqtt.status import PublisherAlarm, PublisherState, PublisherStatus

__all__ = [
    "BrokerConnectError",
    "BrokerEndpoint",
    "ConnectFailure",
    "OutboxRecord",
    "Publisher",
    "PublisherAlarm",
    "PublisherOutbox",
    "PublisherSettings",
    "PublisherState",
    "PublisherStatus",
    "Topics",
    "backoff_delay",
]
