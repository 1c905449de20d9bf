"""The uplink: drain the outbox to the broker at QoS 1 and ack each reading only after its PUBACK.

Delivery is at least once. A reading leaves the outbox only on a successful PUBACK; a PUBACK
with an MQTT 5 failure reason code, a lost connection or a PUBACK that never comes releases it
back to the outbox, to be sent again (so a backend may see it twice; its ``reading_id`` says
so). Up to ``window`` publishes are in flight at once, and batches are never larger than the
free part of the window, so the outbox's own ordering decides what goes next even while a
backlog drains. Every connect failure is reported in the status and retried with backoff.

Per reading the drain does no more than it must: one PUBLISH from a single loop (no task or
future per message, the PUBLISH properties packed once), the PUBACK handled in paho's callback,
and the acks of every PUBACK that arrived during one outbox commit deleted together in the next.
An outbox with ``ack_and_next_batch`` (``gateway.outbox.Outbox``) refills the freed slots in the
same trip to its writer thread; one with only ``ack_many``, or only the protocol's ``ack``, is
acked with those. A window slot is free again only once its reading's ack has committed, so the
window bounds the readings the outbox has in flight, not only the PUBLISHes the broker has not
answered.

Device state documents (``publish_device_state``) are retained on the device's topic; the
latest per device is sent again on every connect, after the hub status.

Remote commands (``set_command_handler``) arrive on the same connection: under MQTT 5 the
publisher subscribes to ``{prefix}hubs/{hub_id}/cmd/+`` after every connect, hands each request
to the handler and publishes its answer at QoS 1 to the request's Response Topic with its
Correlation Data. MQTT 3.1.1 has neither, so commands are unavailable there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, NoReturn, Protocol, TypeAlias, runtime_checkable

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
    from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence

    from paho.mqtt.reasoncodes import ReasonCode

    from gateway.mqtt._outbox_protocol import OutboxRecord, PublisherOutbox
    from gateway.mqtt.settings import PublisherSettings

__all__ = ["CommandHandler", "Publisher", "schema_version_of"]

CONTENT_TYPE: Final = "application/json"
SCHEMA_VERSION_PROPERTY: Final = "schema_version"
# Long enough for one retained status PUBACK on a live link, short enough not to delay a stop.
_GOODBYE_TIMEOUT_S: Final = 2.0
# Commands received and not yet answered; more are dropped (the sender's rate is out of hand).
_MAX_QUEUED_COMMANDS: Final = 100
# Ids sent but never confirmed, kept to count repeats; a bound, in case the outbox drops them.
_MAX_UNCONFIRMED: Final = 100_000

_log = structlog.get_logger("gateway.mqtt")

CommandHandler: TypeAlias = "Callable[[str, bytes, Properties | None], Awaitable[bytes | None]]"
"""Answers one remote command: (name, payload, MQTT 5 properties) -> the response, or None."""
_Command: TypeAlias = tuple[str, bytes, Properties | None]


class _ConnectionLostError(Exception):
    """The connection to the broker ended; the message is the reason for the log."""


@runtime_checkable
class _AcksMany(Protocol):
    """An outbox that deletes many delivered readings in one call (``Outbox.ack_many``)."""

    async def ack_many(self, reading_ids: Iterable[str]) -> object:
        """Delete delivered readings in one transaction."""
        ...


@runtime_checkable
class _AcksAndHandsOut(Protocol):
    """An outbox that acks and hands out in one call (``Outbox.ack_and_next_batch``)."""

    async def ack_and_next_batch(
        self, reading_ids: Iterable[str], limit: int
    ) -> tuple[int, Sequence[OutboxRecord]]:
        """Ack delivered readings, then hand out up to ``limit`` (0: none)."""
        ...


class _PackedProperties(Properties):
    """PUBLISH properties packed once: paho would pack them again for every message."""

    def __init__(self, packet_type: int, content_type: str, schema_version: str | None) -> None:
        super().__init__(packet_type)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
        self.ContentType = content_type
        if schema_version is not None:
            self.UserProperty = [(SCHEMA_VERSION_PROPERTY, schema_version)]
        # paho's __setattr__ accepts only MQTT property names; the cache is no property.
        object.__setattr__(self, "_packed", super().pack())  # type: ignore[no-untyped-call]  # paho

    def pack(self) -> bytes:
        """Return the properties packed at construction, as paho's own ``pack`` would."""
        packed: bytes = object.__getattribute__(self, "_packed")
        return packed


