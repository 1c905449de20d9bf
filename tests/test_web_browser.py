"""The pairing page in a real headless Chromium, against the real daemon and a simulated cuff.

The browser is the distribution's `chromium` (installed by `make system-deps`), driven by
Playwright through its executable path: Playwright's own browser download is never used. The
accessibility audit is axe-core, whose script ships inside the axe-playwright-python wheel, so the
test needs no network, as the page itself needs none.

Set VITALBRIDGE_SCREENSHOTS=1 to write the screenshots under docs/img/ used by
docs/pairing-page.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, async_playwright, expect

from gateway.ble.registry import DeviceRegistry
from gateway.web import PairingPage, RegistryHub, WebSettings
from simulators.devices import BloodPressureCuff, SimulatorConfig
from simulators.radio import Radio
from tests.hub_harness import hub_config, running_hub, until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Browser

TIMEOUT_S = 120
WAIT_MS = 60_000
PHONE = {"width": 375, "height": 812}
CUFF = "F0:00:00:00:B7:01"
SCREENSHOTS = os.environ.get("VITALBRIDGE_SCREENSHOTS") == "1"
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "img"


def chromium_path() -> str:
    """Return the distribution's chromium (`make system-deps` installs it)."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found is None:
        pytest.fail("chromium is not installed: run `make system-deps` (apt-get install chromium)")
    return found


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.asynccontextmanager
async def serving(page_server: PairingPage) -> AsyncIterator[str]:
    """Run the pairing page's server until the block ends; yield its address."""
    task = asyncio.create_task(page_server.run(), name="web")
    try:
        async with asyncio.timeout(10):
            await page_server.ready.wait()
        yield f"http://127.0.0.1:{page_server.port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def settings() -> WebSettings:
    return WebSettings(enabled=True, bind="127.0.0.1", port=0)


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core (WCAG 2.x A and AA rules) and return the serious and critical violations."""
    results = await Axe().run(
        page,
        options={
            "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa", "wcag22aa"]},
            "resultTypes": ["violations"],
        },
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results.response["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


async def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        IMAGES.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(IMAGES / name), full_page=True)


async def fits_the_width(page: Page) -> bool:
    return bool(
        await page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


@pytest.mark.asyncio
async def test_the_one_time_code_is_enforced_and_the_form_works_by_keyboard(
    browser: Browser, tmp_path: Path
):
    registry = DeviceRegistry.load([], tmp_path)
    server = PairingPage(settings(), RegistryHub(registry, list))
    async with asyncio.timeout(TIMEOUT_S), serving(server) as url:
        context = await browser.new_context(viewport=PHONE)
        page = await context.new_page()
        # Without a session the API refuses, whatever the page does.
        refused = await page.request.get(f"{url}/api/devices")
        assert refused.status == 401
        await page.goto(url)
        code = page.get_by_label("Code (6 numbers)")
        await expect(code).to_be_focused()
        assert await page.evaluate("document.documentElement.lang") == "en"
        base = await page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert base >= 20
        assert await fits_the_width(page)
        assert await serious_violations(page) == []
        await screenshot(page, "pairing-code-phone.png")

        right = server.issue_code()
        wrong = "000000" if right != "000000" else "111111"
        await page.keyboard.type(wrong)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("alert")).to_contain_text("not right")
        await expect(page.get_by_role("button", name="Add a device")).to_be_hidden()
        assert await serious_violations(page) == []
        still_refused = await page.request.get(f"{url}/api/devices")
        assert still_refused.status == 401

        await code.fill(right)
        await page.keyboard.press("Enter")
        add = page.get_by_role("button", name="Add a device")
        await expect(add).to_be_focused()
        await expect(page.get_by_text("No devices yet")).to_be_visible()
        cookie = next(c for c in await context.cookies() if c["name"] == "vb_session")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert await serious_violations(page) == []
        # The code was used up: a second browser cannot sign in with it.
        other = await browser.new_context()
        reused = await other.request.post(f"{url}/api/session", data={"code": right})
        assert reused.status == 401
        await other.close()
        await context.close()


@pytest.mark.asyncio
async def test_pairing_a_simulated_cuff_from_the_page_end_to_end(
    browser: Browser, mosquitto, tmp_path: Path
):
    broker = mosquitto()
    radio = Radio(seed=31)
    cuff = BloodPressureCuff.on_radio(radio, CUFF, SimulatorConfig(seed=3))
    await cuff.start()
    await cuff.measure()
    config = hub_config(tmp_path / "state", broker.url, [])
    try:
        async with asyncio.timeout(TIMEOUT_S), running_hub(radio, config) as daemon:
            # Seen but not provisioned: reported, never connected, until the window opens.
            await until(lambda: bool(daemon.registry.unprovisioned()))
            assert daemon.registry.devices() == ()
            server = PairingPage(settings(), RegistryHub(daemon.registry, daemon.devices))
            async with serving(server) as url:
                context = await browser.new_context(viewport=PHONE)
                page = await context.new_page()
                await page.goto(url)
                await page.get_by_label("Code (6 numbers)").fill(server.issue_code())
                await page.get_by_role("button", name="Continue").click()

                await page.get_by_role("button", name="Add a device").click()
                status = page.locator("#pairing-status")
                assert await status.get_attribute("aria-live") == "polite"
                await expect(status).to_contain_text(
                    "Added: Blood pressure monitor", timeout=WAIT_MS
                )
                devices = page.get_by_role("list", name="Your devices")
                item = devices.get_by_role("listitem")
                await expect(item).to_have_count(1)
                await expect(item).to_contain_text("Blood pressure monitor")
                # The daemon connected it and stored its reading: the page shows when, and the
                # battery level the cuff reported.
                await expect(item).to_contain_text("Last reading:", timeout=WAIT_MS)
                await expect(item).to_contain_text("Battery:")
                paired = daemon.registry.paired_devices()
                assert [d.address for d in paired] == [CUFF]
                assert await fits_the_width(page)
                assert await serious_violations(page) == []
                await screenshot(page, "pairing-added-phone.png")

                # Removing it: the daemon forgets it (the cuff stops advertising first, or the
                # still-open window would take it straight back).
                await cuff.stop()
                daemon.registry.close_pairing_window()
                remove = item.get_by_role("button", name="Remove this device")
                await remove.focus()
                await page.keyboard.press("Enter")
                keep = item.get_by_role("button", name="No, keep it")
                await expect(keep).to_be_focused()
                await screenshot(page, "pairing-remove-phone.png")
                assert await serious_violations(page) == []
                await item.get_by_role("button", name="Yes, remove it").click()
                await expect(page.locator("#devices-message")).to_contain_text("has been removed")
                await expect(devices.get_by_role("listitem")).to_have_count(0)
                assert daemon.registry.paired_devices() == ()

                desktop = await browser.new_context(viewport={"width": 1024, "height": 768})
                wide = await desktop.new_page()
                await wide.goto(url)
                await expect(wide.get_by_label("Code (6 numbers)")).to_be_visible()
                await screenshot(wide, "pairing-code-desktop.png")
                await desktop.close()
                await context.close()
    finally:
        await cuff.stop()
