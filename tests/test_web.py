"""The pairing page's server without a browser: one-time codes, sessions, the JSON API, HTTP.

The server runs for real on a loopback port and is spoken to over a socket. The hub behind it is
either a stand-in recording the calls (`StandInHub`, for the HTTP contract) or `RegistryHub` over
a real `DeviceRegistry` in a temporary directory. tests/test_web_browser.py drives the page in
Chromium against the real daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ble.registry import ConfiguredDeviceError, DeviceRegistry
from gateway.config import DeviceConfig
from gateway.web import (
    CodeRejectedError,
    CodesLockedError,
    OneTimeCodes,
    PairingPage,
    RegistryHub,
    WebSettings,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

BPS = "00001810-0000-1000-8000-00805f9b34fb"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StandInHub:
    """Records what the page asks of the daemon; answers like `Daemon.devices()` does."""

    listed: list[dict[str, object]] = field(
        default_factory=lambda: [
            {
                "device_id": "cuff-1",
                "name": "BP-100",
                "address": "F0:00:00:00:00:01",
                "profile": "blood_pressure",
                "last_reading_at": "2026-11-23T08:00:00+00:00",
                "battery_level": 80,
                "configured": False,
                "connected": False,
                "users": ["patient-secret-1"],
            },
            {"id": "scale-1", "profile": "weight_scale", "configured": True, "users": None},
        ]
    )
    opened: list[tuple[float, str | None]] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)

    def devices(self) -> list[dict[str, object]]:
        return self.listed

    def open_pairing(self, minutes: float, profile: str | None) -> None:
        if profile == "toaster":
            raise ValueError("profile must be one of blood_pressure, ...")
        self.opened.append((minutes, profile))

    def pairing_state(self) -> dict[str, object]:
        return {"open": bool(self.opened), "remaining_s": 300, "profile": None, "found": []}

    def forget(self, device_id: str) -> bool:
        if device_id == "scale-1":
            raise ConfiguredDeviceError("device scale-1 is in the configuration file")
        if device_id != "cuff-1":
            return False
        self.forgotten.append(device_id)
        return True


# One-time codes


def test_a_code_has_six_digits_and_opens_one_session_only():
    codes = OneTimeCodes()
    code = codes.issue()
    assert len(code) == 6
    assert code.isdigit()
    codes.redeem(code)
    with pytest.raises(CodeRejectedError, match="ask for a new one"):
        codes.redeem(code)


def test_a_code_expires_after_its_time():
    clock = FakeClock()
    codes = OneTimeCodes(ttl_s=900, clock=clock)
    early, late = codes.issue(), codes.issue()
    clock.now += 899
    codes.redeem(early)
    clock.now += 1
    with pytest.raises(CodeRejectedError):
        codes.redeem(late)


def test_five_wrong_codes_lock_entry_even_for_the_right_code_until_the_lockout_ends():
    clock = FakeClock()
    codes = OneTimeCodes(ttl_s=900, max_failures=5, lockout_s=300, clock=clock)
    code = codes.issue()
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        with pytest.raises(CodeRejectedError):
            codes.redeem(wrong)
    with pytest.raises(CodesLockedError) as locked:
        codes.redeem(wrong)
    assert locked.value.retry_after_s == 300
    clock.now += 299
    with pytest.raises(CodesLockedError):
        codes.redeem(code)
    clock.now += 1
    codes.redeem(code)


def test_a_right_code_resets_the_count_of_wrong_ones():
    codes = OneTimeCodes(max_failures=2)
    first, second = codes.issue(), codes.issue()
    wrong = next(c for c in ("000000", "111111", "222222") if c not in {first, second})
    with pytest.raises(CodeRejectedError):
        codes.redeem(wrong)
    codes.redeem(first)
    with pytest.raises(CodeRejectedError):
        codes.redeem(wrong)
    codes.redeem(second)


@given(st.text(max_size=12))
def test_nothing_but_an_issued_code_is_accepted(candidate):
    codes = OneTimeCodes(max_failures=10**6)
    code = codes.issue()
    if candidate == code:
        codes.redeem(candidate)
    else:
        with pytest.raises(CodeRejectedError):
            codes.redeem(candidate)


# HTTP


@dataclass
class Answer:
    """One HTTP response as the client saw it."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def http(
    port: int,
    method: str,
    path: str,
    body: object = None,
    *,
    cookie: str | None = None,
    content_type: str = "application/json",
    raw: bytes | None = None,
) -> Answer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: hub.local", f"Content-Length: {len(payload)}"]
    if body is not None:
        lines.append(f"Content-Type: {content_type}")
    if cookie is not None:
        lines.append(f"Cookie: theme=dark; {cookie}")
    writer.write(raw if raw is not None else "\r\n".join(lines).encode() + b"\r\n\r\n" + payload)
    await writer.drain()
    async with asyncio.timeout(10):
        data = await reader.read()
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split(" ")[1]), headers, rest)


