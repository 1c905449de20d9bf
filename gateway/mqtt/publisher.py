"""The uplink: drain the outbox to the broker at QoS 1 and ack each reading only after its PUBACK.

Delivery is at least once. A reading leaves the outbox only on a successful PUBACK; a PUBACK
with an MQTT 5 failure reason code, a lost connection or a PUBACK that never comes releases it
back to the outbox, to be sent again (so a backend may see it twice; its ``reading_id`` says
so). Up to ``window`` publishes are in flight at once, and batches are never larger than the
free part of the window, so the outbox's own ordering decides what goes next even while a
backlog drains. Every connect failure is reported in the status and retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, NoReturn

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.errors import ConfigError
from gateway.mqtt._client import (
    BrokerClient,
    BrokerConnectError,
    ConnectFailure,
    classify_connect_error,
)
from gateway.mqtt._monitor import Monitor
from gateway.mqtt._policy import RefusalRounds
from gateway.mqtt.status import PublisherState, PublisherStatus

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Coroutine

    from paho.mqtt.reasoncodes import ReasonCode

    from gateway.mqtt._outbox_protocol import OutboxRecord, PublisherOutbox
    from gateway.mqtt.settings import PublisherSettings

__all__ = ["Publisher", "schema_version_of"]

CONTENT_TYPE: Final = "application/json"
SCHEMA_VERSION_PROPERTY: Final = "schema_version"
# Long enough for one retained status PUBACK on a live link, short enough not to delay a stop.
_GOODBYE_TIMEOUT_S: Final = 2.0
# Ids sent but never confirmed, kept to count repeats; a bound, in case the outbox drops them.
_MAX_UNCONFIRMED: Final = 100_000

_log = structlog.get_logger("gateway.mqtt")


class _ConnectionLostError(Exception):
    """The connection to the broker ended; the message is the reason for the log."""


_VERSION_PREFIX: Final = b'{"schema_version":"'


def schema_version_of(payload: bytes, default: str) -> str:
    """Return the payload's top-level ``schema_version``, or ``default`` when it names none."""
    # A Reading's canonical JSON opens with its schema version: read it without parsing the
    # whole payload (a full parse per publish cost more than the publish itself).
    if payload.startswith(_VERSION_PREFIX):
        end = payload.find(b'"', len(_VERSION_PREFIX))
        if end > 0:
            head = payload[len(_VERSION_PREFIX) : end]
            if head.isascii() and b"\\" not in head:
                return head.decode("ascii")
    try:
        document = json.loads(payload)
    except ValueError:
        return default
    if isinstance(document, dict):
        version = document.get("schema_version")
        if isinstance(version, str):
            return version
    return default


