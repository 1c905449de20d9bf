"""Remote commands end to end: a backend on a real mosquitto, the hub's publisher, the service.

The backend speaks MQTT 5 request/response (Response Topic, Correlation Data) as a support
backend would; the hub side is the real Publisher on its own connection with a CommandService
over a real DeviceRegistry. Only the doctor and sync-now are stand-ins: they belong to other
parts of the daemon, and the service takes any callable for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import jsonschema
import pytest
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.audit import AuditLog
from gateway.ble.registry import DeviceRegistry
from gateway.commands import SCHEMA_PATH, CommandService
from gateway.config import DeviceConfig
from gateway.loglines import LogBuffer
from gateway.mqtt import Publisher, PublisherSettings
from gateway.outbox import Outbox

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

HUB = "hub-cmd"
OTHER_HUB = "hub-other"
RESPONSES = f"hubs/{HUB}/responses/support-1"
CONFIGURED = DeviceConfig(
    id="cuff-kitchen", address="AA:BB:CC:00:00:01", profile="blood_pressure", patient="p-conf"
)
BPS = "00001810-0000-1000-8000-00805f9b34fb"
NEW_CUFF = "F0:10:20:30:40:51"
PATIENT = "patient-3f9a"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


class Hub:
    """The daemon's parts the commands touch: a real registry, status and devices from it."""

    def __init__(self, registry: DeviceRegistry) -> None:
        self.registry = registry
        self.synced: list[str] = []

    def status(self) -> dict[str, object]:
        return {"hub_id": HUB, "pairing_window_s": self.registry.pairing_window_remaining_s}

    def devices(self) -> list[dict[str, object]]:
        return [{"id": d.id, "profile": d.profile.value} for d in self.registry.devices()]

    async def sync_now(self, device_id: str) -> dict[str, object]:
        if device_id not in {d.id for d in self.registry.devices()}:
            raise LookupError(f"no device {device_id!r}")
        self.synced.append(device_id)
        return {"queued": device_id}


async def doctor() -> dict[str, object]:
    return {"checks": [{"name": "stand-in", "ok": True}]}


