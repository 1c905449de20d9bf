"""The MQTT publisher against a real mosquitto: delivery, outages, TLS, credentials, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import json
import random
import signal
import ssl
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Self

import aiomqtt
import paho.mqtt.client as paho
import pytest
import pytest_asyncio
from pydantic import ValidationError
from structlog.testing import capture_logs

from gateway.errors import PublishError
from gateway.mqtt import (
    BrokerConnectError,
    ConnectFailure,
    Publisher,
    PublisherAlarm,
    PublisherSettings,
    PublisherState,
    backoff_delay,
)
from gateway.mqtt._client import BrokerClient
from gateway.mqtt._policy import RefusalRounds
from gateway.mqtt.publisher import schema_version_of
from gateway.outbox import Outbox, OutboxEntry, OutboxItem

CHILD = Path(__file__).with_name("publisher_child.py")
PREFIX = "vb-test/"
HUB = "hub-1"
READINGS = f"{PREFIX}hubs/{HUB}/readings/#"
STATUS = f"{PREFIX}hubs/{HUB}/status"
PATIENT = "patient-7f3a9c"
BOUND_S = 30
PASSWORD_ENV = "VB_TEST_MQTT_PASSWORD"  # noqa: S105 - the variable's name, not a password


def payload(reading_id: str, kind: str = "blood_pressure") -> bytes:
    """A reading's JSON as the outbox stores it; the patient reference must never be logged."""
    document = {
        "schema_version": "1.0",
        "reading_id": reading_id,
        "hub_id": HUB,
        "kind": kind,
        "patient": PATIENT,
        "components": [{"code": "MDC_PRESS_BLD_NONINV_SYS", "value": "128", "unit": "mm[Hg]"}],
        "measured_at": "2025-03-01T07:30:00Z",
    }
    return json.dumps(document, separators=(",", ":")).encode()


def entries(count: int, kind: str = "blood_pressure", device: str = "cuff-1") -> list[OutboxEntry]:
    """Readings with distinct ids and payloads, one device, in measurement order."""
    start = dt.datetime(2025, 3, 1, 7, 30, tzinfo=dt.UTC)
    out = []
    for n in range(count):
        reading_id = f"r-{device}-{n:05d}-{uuid.uuid4().hex[:8]}"
        out.append(
            OutboxEntry(
                reading_id=reading_id,
                device_id=device,
                kind=kind,
                measured_at=start + dt.timedelta(seconds=n),
                payload=payload(reading_id, kind),
            )
        )
    return out


class RecordingOutbox:
    """The real SQLite outbox, with what the tests check recorded on the way through.

    It counts acks per id, releases, the batch sizes asked for and the most in flight; `gate`
    holds hand-outs back while a test's subscriber is not listening (after a broker restart).
    """

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.acks: Counter[str] = Counter()
        self.acked_order: list[str] = []
        self.releases: list[tuple[str, str | None]] = []
        self.limits: list[int] = []
        self.max_in_flight = 0
        self.unexpected: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def put(self, items: list[OutboxEntry]) -> None:
        assert await self.outbox.put_many(items) == len(items)

    @property
    def depth(self) -> int:
        return self.outbox.status().depth

    async def next_batch(self, limit: int) -> list[OutboxItem]:
        await self.gate.wait()
        self.limits.append(limit)
        batch = await self.outbox.next_batch(limit)
        self.max_in_flight = max(self.max_in_flight, self.outbox.status().in_flight)
        return batch

    async def ack(self, reading_id: str) -> bool:
        stored = await self.outbox.ack(reading_id)
        if not stored:
            self.unexpected.append(f"ack {reading_id}")
        self.acks[reading_id] += 1
        self.acked_order.append(reading_id)
        self._notify()
        return stored

    async def release(self, reading_id: str, error: str | None) -> bool:
        released = await self.outbox.release(reading_id, error)
        if not released:
            self.unexpected.append(f"release {reading_id}")
        self.releases.append((reading_id, error))
        self._notify()
        return released

    async def wait_for_pending(self) -> None:
        await self.outbox.wait_for_pending()

    async def wait_until_empty(self) -> None:
        while self.depth:
            await self._changed.wait()


@pytest_asyncio.fixture
async def outbox(tmp_path):
    async with await Outbox.open(tmp_path / "outbox.sqlite3") as real:
        yield RecordingOutbox(real)


