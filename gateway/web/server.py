"""The local pairing page: a small HTTP server on the hub's network for patients and support staff.

One HTML page, one style sheet and one script (all shipped in the package: the hub may be offline)
and a JSON API behind a one-time code. A code has 6 digits, lasts 15 minutes and opens one
session; five wrong codes in a row lock code entry for a few minutes. The session cookie is
HttpOnly and SameSite=Strict, and every change is a JSON POST, so another site cannot drive it.

The server is standard library only (`asyncio.start_server` and a minimal HTTP/1.1 parser): one
request per connection, small bounded requests, a strict Content-Security-Policy. It reaches the
daemon through `HubControl`, a few calls the daemon's adapter (`RegistryHub`) provides.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Final, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import VitalbridgeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.ble.registry import DeviceRegistry

__all__ = [
    "DEVICE_FIELDS",
    "CodeRejectedError",
    "CodesLockedError",
    "HubControl",
    "OneTimeCodes",
    "PairingPage",
    "RegistryHub",
    "WebSettings",
    "public_device",
]

_log = structlog.get_logger("gateway.web")

CODE_DIGITS: Final = 6
MAX_HEADER_BYTES: Final = 8 * 1024
MAX_BODY_BYTES: Final = 4 * 1024
REQUEST_TIMEOUT_S: Final = 10.0
COOKIE_NAME: Final = "vb_session"
DEVICE_FIELDS: Final = (
    "id",
    "name",
    "profile",
    "last_reading_at",
    "last_seen",
    "battery_level",
    "connected",
    "configured",
)
"""What the page may show of a device: never its patient references (`users`)."""

_STATIC: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
}
_REMOVE: Final = re.compile(r"^/api/devices/([A-Za-z0-9_.:-]{1,80})/remove$")
_REASONS: Final = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
_SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


class WebSettings(BaseModel):
    """The `[web]` section: the pairing page (off unless provisioning turns it on)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    """Serve the pairing page (off by default in service mode)."""
    bind: str = "0.0.0.0"  # noqa: S104 - the page is for phones on the hub's own network
    """Address to listen on (the hub's network; 127.0.0.1 for the hub itself only)."""
    port: int = Field(default=8080, ge=0, le=65535)
    """TCP port (0: any free port, for tests)."""
    pairing_minutes: float = Field(default=5, gt=0, le=60)
    """How long "Add a device" keeps the pairing window open."""
    code_ttl_s: float = Field(default=15 * 60, gt=0)
    """How long a one-time code stays valid."""
    session_ttl_s: float = Field(default=60 * 60, gt=0)
    """How long a session opened with a code lasts."""
    max_failures: int = Field(default=5, ge=1)
    """Wrong codes in a row before code entry is locked."""
    lockout_s: float = Field(default=5 * 60, gt=0)
    """How long code entry stays locked after too many wrong codes."""


class HubControl(Protocol):
    """What the pairing page needs from the daemon."""

    def devices(self) -> list[dict[str, object]]:
        """Return the provisioned devices, as `Daemon.devices()` does."""
        ...

    def open_pairing(self, minutes: float, profile: str | None) -> None:
        """Open the pairing window for `minutes` (for devices of `profile`, if given)."""
        ...

    def pairing_state(self) -> dict[str, object]:
        """Return the window's state: `open`, `remaining_s`, `profile`, `found` (devices)."""
        ...

    def forget(self, device_id: str) -> bool:
        """Forget a paired device; False if no paired device has the id."""
        ...


class CodeRejectedError(VitalbridgeError):
    """The code entered is wrong, used or expired: ask for a new code on the hub or the CLI."""


