"""A running hub for end-to-end tests: the real Daemon, simulated devices, a real mosquitto.

The daemon runs in the test's event loop with its BLE backend chosen by configuration
(`simulators.bleak_backend`, over an in-process simulated radio), exactly as `vitalbridge run`
builds it; a subscriber plays the monitoring backend. Only the systemd notify socket is absent
(the notifier is disabled: there is no systemd here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiomqtt

from gateway.config import config_from_mapping
from gateway.daemon import Daemon, open_outbox
from gateway.systemd import Notifier
from simulators.bleak_backend import AdapterSettings, use_radio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from simulators.radio import Radio

HUB = "hub-e2e"
FAST_BLE: dict[str, Any] = {
    "backend": "simulators.bleak_backend",
    "connect_timeout_s": 3,
    "racp_timeout_s": 5,
    "backoff_base_s": 0.2,
    "backoff_cap_s": 1,
    "quiet_after_s": 1.0,
    "resync_interval_s": 60,
    "max_connections": 3,
}


def hub_config(
    state_dir: Path, broker_url: str, devices: list[dict[str, Any]], **overrides: Any
) -> dict[str, Any]:
    """Return a configuration mapping for a test hub (fast timings, the simulated backend).

    The time zone is the system's, as the simulated devices' clocks show the machine's local
    time (a household's devices and its hub share one wall clock).
    """
    ble = {**FAST_BLE, **overrides.pop("ble", {})}
    mqtt = {"broker_url": broker_url, "backoff_base_s": 0.1, "backoff_cap_s": 0.5}
    mqtt.update(overrides.pop("mqtt", {}))
    return {
        "hub_id": HUB,
        "state_dir": str(state_dir),
        "hub_clock": "trusted",
        "status_interval_s": 1,
        "mqtt": mqtt,
        "ble": ble,
        "devices": devices,
        **overrides,
    }


async def until(predicate: Callable[[], bool], timeout_s: float = 60) -> None:
    """Poll daemon state that has no event of its own (outbox depth, device state) until true."""
    async with asyncio.timeout(timeout_s):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.05)


def to_toml(config: dict[str, Any]) -> str:
    """Write a configuration mapping as TOML (scalars, tables, arrays of tables; enough here)."""
    lines: list[str] = []
    _table(lines, [], config)
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_value(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _table(lines: list[str], path: list[str], table: dict[str, Any], *, item: bool = False) -> None:
    # Inside an array-of-tables item (a device), maps such as patients are inline tables.
    nested = {k: v for k, v in table.items() if isinstance(v, dict) and not item}
    arrays = {
        k: v
        for k, v in table.items()
        if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)
    }
    for key, value in table.items():
        if key not in nested and key not in arrays:
            lines.append(f"{key} = {_value(value)}")
    for key, value in nested.items():
        lines.extend(["", f"[{'.'.join([*path, key])}]"])
        _table(lines, [*path, key], value)
    for key, entries in arrays.items():
        for entry in entries:
            lines.extend(["", f"[[{'.'.join([*path, key])}]]"])
            _table(lines, [*path, key], entry, item=True)


@dataclass
class Backend:
    """What the monitoring backend received, by topic family."""

    readings: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    device_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, device_id: str) -> list[dict[str, Any]]:
        """Return the readings of one device, in arrival order."""
        return [r for r in self.readings if r["device"]["id"] == device_id]

    async def wait_for(self, predicate: Callable[[Backend], bool], timeout_s: float = 60) -> None:
        """Wait until `predicate(self)` holds (bounded)."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()


async def _listen(client: aiomqtt.Client, backend: Backend) -> None:
    prefix = f"hubs/{HUB}/"
    async for message in client.messages:
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes) else b""
        document = json.loads(payload) if payload else {}
        if topic.startswith(prefix + "readings/"):
            backend.readings.append(document)
        elif topic == prefix + "status":
            backend.statuses.append(document)
        elif topic.startswith(prefix + "devices/"):
            backend.device_states[topic.rsplit("/", 1)[-1]] = document
        backend.changed.set()


@contextlib.asynccontextmanager
async def subscriber(host: str, port: int) -> AsyncIterator[Backend]:
    """Subscribe to everything the test hub publishes; yield what arrives."""
    backend = Backend()
    async with aiomqtt.Client(host, port, identifier="test-backend") as client:
        await client.subscribe(f"hubs/{HUB}/#", qos=1)
        listener = asyncio.create_task(_listen(client, backend), name="backend")
        try:
            yield backend
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


@contextlib.asynccontextmanager
async def running_hub(radio: Radio, config: dict[str, Any]) -> AsyncIterator[Daemon]:
    """Run the daemon over `radio` until the block ends; then stop it in order."""
    settings = config_from_mapping(config)
    async with (
        use_radio(radio, AdapterSettings(connect_timeout_s=2.0)),
        await open_outbox(settings) as outbox,
    ):
        daemon = Daemon(settings, outbox, notifier=Notifier(None))
        task = asyncio.create_task(daemon.run(), name="daemon")
        try:
            yield daemon
        finally:
            daemon.stop("test finished")
            async with asyncio.timeout(30):
                await task
