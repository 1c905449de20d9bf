"""Remote commands without a broker: checks, answers, the audit log, the log ring, the schema.

The service is given MQTT 5 properties as paho builds them; the hub is a stand-in with a real
DeviceRegistry. tests/test_commands_e2e.py runs the same service over a real mosquitto.
"""

from __future__ import annotations

import json
import stat

import jsonschema
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.audit import AuditEntry, AuditError, AuditLog
from gateway.ble.registry import DeviceRegistry
from gateway.commands import (
    COMMANDS,
    MAX_REQUEST_BYTES,
    SCHEMA_PATH,
    CommandService,
    ErrorCode,
    main,
    schema_text,
)
from gateway.config import DeviceConfig
from gateway.loglines import LogBuffer

HUB_TOPIC = "site/hubs/hub-1"
RESPONSES = f"{HUB_TOPIC}/responses/desk"
CONFIGURED = DeviceConfig(
    id="cuff-kitchen", address="AA:BB:CC:00:00:01", profile="blood_pressure", patient="p-1"
)


class Hub:
    """Status and devices from a real registry."""

    def __init__(self, registry: DeviceRegistry) -> None:
        self.registry = registry

    def status(self) -> dict[str, object]:
        return {"hub_id": "hub-1"}

    def devices(self) -> list[dict[str, object]]:
        return [{"id": d.id} for d in self.registry.devices()]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def properties(
    response_topic: str | None = RESPONSES, correlation: bytes | None = b"c-1", **user: str
) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    if response_topic is not None:
        props.ResponseTopic = response_topic
    if correlation is not None:
        props.CorrelationData = correlation
    if user:
        props.UserProperty = list(user.items())
    return props


async def failing_sync(device_id: str) -> object:
    raise RuntimeError(f"radio on fire near {device_id}")


async def doctor() -> dict[str, object]:
    return {"ok": True}


def make_service(tmp_path, *, clock=None, sync_now=failing_sync, buffer=None, rate=30):
    registry = DeviceRegistry.load((CONFIGURED,), tmp_path)
    audit = AuditLog.in_state_dir(tmp_path)
    service = CommandService(
        Hub(registry),
        hub_topic=HUB_TOPIC,
        audit=audit,
        log_buffer=buffer or LogBuffer(),
        sync_now=sync_now,
        doctor=doctor,
        rate_per_minute=rate,
        clock=clock or Clock(),
    )
    return service, audit, registry


async def answer(service: CommandService, name: str, payload: bytes, props=None) -> dict:
    raw = await service.handle(name, payload, properties() if props is None else props)
    assert raw is not None
    document = json.loads(raw)
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.validate(document, {**schema, **schema["response"]})
    return document


# The schema file.


def test_the_schema_file_matches_the_models():
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema_text(), (
        "gateway/schemas/commands.schema.json is stale; run: python -m gateway.commands "
        "--write-schema"
    )
    assert main(["--check-schema"]) == 0


def test_the_schema_names_every_command_and_closes_every_request():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["requests"]) == set(COMMANDS)
    for name, ref in schema["requests"].items():
        definition = schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]
        assert definition["additionalProperties"] is False, name
    codes = schema["$defs"]["ErrorCode"]["enum"]
    assert codes == [code.value for code in ErrorCode]