class Subscriber:
    """An aiomqtt subscriber that records what it receives; ``barrier()`` flushes the pipe."""

    def __init__(
        self,
        broker,
        *topics: str,
        tls_context: ssl.SSLContext | None = None,
        protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V5,
        qos: int = 1,
    ) -> None:
        self._qos = qos
        self._barrier_topic = f"test/barrier/{uuid.uuid4().hex}"
        self._topics = [*topics, self._barrier_topic]
        self.client = aiomqtt.Client(
            broker.host, broker.port, tls_context=tls_context, protocol=protocol, timeout=10
        )
        self.messages: list[aiomqtt.Message] = []
        self._barriers: set[bytes] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.disconnected = False

    async def __aenter__(self) -> Self:
        await self.client.__aenter__()
        await self.client.subscribe([(topic, self._qos) for topic in self._topics])
        self._task = asyncio.create_task(self._read(), name="test-subscriber")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _read(self) -> None:
        try:
            async for message in self.client.messages:
                if message.topic.value == self._barrier_topic:
                    assert isinstance(message.payload, bytes)
                    self._barriers.add(message.payload)
                else:
                    self.messages.append(message)
                self._notify()
        except aiomqtt.MqttError:
            self.disconnected = True
            self._notify()

    async def wait_for(self, predicate) -> None:
        while not predicate(self.messages):
            await self._changed.wait()

    async def barrier(self) -> None:
        """Return once everything the broker routed to us before this call has arrived."""
        token = uuid.uuid4().bytes
        await self.client.publish(self._barrier_topic, token, qos=1)
        while token not in self._barriers:
            await self._changed.wait()

    def readings(self) -> list[aiomqtt.Message]:
        return [m for m in self.messages if "/readings/" in m.topic.value]

    def reading_ids(self) -> Counter[str]:
        return Counter(body(m)["reading_id"] for m in self.readings())

    def statuses(self) -> list[dict[str, object]]:
        return [body(m) for m in self.messages if m.topic.value == STATUS]


def settings_for(broker, **overrides: object) -> PublisherSettings:
    """Settings for a test broker: fast backoff so outages last milliseconds, not minutes."""
    values: dict[str, object] = {
        "broker_url": broker.url,
        "hub_id": HUB,
        "topic_prefix": PREFIX,
        "window": 8,
        "backoff_base_s": 0.02,
        "backoff_cap_s": 0.3,
        "connect_timeout_s": 5.0,
        "puback_timeout_s": 10.0,
    }
    values.update(overrides)
    return PublisherSettings.model_validate(values)


@contextlib.asynccontextmanager
async def running(publisher: Publisher):
    """Run the publisher in a task group for the body; cancel it (a clean stop) after."""
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(publisher.run(), name="publisher")
        try:
            yield publisher
        finally:
            task.cancel()