class _Flight:
    """One reading's PUBLISH awaiting its PUBACK: the record and when it went (loop time)."""

    __slots__ = ("record", "sent_at")

    def __init__(self, record: OutboxRecord, sent_at: float) -> None:
        self.record = record
        self.sent_at = sent_at


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
        self._ack_many = outbox.ack_many if isinstance(outbox, _AcksMany) else None
        self._ack_and_next = (
            outbox.ack_and_next_batch if isinstance(outbox, _AcksAndHandsOut) else None
        )
        self._topics = settings.topics
        self._endpoint = settings.endpoint
        self._clock = clock
        # Jitter only spreads reconnects; it needs no cryptographic randomness.
        self._rng = rng or random.Random()  # noqa: S311
        self._status_document: dict[str, object] = {}
        # Device id -> its latest state document's JSON, sent again on every connect.
        self._device_states: dict[str, bytes] = {}
        self._client: BrokerClient | None = None
        self._properties: dict[str, Properties | None] = {}
        self._reading_topics: dict[str, str] = {}
        # Reading id -> whether its PUBLISH went out, for everything handed out and not settled.
        self._inflight: dict[str, bool] = {}
        # Message id -> the reading it carries, in the order sent (the oldest first).
        self._flights: dict[int, _Flight] = {}
        self._flight_sent = asyncio.Event()
        # Readings whose successful PUBACK came and whose ack is not yet submitted.
        self._to_ack: list[OutboxRecord] = []
        # Set by a PUBACK or a freed slot: the drain has something to do.
        self._wake = asyncio.Event()
        # The ack (and hand-out) under way; it finishes even when the session is cancelled.
        self._settling: asyncio.Task[list[OutboxRecord]] | None = None
        # Window slots taken: a slot is free once the reading is acked or released, so the
        # outbox never has more than the window in flight either.
        self._slots_used = 0
        self._tasks: asyncio.TaskGroup | None = None
        self._unconfirmed: set[str] = set()
        self._released_on_loss = 0
        self._refusals = RefusalRounds(
            base_s=settings.backoff_base_s,
            cap_s=settings.backoff_cap_s,
            alarm_rounds=settings.refusal_alarm_rounds,
            rng=self._rng,
        )
        self._monitor = Monitor(settings, self._refusals, self._rng)
        self._command_handler: CommandHandler | None = None
        self._commands_unavailable_logged = False
        # Set while the broker has acknowledged the cmd subscription of the current connection.
        self._commands_ready = asyncio.Event()
        self._command_queue: asyncio.Queue[_Command] | None = None

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

    async def publish_device_state(self, device_id: str, document: dict[str, object]) -> bool:
        """Publish a device's state, retained, on ``{prefix}hubs/{hub_id}/devices/{device_id}``.

        The latest document per device is kept and sent again after every (re)connect. Returns
        whether the broker acknowledged it now: False while disconnected (it goes on the next
        connect) or when the PUBACK carries a failure reason code. ValueError for a device id
        that is not a single topic level.
        """
        topic = self._topics.device(device_id)
        payload = _json(document)
        self._device_states[device_id] = payload
        client = self._client
        if client is None:
            return False
        try:
            return await self._send_device_state(client, device_id, topic, payload)
        except _ConnectionLostError:
            return False

    def set_command_handler(self, handler: CommandHandler | None) -> None:
        """Receive remote commands on ``{prefix}hubs/{hub_id}/cmd/+`` (MQTT 5, from next connect).

        The handler gets the command name (the last topic level), the payload and the request's
        properties; the bytes it returns go at QoS 1 to the request's Response Topic with its
        Correlation Data. None: no answer. An exception in the handler is logged, never fatal.
        """
        self._command_handler = handler

    async def wait_commands_ready(self) -> None:
        """Return once the broker has granted the command subscription (bound with a timeout)."""
        await self._commands_ready.wait()

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
        return _PackedProperties(packet_type, CONTENT_TYPE, schema_version)

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
        client.on_puback = self._on_puback
        try:
            await self._announce(client)
            await self._announce_devices(client)
            await self._subscribe_commands(client)
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(self._watch(client), name="mqtt-watch")
                tasks.create_task(self._watch_pubacks(), name="mqtt-puback-timeout")
                tasks.create_task(self._drain(client), name="outbox-drain")
                handler = self._command_handler
                if handler is not None and self._commands_ready.is_set():
                    queue: asyncio.Queue[_Command] = asyncio.Queue(_MAX_QUEUED_COMMANDS)
                    self._command_queue = queue
                    tasks.create_task(
                        self._serve_commands(client, queue, handler), name="mqtt-commands"
                    )
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
            self._commands_ready.clear()
            self._command_queue = None
            self._tasks = None
            self._client = None
            client.on_puback = None
            self._flights.clear()
            settling, self._settling = self._settling, None
            if settling is not None:
                # Its acks commit and its hand-out joins the in-flight book, released below.
                with contextlib.suppress(Exception):
                    await asyncio.shield(settling)
            # PUBACKed before the end: delivered, so acked rather than sent again.
            delivered, self._to_ack = self._to_ack, []
            if delivered:
                await asyncio.shield(self._settle(delivered, 0))
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

    async def _announce_devices(self, client: BrokerClient) -> None:
        # The latest of each, read at its turn: a newer document set meanwhile goes instead.
        for device_id in list(self._device_states):
            payload = self._device_states[device_id]
            await self._send_device_state(
                client, device_id, self._topics.device(device_id), payload
            )

    async def _send_device_state(
        self, client: BrokerClient, device_id: str, topic: str, payload: bytes
    ) -> bool:
        reason = await self._await_puback(
            client.publish_qos1(
                topic,
                payload,
                retain=True,
                properties=self._json_properties(PacketTypes.PUBLISH, None),
            )
        )
        if reason.is_failure:
            _log.warning(
                "device_state_refused",
                device_id=device_id,
                reason_code=reason.value,
                reason=str(reason),
            )
            return False
        return True

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
        # Commands come in here; it is also where aiomqtt reports a lost connection.
        try:
            async for message in client.messages:
                self._dispatch_command(message)
        except aiomqtt.MqttError as exc:
            reason = str(exc.__cause__ or exc)
            # paho's reason codes are generic ("Unspecified error"); its log says what happened.
            if client.transport_errors.last:
                reason = f"{reason}: {client.transport_errors.last}"
            raise _ConnectionLostError(reason) from exc
        raise _ConnectionLostError("the message stream ended")

    # Remote commands.

    @property
    def _command_prefix(self) -> str:
        return f"{self._topics.hub}/cmd/"

    async def _subscribe_commands(self, client: BrokerClient) -> None:
        if self._command_handler is None:
            return
        if self._settings.protocol != "5":
            if not self._commands_unavailable_logged:
                self._commands_unavailable_logged = True
                _log.warning(
                    "commands_unavailable",
                    reason="remote commands need MQTT 5 (response topic, correlation data)",
                    advice='set protocol = "5" in [mqtt] to receive remote commands',
                )
            return
        topic = f"{self._command_prefix}+"
        try:
            async with asyncio.timeout(self._settings.puback_timeout_s):
                granted = await client.subscribe(topic, qos=1)
        except TimeoutError:
            raise _ConnectionLostError(
                f"no SUBACK within {self._settings.puback_timeout_s}s"
            ) from None
        except aiomqtt.MqttError as exc:
            raise _ConnectionLostError(f"subscribe failed: {exc}") from exc
        refused = [code for code in granted if getattr(code, "is_failure", False)]
        if refused:
            _log.warning(
                "commands_subscribe_refused",
                topic=topic,
                reason=str(refused[0]),
                advice="the broker ACL must let the hub subscribe to hubs/{hub_id}/cmd/#",
            )
            return
        self._commands_ready.set()

    def _dispatch_command(self, message: aiomqtt.Message) -> None:
        queue = self._command_queue
        topic = message.topic.value
        # Only our own cmd topic, one level deep: a wider subscription must not make us act on
        # another hub's commands.
        if queue is None or not topic.startswith(self._command_prefix):
            return
        name = topic[len(self._command_prefix) :]
        if not name or "/" in name:
            return
        try:
            queue.put_nowait((name, bytes(message.payload), message.properties))
        except asyncio.QueueFull:
            _log.warning(
                "command_dropped",
                command=name[:64],
                reason=f"{_MAX_QUEUED_COMMANDS} commands are already waiting",
            )

    async def _serve_commands(
        self, client: BrokerClient, queue: asyncio.Queue[_Command], handler: CommandHandler
    ) -> NoReturn:
        # One at a time, in the order they came: answers and audit entries keep that order.
        while True:
            name, payload, properties = await queue.get()
            await self._answer_command(client, handler, name, payload, properties)

    async def _answer_command(
        self,
        client: BrokerClient,
        handler: CommandHandler,
        name: str,
        payload: bytes,
        properties: Properties | None,
    ) -> None:
        try:
            response = await handler(name, payload, properties)
        except Exception as exc:  # noqa: BLE001 - a failing command must not cut the uplink
            _log.error("command_handler_failed", command=name[:64], error=type(exc).__name__)
            return
        response_topic = getattr(properties, "ResponseTopic", None)
        if response is None or not response_topic:
            return
        answer = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho
        answer.ContentType = CONTENT_TYPE
        correlation = getattr(properties, "CorrelationData", None)
        if correlation is not None:
            answer.CorrelationData = correlation
        reason = await self._await_puback(
            client.publish_qos1(response_topic, response, properties=answer)
        )
        if reason.is_failure:
            _log.warning(
                "command_response_refused",
                command=name[:64],
                reason_code=reason.value,
                reason=str(reason),
            )

    async def _watch_pubacks(self) -> NoReturn:
        # One timer for every reading in flight: the oldest PUBLISH is the first to be late.
        loop = asyncio.get_running_loop()
        timeout = self._settings.puback_timeout_s
        while True:
            if not self._flights:
                self._flight_sent.clear()
                await self._flight_sent.wait()
                continue
            oldest = next(iter(self._flights.values()))
            late_in = oldest.sent_at + timeout - loop.time()
            if late_in <= 0:
                raise _ConnectionLostError(f"no PUBACK within {timeout}s")
            await asyncio.sleep(late_in)

    # Publishing.

    async def _drain(self, client: BrokerClient) -> None:
        loop = asyncio.get_running_loop()
        window = self._settings.window
        while True:
            records, self._to_ack = self._to_ack, []
            paused_for = self._refusals.pause_until - loop.time()
            # The acked readings' slots are free once the ack commits, before the hand-out, so
            # the outbox never has more than the window in flight. Never more than the free part
            # of the window: a held batch would make new readings wait behind it, where the
            # outbox's ordering would have let them through.
            free = 0 if paused_for > 0 else window - self._slots_used + len(records)
            batch: Sequence[OutboxRecord]
            if records:
                batch = await self._settle_shielded(records, free)
                if self._ack_and_next is None and free > 0:
                    batch = await self._hand_out(free)
            elif free > 0:
                batch = await self._hand_out(free)
            else:
                batch = []
            if batch:
                now = loop.time()
                for record in batch:
                    self._send(client, record, now)
                self._flight_sent.set()
                self._monitor.notify()
            elif not records:
                await self._idle(wait_for_pending=free > 0, paused_for=paused_for)

    async def _hand_out(self, limit: int) -> Sequence[OutboxRecord]:
        batch = await self._outbox.next_batch(limit)
        self._take_slots(batch)
        return batch

    def _take_slots(self, batch: Sequence[OutboxRecord]) -> None:
        self._slots_used += len(batch)
        for record in batch:
            self._inflight[record.reading_id] = False

    async def _idle(self, *, wait_for_pending: bool, paused_for: float) -> None:
        # Until a PUBACK or a freed slot (the wake), a new reading (when a slot is free) or the
        # end of a refusal pause.
        wake = self._wake
        wake.clear()
        if self._to_ack:
            return
        timeout = paused_for if paused_for > 0 else None
        if not wait_for_pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.wait()
            return
        waits = [
            asyncio.ensure_future(wake.wait()),
            asyncio.ensure_future(self._outbox.wait_for_pending()),
        ]
        try:
            done, _ = await asyncio.wait(
                waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for waited in done:
                waited.result()  # an outbox that closed raises here
        finally:
            for waited in waits:
                waited.cancel()

    async def _settle_shielded(self, records: list[OutboxRecord], limit: int) -> list[OutboxRecord]:
        # Shielded: a cancel arriving now must not leave the ack half done; the rows are acked
        # or, if the ack itself fails, still stored (a duplicate later, never a loss). The
        # session's end waits for it (outside the task group, which would cancel it).
        settling = asyncio.get_running_loop().create_task(
            self._settle(records, limit), name="outbox-ack"
        )
        self._settling = settling
        batch = await asyncio.shield(settling)
        # Only once it is done: a cancelled wait leaves it for the session's end to wait on.
        self._settling = None
        return batch

    async def _settle(self, records: list[OutboxRecord], limit: int) -> list[OutboxRecord]:
        """Ack PUBACKed readings and free their slots; hand out up to ``limit`` if one trip can."""
        ids = [record.reading_id for record in records]
        batch: list[OutboxRecord] = []
        try:
            if self._ack_and_next is not None:
                _, handed = await self._ack_and_next(ids, limit)
                batch = list(handed)
            elif self._ack_many is not None:
                await self._ack_many(ids)
            else:
                for reading_id in ids:
                    await self._outbox.ack(reading_id)
            self._monitor.on_delivered_many([record.kind for record in records], self._clock())
        finally:
            self._free_slots(len(records))
        self._take_slots(batch)
        return batch

    def _send(self, client: BrokerClient, record: OutboxRecord, now: float) -> None:
        reading_id = record.reading_id
        kind = record.kind
        topic = self._reading_topics.get(kind)
        if topic is None:
            try:
                topic = self._topics.reading(kind)
            except ValueError as exc:
                self._refuse_later(record, str(exc))
                return
            self._reading_topics[kind] = topic
        version = schema_version_of(record.payload, self._settings.schema_version)
        try:
            properties = self._properties[version]
        except KeyError:
            properties = self._json_properties(PacketTypes.PUBLISH, version)
            self._properties[version] = properties
        if reading_id in self._unconfirmed:
            self._unconfirmed.discard(reading_id)
            self._monitor.republished += 1
        self._inflight[reading_id] = True
        self._monitor.published += 1
        try:
            mid = client.publish_qos1_nowait(topic, record.payload, properties=properties)
        except aiomqtt.MqttError as exc:
            raise _ConnectionLostError(f"publish failed: {exc}") from exc
        self._flights[mid] = _Flight(record, now)

    def _on_puback(self, mid: int, reason: ReasonCode) -> None:
        flight = self._flights.pop(mid, None)
        if flight is None:
            return  # a PUBACK for a session already given up
        record = flight.record
        if reason.is_failure:
            self._refuse_later(record, f"PUBACK reason code {reason.value:#04x} {reason}")
            return
        # Out of the in-flight book now: a connection lost from here on acks it, never resends.
        self._inflight.pop(record.reading_id, None)
        self._to_ack.append(record)
        self._wake.set()

    def _free_slots(self, count: int) -> None:
        self._slots_used -= count
        self._wake.set()

    def _refuse_later(self, record: OutboxRecord, reason: str) -> None:
        tasks = self._tasks
        if tasks is None:
            # The session is over: its end releases whatever is still in flight.
            return
        tasks.create_task(self._refused_by(record, reason), name="publish-refused")

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

    async def _refused_by(self, record: OutboxRecord, reason: str) -> None:
        if self._inflight.pop(record.reading_id, None) is None:
            return  # released already, with the rest of a session that ended (slot and all)
        try:
            # Shielded like the ack: a reading half released would stay in flight until a
            # restart.
            await asyncio.shield(
                self._outbox.release(record.reading_id, f"the broker refused it: {reason}")
            )
            now = asyncio.get_running_loop().time()
            self._monitor.on_refused(record.kind, record.reading_id, reason, now)
        finally:
            self._free_slots(1)

    async def _release_inflight(self, reason: str) -> None:
        # Cancelled publishes may or may not have reached the broker: send them again.
        pending, self._inflight = self._inflight, {}
        self._released_on_loss = len(pending)
        self._slots_used -= len(pending)
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
