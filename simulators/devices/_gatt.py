"""Building blocks of a simulated GATT server: characteristics, services, advertising, pairing.

Every characteristic here serves `device_profiles` values (read callbacks return a codec value,
encoded on the way out), so no simulator packs bytes by hand. Security follows Bumble's model:
attribute permissions ask for an encrypted or authenticated link, and a protected characteristic
that notifies gets its own Client Characteristic Configuration descriptor with the same demand,
since the one Bumble adds by itself is open to any client.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

from bumble import att, core, data_types, gatt
from bumble.pairing import PairingConfig, PairingDelegate

from device_profiles.device_information import (
    FirmwareRevisionString,
    HardwareRevisionString,
    ManufacturerNameString,
    ModelNumberString,
    SerialNumberString,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from bumble.device import Connection, Device

    from device_profiles import Characteristic as Value
    from simulators.devices.config import DeviceIdentity

__all__ = [
    "Security",
    "advertising_data",
    "constant",
    "device_information_service",
    "make_characteristic",
    "pairing_config",
    "scan_response_data",
    "short_uuid",
    "uuid16",
]

_P = gatt.Characteristic.Properties
_A = att.Attribute.Permissions
_MAX_ADVERTISING_DATA: Final = 31
_AD_HEADER: Final = 2


def uuid16(uuid: int) -> core.UUID:
    """Return a 16-bit Bumble UUID that is always sent in its 16-bit form.

    `UUID.from_16_bits` returns an equal UUID from Bumble's process-wide registry, which may be
    a 128-bit one that other code registered first; that one would go on the air as 16 bytes.
    """
    return core.UUID(f"{uuid:04X}")


def short_uuid(uuid: core.UUID) -> int:
    """Return the 16- or 32-bit number of a Bluetooth SIG UUID, whichever form Bumble holds."""
    return int.from_bytes(uuid.to_bytes(force_128=True)[12:16], "little")


class Security(enum.Enum):
    """What a link needs before it may use a characteristic."""

    OPEN = "open"
    ENCRYPTED = "encrypted"
    AUTHENTICATED = "authenticated"


def _permissions(security: Security, *, read: bool, write: bool) -> att.Attribute.Permissions:
    permissions = _A(0)
    if read:
        permissions |= _A.READABLE
        if security is not Security.OPEN:
            permissions |= _A.READ_REQUIRES_ENCRYPTION
        if security is Security.AUTHENTICATED:
            permissions |= _A.READ_REQUIRES_AUTHENTICATION
    if write:
        permissions |= _A.WRITEABLE
        if security is not Security.OPEN:
            permissions |= _A.WRITE_REQUIRES_ENCRYPTION
        if security is Security.AUTHENTICATED:
            permissions |= _A.WRITE_REQUIRES_AUTHENTICATION
    return permissions


def make_characteristic(
    device: Device,
    uuid: int,
    properties: gatt.Characteristic.Properties,
    *,
    read: Callable[[], Value] | None = None,
    write: Callable[[Connection, bytes], None] | None = None,
    security: Security = Security.OPEN,
) -> gatt.Characteristic[bytes]:
    """Make a characteristic whose reads encode `read()` and whose writes go to `write`."""
    reader = (lambda _connection: read().encode()) if read is not None else None
    characteristic = gatt.Characteristic[bytes](
        uuid16(uuid),
        properties,
        _permissions(security, read=read is not None, write=write is not None),
        gatt.CharacteristicValue[bytes](read=reader, write=write),
    )
    if security is not Security.OPEN and properties & (_P.NOTIFY | _P.INDICATE):
        characteristic.descriptors = [
            gatt.Descriptor(
                gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                _permissions(security, read=True, write=True),
                device.gatt_server.make_descriptor_value(characteristic),
            )
        ]
    return characteristic


def constant(value: Value) -> Callable[[], Value]:
    """Serve a fixed value (Device Information, features)."""
    return lambda: value


def device_information_service(device: Device, identity: DeviceIdentity) -> gatt.Service:
    """Return Device Information: manufacturer, model, serial, firmware and hardware revision."""
    values: tuple[Value, ...] = (
        ManufacturerNameString(identity.manufacturer),
        ModelNumberString(identity.model),
        SerialNumberString(identity.serial),
        FirmwareRevisionString(identity.firmware),
        HardwareRevisionString(identity.hardware),
    )
    return gatt.Service(
        gatt.GATT_DEVICE_INFORMATION_SERVICE,
        [make_characteristic(device, v.UUID, _P.READ, read=constant(v)) for v in values],
    )


def advertising_data(name: str, services: tuple[int, ...], appearance: int) -> bytes:
    """Return flags, service UUIDs, appearance and the name (shortened if it does not fit)."""
    head: list[core.DataType] = [
        data_types.Flags(
            core.AdvertisingData.Flags.LE_GENERAL_DISCOVERABLE_MODE
            | core.AdvertisingData.Flags.BR_EDR_NOT_SUPPORTED
        ),
        data_types.IncompleteListOf16BitServiceUUIDs([uuid16(uuid) for uuid in services]),
        data_types.Appearance.from_int(appearance),
    ]
    complete = bytes(core.AdvertisingData([*head, data_types.CompleteLocalName(name)]))
    if len(complete) <= _MAX_ADVERTISING_DATA:
        return complete
    # The full name stays in the scan response; the advertisement carries what fits.
    room = _MAX_ADVERTISING_DATA - len(bytes(core.AdvertisingData(head))) - _AD_HEADER
    short = name.encode()[:room].decode(errors="ignore")
    return bytes(core.AdvertisingData([*head, data_types.ShortenedLocalName(short)]))


def scan_response_data(name: str) -> bytes:
    """Return the scan response: the complete local name."""
    return bytes(core.AdvertisingData([data_types.CompleteLocalName(name)]))


class _DeviceDelegate(PairingDelegate):
    """The device side of pairing: shows a passkey it draws, or has no input or output."""

    def __init__(
        self,
        io_capability: PairingDelegate.IoCapability,
        draw: Callable[[], int],
        show: Callable[[int], Awaitable[None] | None],
    ) -> None:
        super().__init__(io_capability)
        self._draw = draw
        self._show = show

    async def generate_passkey(self) -> int:
        return self._draw()

    async def display_number(self, number: int, digits: int) -> None:
        del digits
        shown = self._show(number)
        if shown is not None:
            await shown


def pairing_config(
    *, passkey: bool, draw: Callable[[], int], show: Callable[[int], None]
) -> PairingConfig:
    """Return the device's pairing: Secure Connections, bonding, passkey display or Just Works."""
    io = (
        PairingDelegate.IoCapability.DISPLAY_OUTPUT_ONLY
        if passkey
        else PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT
    )
    return PairingConfig(
        sc=True, mitm=passkey, bonding=True, delegate=_DeviceDelegate(io, draw, show)
    )