def client_tls(pki, *, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if with_cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def body(message: aiomqtt.Message) -> dict[str, object]:
    assert isinstance(message.payload, bytes)
    document = json.loads(message.payload)
    assert isinstance(document, dict)
    return document


def user_properties(message: aiomqtt.Message) -> list[tuple[str, str]]:
    return list(getattr(message.properties, "UserProperty", []))


@pytest.mark.asyncio
async def test_a_reading_arrives_byte_for_byte_with_content_type_and_schema_version(
    mosquitto, outbox
):
    broker = mosquitto()
    (record,) = entries(1)
    await outbox.put([record])
    publisher = Publisher(settings_for(broker), outbox)
    async with asyncio.timeout(BOUND_S), Subscriber(broker, READINGS, STATUS) as sub:
        with capture_logs() as logs:
            async with running(publisher):
                await sub.wait_for(lambda ms: any("/readings/" in m.topic.value for m in ms))
                await outbox.wait_until_empty()
                # The daemon's hub status rides along with "online", now and on each connect.
                assert await publisher.publish_status({"devices": 2})
                await sub.wait_for(lambda _: sub.statuses()[-1].get("devices") == 2)
        await sub.wait_for(lambda _: sub.statuses() and sub.statuses()[-1]["state"] == "offline")

    (message,) = sub.readings()
    assert message.topic.value == f"{PREFIX}hubs/{HUB}/readings/blood_pressure"
    assert message.payload == record.payload
    assert message.qos == 1
    assert message.properties is not None
    assert message.properties.ContentType == "application/json"
    assert user_properties(message) == [("schema_version", "1.0")]
    assert outbox.acks == Counter({record.reading_id: 1})
    assert outbox.unexpected == []
    status = publisher.status
    assert (status.state, status.published, status.acked, status.refused) == (
        PublisherState.STOPPED,
        1,
        1,
        0,
    )
    assert status.last_publish_at is not None
    online, updated, offline = sub.statuses()
    assert online["state"] == "online"
    assert online["hub_id"] == HUB
    assert (updated["state"], updated["devices"]) == ("online", 2)
    assert offline == {
        "state": "offline",
        "hub_id": HUB,
        "client_id": f"vitalbridge-{HUB}",
        "reason": "stopped",
    }
    events = {entry["event"] for entry in logs}
    assert {"mqtt_connected", "mqtt_stopped"} <= events
    # Ids and kinds at most: never the payload or the patient reference.
    for entry in logs:
        text = repr(entry)
        assert PATIENT not in text
        assert record.payload.decode() not in text


@pytest.mark.asyncio
async def test_status_is_retained_and_the_last_will_says_offline_when_the_publisher_is_killed(
    mosquitto,
):
    broker = mosquitto()
    async with asyncio.timeout(BOUND_S), Subscriber(broker, STATUS) as sub:
        child = await start_child(broker.url, HUB, PREFIX)
        try:
            await sub.wait_for(lambda _: any(s["state"] == "online" for s in sub.statuses()))
            child.send_signal(signal.SIGKILL)
            await child.wait()
            await sub.wait_for(lambda _: sub.statuses()[-1]["state"] == "offline")
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        assert child.returncode == -signal.SIGKILL
        assert sub.statuses()[-1] == {
            "state": "offline",
            "hub_id": HUB,
            "client_id": f"vitalbridge-{HUB}",
        }
        will = sub.messages[-1]
        assert will.qos == 1
        assert will.properties is not None
        assert will.properties.ContentType == "application/json"
        # A subscriber that comes later finds the will as the retained status.
        async with Subscriber(broker, STATUS) as late:
            await late.wait_for(lambda ms: len(ms) == 1)
            (retained,) = late.messages
            assert retained.retain
            assert body(retained)["state"] == "offline"


async def start_child(*args: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), *(str(arg) for arg in args)
    )


@pytest.mark.asyncio
async def test_the_publishing_process_killed_mid_stream_and_restarted_loses_no_committed_reading(
    mosquitto, tmp_path
):
    broker = mosquitto()
    path = tmp_path / "outbox.sqlite3"
    stream = entries(400)
    async with await Outbox.open(path) as stored:
        assert await stored.put_many(stream) == len(stream)
    async with asyncio.timeout(BOUND_S), Subscriber(broker, READINGS) as sub:
        # Window 1: at most one reading is between PUBLISH and a committed ack at any moment.
        first = await start_child(broker.url, HUB, PREFIX, path, 1)
        try:
            await sub.wait_for(lambda ms: len(ms) >= 50)
        finally:
            first.kill()
            await first.wait()
        async with await Outbox.open(path) as stored:
            left = stored.status().depth
        assert 0 < left < len(stream), "killed mid-stream: some acked, the rest still stored"
        second = await start_child(broker.url, HUB, PREFIX, path, 1)
        try:
            assert await second.wait() == 0
        finally:
            if second.returncode is None:
                second.kill()
                await second.wait()
        await sub.barrier()
    received = sub.reading_ids()
    assert set(received) == {entry.reading_id for entry in stream}, "a reading was lost"
    # The one in flight and the one whose ack was being committed may go twice; no more.
    assert sum(received.values()) - len(stream) <= 2
    async with await Outbox.open(path) as stored:
        assert stored.status().depth == 0


@pytest.mark.asyncio
async def test_a_backlog_drains_without_starving_a_new_reading(mosquitto, outbox):
    broker = mosquitto()
    await outbox.put(entries(300, kind="heart_rate", device="strap-1"))
    publisher = Publisher(settings_for(broker, window=4), outbox)
    async with asyncio.timeout(BOUND_S), running(publisher):
        await publisher.wait_for_status(lambda s: s.acked >= 20)
        (fresh,) = entries(1, device="cuff-1")
        await outbox.put([fresh])
        acked_when_stored = len(outbox.acked_order)
        await outbox.wait_until_empty()
    # Batches never exceed the free part of the window, so the outbox's round-robin puts the
    # new reading in the next one, not behind the 280-odd readings still waiting.
    assert outbox.acked_order.index(fresh.reading_id) <= acked_when_stored + 2 * 4
    assert max(outbox.limits) <= 4


