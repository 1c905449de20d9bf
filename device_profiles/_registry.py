"""The table from characteristic UUID to codec class, and UUID parsing in every common spelling."""

from __future__ import annotations

import uuid as uuid_module
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar, Final, Protocol, Self

from device_profiles import (
    battery,
    blood_pressure,
    body_composition,
    current_time,
    date_time,
    device_information,
    glucose,
    health_thermometer,
    heart_rate,
    pulse_oximeter,
    racp,
    user_data,
    weight_scale,
)
from device_profiles._errors import UnknownCharacteristicError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["CHARACTERISTICS", "SERVICES", "Characteristic", "codec_for", "parse_uuid"]

_BASE_UUID_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"
_MAX_UUID16: Final = 0xFFFF
_MAX_UUID32: Final = 0xFFFFFFFF


class Characteristic(Protocol):
    """What every codec class provides: its UUID and name, `decode` and `encode`."""

    UUID: ClassVar[int]
    NAME: ClassVar[str]
    LABEL: ClassVar[str]

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a characteristic value."""
        ...

    def encode(self) -> bytes:
        """Encode as a characteristic value."""
        ...


def _table(classes: Iterable[type[Characteristic]]) -> dict[int, type[Characteristic]]:
    table: dict[int, type[Characteristic]] = {}
    for cls in classes:
        if cls.UUID in table:
            raise RuntimeError(f"two codecs for 0x{cls.UUID:04X}")  # pragma: no cover
        table[cls.UUID] = cls
    return table


# Each profile module lists its codec classes in a module-level CHARACTERISTICS tuple.
CHARACTERISTICS: Final[dict[int, type[Characteristic]]] = _table(
    cls
    for module in (
        blood_pressure,
        pulse_oximeter,
        weight_scale,
        body_composition,
        health_thermometer,
        glucose,
        heart_rate,
        racp,
        current_time,
        date_time,
        device_information,
        battery,
        user_data,
    )
    for cls in module.CHARACTERISTICS
)

SERVICES: Final[dict[int, str]] = {
    0x1805: "Current Time",
    0x1808: "Glucose",
    0x1809: "Health Thermometer",
    0x180A: "Device Information",
    0x180D: "Heart Rate",
    0x180F: "Battery",
    0x1810: "Blood Pressure",
    0x181B: "Body Composition",
    0x181C: "User Data",
    0x181D: "Weight Scale",
    0x1822: "Pulse Oximeter",
}
"""Assigned Numbers 16-bit UUIDs of the services the health profiles live in."""


@lru_cache(maxsize=256)
def _parse_text(text: str) -> int:
    value = text.strip().lower()
    value = value.removeprefix("0x")
    if len(value) <= 8:  # noqa: PLR2004 - a 16- or 32-bit short form
        try:
            return int(value, 16)
        except ValueError:
            raise UnknownCharacteristicError(text, "not a hexadecimal UUID") from None
    try:
        full = str(uuid_module.UUID(value))
    except ValueError:
        raise UnknownCharacteristicError(text, "not a UUID") from None
    if not full.endswith(_BASE_UUID_SUFFIX):
        raise UnknownCharacteristicError(text, "not a Bluetooth SIG base UUID")
    return int(full[:8], 16)


def parse_uuid(characteristic_uuid: int | str | uuid_module.UUID) -> int:
    """Turn 0x2A35, "2A35", "0x2a35" or the full base-UUID string into the short UUID."""
    if isinstance(characteristic_uuid, int) and not isinstance(characteristic_uuid, bool):
        if not 0 <= characteristic_uuid <= _MAX_UUID32:
            raise UnknownCharacteristicError(str(characteristic_uuid), "out of UUID range")
        return characteristic_uuid
    if isinstance(characteristic_uuid, uuid_module.UUID):
        return _parse_text(str(characteristic_uuid))
    if isinstance(characteristic_uuid, str):
        return _parse_text(characteristic_uuid)
    raise UnknownCharacteristicError(repr(characteristic_uuid), "not a UUID")


def codec_for(characteristic_uuid: int | str | uuid_module.UUID) -> type[Characteristic]:
    """Return the codec class for a characteristic UUID, or raise UnknownCharacteristicError."""
    short = parse_uuid(characteristic_uuid)
    codec = CHARACTERISTICS.get(short)
    if codec is None:
        label = f"0x{short:04X}" if short <= _MAX_UUID16 else f"0x{short:08X}"
        raise UnknownCharacteristicError(label, "no codec for this characteristic")
    return codec
