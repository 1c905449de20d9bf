"""The publisher's status book: state, counters and alarms; each change of state logged once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from gateway.mqtt._policy import backoff_delay
from gateway.mqtt.status import PublisherAlarm, PublisherState, PublisherStatus

if TYPE_CHECKING:
    import random
    from datetime import datetime

    from gateway.mqtt._client import BrokerConnectError, ConnectFailure
    from gateway.mqtt._policy import RefusalRounds
    from gateway.mqtt.settings import PublisherSettings

__all__ = ["Monitor"]

_log = structlog.get_logger("gateway.mqtt")


class Monitor:
    """What the publisher reports, and its log: one line per change of state, not per retry.

    At info and above the log carries ids, kinds, counts and reasons: never a payload.
    """

    def __init__(
        self, settings: PublisherSettings, refusals: RefusalRounds, rng: random.Random
    ) -> None:
        self._settings = settings
        self._broker = str(settings.endpoint)
        self._refusals = refusals
        self._rng = rng
        self._changed = asyncio.Event()
        self._logged_failure: str | None = None
        self.state = PublisherState.STARTING
        self.last_publish_at: datetime | None = None
        self.last_error: str | None = None
        self.last_failure: ConnectFailure | None = None
        self.failed_attempts = 0
        self.alarms: set[PublisherAlarm] = set()
        self.published = self.acked = self.republished = self.refused = 0
        self.connects = self.connect_failures = self.connections_lost = 0

    def snapshot(self, in_flight: int) -> PublisherStatus:
        """Return the status as it is now."""
        return PublisherStatus(
            state=self.state,
            broker=self._broker,
            last_publish_at=self.last_publish_at,
            last_error=self.last_error,
            last_failure=self.last_failure.value if self.last_failure else None,
            in_flight=in_flight,
            published=self.published,
            acked=self.acked,
            republished=self.republished,
            refused=self.refused,
            connects=self.connects,
            connect_failures=self.connect_failures,
            connections_lost=self.connections_lost,
            alarms=tuple(sorted(self.alarms)),
            refused_kinds=tuple(sorted(self._refusals.alarmed)),
        )

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next change; take it before reading the status, then wait on it."""
        return self._changed

    def notify(self) -> None:
        """Wake whoever waits for a change."""
        self._changed.set()
        self._changed = asyncio.Event()

    def set_state(self, state: PublisherState) -> None:
        """Move to ``state``."""
        if state is not self.state:
            self.state = state
            self.notify()

    def on_connected(self) -> None:
        """Record a CONNACK: clear the connect alarms and errors."""
        _log.info(
            "mqtt_connected",
            broker=self._broker,
            client_id=self._settings.effective_client_id,
            protocol=self._settings.protocol,
            failed_attempts=self.failed_attempts,
        )
        self.connects += 1
        self.failed_attempts = 0
        self._logged_failure = None
        self.last_error = None
        self.last_failure = None
        self.alarms -= {PublisherAlarm.BROKER_UNREACHABLE, PublisherAlarm.BROKER_AUTH_FAILED}
        self.set_state(PublisherState.CONNECTED)
        self.notify()

    def on_connect_failed(self, exc: BrokerConnectError) -> float:
        """Record a failed connect; return how long to wait before the next."""
        self.connect_failures += 1
        self.failed_attempts += 1
        self.last_error = str(exc)
        self.last_failure = exc.failure
        if self._logged_failure != str(exc):
            self._logged_failure = str(exc)
            _log.warning(
                "mqtt_connect_failed",
                broker=self._broker,
                failure=exc.failure.value,
                error=str(exc),
                retrying=True,
            )
        self.notify()
        if exc.failure.is_configuration:
            self.alarms.add(PublisherAlarm.BROKER_AUTH_FAILED)
            # A refused certificate or password does not fix itself in a second: wait long.
            cap = self._settings.backoff_cap_s
            return self._rng.uniform(cap / 2, cap)
        if self.failed_attempts >= self._settings.unreachable_alarm_attempts:
            self.alarms.add(PublisherAlarm.BROKER_UNREACHABLE)
        return self._backoff()

    def on_connection_lost(self, reason: str, released: int) -> float:
        """Record a lost connection; return how long to wait before reconnecting."""
        self.connections_lost += 1
        self.last_error = f"connection lost: {reason}"
        self._logged_failure = None
        _log.warning(
            "mqtt_disconnected",
            broker=self._broker,
            reason=reason,
            released=released,
            retrying=True,
        )
        self.notify()
        return self._backoff()

    def on_delivered(self, kind: str, at: datetime) -> None:
        """Record a reading acked after its PUBACK: delivery works, for this kind too."""
        self.acked += 1
        self.last_publish_at = at
        self.last_error = None
        if self._refusals.delivered(kind):
            _log.info("publish_refusal_cleared", kind=kind)
            if not self._refusals.alarmed:
                self.alarms.discard(PublisherAlarm.PUBLISH_REFUSED)
        self.notify()

    def on_delivered_many(self, kinds: list[str], at: datetime) -> None:
        """Record readings acked together after their successful PUBACKs: one change, not many."""
        self.acked += len(kinds)
        self.last_publish_at = at
        self.last_error = None
        for kind in set(kinds):
            if self._refusals.delivered(kind):
                _log.info("publish_refusal_cleared", kind=kind)
                if not self._refusals.alarmed:
                    self.alarms.discard(PublisherAlarm.PUBLISH_REFUSED)
        self.notify()

    def on_refused(self, kind: str, reading_id: str, reason: str, now: float) -> None:
        """Record a refused (or unsendable) reading: count the round, maybe raise the alarm."""
        self.refused += 1
        self.last_error = f"the broker refused a {kind} reading: {reason}"
        refusal = self._refusals.refused(kind, now)
        if refusal.starts_streak:
            _log.warning("reading_refused", kind=kind, reading_id=reading_id, reason=reason)
        if refusal.raises_alarm:
            self.alarms.add(PublisherAlarm.PUBLISH_REFUSED)
            _log.error("publish_refusal_alarm_raised", kind=kind, reason=reason)
        self.notify()

    def on_stopped(self) -> None:
        """Record that the publisher stopped."""
        self.set_state(PublisherState.STOPPED)
        _log.info("mqtt_stopped", broker=self._broker, acked=self.acked)

    def _backoff(self) -> float:
        return backoff_delay(
            self.failed_attempts,
            self._settings.backoff_base_s,
            self._settings.backoff_cap_s,
            self._rng,
        )