@pytest.mark.asyncio
async def test_broker_down_at_start_then_started_delivers_everything_acked_once(mosquitto, outbox):
    broker = mosquitto(start=False)
    backlog = entries(60)
    await outbox.put(backlog)
    # Hand-outs wait for the subscriber, which cannot listen before the broker runs.
    outbox.gate.clear()
    publisher = Publisher(settings_for(broker), outbox)
    async with asyncio.timeout(BOUND_S), running(publisher):
        status = await publisher.wait_for_status(lambda s: s.connect_failures >= 2)
        assert status.last_failure == ConnectFailure.UNREACHABLE
        assert status.state in {PublisherState.CONNECTING, PublisherState.RETRYING}
        assert outbox.acks == Counter()
        broker.start()
        async with Subscriber(broker, READINGS) as sub:
            outbox.gate.set()
            await outbox.wait_until_empty()
            await sub.barrier()
            received = sub.reading_ids()

    expected = {record.reading_id for record in backlog}
    assert outbox.acks == Counter(dict.fromkeys(expected, 1))
    assert received == Counter(dict.fromkeys(expected, 1))
    assert outbox.unexpected == []
    assert publisher.status.republished == 0
    assert publisher.status.last_error is None
    assert all(limit <= 8 for limit in outbox.limits)


@pytest.mark.asyncio
async def test_broker_killed_and_restarted_mid_stream_loses_nothing(mosquitto, outbox):
    broker = mosquitto()
    stream = entries(300)
    await outbox.put(stream)
    publisher = Publisher(settings_for(broker), outbox)
    received: Counter[str] = Counter()
    async with asyncio.timeout(BOUND_S), running(publisher):
        # A QoS 1 subscriber PUBACKs each message; writing one to the dead broker fails and paho
        # then drops what it had already received: an artefact of the measuring instrument, not
        # a loss. At QoS 0 it only reads, and gets everything the broker routed before dying.
        async with Subscriber(broker, READINGS, qos=0) as sub:
            await publisher.wait_for_status(lambda s: s.acked >= 50)
            # Mid-stream: publishes are in flight when the broker dies. New hand-outs wait for
            # the subscriber to be back, or it would miss readings a live subscriber would see.
            outbox.gate.clear()
            broker.kill()
            await publisher.wait_for_status(lambda s: s.connections_lost >= 1)
            await sub.wait_for(lambda _: sub.disconnected)
            received += sub.reading_ids()
        broker.start()
        async with Subscriber(broker, READINGS, qos=0) as sub:
            outbox.gate.set()
            await publisher.wait_for_status(lambda s: s.acked == len(stream))
            await sub.barrier()
            received += sub.reading_ids()

    expected = {record.reading_id for record in stream}
    assert set(received) == expected, "a reading was lost"
    assert outbox.acks == Counter(dict.fromkeys(expected, 1))
    assert outbox.unexpected == []
    duplicates = sum(received.values()) - len(expected)
    status = publisher.status
    # Only readings whose PUBACK never came are sent twice, and the publisher counts them.
    assert 0 <= duplicates <= status.republished <= 8
    assert status.connections_lost == 1
    assert status.published == len(expected) + status.republished
    assert status.acked == len(expected)


@pytest.mark.asyncio
async def test_a_puback_that_never_comes_means_a_dead_link_reconnect_and_send_again(
    mosquitto, outbox
):
    broker = mosquitto()
    settings = settings_for(broker, puback_timeout_s=0.5, connect_timeout_s=1.0)
    publisher = Publisher(settings, outbox)
    first, second = entries(2)
    async with asyncio.timeout(BOUND_S), running(publisher):
        # One delivered reading shows the session is up (status announced, outbox draining).
        await outbox.put([first])
        await outbox.wait_until_empty()
        # The broker's process freezes with its sockets open: no RST, no FIN, no PUBACK.
        broker.pause()
        await outbox.put([second])
        status = await publisher.wait_for_status(lambda s: s.connections_lost == 1)
        assert status.last_error == "connection lost: no PUBACK within 0.5s"
        assert outbox.acks == Counter({first.reading_id: 1})
        broker.resume()
        await outbox.wait_until_empty()
    assert outbox.acks == Counter({first.reading_id: 1, second.reading_id: 1})
    assert [reading_id for reading_id, _ in outbox.releases] == [second.reading_id]
    assert publisher.status.republished == 1