@contextlib.asynccontextmanager
async def serving(hub, **settings: Any) -> AsyncIterator[PairingPage]:
    page = PairingPage(WebSettings(enabled=True, bind="127.0.0.1", port=0, **settings), hub)
    task = asyncio.create_task(page.run(), name="web")
    try:
        async with asyncio.timeout(10):
            await page.ready.wait()
        yield page
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def sign_in(page: PairingPage) -> str:
    assert page.port is not None
    answer = await http(page.port, "POST", "/api/session", {"code": page.issue_code()})
    assert answer.status == 200
    return answer.headers["set-cookie"].split(";", 1)[0]


@pytest.mark.asyncio
async def test_the_page_and_its_assets_are_served_with_a_strict_content_security_policy():
    async with serving(StandInHub()) as page:
        assert page.port is not None
        index = await http(page.port, "GET", "/")
        style = await http(page.port, "GET", "/style.css")
        script = await http(page.port, "GET", "/app.js")
        missing = await http(page.port, "GET", "/secrets.txt")
    assert index.status == 200
    assert index.headers["content-type"].startswith("text/html")
    assert b'<html lang="en">' in index.body
    assert b"Add a device" in index.body
    # No external assets and no inline handlers: the policy would block them anyway.
    assert b"http://" not in index.body
    assert b"https://" not in index.body
    assert b" onclick=" not in index.body
    for answer in (index, style, script):
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert style.headers["content-type"].startswith("text/css")
    assert script.headers["content-type"].startswith("text/javascript")
    assert missing.status == 404


@pytest.mark.asyncio
async def test_the_api_answers_401_without_a_session():
    hub = StandInHub()
    async with serving(hub) as page:
        assert page.port is not None
        answers = [
            await http(page.port, "GET", "/api/devices"),
            await http(page.port, "GET", "/api/pairing"),
            await http(page.port, "POST", "/api/pairing", {}),
            await http(page.port, "POST", "/api/devices/cuff-1/remove", {}),
            await http(page.port, "GET", "/api/devices", cookie="vb_session=made-up"),
        ]
        session = await http(page.port, "GET", "/api/session")
    assert [a.status for a in answers] == [401] * 5
    assert session.json() == {"signed_in": False}
    assert hub.opened == []
    assert hub.forgotten == []


@pytest.mark.asyncio
async def test_the_right_code_sets_an_httponly_strict_cookie_that_opens_the_api():
    async with serving(StandInHub(), session_ttl_s=600) as page:
        assert page.port is not None
        wrong = await http(page.port, "POST", "/api/session", {"code": "12345x"})
        cookie = await sign_in(page)
        answer = await http(page.port, "GET", "/api/session", cookie=cookie)
        devices = await http(page.port, "GET", "/api/devices", cookie=cookie)
        raw_cookie = await http(page.port, "POST", "/api/session", {"code": page.issue_code()})
    assert wrong.status == 400
    attributes = raw_cookie.headers["set-cookie"]
    assert "HttpOnly" in attributes
    assert "SameSite=Strict" in attributes
    assert "Max-Age=600" in attributes
    assert answer.json() == {"signed_in": True}
    assert devices.status == 200
    assert devices.headers["cache-control"] == "no-store"
    listed = devices.json()["devices"]
    assert [d["id"] for d in listed] == ["cuff-1", "scale-1"]
    assert listed[0]["battery_level"] == 80
    assert listed[0]["last_reading_at"] == "2026-11-23T08:00:00+00:00"
    # Never a patient reference (nor the radio address) on the page.
    assert b"patient-secret-1" not in devices.body
    assert b"F0:00:00:00:00:01" not in devices.body
    assert all("users" not in d for d in listed)


@pytest.mark.asyncio
async def test_a_used_or_wrong_code_is_refused_and_five_wrong_ones_lock_entry():
    async with serving(StandInHub(), max_failures=5, lockout_s=120) as page:
        assert page.port is not None
        code = page.issue_code()
        first = await http(page.port, "POST", "/api/session", {"code": code})
        again = await http(page.port, "POST", "/api/session", {"code": code})
        wrong = "000000" if code != "000000" else "111111"
        tries = [await http(page.port, "POST", "/api/session", {"code": wrong}) for _ in range(4)]
        fresh = page.issue_code()
        locked = await http(page.port, "POST", "/api/session", {"code": fresh})
    assert first.status == 200
    assert again.status == 401
    assert "new one" in again.json()["error"]
    # The used code counts as the first wrong one.
    assert [t.status for t in tries] == [401, 401, 401, 429]
    assert tries[-1].headers["retry-after"] == "120"
    assert locked.status == 429
    assert "set-cookie" not in locked.headers


