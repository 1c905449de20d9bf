"""Remote support commands over MQTT 5 request/response on ``{prefix}hubs/{hub_id}/cmd/{name}``.

A backend publishes a JSON object of arguments to the command's topic with a Response Topic
(under ``{prefix}hubs/{hub_id}/responses/``) and Correlation Data; the hub answers there with
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"code": ..., "message": ...}}``.
Each request is checked against its model (one per command, ``extra`` forbidden); the JSON
Schema of requests and answers is committed at gateway/schemas/commands.schema.json.
Regenerate it after changing a model with::

    python -m gateway.commands --write-schema

Every request, answered or not, is written to the audit log. docs/remote-commands.md has the
topics, error codes and the broker ACLs a backend should set.
"""

from __future__ import annotations

import collections
import enum
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from gateway._schema_file import schema_cli, schema_file_text
from gateway.audit import AuditEntry, AuditError
from gateway.ble.registry import ConfiguredDeviceError, DeviceRegistryError, UnknownDeviceError
from gateway.config import DeviceProfile  # noqa: TC001 - pydantic needs it at runtime

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from gateway.audit import AuditLog
    from gateway.loglines import LogBuffer

__all__ = [
    "COMMANDS",
    "MAX_REQUEST_BYTES",
    "SCHEMA_PATH",
    "CommandError",
    "CommandService",
    "CommandsHub",
    "CommandsRegistry",
    "ErrorCode",
    "commands_json_schema",
    "main",
    "schema_text",
    "write_schema",
]

_log = structlog.get_logger("gateway.commands")

SCHEMA_PATH: Final = Path(__file__).parent / "schemas" / "commands.schema.json"
SCHEMA_VERSION: Final = "1.0"
MAX_REQUEST_BYTES: Final = 16 * 1024
DEFAULT_RATE_PER_MINUTE: Final = 30
_RATE_WINDOW_S: Final = 60.0
# Properties a backend sets are echoed into the audit log: bounded like the payload.
_MAX_REQUESTER_CHARS: Final = 200
_MAX_NAME_CHARS: Final = 64

_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
Identifier = Annotated[str, StringConstraints(pattern=_IDENTIFIER)]


class ErrorCode(enum.StrEnum):
    """Why a command was not carried out (the ``error.code`` of an answer or an audit entry)."""

    UNKNOWN_COMMAND = "unknown_command"
    INVALID_ARGUMENTS = "invalid_arguments"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    MISSING_RESPONSE_TOPIC = "missing_response_topic"
    """Audit only: a request without a Response Topic has nobody to answer and is not run."""
    FORBIDDEN_RESPONSE_TOPIC = "forbidden_response_topic"
    """Audit only: the Response Topic is outside the hub's ``responses/`` tree; not run."""


class CommandError(Exception):
    """A command failed in a way the requester is told about: a code and what to do."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


# Requests.


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StatusRequest(_Request):
    """``status``: the hub status document (as on the status topic)."""


class DevicesRequest(_Request):
    """``devices``: every provisioned device with its state (no patient references)."""


class OpenPairingRequest(_Request):
    """``open_pairing``: accept new health devices for ``minutes`` (of ``profile``, if given)."""

    minutes: int = Field(ge=1, le=60)
    profile: DeviceProfile | None = None


class ForgetDeviceRequest(_Request):
    """``forget_device``: remove a paired device (configured ones are in the config file)."""

    device_id: Identifier


class SetPatientRequest(_Request):
    """``set_patient``: map a paired device's user (null: a device without users) to a patient.

    ``patient`` null removes the mapping.
    """

    device_id: Identifier
    user_index: int | None = Field(ge=0, le=254)
    patient: Identifier | None


class SyncNowRequest(_Request):
    """``sync_now``: read a device as soon as it is in range, without waiting for its interval."""

    device_id: Identifier


class LogsRequest(_Request):
    """``logs``: the last ``lines`` log lines, without health values or patient references."""

    lines: int = Field(default=100, ge=1, le=500)


class DoctorRequest(_Request):
    """``doctor``: run the hub's self-checks and return the report."""


COMMANDS: Final[dict[str, type[_Request]]] = {
    "status": StatusRequest,
    "devices": DevicesRequest,
    "open_pairing": OpenPairingRequest,
    "forget_device": ForgetDeviceRequest,
    "set_patient": SetPatientRequest,
    "sync_now": SyncNowRequest,
    "logs": LogsRequest,
    "doctor": DoctorRequest,
}


# Answers.


class OkResponse(BaseModel):
    """A command's answer when it was carried out."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ok: Literal[True] = True
    result: Any


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and a message saying what to do."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    code: ErrorCode
    message: str


class ErrorResponse(BaseModel):
    """A command's answer when it was not carried out."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ok: Literal[False] = False
    error: ErrorDetail


# The hub's parts a command touches.