@pytest.mark.asyncio
async def test_the_window_bounds_what_is_in_flight_and_what_is_asked_for(mosquitto, outbox):
    broker = mosquitto()
    await outbox.put(entries(100))
    publisher = Publisher(settings_for(broker, window=5), outbox)
    async with asyncio.timeout(BOUND_S), running(publisher):
        await outbox.wait_until_empty()
    # Five publishes went out before the first PUBACK came back, and never more than five.
    assert outbox.max_in_flight == 5
    assert max(outbox.limits) == 5
    assert sum(outbox.acks.values()) == 100


@pytest.mark.asyncio
async def test_tls_with_a_verified_broker_certificate_delivers(mosquitto, pki, outbox):
    broker = mosquitto(tls=pki.broker_tls())
    (record,) = entries(1, kind="body_weight")
    await outbox.put([record])
    publisher = Publisher(settings_for(broker, ca_file=pki.ca_file), outbox)
    async with asyncio.timeout(BOUND_S):
        await publisher.probe()
        async with Subscriber(broker, READINGS, tls_context=client_tls(pki)) as sub:
            async with running(publisher):
                await outbox.wait_until_empty()
            await sub.barrier()
    assert broker.url.startswith("mqtts://")
    assert [m.payload for m in sub.readings()] == [record.payload]
    assert outbox.acks == Counter({record.reading_id: 1})


@pytest.mark.asyncio
async def test_a_broker_certificate_from_another_ca_is_a_clear_error_and_nothing_is_published(
    mosquitto, pki, outbox
):
    broker = mosquitto(tls=pki.broker_tls())
    await outbox.put(entries(3))
    publisher = Publisher(settings_for(broker, ca_file=pki.other_ca_file), outbox)
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(PublishError, match="certificate is not trusted: check ca_file"):
            await publisher.probe()
        async with Subscriber(broker, "#", tls_context=client_tls(pki)) as sub:
            async with running(publisher):
                status = await publisher.wait_for_status(lambda s: s.connect_failures >= 2)
            await sub.barrier()
    assert status.last_failure == ConnectFailure.TLS_UNTRUSTED
    assert status.last_error is not None
    assert "certificate is not trusted: check ca_file" in status.last_error
    assert PublisherAlarm.BROKER_AUTH_FAILED in status.alarms
    assert status.state in {PublisherState.CONNECTING, PublisherState.RETRYING}
    assert sub.messages == []
    assert (outbox.limits, outbox.acks, status.published) == ([], Counter(), 0)


@pytest.mark.asyncio
async def test_mutual_tls_works_with_the_client_certificate_and_fails_clearly_without(
    mosquitto, pki, outbox
):
    broker = mosquitto(tls=pki.broker_tls(require_certificate=True))
    (record,) = entries(1)
    await outbox.put([record])
    with_cert = Publisher(
        settings_for(
            broker, ca_file=pki.ca_file, client_cert=pki.client_cert, client_key=pki.client_key
        ),
        outbox,
    )
    without = Publisher(settings_for(broker, ca_file=pki.ca_file), outbox)
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(BrokerConnectError, match="requires a client certificate") as caught:
            await without.probe()
        assert caught.value.failure == ConnectFailure.CLIENT_CERTIFICATE
        sub_tls = client_tls(pki, with_cert=True)
        async with Subscriber(broker, READINGS, tls_context=sub_tls) as sub:
            async with running(with_cert):
                await outbox.wait_until_empty()
            await sub.barrier()
    assert [m.payload for m in sub.readings()] == [record.payload]


@pytest.mark.asyncio
async def test_a_wrong_password_is_a_clear_error_retried_and_the_password_never_logged(
    mosquitto, tmp_path, monkeypatch, outbox
):
    broker = mosquitto(users={"hub-1": "correct horse", "tester": "tester-pw"})
    wrong = tmp_path / "wrong-password"
    wrong.write_text("battery staple\n")
    await outbox.put(entries(2))
    publisher = Publisher(settings_for(broker, username="hub-1", password_file=wrong), outbox)
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(PublishError, match="refused the credentials") as caught:
            await publisher.probe()
        assert "battery staple" not in str(caught.value)
        with capture_logs() as logs:
            async with running(publisher):
                status = await publisher.wait_for_status(lambda s: s.connect_failures >= 2)
        assert status.last_failure == ConnectFailure.CREDENTIALS
        assert status.alarms == (PublisherAlarm.BROKER_AUTH_FAILED,)
        assert outbox.limits == []
        assert [e["event"] for e in logs].count("mqtt_connect_failed") == 1, (
            "one line, not one per retry"
        )
        assert "battery staple" not in repr(logs)
        assert "battery staple" not in repr(publisher.status)

        monkeypatch.setenv(PASSWORD_ENV, "correct horse")
        right = Publisher(settings_for(broker, username="hub-1", password_env=PASSWORD_ENV), outbox)
        async with running(right):
            await outbox.wait_until_empty()
    assert sum(outbox.acks.values()) == 2


