"""Advertising data merged per address as BlueZ merges it, turned into bleak's model.

BlueZ keeps one device object per address and folds every advertising report into it: the
scan response adds to the advertisement instead of replacing it, manufacturer and service data
are merged key by key, service UUIDs accumulate, and the newest name, TX power and RSSI win.
bleak's BlueZ backend then reports that merged state. This module does the same fold over raw AD
structures, without Bumble or I/O, so it can be tested with literal bytes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from bleak.backends.scanner import AdvertisementData
from bleak.uuids import normalize_uuid_16, normalize_uuid_32

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["MergedAdvertisement", "uuid_from_le_bytes"]

# AD types (Bluetooth Assigned Numbers, "Common Data Types"); literals, as on the air.
_UUID16_LISTS: Final = frozenset({0x02, 0x03})
_UUID32_LISTS: Final = frozenset({0x04, 0x05})
_UUID128_LISTS: Final = frozenset({0x06, 0x07})
_SHORTENED_NAME: Final = 0x08
_COMPLETE_NAME: Final = 0x09
_TX_POWER: Final = 0x0A
_SERVICE_DATA_16: Final = 0x16
_SERVICE_DATA_32: Final = 0x20
_SERVICE_DATA_128: Final = 0x21
_MANUFACTURER_DATA: Final = 0xFF

_UUID16_LEN: Final = 2
_UUID32_LEN: Final = 4
_UUID128_LEN: Final = 16
_COMPANY_ID_LEN: Final = 2
_INT8_SIGN: Final = 0x80

# BlueZ reports -127 when the controller gave no RSSI; HCI uses 127 for "not available".
HCI_RSSI_NOT_AVAILABLE: Final = 127
NO_RSSI: Final = -127


def uuid_from_le_bytes(data: bytes) -> str:
    """Return bleak's 128-bit lower-case string for a 16-, 32- or 128-bit little-endian UUID."""
    if len(data) == _UUID16_LEN:
        return normalize_uuid_16(int.from_bytes(data, "little"))
    if len(data) == _UUID32_LEN:
        return normalize_uuid_32(int.from_bytes(data, "little"))
    if len(data) == _UUID128_LEN:
        return str(uuid.UUID(bytes=data[::-1]))
    msg = f"a UUID is 2, 4 or 16 bytes, got {len(data)}: {data.hex()}"
    raise ValueError(msg)


def _uuid_list(data: bytes, width: int) -> list[str]:
    # A truncated trailing entry is dropped, as BlueZ's EIR parser drops it.
    return [
        uuid_from_le_bytes(data[start : start + width])
        for start in range(0, len(data) - width + 1, width)
    ]


@dataclass(slots=True)
class MergedAdvertisement:
    """Everything one address has advertised since scanning started, folded as BlueZ does."""

    local_name: str | None = None
    name_is_complete: bool = False
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    service_uuids: list[str] = field(default_factory=list)
    tx_power: int | None = None

    def update(self, ad_structures: Iterable[tuple[int, bytes]]) -> None:
        """Fold one report's AD structures (advertisement or scan response) into the state."""
        for ad_type, data in ad_structures:
            self._update_one(int(ad_type), bytes(data))

    def _update_one(self, ad_type: int, data: bytes) -> None:
        if ad_type == _COMPLETE_NAME:
            self.local_name = data.decode("utf-8", errors="replace")
            self.name_is_complete = True
        elif ad_type == _SHORTENED_NAME:
            # A complete name is never replaced by a shortened one (BlueZ keeps the better one).
            if not self.name_is_complete:
                self.local_name = data.decode("utf-8", errors="replace")
        elif ad_type in _UUID16_LISTS:
            self._add_uuids(_uuid_list(data, _UUID16_LEN))
        elif ad_type in _UUID32_LISTS:
            self._add_uuids(_uuid_list(data, _UUID32_LEN))
        elif ad_type in _UUID128_LISTS:
            self._add_uuids(_uuid_list(data, _UUID128_LEN))
        elif ad_type == _TX_POWER and data:
            self.tx_power = data[0] - 0x100 if data[0] & _INT8_SIGN else data[0]
        elif ad_type == _SERVICE_DATA_16 and len(data) >= _UUID16_LEN:
            self.service_data[uuid_from_le_bytes(data[:_UUID16_LEN])] = data[_UUID16_LEN:]
        elif ad_type == _SERVICE_DATA_32 and len(data) >= _UUID32_LEN:
            self.service_data[uuid_from_le_bytes(data[:_UUID32_LEN])] = data[_UUID32_LEN:]
        elif ad_type == _SERVICE_DATA_128 and len(data) >= _UUID128_LEN:
            self.service_data[uuid_from_le_bytes(data[:_UUID128_LEN])] = data[_UUID128_LEN:]
        elif ad_type == _MANUFACTURER_DATA and len(data) >= _COMPANY_ID_LEN:
            company = int.from_bytes(data[:_COMPANY_ID_LEN], "little")
            self.manufacturer_data[company] = data[_COMPANY_ID_LEN:]

    def _add_uuids(self, uuids: list[str]) -> None:
        for found in uuids:
            if found not in self.service_uuids:
                self.service_uuids.append(found)

    def advertisement_data(self, rssi: int, platform_data: tuple[object, ...]) -> AdvertisementData:
        """Return a snapshot as bleak's `AdvertisementData` (copies, so later folds do not leak)."""
        return AdvertisementData(
            local_name=self.local_name,
            manufacturer_data=dict(self.manufacturer_data),
            service_data=dict(self.service_data),
            service_uuids=list(self.service_uuids),
            tx_power=self.tx_power,
            rssi=NO_RSSI if rssi == HCI_RSSI_NOT_AVAILABLE else rssi,
            platform_data=platform_data,
        )