def test_check_schema_reports_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "commands.schema.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert main(["--check-schema", "--path", str(stale)]) == 1
    assert "--write-schema" in capsys.readouterr().out
    assert main(["--write-schema", "--path", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == schema_text()


# Requests and answers.


@pytest.mark.asyncio
async def test_a_failure_inside_a_command_is_internal_and_does_not_leak_its_message(tmp_path):
    service, audit, _ = make_service(tmp_path)
    document = await answer(service, "sync_now", b'{"device_id": "cuff-kitchen"}')
    assert document["error"]["code"] == "internal"
    assert "fire" not in document["error"]["message"]
    assert "RuntimeError" in document["error"]["message"]
    assert audit.entries()[-1]["error_code"] == "internal"


@pytest.mark.asyncio
async def test_a_patient_on_a_configured_device_is_a_conflict(tmp_path):
    service, _, registry = make_service(tmp_path)
    document = await answer(
        service,
        "set_patient",
        b'{"device_id": "cuff-kitchen", "user_index": null, "patient": "p-2"}',
    )
    assert document["error"]["code"] == "conflict"
    assert registry.lookup(CONFIGURED.address).patient == "p-1"


@pytest.mark.asyncio
async def test_a_patient_on_an_unknown_device_is_not_found(tmp_path):
    service, _, _ = make_service(tmp_path)
    document = await answer(
        service, "set_patient", b'{"device_id": "nobody", "user_index": 3, "patient": "p-2"}'
    )
    assert document["error"]["code"] == "not_found"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("open_pairing", {"minutes": 0}),
        ("open_pairing", {"minutes": 61}),
        ("open_pairing", {"minutes": 5, "profile": "toaster"}),
        ("open_pairing", {}),
        ("logs", {"lines": 0}),
        ("logs", {"lines": 501}),
        ("set_patient", {"device_id": "d", "user_index": 255, "patient": "p"}),
        ("set_patient", {"device_id": "d", "user_index": -1, "patient": "p"}),
        ("set_patient", {"device_id": "d", "patient": "p"}),
        ("forget_device", {"device_id": "a/b"}),
        ("sync_now", {"device_id": "+"}),
        ("doctor", {"deep": True}),
    ],
)
async def test_invalid_arguments_are_refused_before_anything_runs(tmp_path, name, args):
    service, audit, registry = make_service(tmp_path)
    document = await answer(service, name, json.dumps(args).encode())
    assert document["error"]["code"] == "invalid_arguments"
    assert registry.pairing_window_remaining_s is None
    assert audit.entries()[-1] == {**audit.entries()[-1], "command": name, "args": None}


@pytest.mark.asyncio
@pytest.mark.parametrize("payload", [b"[]", b'"status"', b"1", b"\xff\xfe", b"{"])
async def test_a_payload_that_is_not_a_json_object_is_invalid(tmp_path, payload):
    service, _, _ = make_service(tmp_path)
    document = await answer(service, "status", payload)
    assert document["error"]["code"] == "invalid_arguments"


@pytest.mark.asyncio
async def test_an_empty_payload_means_no_arguments(tmp_path):
    service, _, _ = make_service(tmp_path)
    assert await answer(service, "status", b"") == {"ok": True, "result": {"hub_id": "hub-1"}}


@pytest.mark.asyncio
async def test_a_request_over_the_limit_is_refused_unread(tmp_path):
    service, _, _ = make_service(tmp_path)
    # Not even JSON: the size alone decides.
    document = await answer(service, "status", b"\x00" * (MAX_REQUEST_BYTES + 1))
    assert document["error"]["code"] == "payload_too_large"
    at_limit = b"{}" + b" " * (MAX_REQUEST_BYTES - 2)
    assert (await answer(service, "status", at_limit))["ok"] is True


@pytest.mark.asyncio
async def test_requests_without_a_valid_response_topic_are_not_run_but_audited(tmp_path):
    service, audit, registry = make_service(tmp_path)
    minutes = b'{"minutes": 5}'
    assert await service.handle("open_pairing", minutes, properties(None)) is None
    for topic in ("site/hubs/hub-2/responses/x", f"{HUB_TOPIC}/readings/x", RESPONSES + "/#"):
        assert await service.handle("open_pairing", minutes, properties(topic)) is None
    assert await service.handle("open_pairing", minutes, None) is None
    assert registry.pairing_window_remaining_s is None
    codes = [e["error_code"] for e in audit.entries()]
    assert codes == [
        "missing_response_topic",
        "forbidden_response_topic",
        "forbidden_response_topic",
        "forbidden_response_topic",
        "missing_response_topic",
    ]


@pytest.mark.asyncio
async def test_the_rate_limit_is_a_sliding_minute(tmp_path):
    clock = Clock()
    service, _, _ = make_service(tmp_path, clock=clock, rate=3)
    for _ in range(3):
        assert (await answer(service, "status", b"{}"))["ok"] is True
    limited = await answer(service, "status", b"{}")
    assert limited["error"]["code"] == "rate_limited"
    clock.now += 59.9
    assert (await answer(service, "status", b"{}"))["error"]["code"] == "rate_limited"
    clock.now += 0.1
    assert (await answer(service, "status", b"{}"))["ok"] is True