@pytest.mark.asyncio
async def test_mqtt_3_1_1_mode_delivers_without_properties(mosquitto, outbox):
    broker = mosquitto()
    (record,) = entries(1, kind="pulse_oximetry")
    await outbox.put([record])
    publisher = Publisher(settings_for(broker, protocol="3.1.1"), outbox)
    async with (
        asyncio.timeout(BOUND_S),
        Subscriber(broker, READINGS, protocol=aiomqtt.ProtocolVersion.V311) as sub,
    ):
        async with running(publisher):
            await outbox.wait_until_empty()
        await sub.barrier()
    (message,) = sub.readings()
    assert message.topic.value.endswith("/readings/pulse_oximetry")
    assert message.payload == record.payload
    assert message.qos == 1
    # mosquitto logs each client's protocol as its own enum: p2 is MQTT 3.1.1, p5 is MQTT 5.
    assert f"as vitalbridge-{HUB} (p2," in broker.log()


@pytest.mark.asyncio
async def test_a_refusing_puback_is_not_an_ack_raises_an_alarm_and_is_retried(mosquitto, outbox):
    # The broker may read everything and write only the status and the test's barrier topics:
    # a reading's PUBLISH gets a PUBACK with reason code 0x87 (not authorised).
    closed = f"topic read #\ntopic write {STATUS}\ntopic readwrite test/#\n"
    broker = mosquitto(acl=closed)
    (record,) = entries(1)
    await outbox.put([record])
    publisher = Publisher(settings_for(broker, refusal_alarm_rounds=3), outbox)
    async with asyncio.timeout(BOUND_S), Subscriber(broker, READINGS) as sub:
        with capture_logs() as logs:
            async with running(publisher):
                status = await publisher.wait_for_status(
                    lambda s: PublisherAlarm.PUBLISH_REFUSED in s.alarms
                )
                assert outbox.acks == Counter()
                assert status.refused >= 3
                assert status.refused_kinds == ("blood_pressure",)
                assert status.last_error is not None
                assert "0x87" in status.last_error
                reading_id, error = outbox.releases[0]
                assert reading_id == record.reading_id
                assert error is not None
                assert "0x87" in error

                broker.acl = "topic readwrite #\n"
                broker.reload()
                status = await publisher.wait_for_status(lambda s: s.acked == 1)
        await sub.barrier()
    assert status.alarms == ()
    assert status.refused_kinds == ()
    assert outbox.acks == Counter({record.reading_id: 1})
    assert [m.payload for m in sub.readings()] == [record.payload]
    events = [entry["event"] for entry in logs]
    assert events.count("reading_refused") == 1, "one line when refusals start, not per retry"
    assert events.count("publish_refusal_alarm_raised") == 1
    assert events.count("publish_refusal_cleared") == 1


@pytest.mark.asyncio
async def test_canary_the_aiomqtt_internals_broker_client_overrides_are_still_there():
    # BrokerClient leans on aiomqtt 2.x private names; an upgrade that moves them fails here.
    client = BrokerClient("127.0.0.1", 9)
    assert isinstance(client._client, paho.Client)
    assert client._client.on_publish == client._on_publish
    assert client._client.on_disconnect == client._on_disconnect
    assert isinstance(client._connected, asyncio.Future)
    for name in ("_on_publish", "_on_disconnect"):
        ours = list(inspect.signature(getattr(BrokerClient, name)).parameters)
        theirs = list(inspect.signature(getattr(aiomqtt.Client, name)).parameters)
        assert ours == theirs, name