class Backend:
    """A support backend: sends requests with a Response Topic and Correlation Data."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.answers: dict[bytes, asyncio.Future[aiomqtt.Message]] = {}
        self.stray: list[aiomqtt.Message] = []
        self._counter = 0

    async def listen(self) -> None:
        async for message in self.client.messages:
            correlation = getattr(message.properties, "CorrelationData", None)
            future = self.answers.get(correlation) if correlation is not None else None
            if future is None or future.done():
                self.stray.append(message)
            else:
                future.set_result(message)

    async def send(
        self,
        name: str,
        payload: bytes,
        *,
        hub: str = HUB,
        response_topic: str | None = RESPONSES,
        requester: str | None = "support-desk",
    ) -> asyncio.Future[aiomqtt.Message]:
        self._counter += 1
        correlation = f"req-{self._counter}".encode()
        properties = Properties(PacketTypes.PUBLISH)
        if response_topic is not None:
            properties.ResponseTopic = response_topic
        properties.CorrelationData = correlation
        if requester is not None:
            properties.UserProperty = [("requester", requester)]
        future: asyncio.Future[aiomqtt.Message] = asyncio.get_running_loop().create_future()
        self.answers[correlation] = future
        await self.client.publish(f"hubs/{hub}/cmd/{name}", payload, qos=1, properties=properties)
        return future

    async def call(self, name: str, args: object = None, **kwargs: object) -> dict[str, object]:
        payload = b"" if args is None else json.dumps(args).encode()
        future = await self.send(name, payload, **kwargs)
        message = await future
        assert message.properties.ContentType == "application/json"
        document = json.loads(message.payload)
        jsonschema.validate(document, {**SCHEMA, **SCHEMA["response"]})
        return document


@contextlib.asynccontextmanager
async def running(
    mosquitto, tmp_path: Path, *, acl: str | None = None
) -> AsyncIterator[tuple[Backend, Hub, AuditLog]]:
    hub_credentials: dict[str, object] = {}
    backend_credentials: dict[str, object] = {}
    if acl is None:
        broker = mosquitto()
    else:
        broker = mosquitto(users={HUB: "hub-secret", "support-backend": "desk-secret"}, acl=acl)
        (tmp_path / "password").write_text("hub-secret\n")
        hub_credentials = {"username": HUB, "password_file": str(tmp_path / "password")}
        backend_credentials = {"username": "support-backend", "password": "desk-secret"}
    settings = PublisherSettings.model_validate(
        {
            "broker_url": broker.url,
            "hub_id": HUB,
            "backoff_base_s": 0.05,
            "backoff_cap_s": 0.3,
            **hub_credentials,
        }
    )
    registry = DeviceRegistry.load((CONFIGURED,), tmp_path)
    hub = Hub(registry)
    audit = AuditLog.in_state_dir(tmp_path)
    buffer = LogBuffer()
    service = CommandService(
        hub,
        hub_topic=settings.topics.hub,
        audit=audit,
        log_buffer=buffer,
        sync_now=hub.sync_now,
        doctor=doctor,
    )
    old = structlog.get_config()
    # The hub logs at debug level, patient references and values included, as a developer's
    # build might: the logs command must still not return them.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            buffer.processor,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        async with asyncio.timeout(60):
            outbox = await Outbox.open(tmp_path / "outbox.db", max_rows=100, max_bytes=1_000_000)
            client = aiomqtt.Client(
                broker.host,
                broker.port,
                protocol=aiomqtt.ProtocolVersion.V5,
                **backend_credentials,
            )
            async with outbox, client, asyncio.TaskGroup() as tasks:
                await client.subscribe(f"hubs/{HUB}/responses/#", qos=1)
                await client.subscribe(f"hubs/{OTHER_HUB}/responses/#", qos=1)
                backend = Backend(client)
                listener = tasks.create_task(backend.listen(), name="backend")
                publisher = Publisher(settings, outbox)
                publisher.set_command_handler(service.handle)
                hub_task = tasks.create_task(publisher.run(), name="publisher")
                await publisher.wait_commands_ready()
                try:
                    yield backend, hub, audit
                finally:
                    hub_task.cancel()
                    listener.cancel()
    finally:
        structlog.configure(**old)


@pytest.mark.asyncio
async def test_each_command_is_answered_with_its_correlation_data_and_audited(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path) as (backend, hub, audit):
        status = await backend.call("status", {})
        assert status == {"ok": True, "result": {"hub_id": HUB, "pairing_window_s": None}}

        opened = await backend.call("open_pairing", {"minutes": 2, "profile": "blood_pressure"})
        assert opened == {"ok": True, "result": {"pairing_window_s": 120}}
        assert hub.registry.pairing_window_remaining_s is not None
        admission = hub.registry.consider(NEW_CUFF, [BPS], "BP-7", -60)
        assert admission.admitted
        new_id = admission.device.id

        devices = await backend.call("devices")
        assert {d["id"] for d in devices["result"]} == {CONFIGURED.id, new_id}

        mapped = await backend.call(
            "set_patient", {"device_id": new_id, "user_index": 1, "patient": PATIENT}
        )
        assert mapped["ok"] is True
        assert hub.registry.lookup(NEW_CUFF).patients == {1: PATIENT}

        synced = await backend.call("sync_now", {"device_id": new_id})
        assert synced == {"ok": True, "result": {"queued": new_id}}
        assert hub.synced == [new_id]

        report = await backend.call("doctor", {})
        assert report == {"ok": True, "result": {"checks": [{"name": "stand-in", "ok": True}]}}

        forgotten = await backend.call("forget_device", {"device_id": new_id})
        assert forgotten == {"ok": True, "result": {"forgotten": new_id}}
        assert hub.registry.lookup(NEW_CUFF) is None

        again = await backend.call("forget_device", {"device_id": new_id})
        assert again["error"]["code"] == "not_found"
        configured = await backend.call("forget_device", {"device_id": CONFIGURED.id})
        assert configured["error"]["code"] == "conflict"

    entries = audit.entries()
    assert [e["command"] for e in entries] == [
        "status",
        "open_pairing",
        "devices",
        "set_patient",
        "sync_now",
        "doctor",
        "forget_device",
        "forget_device",
        "forget_device",
    ]
    assert [e["error_code"] for e in entries][-2:] == ["not_found", "conflict"]
    assert all(e["requester"] == "support-desk" for e in entries)
    assert entries[0]["request_id"] == b"req-1".hex()
    assert entries[3]["args"]["patient"] == "[redacted]"
    assert PATIENT not in audit.path.read_text(encoding="utf-8")
    assert audit.path.stat().st_mode & 0o777 == 0o600


@pytest.mark.asyncio
async def test_bad_requests_get_typed_errors_and_are_audited(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path) as (backend, _hub, audit):
        unknown = await backend.call("reboot", {})
        assert unknown["error"]["code"] == "unknown_command"
        invalid = await backend.call("open_pairing", {"minutes": 600})
        assert invalid["error"]["code"] == "invalid_arguments"
        assert "minutes" in invalid["error"]["message"]
        extra = await backend.call("status", {"verbose": True})
        assert extra["error"]["code"] == "invalid_arguments"
        bad_patient = await backend.call(
            "set_patient", {"device_id": "x", "user_index": None, "patient": "no spaces/allowed"}
        )
        assert bad_patient["error"]["code"] == "invalid_arguments"
        assert "no spaces" not in bad_patient["error"]["message"]

        malformed = json.loads((await (await backend.send("status", b"{not json"))).payload)
        assert malformed["error"]["code"] == "invalid_arguments"
        oversized = b'{"lines": 1, "pad": "' + b"x" * 20_000 + b'"}'
        too_large = json.loads((await (await backend.send("logs", oversized))).payload)
        assert too_large["error"]["code"] == "payload_too_large"

        # Nothing to answer to: not run, but audited. The next answer shows it was handled.
        await backend.send("open_pairing", b'{"minutes": 5}', response_topic=None)
        outside = await backend.send("status", b"{}", response_topic="hubs/elsewhere/x")
        after = await backend.call("status")
        assert after["result"]["pairing_window_s"] is None
        assert not outside.done()

    codes = [(e["command"], e["error_code"]) for e in audit.entries()]
    assert codes == [
        ("reboot", "unknown_command"),
        ("open_pairing", "invalid_arguments"),
        ("status", "invalid_arguments"),
        ("set_patient", "invalid_arguments"),
        ("status", "invalid_arguments"),
        ("logs", "payload_too_large"),
        ("open_pairing", "missing_response_topic"),
        ("status", "forbidden_response_topic"),
        ("status", None),
    ]
    assert audit.entries()[-2]["requester"] == "support-desk"


@pytest.mark.asyncio
async def test_the_logs_command_never_returns_patient_references_or_values(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path) as (backend, _hub, _audit):
        log = structlog.get_logger("gateway.ble")
        log.debug("reading_received", device_id="cuff-1", patient=PATIENT, value="152.5")
        log.debug(
            "reading_decoded",
            device_id="cuff-1",
            reading={"patient": PATIENT, "components": [{"code": "systolic", "value": "152.5"}]},
            systolic_value=152.5,
        )
        log.info("session_done", device_id="cuff-1", readings=1)
        answer = await backend.call("logs", {"lines": 500})

    lines = answer["result"]["lines"]
    text = json.dumps(lines)
    assert PATIENT not in text
    assert "152.5" not in text
    events = [line["event"] for line in lines]
    assert events.index("reading_received") < events.index("session_done")
    received = lines[events.index("reading_received")]
    assert received["device_id"] == "cuff-1"
    assert received["level"] == "debug"
    assert "patient" not in received
    assert "value" not in received
    assert lines[events.index("session_done")]["readings"] == 1


@pytest.mark.asyncio
async def test_the_hub_does_not_act_on_another_hubs_commands(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path) as (backend, hub, audit):
        foreign = await backend.send(
            "open_pairing",
            b'{"minutes": 5}',
            hub=OTHER_HUB,
            response_topic=f"hubs/{OTHER_HUB}/responses/support-1",
        )
        # Sent after the foreign one on the same connection: answered means it was processed.
        own = await backend.call("status")
        assert own["ok"] is True
        assert not foreign.done()
        assert hub.registry.pairing_window_remaining_s is None
    assert [e["command"] for e in audit.entries()] == ["status"]


@pytest.mark.asyncio
async def test_a_flood_of_commands_is_rate_limited(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path) as (backend, _hub, audit):
        futures = [await backend.send("status", b"{}") for _ in range(35)]
        answers = [json.loads((await future).payload) for future in futures]
    codes = [a["error"]["code"] for a in answers if not a["ok"]]
    assert sum(1 for a in answers if a["ok"]) == 30
    assert codes == ["rate_limited"] * 5
    assert len(audit.entries()) == 35


def documented_acl() -> str:
    """The ACL file docs/remote-commands.md tells a backend to set."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "remote-commands.md").read_text()
    section = text.split("## Broker ACLs a backend should set", 1)[1]
    return section.split("```text\n", 1)[1].split("```", 1)[0]


@pytest.mark.asyncio
async def test_commands_work_under_the_documented_broker_acl(mosquitto, tmp_path):
    async with running(mosquitto, tmp_path, acl=documented_acl()) as (backend, _hub, audit):
        assert (await backend.call("status"))["ok"] is True
        # The ACL gives the hub no right to another hub's tree: this request never reaches it.
        foreign = await backend.send(
            "status", b"{}", hub=OTHER_HUB, response_topic=f"hubs/{OTHER_HUB}/responses/x"
        )
        assert (await backend.call("devices"))["ok"] is True
        assert not foreign.done()
    assert [e["command"] for e in audit.entries()] == ["status", "devices"]
