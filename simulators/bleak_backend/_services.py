"""bleak's GATT service tree, built from the services Bumble discovered on a peer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection

from simulators.bleak_backend._advertisement import uuid_from_le_bytes

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from bumble.core import UUID
    from bumble.gatt_client import ServiceProxy

__all__ = ["bleak_uuid", "build_services"]


def bleak_uuid(uuid: UUID) -> str:
    """Return bleak's 128-bit lower-case string for a Bumble UUID."""
    return uuid_from_le_bytes(uuid.to_bytes(force_128=True))


def _property_names(properties: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if properties & bit]


def build_services(
    services: Iterable[ServiceProxy],
    max_write_without_response_size: Callable[[], int],
    wanted: set[str] | None = None,
) -> BleakGATTServiceCollection:
    """Build bleak's collection; `wanted` keeps only those service UUIDs, as BlueZ's filter does.

    Characteristics are keyed by their value handle, the handle every read and write uses.
    """
    collection = BleakGATTServiceCollection()
    for service in services:
        service_uuid = bleak_uuid(service.uuid)
        if wanted is not None and service_uuid not in wanted:
            continue
        bleak_service = BleakGATTService(service, service.handle, service_uuid)
        collection.add_service(bleak_service)
        for characteristic in service.characteristics:
            bleak_characteristic = BleakGATTCharacteristic(
                characteristic,
                characteristic.handle,
                bleak_uuid(characteristic.uuid),
                _property_names(int(characteristic.properties)),
                max_write_without_response_size,
                bleak_service,
            )
            collection.add_characteristic(bleak_characteristic)
            for descriptor in characteristic.descriptors:
                collection.add_descriptor(
                    BleakGATTDescriptor(
                        descriptor,
                        descriptor.handle,
                        bleak_uuid(descriptor.type),
                        bleak_characteristic,
                    )
                )
    return collection