def test_settings_check_urls_tls_and_credentials():
    settings = PublisherSettings(broker_url="mqtts://broker.example", hub_id="h", topic_prefix="a")
    assert (settings.endpoint.host, settings.endpoint.port, settings.endpoint.tls) == (
        "broker.example",
        8883,
        True,
    )
    assert settings.topics.status == "a/hubs/h/status"
    assert settings.topics.reading("body_weight") == "a/hubs/h/readings/body_weight"
    assert PublisherSettings(broker_url="mqtt://h:1884", hub_id="h").endpoint.port == 1884
    with pytest.raises(ValueError, match="not a single MQTT topic level"):
        settings.topics.reading("a/#")
    bad = [
        ({"broker_url": "http://h"}, "must start with mqtt:// or mqtts://"),
        ({"broker_url": "mqtt://u:p@h"}, "must not carry credentials"),
        ({"broker_url": "mqtt://h", "ca_file": "ca.pem"}, "use mqtts://"),
        ({"broker_url": "mqtts://h", "client_cert": "c.pem"}, "client_cert and client_key"),
        ({"broker_url": "mqtt://h", "password_env": "X"}, "needs a username"),
        ({"broker_url": "mqtt://h", "hub_id": "a/b"}, "pattern"),
        ({"broker_url": "mqtt://h", "topic_prefix": "a/#"}, "must not contain"),
    ]
    for fields, message in bad:
        with pytest.raises(ValidationError, match=message):
            PublisherSettings.model_validate({"hub_id": "h", **fields})


def test_backoff_is_capped_full_jitter_and_schema_version_comes_from_the_payload():
    rng = random.Random(5)  # noqa: S311 - reproducible jitter for the test
    for attempt in range(100):
        delay = backoff_delay(attempt, 0.5, 30.0, rng)
        assert 0.0 <= delay <= min(30.0, 0.5 * 2**attempt)
    assert schema_version_of(b'{"schema_version":"2.1"}', "1.0") == "2.1"
    assert schema_version_of(b"not json", "1.0") == "1.0"
    assert schema_version_of(b"[1]", "1.0") == "1.0"


def test_refusals_count_in_rounds_per_kind_and_clear_on_delivery():
    rng = random.Random(1)  # noqa: S311 - reproducible jitter for the test
    rounds = RefusalRounds(base_s=1.0, cap_s=8.0, alarm_rounds=3, rng=rng)
    first = rounds.refused("blood_pressure", now=100.0)
    assert (first.starts_streak, first.raises_alarm) == (True, False)
    # The rest of the window, refused in the same breath, is the same round.
    assert not rounds.refused("blood_pressure", now=100.0).starts_streak
    assert rounds.pause_until >= 100.0
    # Another kind keeps its own count.
    assert rounds.refused("body_weight", now=100.0).starts_streak
    second = rounds.refused("blood_pressure", now=200.0)
    third = rounds.refused("blood_pressure", now=300.0)
    assert (second.raises_alarm, third.raises_alarm) == (False, True)
    assert not rounds.refused("blood_pressure", now=400.0).raises_alarm, "raised once"
    assert rounds.alarmed == {"blood_pressure"}
    assert rounds.delivered("blood_pressure")
    assert not rounds.delivered("body_weight"), "never alarmed, nothing to clear"
    assert rounds.alarmed == set()
    assert rounds.refused("blood_pressure", now=500.0).starts_streak


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"schema_version":"1.0","reading_id":"x"}', "1.0"),  # canonical order: fast path
        (b'{"reading_id":"x","schema_version":"2.1"}', "2.1"),  # any order: full parse
        (b'{"schema_version":"a\\"b","x":1}', 'a"b'),  # an escape: full parse, never a guess
        (b"not json", "default"),
        (b'{"schema_version":1}', "default"),
    ],
)
def test_schema_version_is_read_cheaply_and_correctly(payload, expected):
    assert schema_version_of(payload, "default") == expected