def _json(document: dict[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Publisher:
    """Publishes the outbox's readings and the hub status; ``run()`` until cancelled."""

    def __init__(
        self,
        settings: PublisherSettings,
        outbox: PublisherOutbox,
        *,
        clock: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._topics = settings.topics
        self._endpoint = settings.endpoint
        self._clock = clock
        # Jitter only spreads reconnects; it needs no cryptographic randomness.
        self._rng = rng or random.Random()  # noqa: S311
        self._status_document: dict[str, object] = {}
        self._client: BrokerClient | None = None
        self._properties: dict[str, Properties] = {}
        self._slot_freed = asyncio.Event()
        # Reading id -> whether its PUBLISH went out, for everything handed out and not settled.
        self._inflight: dict[str, bool] = {}
        # Window slots taken: a slot is free once the reading is acked or released, so the
        # outbox never has more than the window in flight either.
        self._slots_used = 0
        self._unconfirmed: set[str] = set()
        self._released_on_loss = 0
        self._refusals = RefusalRounds(
            base_s=settings.backoff_base_s,
            cap_s=settings.backoff_cap_s,
            alarm_rounds=settings.refusal_alarm_rounds,
            rng=self._rng,
        )
        self._monitor = Monitor(settings, self._refusals, self._rng)

    @property
    def status(self) -> PublisherStatus:
        """A snapshot for the hub status."""
        return self._monitor.snapshot(len(self._inflight))

    async def wait_for_status(
        self, predicate: Callable[[PublisherStatus], bool]
    ) -> PublisherStatus:
        """Wait until the status satisfies ``predicate`` (bound it with a timeout) and return it."""
        while True:
            changed = self._monitor.changed
            status = self.status
            if predicate(status):
                return status
            await changed.wait()

    async def run(self) -> None:
        """Connect, drain the outbox and reconnect with backoff until cancelled.

        Broker and network failures never escape: they are in ``status`` and retried. An error
        of the outbox itself (``OutboxError``) does, for the supervisor to handle.
        """
        monitor = self._monitor
        try:
            while True:
                monitor.set_state(PublisherState.CONNECTING)
                try:
                    await self._session()
                except BrokerConnectError as exc:
                    delay = monitor.on_connect_failed(exc)
                except _ConnectionLostError as exc:
                    delay = monitor.on_connection_lost(str(exc), self._released_on_loss)
                monitor.set_state(PublisherState.RETRYING)
                await asyncio.sleep(delay)
        finally:
            monitor.on_stopped()

    async def probe(self) -> None:
        """Connect once and disconnect; raise BrokerConnectError if the broker would refuse us."""
        client = await self._new_client(f"{self._settings.effective_client_id}-probe", will=False)
        try:
            async with client:
                pass
        except aiomqtt.MqttError as exc:
            raise self._classify(exc) from exc

    async def publish_status(self, document: dict[str, object]) -> bool:
        """Set the extra hub-status fields, sent with ``online`` on every connect; send now if up.

        Returns whether the broker acknowledged it now (False while disconnected: it goes on the
        next connect).
        """
        self._status_document = dict(document)
        client = self._client
        if client is None:
            return False
        try:
            await self._announce(client)
        except _ConnectionLostError:
            return False
        return True

    # Connection lifecycle.

    async def _session(self) -> None:
        client = await self._new_client(self._settings.effective_client_id, will=True)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise self._classify(exc) from exc
        try:
            await self._serve(client)
        finally:
            # A DISCONNECT that cannot complete on a dying link changes nothing: the client is
            # thrown away, and the reason worth logging is the one already propagating.
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)

    def _classify(self, exc: aiomqtt.MqttError) -> BrokerConnectError:
        return classify_connect_error(
            exc,
            self._endpoint,
            has_client_cert=self._settings.client_cert is not None,
            username=self._settings.username,
        )

    def _load_secrets(self) -> tuple[ssl.SSLContext | None, str | None]:
        return self._settings.tls_context(), self._settings.read_password()

    async def _new_client(self, client_id: str, *, will: bool) -> BrokerClient:
        try:
            # Read at every connect, so a rotated certificate or password is picked up.
            tls_context, password = await asyncio.to_thread(self._load_secrets)
        except ConfigError as exc:
            raise BrokerConnectError(ConnectFailure.CONFIG, str(self._endpoint), str(exc)) from exc
        v5 = self._settings.protocol == "5"
        return BrokerClient(
            self._endpoint.host,
            self._endpoint.port,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=self._will() if will else None,
            keepalive=self._settings.keepalive_s,
            timeout=self._settings.connect_timeout_s,
            username=self._settings.username,
            password=password,
            tls_context=tls_context,
            # paho's own cap on QoS 1 in flight; ours is the window (+1 for a status publish).
            max_inflight_messages=self._settings.window + 1,
        )

    def _json_properties(self, packet_type: int, schema_version: str | None) -> Properties | None:
        if self._settings.protocol != "5":
            return None
        properties = Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
        properties.ContentType = CONTENT_TYPE
        if schema_version is not None:
            properties.UserProperty = [(SCHEMA_VERSION_PROPERTY, schema_version)]
        return properties

    def _will(self) -> aiomqtt.Will:
        document: dict[str, object] = {
            "state": "offline",
            "hub_id": self._settings.hub_id,
            "client_id": self._settings.effective_client_id,
        }
        return aiomqtt.Will(
            self._topics.status,
            _json(document),
            qos=1,
            retain=True,
            properties=self._json_properties(PacketTypes.WILLMESSAGE, None),
        )

    async def _serve(self, client: BrokerClient) -> None:
        self._monitor.on_connected()
        self._client = client
        try:
            await self._announce(client)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._watch(client), name="mqtt-watch")
                tasks.create_task(self._drain(client, tasks), name="outbox-drain")
        except BaseExceptionGroup as group:
            lost, other = group.split(_ConnectionLostError)
            if other is not None:
                raise (other.exceptions[0] if len(other.exceptions) == 1 else other) from None
            assert lost is not None  # noqa: S101 - split of a non-empty group returns one part
            raise lost.exceptions[0] from None
        except asyncio.CancelledError:
            await self._say_goodbye(client)
            raise
        finally:
            self._client = None
            await self._release_inflight("the connection closed before the PUBACK")

    async def _announce(self, client: BrokerClient) -> None:
        document = {
            **self._status_document,
            "state": "online",
            "hub_id": self._settings.hub_id,
            "client_id": self._settings.effective_client_id,
            "connected_at": self._clock().isoformat(),
        }
        reason = await self._await_puback(
            client.publish_qos1(
                self._topics.status,
                _json(document),
                retain=True,
                properties=self._json_properties(PacketTypes.PUBLISH, None),
            )
        )
        if reason.is_failure:
            _log.warning("status_refused", reason_code=reason.value, reason=str(reason))

    async def _say_goodbye(self, client: BrokerClient) -> None:
        # A clean DISCONNECT suppresses the will, so a stopping hub says offline itself.
        document: dict[str, object] = {
            "state": "offline",
            "hub_id": self._settings.hub_id,
            "client_id": self._settings.effective_client_id,
            "reason": "stopped",
        }
        with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
            async with asyncio.timeout(_GOODBYE_TIMEOUT_S):
                await client.publish_qos1(
                    self._topics.status,
                    _json(document),
                    retain=True,
                    properties=self._json_properties(PacketTypes.PUBLISH, None),
                )

    async def _watch(self, client: BrokerClient) -> NoReturn:
        # Nothing is subscribed; aiomqtt's message iterator is where it reports a lost connection.
        try:
            async for _ in client.messages:
                pass
        except aiomqtt.MqttError as exc:
            reason = str(exc.__cause__ or exc)
            # paho's reason codes are generic ("Unspecified error"); its log says what happened.
            if client.transport_errors.last:
                reason = f"{reason}: {client.transport_errors.last}"
            raise _ConnectionLostError(reason) from exc
        raise _ConnectionLostError("the message stream ended")

    # Publishing.

    async def _drain(self, client: BrokerClient, tasks: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        window = self._settings.window
        while True:
            while self._slots_used >= window:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            pause = self._refusals.pause_until - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            # Never more than the free part of the window: a held batch would make new readings
            # wait behind it, where the outbox's ordering would have let them through.
            batch = await self._outbox.next_batch(window - self._slots_used)
            if not batch:
                await self._outbox.wait_for_pending()
                continue
            for record in batch:
                self._inflight[record.reading_id] = False
                self._slots_used += 1
                tasks.create_task(self._publish(client, record), name="publish-reading")
            self._monitor.notify()

    async def _await_puback(self, publish: Coroutine[None, None, ReasonCode]) -> ReasonCode:
        try:
            async with asyncio.timeout(self._settings.puback_timeout_s):
                return await publish
        except TimeoutError:
            raise _ConnectionLostError(
                f"no PUBACK within {self._settings.puback_timeout_s}s"
            ) from None
        except aiomqtt.MqttError as exc:
            raise _ConnectionLostError(f"publish failed: {exc}") from exc

    async def _publish(self, client: BrokerClient, record: OutboxRecord) -> None:
        try:
            await self._publish_one(client, record)
        finally:
            self._slots_used -= 1
            self._slot_freed.set()

    async def _publish_one(self, client: BrokerClient, record: OutboxRecord) -> None:
        reading_id = record.reading_id
        try:
            topic = self._topics.reading(record.kind)
        except ValueError as exc:
            await self._refused_by(record, str(exc))
            return
        version = schema_version_of(record.payload, self._settings.schema_version)
        properties = self._properties.get(version)
        if properties is None:
            properties = self._json_properties(PacketTypes.PUBLISH, version)
            if properties is not None:
                self._properties[version] = properties
        if reading_id in self._unconfirmed:
            self._unconfirmed.discard(reading_id)
            self._monitor.republished += 1
        self._inflight[reading_id] = True
        self._monitor.published += 1
        reason = await self._await_puback(
            client.publish_qos1(topic, record.payload, properties=properties)
        )
        if reason.is_failure:
            await self._refused_by(record, f"PUBACK reason code {reason.value:#04x} {reason}")
            return
        self._inflight.pop(reading_id, None)
        # Shielded: a cancel arriving now must not leave the ack half done; the row is acked
        # or, if the ack itself fails, still stored (a duplicate later, never a loss).
        await asyncio.shield(self._ack(reading_id, record.kind))

    async def _ack(self, reading_id: str, kind: str) -> None:
        await self._outbox.ack(reading_id)
        self._monitor.on_delivered(kind, self._clock())

    async def _refused_by(self, record: OutboxRecord, reason: str) -> None:
        self._inflight.pop(record.reading_id, None)
        # Shielded like the ack: a reading half released would stay in flight until a restart.
        await asyncio.shield(
            self._outbox.release(record.reading_id, f"the broker refused it: {reason}")
        )
        now = asyncio.get_running_loop().time()
        self._monitor.on_refused(record.kind, record.reading_id, reason, now)

    async def _release_inflight(self, reason: str) -> None:
        # Cancelled publishes may or may not have reached the broker: send them again.
        pending, self._inflight = self._inflight, {}
        self._released_on_loss = len(pending)
        for reading_id, sent in pending.items():
            if sent:
                if len(self._unconfirmed) >= _MAX_UNCONFIRMED:
                    self._unconfirmed.clear()
                self._unconfirmed.add(reading_id)
        # Shielded: this runs when the publisher is being stopped too, and every reading must
        # go back to the outbox even if the stop is in a hurry.
        await asyncio.shield(self._release_all(list(pending), reason))
        self._monitor.notify()

    async def _release_all(self, reading_ids: list[str], reason: str) -> None:
        for reading_id in reading_ids:
            await self._outbox.release(reading_id, reason)