class CommandsRegistry(Protocol):
    """What the commands need of `gateway.ble.registry.DeviceRegistry`."""

    def open_pairing_window(
        self, duration_s: float, profile: DeviceProfile | None = None, *, limit: int | None = None
    ) -> None:
        """Accept new health devices for ``duration_s``."""
        ...

    def forget(self, device_id: str) -> bool:
        """Remove a paired device; False if none has the id."""
        ...

    def set_patient(self, device_id: str, user_index: int | None, patient_ref: str | None) -> None:
        """Map a paired device's user to a patient reference, or unmap it."""
        ...


class CommandsHub(Protocol):
    """What the commands need of the daemon: its status, its devices and its registry."""

    @property
    def registry(self) -> CommandsRegistry:
        """Return the device registry."""
        ...

    def status(self) -> dict[str, object]:
        """Return the hub status document."""
        ...

    def devices(self) -> list[dict[str, object]]:
        """Return every provisioned device with its state."""
        ...


class _RateLimit:
    """At most ``limit`` requests in any ``window_s`` (a sliding window of request times)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()

    def allow(self) -> bool:
        now = self._clock()
        while self._times and now - self._times[0] >= self._window_s:
            self._times.popleft()
        if len(self._times) >= self._limit:
            return False
        self._times.append(now)
        return True


class CommandService:
    """Checks, runs, answers and audits remote commands; `handle` is the publisher's handler."""

    def __init__(
        self,
        hub: CommandsHub,
        *,
        hub_topic: str,
        audit: AuditLog,
        log_buffer: LogBuffer,
        sync_now: Callable[[str], Awaitable[object]],
        doctor: Callable[[], Awaitable[dict[str, object]]],
        rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute < 1:
            raise ValueError(f"rate_per_minute must be at least 1: {rate_per_minute}")
        self._hub = hub
        self._responses_prefix = f"{hub_topic}/responses/"
        self._audit = audit
        self._log_buffer = log_buffer
        self._sync_now = sync_now
        self._doctor = doctor
        self._rate = _RateLimit(rate_per_minute, _RATE_WINDOW_S, clock)

    async def handle(self, name: str, payload: bytes, properties: object) -> bytes | None:
        """Answer one request (None: not answered, having no valid Response Topic)."""
        response_topic = _str_property(properties, "ResponseTopic")
        correlation = getattr(properties, "CorrelationData", None)
        request_id = _request_id(properties, correlation)
        requester = _requester(properties, response_topic)
        command = name[:_MAX_NAME_CHARS]
        if not response_topic:
            await self._record(
                AuditEntry(request_id, requester, command, None, "missing_response_topic")
            )
            _log.warning("command_without_response_topic", command=command)
            return None
        if not _is_under(response_topic, self._responses_prefix):
            await self._record(
                AuditEntry(request_id, requester, command, None, "forbidden_response_topic")
            )
            _log.warning("command_response_topic_refused", command=command)
            return None
        args: dict[str, object] | None = None
        try:
            request = self._check(command, payload)
            args = request.model_dump(mode="json")
            result = await self._run(command, request)
        except CommandError as exc:
            await self._record(AuditEntry(request_id, requester, command, args, exc.code.value))
            _log.info("command_refused", command=command, code=exc.code.value)
            return (
                ErrorResponse(error=ErrorDetail(code=exc.code, message=exc.message))
                .model_dump_json()
                .encode()
            )
        await self._record(AuditEntry(request_id, requester, command, args))
        _log.info("command_done", command=command)
        return _dumps({"ok": True, "result": result})

    def _check(self, command: str, payload: bytes) -> _Request:
        if not self._rate.allow():
            raise CommandError(
                ErrorCode.RATE_LIMITED,
                "too many commands in the last minute; wait and send it again",
            )
        if len(payload) > MAX_REQUEST_BYTES:
            raise CommandError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the request has {len(payload)} bytes; at most {MAX_REQUEST_BYTES} are accepted",
            )
        model = COMMANDS.get(command)
        if model is None:
            raise CommandError(
                ErrorCode.UNKNOWN_COMMAND,
                f"no command {command!r}; the commands are {', '.join(COMMANDS)}",
            )
        try:
            document: object = json.loads(payload) if payload.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise CommandError(
                ErrorCode.INVALID_ARGUMENTS,
                "the payload is not JSON; send a JSON object of arguments ({} for none)",
            ) from None
        if not isinstance(document, dict):
            raise CommandError(
                ErrorCode.INVALID_ARGUMENTS,
                "the payload is not a JSON object; send the arguments as an object ({} for none)",
            )
        try:
            return model.model_validate(document)
        except ValidationError as exc:
            # Field names and rules only: the value may be a patient reference.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False, include_context=False)
            )
            raise CommandError(
                ErrorCode.INVALID_ARGUMENTS,
                f"{command}: {problems}; see gateway/schemas/commands.schema.json",
            ) from None

    async def _run(self, command: str, request: _Request) -> object:
        try:
            return await self._dispatch(request)
        except CommandError:
            raise
        except UnknownDeviceError as exc:
            raise CommandError(ErrorCode.NOT_FOUND, str(exc)) from None
        except ConfiguredDeviceError as exc:
            raise CommandError(ErrorCode.CONFLICT, str(exc)) from None
        except LookupError as exc:
            raise CommandError(ErrorCode.NOT_FOUND, str(exc)) from None
        except DeviceRegistryError as exc:
            raise CommandError(ErrorCode.INTERNAL, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any failure becomes a typed answer
            # The type only: a message could quote a value from the request.
            _log.error("command_failed", command=command, error=type(exc).__name__)
            raise CommandError(
                ErrorCode.INTERNAL,
                f"{command} failed ({type(exc).__name__}); the hub log has the details",
            ) from None

    async def _dispatch(self, request: _Request) -> object:
        hub = self._hub
        match request:
            case StatusRequest():
                return hub.status()
            case DevicesRequest():
                return hub.devices()
            case OpenPairingRequest(minutes=minutes, profile=profile):
                hub.registry.open_pairing_window(minutes * 60.0, profile)
                return {"pairing_window_s": minutes * 60}
            case ForgetDeviceRequest(device_id=device_id):
                if not hub.registry.forget(device_id):
                    raise CommandError(
                        ErrorCode.NOT_FOUND,
                        f"no paired device has id {device_id!r}; list them with devices",
                    )
                return {"forgotten": device_id}
            case SetPatientRequest(device_id=device_id, user_index=index, patient=patient):
                hub.registry.set_patient(device_id, index, patient)
                return {"device_id": device_id, "user_index": index, "mapped": patient is not None}
            case SyncNowRequest(device_id=device_id):
                return await self._sync_now(device_id)
            case LogsRequest(lines=lines):
                return {"lines": self._log_buffer.last(lines)}
            case DoctorRequest():
                return await self._doctor()
        msg = f"no handler for {type(request).__name__}"  # pragma: no cover - COMMANDS is closed
        raise CommandError(ErrorCode.UNKNOWN_COMMAND, msg)  # pragma: no cover

    async def _record(self, entry: AuditEntry) -> None:
        try:
            await self._audit.record(entry)
        except AuditError as exc:
            # The command is answered anyway; the log says the audit trail has a gap.
            _log.error("audit_write_failed", command=entry.command, error=str(exc))


def _str_property(properties: object, name: str) -> str | None:
    value = getattr(properties, name, None)
    return value if isinstance(value, str) else None


def _request_id(properties: object, correlation: object) -> str | None:
    if isinstance(correlation, bytes | bytearray):
        return bytes(correlation[:64]).hex()
    return _user_property(properties, "request_id")


def _requester(properties: object, response_topic: str | None) -> str | None:
    who = _user_property(properties, "requester") or response_topic
    return None if who is None else who[:_MAX_REQUESTER_CHARS]


def _user_property(properties: object, key: str) -> str | None:
    pairs = getattr(properties, "UserProperty", None)
    if not isinstance(pairs, list):
        return None
    for pair in pairs:
        if isinstance(pair, tuple) and len(pair) == 2 and pair[0] == key:  # noqa: PLR2004 - a pair
            return str(pair[1])[:_MAX_REQUESTER_CHARS]
    return None


def _is_under(topic: str, prefix: str) -> bool:
    rest = topic[len(prefix) :]
    return topic.startswith(prefix) and bool(rest) and not any(c in topic for c in "+#\x00")


def _dumps(document: object) -> bytes:
    return json.dumps(document, default=str, separators=(",", ":"), ensure_ascii=False).encode()


# The schema file.


def commands_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of every command's request and of the two kinds of answer."""
    defs: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    for name, model in COMMANDS.items():
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[model.__name__] = schema
        requests[name] = {"$ref": f"#/$defs/{model.__name__}"}
    for answer in (OkResponse, ErrorResponse):
        schema = answer.model_json_schema(ref_template="#/$defs/{model}", mode="serialization")
        defs.update(schema.pop("$defs", {}))
        defs[answer.__name__] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:vitalbridge:schema:commands:{SCHEMA_VERSION}",
        "title": "Vitalbridge remote commands",
        "description": "Requests on hubs/{hub_id}/cmd/{name}; answers on the Response Topic.",
        "requests": requests,
        "response": {"oneOf": [{"$ref": "#/$defs/OkResponse"}, {"$ref": "#/$defs/ErrorResponse"}]},
        "$defs": defs,
    }


def schema_text() -> str:
    """Return the JSON Schema as the committed file holds it (sorted keys, 2-space indent)."""
    return schema_file_text(commands_json_schema())


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    """Write the JSON Schema file."""
    path.write_text(schema_text(), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `--write-schema` regenerates the schema file, `--check-schema` compares."""
    return schema_cli(
        argv,
        module="gateway.commands",
        what="the command models",
        text=schema_text,
        default_path=SCHEMA_PATH,
        description=__doc__,
    )


if __name__ == "__main__":
    raise SystemExit(main())