@pytest.mark.asyncio
async def test_add_a_device_opens_the_pairing_window_for_the_configured_minutes():
    hub = StandInHub()
    async with serving(hub, pairing_minutes=3) as page:
        assert page.port is not None
        cookie = await sign_in(page)
        opened = await http(page.port, "POST", "/api/pairing", {}, cookie=cookie)
        for_cuffs = await http(
            page.port, "POST", "/api/pairing", {"profile": "blood_pressure"}, cookie=cookie
        )
        bad = await http(page.port, "POST", "/api/pairing", {"profile": "toaster"}, cookie=cookie)
        state = await http(page.port, "GET", "/api/pairing", cookie=cookie)
    assert opened.status == 202
    assert for_cuffs.status == 202
    assert bad.status == 400
    assert hub.opened == [(3, None), (3, "blood_pressure")]
    assert state.json()["open"] is True


@pytest.mark.asyncio
async def test_remove_forgets_a_paired_device_and_refuses_a_configured_or_unknown_one():
    hub = StandInHub()
    async with serving(hub) as page:
        assert page.port is not None
        cookie = await sign_in(page)
        removed = await http(page.port, "POST", "/api/devices/cuff-1/remove", {}, cookie=cookie)
        configured = await http(page.port, "POST", "/api/devices/scale-1/remove", {}, cookie=cookie)
        unknown = await http(page.port, "POST", "/api/devices/nope/remove", {}, cookie=cookie)
        by_get = await http(page.port, "GET", "/api/devices/cuff-1/remove", cookie=cookie)
    assert removed.status == 200
    assert removed.json() == {"removed": "cuff-1"}
    assert configured.status == 409
    assert "configuration file" in configured.json()["error"]
    assert unknown.status == 404
    assert by_get.status == 405
    assert hub.forgotten == ["cuff-1"]


@pytest.mark.asyncio
async def test_changes_need_a_json_body_so_a_plain_form_from_another_site_cannot_send_them():
    hub = StandInHub()
    async with serving(hub) as page:
        assert page.port is not None
        cookie = await sign_in(page)
        form = await http(
            page.port,
            "POST",
            "/api/pairing",
            {},
            cookie=cookie,
            content_type="application/x-www-form-urlencoded",
        )
        not_json = await http(
            page.port,
            "POST",
            "/api/session",
            raw=b"POST /api/session HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 3\r\n\r\nabc",
        )
    assert form.status == 415
    assert not_json.status == 400
    assert hub.opened == []


@pytest.mark.asyncio
async def test_malformed_or_oversized_requests_get_an_error_answer_and_the_server_keeps_serving():
    async with serving(StandInHub()) as page:
        assert page.port is not None
        garbage = await http(page.port, "GET", "/", raw=b"nonsense\r\n\r\n")
        huge_body = await http(
            page.port,
            "POST",
            "/api/session",
            raw=b"POST /api/session HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 999999\r\n\r\n",
        )
        huge_head = await http(
            page.port, "GET", "/", raw=b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
        )
        after = await http(page.port, "GET", "/")
    assert garbage.status == 400
    assert huge_body.status == 413
    assert huge_head.status == 413
    assert after.status == 200


@pytest.mark.asyncio
async def test_a_session_ends_after_its_time():
    clock = FakeClock()
    page = PairingPage(
        WebSettings(enabled=True, bind="127.0.0.1", port=0, session_ttl_s=60),
        StandInHub(),
        clock=clock,
    )
    task = asyncio.create_task(page.run(), name="web")
    try:
        await page.ready.wait()
        cookie = await sign_in(page)
        assert page.port is not None
        before = await http(page.port, "GET", "/api/devices", cookie=cookie)
        clock.now += 60
        after = await http(page.port, "GET", "/api/devices", cookie=cookie)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert before.status == 200
    assert after.status == 401


def test_the_web_settings_are_off_by_default_and_refuse_unknown_fields():
    settings = WebSettings()
    assert settings.enabled is False
    assert settings.port == 8080
    with pytest.raises(ValueError, match="extra"):
        WebSettings.model_validate({"enabled": True, "prot": 80})


# RegistryHub over a real registry


def test_the_registry_hub_reports_the_devices_a_window_accepted(tmp_path):
    configured = DeviceConfig(
        id="scale", address="AA:BB:CC:00:00:01", profile="weight_scale", patient="p-1"
    )
    registry = DeviceRegistry.load([configured], tmp_path)
    hub = RegistryHub(
        registry, lambda: [{"id": d.id, "profile": d.profile.value} for d in registry.devices()]
    )
    assert hub.pairing_state() == {"open": False, "remaining_s": None, "profile": None, "found": []}
    hub.open_pairing(2, "blood_pressure")
    state = hub.pairing_state()
    assert state["open"] is True
    assert 0 < state["remaining_s"] <= 120
    registry.consider("F0:00:00:00:AA:01", [BPS], "BP-100", -50)
    found = hub.pairing_state()["found"]
    assert [d["profile"] for d in found] == ["blood_pressure"]
    (device_id,) = [d["id"] for d in found]
    assert hub.forget(device_id) is True
    assert hub.forget(device_id) is False
    with pytest.raises(ConfiguredDeviceError):
        hub.forget("scale")
    with pytest.raises(ValueError, match="toaster"):
        hub.open_pairing(2, "toaster")
