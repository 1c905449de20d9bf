"""A hub for simulator tests: a central Bumble device on the same radio, using Bumble's GATT client.

The hub subscribes with one queue per characteristic, so a test waits on exactly what it expects
(`await hub.next(0x2A35)`), always inside the test's `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

from bumble.device import Peer
from bumble.pairing import PairingConfig, PairingDelegate

from device_profiles import decode
from simulators.devices import ManualClock, SimulatorConfig
from simulators.devices._gatt import short_uuid, uuid16
from simulators.radio import Radio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from bumble.device import Connection
    from bumble.gatt_client import CharacteristicProxy

    from device_profiles import Characteristic
    from simulators.devices import SimulatedDevice

HUB_ADDRESS = "F0:F0:F0:F0:F0:00"
DEVICE_ADDRESS = "F0:00:00:00:00:01"
T0 = dt.datetime(2024, 5, 1, 8, 0, 0)  # noqa: DTZ001 - device clocks keep naive local time


class HubDelegate(PairingDelegate):
    """The hub's side of pairing: types in the passkey the device shows, or needs none."""

    def __init__(self, passkey: Callable[[], Awaitable[int]] | None) -> None:
        io = (
            PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY
            if passkey is not None
            else PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT
        )
        super().__init__(io)
        self._passkey = passkey

    async def get_number(self) -> int | None:
        if self._passkey is None:
            return 0
        return await self._passkey()


class Hub:
    """A central on the radio: connect, discover, read, subscribe and write, all decoded."""

    def __init__(self, radio: Radio, address: str = HUB_ADDRESS) -> None:
        self.device = radio.device("hub", address)
        self.connection: Connection | None = None
        self.peer: Peer | None = None
        self.queues: dict[int, asyncio.Queue[bytes]] = {}
        self._lost: asyncio.Future[None] | None = None

    async def start(self) -> None:
        await self.device.power_on()

    def use_pairing(self, passkey: Callable[[], Awaitable[int]] | None = None) -> None:
        self.device.pairing_config_factory = lambda _connection: PairingConfig(
            sc=True, mitm=passkey is not None, bonding=True, delegate=HubDelegate(passkey)
        )

    async def connect(self, sim: SimulatedDevice) -> Peer:
        await sim.wait_until_advertising()
        connection = await self.device.connect(DEVICE_ADDRESS)
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection.on(
            connection.EVENT_DISCONNECTION,
            lambda _reason: lost.done() or lost.set_result(None),
        )
        self.connection, self._lost = connection, lost
        self.peer = Peer(connection)
        await self.peer.discover_services()
        for service in self.peer.services:
            await service.discover_characteristics()
        self.queues = {}
        return self.peer

    async def disconnected(self) -> None:
        assert self._lost is not None
        await self._lost

    async def disconnect(self) -> None:
        assert self.connection is not None
        await self.connection.disconnect()
        await self.disconnected()

    def service_uuids(self) -> set[int]:
        assert self.peer is not None
        return {short_uuid(service.uuid) for service in self.peer.services}

    def characteristic(self, uuid: int) -> CharacteristicProxy[bytes]:
        assert self.peer is not None
        found = self.peer.get_characteristics_by_uuid(uuid16(uuid))
        assert found, f"no characteristic 0x{uuid:04X}"
        return found[0]

    async def read(self, uuid: int) -> Any:
        return decode(uuid, await self.characteristic(uuid).read_value())

    async def subscribe(self, uuid: int, *, indicate: bool = False) -> None:
        queue = self.queues.setdefault(uuid, asyncio.Queue())
        await self.characteristic(uuid).subscribe(queue.put_nowait, prefer_notify=not indicate)

    async def write(self, uuid: int, value: Characteristic | bytes) -> None:
        data = value if isinstance(value, bytes) else value.encode()
        await self.characteristic(uuid).write_value(data, with_response=True)

    async def next_raw(self, uuid: int) -> bytes:
        return await self.queues[uuid].get()

    async def next(self, uuid: int) -> Any:
        return decode(uuid, await self.next_raw(uuid))

    def pending(self, uuid: int) -> int:
        return self.queues[uuid].qsize()


@contextlib.asynccontextmanager
async def running(
    device_type: type[SimulatedDevice],
    config: SimulatorConfig | None = None,
    *,
    clock: Any = None,
    radio: Radio | None = None,
) -> AsyncIterator[tuple[SimulatedDevice, Hub]]:
    """Run a simulator and a powered hub on one radio; stop both and check for task errors."""
    radio = radio or Radio()
    sim = device_type.on_radio(radio, DEVICE_ADDRESS, config, clock=clock or ManualClock(T0))
    hub = Hub(radio)
    await sim.start()
    await hub.start()
    try:
        yield sim, hub
    finally:
        await sim.stop()
        await hub.device.power_off()
    assert sim.task_errors == []


class GatedClock(ManualClock):
    """A manual clock whose sleeps wait for the test to open the gate (to hold a transfer)."""

    def __init__(self, start: dt.datetime) -> None:
        super().__init__(start)
        self.gate = asyncio.Event()
        self.sleeping = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        await self.gate.wait()
        await super().sleep(seconds)