class CodesLockedError(VitalbridgeError):
    """Too many wrong codes: code entry is locked for `retry_after_s` seconds."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            f"too many wrong codes: wait {round(retry_after_s)} seconds, then try a new code"
        )
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class OneTimeCodes:
    """The one-time codes that open a session: issued, checked in constant time, used once."""

    ttl_s: float = 15 * 60
    max_failures: int = 5
    lockout_s: float = 5 * 60
    clock: Callable[[], float] = time.monotonic
    _codes: dict[str, float] = field(default_factory=dict)
    _failures: int = 0
    _locked_until: float | None = None

    def issue(self) -> str:
        """Return a new 6-digit code, valid for `ttl_s` seconds and for one session."""
        self._expire()
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        self._codes[code] = self.clock() + self.ttl_s
        _log.info("web_code_issued", valid_s=self.ttl_s)
        return code

    def redeem(self, candidate: str) -> None:
        """Use up `candidate` if it is a valid code; raise CodeRejectedError or CodesLockedError."""
        now = self.clock()
        if self._locked_until is not None:
            if now < self._locked_until:
                raise CodesLockedError(self._locked_until - now)
            self._locked_until = None
            self._failures = 0
        self._expire()
        # Compare against every live code, always all of them, so timing reveals nothing.
        matched: str | None = None
        given = candidate.encode()
        for code in list(self._codes):
            if hmac.compare_digest(code.encode(), given):
                matched = code
        if matched is not None:
            del self._codes[matched]
            self._failures = 0
            return
        self._failures += 1
        if self._failures >= self.max_failures:
            self._locked_until = now + self.lockout_s
            _log.warning("web_codes_locked", lockout_s=self.lockout_s)
            raise CodesLockedError(self.lockout_s)
        _log.warning("web_code_rejected", failures=self._failures)
        raise CodeRejectedError(
            "that code is not right or has expired: check the code, or ask for a new one"
        )

    def _expire(self) -> None:
        now = self.clock()
        for code, deadline in list(self._codes.items()):
            if now >= deadline:
                del self._codes[code]


def public_device(device: dict[str, object]) -> dict[str, object]:
    """Return what the page may show of one device (no patient references, no address)."""
    shown = {key: device.get(key) for key in DEVICE_FIELDS}
    shown["id"] = _device_id(device)
    return shown


def _device_id(device: dict[str, object]) -> object:
    # `Daemon.devices()` documents name the id `device_id` (the device state's own field).
    return device.get("id", device.get("device_id"))


@dataclass(slots=True)
class RegistryHub:
    """`HubControl` over the daemon's device registry and its `devices()` document."""

    registry: DeviceRegistry
    list_devices: Callable[[], list[dict[str, object]]]
    _before: frozenset[str] | None = None
    """The device ids provisioned when the window was last opened (None: never opened)."""
    _profile: str | None = None

    def devices(self) -> list[dict[str, object]]:
        """Return the provisioned devices (the daemon's document)."""
        return self.list_devices()

    def open_pairing(self, minutes: float, profile: str | None) -> None:
        """Open the registry's pairing window; remember who was paired before, to report news."""
        from gateway.config import DeviceProfile  # noqa: PLC0415 - config imports are heavy

        chosen = None if profile is None else DeviceProfile(profile)
        self._before = frozenset(d.id for d in self.registry.devices())
        self._profile = profile
        self.registry.open_pairing_window(minutes * 60, chosen)

    def pairing_state(self) -> dict[str, object]:
        """Return the window's state and the devices accepted since it was opened."""
        remaining = self.registry.pairing_window_remaining_s
        before = self._before
        found = (
            []
            if before is None
            else [public_device(d) for d in self.list_devices() if _device_id(d) not in before]
        )
        return {
            "open": remaining is not None,
            "remaining_s": None if remaining is None else round(remaining),
            "profile": self._profile,
            "found": found,
        }

    def forget(self, device_id: str) -> bool:
        """Forget a paired device (ConfiguredDeviceError for one from the configuration file)."""
        return self.registry.forget(device_id)


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