@pytest.mark.asyncio
async def test_the_requester_is_the_user_property_else_the_response_topic(tmp_path):
    service, audit, _ = make_service(tmp_path)
    await answer(service, "status", b"{}", properties(requester="alice@support"))
    await answer(service, "status", b"{}", properties(correlation=None, request_id="r-9"))
    first, second = audit.entries()
    assert (first["requester"], first["request_id"]) == ("alice@support", b"c-1".hex())
    assert (second["requester"], second["request_id"]) == (RESPONSES, "r-9")


@pytest.mark.asyncio
async def test_an_audit_log_that_cannot_be_written_does_not_stop_the_answer(tmp_path):
    service, audit, _ = make_service(tmp_path)
    audit.path.mkdir()  # a directory where the file should be
    assert (await answer(service, "status", b"{}"))["ok"] is True


# The audit log.


def test_the_audit_log_is_private_and_masks_patient_references(tmp_path):
    audit = AuditLog.in_state_dir(tmp_path)
    audit.path.write_text("")
    audit.path.chmod(0o644)
    audit.write(AuditEntry("id-1", "desk", "set_patient", {"device_id": "d", "patient": "p-7"}))
    assert stat.S_IMODE(audit.path.stat().st_mode) == 0o600
    (entry,) = audit.entries()
    assert entry["args"] == {"device_id": "d", "patient": "[redacted]"}
    assert entry["result"] == "ok"
    assert "p-7" not in audit.path.read_text()


def test_the_audit_log_rotates_by_size_and_keeps_its_backups(tmp_path):
    audit = AuditLog(tmp_path / "audit.log", max_bytes=400, backups=2)
    for index in range(20):
        audit.write(AuditEntry(f"id-{index}", "desk", "status", {}))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    assert all(p.stat().st_size <= 400 for p in tmp_path.iterdir())
    ids = [e["request_id"] for e in audit.entries()]
    older = [
        json.loads(line)["request_id"]
        for line in (tmp_path / "audit.log.1").read_text().splitlines()
    ]
    assert older[-1] == f"id-{int(ids[0][3:]) - 1}"
    assert ids[-1] == "id-19"


def test_an_unwritable_audit_log_raises_a_typed_error(tmp_path):
    audit = AuditLog(tmp_path / "missing" / "audit.log")
    with pytest.raises(AuditError, match="state directory"):
        audit.write(AuditEntry(None, None, "status"))


# The log ring.


def test_the_log_ring_keeps_the_last_lines_without_health_data():
    buffer = LogBuffer(capacity=3)
    for index in range(5):
        buffer.processor(None, "debug", {"event": f"e{index}", "level": "debug", "patient": "p-1"})
    buffer.processor(
        None, "info", {"event": "nested", "level": "info", "reading": {"value": "98.6"}, "n": 2}
    )
    assert len(buffer) == 3
    lines = buffer.last(10)
    assert [line["event"] for line in lines] == ["e3", "e4", "nested"]
    assert all("patient" not in line for line in lines)
    assert lines[-1] == {
        "event": "nested",
        "level": "info",
        "reading": {"value": "[redacted]"},
        "n": 2,
    }
    assert buffer.last(1) == lines[-1:]
    assert buffer.last(0) == []


def test_the_log_ring_passes_the_event_on_unchanged():
    buffer = LogBuffer()
    event = {"event": "x", "level": "debug", "value": 5, "_record": object()}
    assert buffer.processor(None, "debug", dict(event)) == event
    assert buffer.last(1) == [{"event": "x", "level": "debug"}]


@given(
    st.dictionaries(
        st.sampled_from(["patient", "patients", "value", "components", "raw", "systolic_value"]),
        st.text(min_size=4, alphabet="abcdefghij"),
        min_size=1,
    )
)
def test_no_health_key_survives_the_ring(fields):
    buffer = LogBuffer()
    buffer.processor(None, "debug", {"event": "reading", "level": "debug", **fields})
    (line,) = buffer.last(1)
    assert set(line) == {"event", "level"}


def test_the_log_ring_works_as_a_structlog_processor():
    buffer = LogBuffer()
    old = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            buffer.processor,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        structlog.get_logger("t").debug("reading", patient="p-3", device_id="d-1")
    finally:
        structlog.configure(**old)
    assert buffer.last(1) == [{"event": "reading", "level": "debug", "device_id": "d-1"}]