class BatchingOutbox(RecordingOutbox):
    """The recording outbox with the real outbox's one-trip ack and hand-out, recorded too."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(outbox)
        self.ack_groups: list[list[str]] = []
        self.combined_limits: list[int] = []

    async def ack_and_next_batch(self, reading_ids, limit: int) -> tuple[int, list[OutboxItem]]:
        ids = list(reading_ids)
        self.ack_groups.append(ids)
        self.combined_limits.append(limit)
        acked, batch = await self.outbox.ack_and_next_batch(ids, limit)
        if acked != len(ids):
            self.unexpected.append(f"ack_and_next_batch {ids}: {acked} stored")
        self.max_in_flight = max(self.max_in_flight, self.outbox.status().in_flight)
        for reading_id in ids:
            self.acks[reading_id] += 1
            self.acked_order.append(reading_id)
        self._notify()
        return acked, batch


@pytest.mark.asyncio
async def test_acks_go_in_groups_with_the_next_hand_out_and_the_window_still_bounds(
    mosquitto, tmp_path
):
    broker = mosquitto()
    async with await Outbox.open(tmp_path / "outbox.sqlite3") as real:
        outbox = BatchingOutbox(real)
        stream = entries(120, device="cuff-1") + entries(80, device="scale-1")
        await outbox.put(stream)
        publisher = Publisher(settings_for(broker, window=6), outbox)
        async with asyncio.timeout(BOUND_S), Subscriber(broker, READINGS) as sub:
            async with running(publisher):
                await outbox.wait_until_empty()
            await sub.barrier()
    expected = {record.reading_id for record in stream}
    # Every reading acked once, after its PUBACK, through the one-trip call only.
    assert outbox.acks == Counter(dict.fromkeys(expected, 1))
    assert set(sub.reading_ids()) == expected
    assert outbox.unexpected == []
    assert sum(len(group) for group in outbox.ack_groups) == len(stream)
    # Acked slots are refilled in the same trip, never beyond the window.
    assert max(outbox.limits + outbox.combined_limits) <= 6
    assert outbox.max_in_flight == 6
    assert any(limit > 0 for limit in outbox.combined_limits)
    # Each device's readings were acked in measurement order (they are published in it).
    for device in ("cuff-1", "scale-1"):
        mine = [rid for rid in outbox.acked_order if rid.startswith(f"r-{device}-")]
        assert mine == [r.reading_id for r in stream if r.device_id == device]
    status = publisher.status
    assert (status.published, status.acked, status.republished) == (200, 200, 0)


DEVICES = f"{PREFIX}hubs/{HUB}/devices/#"


@pytest.mark.asyncio
async def test_device_state_is_retained_and_sent_again_after_a_reconnect(mosquitto, outbox):
    broker = mosquitto()
    topic = f"{PREFIX}hubs/{HUB}/devices/cuff-1"
    publisher = Publisher(settings_for(broker), outbox)
    # Before any connect: kept, not acknowledged, sent once connected.
    assert not await publisher.publish_device_state("cuff-1", {"state": "pairing"})
    async with asyncio.timeout(BOUND_S):
        async with running(publisher):
            await publisher.wait_for_status(lambda s: s.state is PublisherState.CONNECTED)
            assert await publisher.publish_device_state("cuff-1", {"state": "connected"})
            assert await publisher.publish_device_state("scale-1", {"state": "idle"})
            # A subscriber that comes later finds the latest document, retained.
            async with Subscriber(broker, DEVICES) as late:
                await late.wait_for(lambda ms: len(ms) == 2)
            states = {m.topic.value: (m.retain, body(m)) for m in late.messages}
            assert states == {
                topic: (True, {"state": "connected"}),
                f"{PREFIX}hubs/{HUB}/devices/scale-1": (True, {"state": "idle"}),
            }
            assert late.messages[0].qos == 1
            assert late.messages[0].properties.ContentType == "application/json"

            # The broker keeps nothing across a restart (no persistence): what a subscriber
            # finds afterwards is what the publisher sent again on its reconnect.
            broker.kill()
            await publisher.wait_for_status(lambda s: s.connections_lost >= 1)
            assert not await publisher.publish_device_state("cuff-1", {"state": "lost"})
            broker.start()
            await publisher.wait_for_status(lambda s: s.connects >= 2)
            async with Subscriber(broker, DEVICES) as again:
                await again.wait_for(
                    lambda ms: (
                        {m.topic.value: body(m) for m in ms}
                        == {
                            topic: {"state": "lost"},
                            f"{PREFIX}hubs/{HUB}/devices/scale-1": {"state": "idle"},
                        }
                    )
                )
    with pytest.raises(ValueError, match="not a single MQTT topic level"):
        await publisher.publish_device_state("cuff/1", {"state": "idle"})


def test_device_topics_are_one_level_under_the_hub():
    topics = PublisherSettings(broker_url="mqtt://h", hub_id="h", topic_prefix="a").topics
    assert topics.device("cuff-1") == "a/hubs/h/devices/cuff-1"
    for bad in ("", "a/b", "+", "#", "x\x00"):
        with pytest.raises(ValueError, match="not a single MQTT topic level"):
            topics.device(bad)
