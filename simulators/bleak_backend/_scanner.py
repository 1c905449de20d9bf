"""`BumbleScanner`: bleak's scanner backend over the Bumble adapter."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, TypedDict

from bleak.backends.scanner import AdvertisementDataCallback, BaseBleakScanner

from simulators.bleak_backend._adapter import BumbleAdapter, address_key, get_adapter
from simulators.bleak_backend._advertisement import MergedAdvertisement

if TYPE_CHECKING:
    from bumble.device import Advertisement

__all__ = ["BumbleDeviceDetails", "BumbleScanner"]

logger = logging.getLogger(__name__)


class BumbleDeviceDetails(TypedDict):
    """`BLEDevice.details` of a device this backend found.

    It has no "path" key on purpose: bleak-retry-connector reads BlueZ's D-Bus object path from
    there and would query D-Bus for it.
    """

    source: Literal["bumble"]
    address_type: int


class BumbleScanner(BaseBleakScanner):
    """Scan on the Bumble adapter and report devices as bleak's BlueZ backend does."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: object,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        # bleak passes its per-platform options (bluez=, cb=) to every backend; none apply here.
        del kwargs
        self._active = scanning_mode == "active"
        self._adapter: BumbleAdapter | None = None
        self._merged: dict[str, MergedAdvertisement] = {}

    @property
    def active(self) -> bool:
        """Whether this scanner asks for scan responses."""
        return self._active

    async def start(self) -> None:
        """Start scanning; previously seen devices are forgotten, as on every bleak backend."""
        adapter = await get_adapter()
        self.seen_devices = {}
        self._merged = {}
        self._adapter = adapter
        await adapter.start_scanning(self)
        logger.debug("scan_started active=%s", self._active)

    async def stop(self) -> None:
        """Stop scanning; the found devices stay in `seen_devices`."""
        adapter, self._adapter = self._adapter, None
        if adapter is not None:
            await adapter.stop_scanning(self)
            logger.debug("scan_stopped devices=%d", len(self.seen_devices))

    def handle_advertisement(self, advertisement: Advertisement) -> None:
        """Fold one report into the device's state and call the detection callbacks."""
        if self._adapter is None:
            return
        key = address_key(advertisement.address)
        merged = self._merged.setdefault(key, MergedAdvertisement())
        merged.update(advertisement.data.ad_structures)
        data = merged.advertisement_data(advertisement.rssi, (advertisement,))
        if not self.is_allowed_uuid(data.service_uuids):
            return
        details = BumbleDeviceDetails(
            source="bumble", address_type=int(advertisement.address.address_type)
        )
        # BlueZ names a device after its alias: the advertised name, else the dashed address.
        name = data.local_name or key.replace(":", "-")
        device = self.create_or_update_device(key, key, name, details, data)
        try:
            self.call_detection_callbacks(device, data)
        except Exception:
            # A user callback must not stop the scan, as it would not on BlueZ.
            logger.exception("detection_callback_failed address=%s", key)
