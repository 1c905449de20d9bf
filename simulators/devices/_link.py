"""The air between a simulated device and its hub: the link, and how values are sent over it.

`Transmitter` is the one way a device sends: it encodes a `device_profiles` value, puts the
configured byte-level fault into measurement payloads, drops notifications at the lossy-link rate
(never indications, which the hub confirms), pauses after each notification on a slow link, and
logs every send as a `Sent` for observers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from device_profiles.user_data import UNKNOWN_USER
from simulators.devices._gatt import short_uuid
from simulators.devices.config import PayloadFault, Sent
from simulators.devices.faults import damage

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Coroutine

    from bumble import gatt
    from bumble.device import Connection, Device

    from device_profiles import Characteristic as Value
    from simulators.devices.clock import Clock
    from simulators.devices.config import Behaviours

__all__ = ["Link", "Transmitter"]

logger = logging.getLogger(__name__)

_CCCD_NOTIFY: Final = 0x01
_CCCD_INDICATE: Final = 0x02


@dataclass(eq=False)
class Link:
    """One hub connection to the device, and what the device remembers about it."""

    connection: Connection
    lost: asyncio.Future[None]
    """Done once the link is gone; sends racing a disconnection wait on it."""
    user_index: int = UNKNOWN_USER
    """The user consented to on this link (User Data Service), else 0xFF."""
    procedure: asyncio.Task[None] | None = None
    """The Record Access Control Point procedure running on this link, if any."""


class Transmitter:
    """Sends one device's values, with its payload faults and link behaviours, and logs them."""

    def __init__(
        self, device: Device, clock: Clock, behaviours: Behaviours, rng: random.Random
    ) -> None:
        self._device = device
        self._clock = clock
        self._behaviours = behaviours
        self._rng = rng
        self._payloads = 0
        self.sent: list[Sent] = []
        self.listeners: list[Callable[[Sent], object]] = []

    def subscribed(
        self, link: Link, characteristic: gatt.Characteristic[bytes], *, indicate: bool
    ) -> bool:
        """Whether the hub on `link` has enabled notifications (or indications) of it."""
        cccd = self._device.gatt_server.read_cccd(link.connection, characteristic)
        return bool(cccd and cccd[0] & (_CCCD_INDICATE if indicate else _CCCD_NOTIFY))

    async def send(
        self,
        link: Link,
        characteristic: gatt.Characteristic[bytes],
        value: Value,
        *,
        indicate: bool,
        measurement: bool,
    ) -> bool:
        """Send `value` if the hub listens; return whether it went out (and was confirmed)."""
        if link.lost.done() or not self.subscribed(link, characteristic, indicate=indicate):
            return False
        uuid = short_uuid(characteristic.uuid)
        payload = value.encode()
        fault = self._byte_fault() if measurement else None
        if fault is not None:
            payload = damage(uuid, payload, fault)
        loss_rate = self._behaviours.notification_loss_rate
        dropped = not indicate and loss_rate > 0 and self._rng.random() < loss_rate
        method: Literal["notify", "indicate"] = "indicate" if indicate else "notify"
        self._record(Sent(self._clock.now(), uuid, payload, method, value, dropped, fault))
        if dropped:
            return False
        if indicate:
            return await _until_lost(
                link, self._device.indicate_subscriber(link.connection, characteristic, payload)
            )
        await self._device.notify_subscriber(link.connection, characteristic, payload)
        if self._behaviours.notification_interval_s:
            await self._clock.sleep(self._behaviours.notification_interval_s)
        return True

    def _byte_fault(self) -> PayloadFault | None:
        fault = self._behaviours.payload_fault
        if fault is None or fault is PayloadFault.SPECIAL_VALUES:
            return None
        self._payloads += 1
        return fault if self._payloads % self._behaviours.payload_fault_every == 0 else None

    def _record(self, sent: Sent) -> None:
        self.sent.append(sent)
        logger.debug(
            "value_sent",
            extra={"uuid": f"0x{sent.uuid:04X}", "method": sent.method, "dropped": sent.dropped},
        )
        for listener in self.listeners:
            listener(sent)


async def _until_lost(link: Link, operation: Coroutine[Any, Any, None]) -> bool:
    """Run `operation`; give up (False) if the link goes first: no confirmation will come."""
    task = asyncio.ensure_future(operation)
    try:
        await asyncio.wait([task, link.lost], return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done():
        task.result()
        return True
    task.cancel()
    await asyncio.wait([task])
    return False