class _BadRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PairingPage:
    """The pairing page's HTTP server; `run()` serves until cancelled."""

    def __init__(
        self,
        settings: WebSettings,
        hub: HubControl,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.codes = OneTimeCodes(
            ttl_s=settings.code_ttl_s,
            max_failures=settings.max_failures,
            lockout_s=settings.lockout_s,
            clock=clock,
        )
        self._clock = clock
        self._sessions: dict[str, float] = {}
        self._static = {path: (_read_static(name), kind) for path, (name, kind) in _STATIC.items()}
        self.port: int | None = None
        """The port bound, once `ready` is set (useful with port 0)."""
        self.ready = asyncio.Event()

    def issue_code(self) -> str:
        """Return a new one-time code for the hub's label screen or `vitalbridge web code`."""
        return self.codes.issue()

    async def run(self) -> None:
        """Serve on the configured address until cancelled."""
        server = await asyncio.start_server(
            self._serve, self.settings.bind, self.settings.port, limit=MAX_HEADER_BYTES
        )
        sockets = server.sockets
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.settings.port
        _log.info("web_started", bind=self.settings.bind, port=self.port)
        self.ready.set()
        async with server:
            await server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    request = await _read_request(reader)
                response = self.respond(request)
            except _BadRequestError as exc:
                response = _json(exc.status, {"error": str(exc)})
            writer.write(_encode(response))
            await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
            _log.debug("web_client_lost", error=type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def respond(self, request: _Request) -> _Response:
        """Answer one parsed request (public for tests that need no socket)."""
        path = request.path.split("?", 1)[0]
        static = self._static.get(path)
        if static is not None:
            if request.method != "GET":
                return _json(405, {"error": "only GET is allowed here"})
            body, kind = static
            return _Response(200, body, kind, [("Cache-Control", "no-cache")])
        if not path.startswith("/api/"):
            return _json(404, {"error": "no such page: open / instead"})
        if request.method == "POST" and not request.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return _json(415, {"error": "send JSON (Content-Type: application/json)"})
        if path == "/api/session":
            return self._session(request)
        if not self._signed_in(request):
            return _json(401, {"error": "enter the code from the hub first"})
        return self._api(request, path)

    def _session(self, request: _Request) -> _Response:
        if request.method == "GET":
            return _json(200, {"signed_in": self._signed_in(request)})
        if request.method != "POST":
            return _json(405, {"error": "use GET or POST"})
        code = _json_body(request).get("code")
        if not isinstance(code, str) or not code.strip().isdigit():
            return _json(400, {"error": "enter the 6-digit code"})
        try:
            self.codes.redeem(code.strip())
        except CodesLockedError as exc:
            return _json(
                429,
                {"error": str(exc), "retry_after_s": round(exc.retry_after_s)},
                [("Retry-After", str(round(exc.retry_after_s)))],
            )
        except CodeRejectedError as exc:
            return _json(401, {"error": str(exc)})
        token = secrets.token_urlsafe(32)
        self._expire_sessions()
        self._sessions[token] = self._clock() + self.settings.session_ttl_s
        _log.info("web_session_opened")
        cookie = (
            f"{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/; "
            f"Max-Age={round(self.settings.session_ttl_s)}"
        )
        return _json(200, {"signed_in": True}, [("Set-Cookie", cookie)])

    def _api(self, request: _Request, path: str) -> _Response:
        if path == "/api/devices" and request.method == "GET":
            return _json(200, {"devices": [public_device(d) for d in self.hub.devices()]})
        if path == "/api/pairing" and request.method == "GET":
            return _json(200, self.hub.pairing_state())
        if path == "/api/pairing" and request.method == "POST":
            profile = _json_body(request).get("profile")
            if profile is not None and not isinstance(profile, str):
                return _json(400, {"error": "profile must be a device type name"})
            try:
                self.hub.open_pairing(self.settings.pairing_minutes, profile)
            except ValueError as exc:
                return _json(400, {"error": str(exc)})
            return _json(202, self.hub.pairing_state())
        match = _REMOVE.match(path)
        if match is not None and request.method == "POST":
            try:
                forgotten = self.hub.forget(match.group(1))
            except VitalbridgeError as exc:
                return _json(409, {"error": str(exc)})
            if not forgotten:
                return _json(404, {"error": "no paired device has that id: reload the page"})
            return _json(200, {"removed": match.group(1)})
        if path in {"/api/devices", "/api/pairing"} or match is not None:
            return _json(405, {"error": "method not allowed here"})
        return _json(404, {"error": "no such API path"})

    def _signed_in(self, request: _Request) -> bool:
        token = _cookie(request.headers.get("cookie", ""), COOKIE_NAME)
        if token is None:
            return False
        self._expire_sessions()
        # Constant-time: a session token must not be guessable from response timing.
        return any(hmac.compare_digest(token, known) for known in list(self._sessions))

    def _expire_sessions(self) -> None:
        now = self._clock()
        for token, deadline in list(self._sessions.items()):
            if now >= deadline:
                del self._sessions[token]


def _read_static(name: str) -> bytes:
    return resources.files("gateway.web").joinpath("static", name).read_bytes()


async def _read_request(reader: asyncio.StreamReader) -> _Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _BadRequestError(413, "request headers too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):  # noqa: PLR2004 - METHOD PATH VERSION
        raise _BadRequestError(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequestError(400, "malformed header")
        headers[name.strip().lower()] = value.strip()
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise _BadRequestError(400, "bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise _BadRequestError(413, "request body too large")
    body = await reader.readexactly(length) if length else b""
    return _Request(parts[0].upper(), parts[1], headers, body)


def _json_body(request: _Request) -> dict[str, object]:
    if not request.body:
        return {}
    try:
        value = json.loads(request.body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _BadRequestError(400, "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise _BadRequestError(400, "send a JSON object")
    return value


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def _json(
    status: int, document: dict[str, object], headers: list[tuple[str, str]] | None = None
) -> _Response:
    body = json.dumps(document, default=str).encode()
    return _Response(
        status, body, "application/json", [("Cache-Control", "no-store"), *(headers or [])]
    )


def _encode(response: _Response) -> bytes:
    lines = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in (*_SECURITY_HEADERS, *response.headers)),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body
