"""Small Bumble GATT peripherals on a simulated radio, for the bleak backend tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bumble import att
from bumble.core import UUID, AdvertisingData
from bumble.gatt import (
    Characteristic,
    CharacteristicValue,
    Descriptor,
    Service,
)
from bumble.pairing import PairingConfig, PairingDelegate

if TYPE_CHECKING:
    from bumble.device import Connection, Device

    from simulators.radio import Radio

# Custom 128-bit UUIDs of the test service (bleak shows them lower case).
TEST_SERVICE = "9a1e0000-5e1f-4c3b-9e7a-0b5c1d2e3f40"
READ_CHAR = "9a1e0001-5e1f-4c3b-9e7a-0b5c1d2e3f40"
WRITE_CHAR = "9a1e0002-5e1f-4c3b-9e7a-0b5c1d2e3f40"
WRITE_NO_RESPONSE_CHAR = "9a1e0003-5e1f-4c3b-9e7a-0b5c1d2e3f40"
NOTIFY_CHAR = "9a1e0004-5e1f-4c3b-9e7a-0b5c1d2e3f40"
INDICATE_CHAR = "9a1e0005-5e1f-4c3b-9e7a-0b5c1d2e3f40"
BOTH_CHAR = "9a1e0006-5e1f-4c3b-9e7a-0b5c1d2e3f40"
ERROR_CHAR = "9a1e0007-5e1f-4c3b-9e7a-0b5c1d2e3f40"
HANG_CHAR = "9a1e0008-5e1f-4c3b-9e7a-0b5c1d2e3f40"
SECURE_CHAR = "9a1e0009-5e1f-4c3b-9e7a-0b5c1d2e3f40"
SLOW_CHAR = "9a1e000a-5e1f-4c3b-9e7a-0b5c1d2e3f40"
USER_DESCRIPTION = "00002901-0000-1000-8000-00805f9b34fb"
BLOOD_PRESSURE_SERVICE = "00001810-0000-1000-8000-00805f9b34fb"
BLOOD_PRESSURE_MEASUREMENT = "00002a35-0000-1000-8000-00805f9b34fb"

READ_VALUE = b"vitalbridge"
# The Application Error the error characteristic answers every read with.
APPLICATION_ERROR = 0x80
# The write characteristic refuses values starting with this byte (Value Not Allowed, 0x13).
REJECTED_PREFIX = 0xFF
PASSKEY = 123456
MANUFACTURER_ID = 0x0D3A
MANUFACTURER_PAYLOAD = b"\x01\x02\x03"
SERVICE_DATA_PAYLOAD = b"\x64"  # battery 100 % as Battery Service data
TX_POWER_DBM = -8

_NOTIFY = Characteristic.Properties.NOTIFY
_INDICATE = Characteristic.Properties.INDICATE
_READ = Characteristic.Properties.READ
_READABLE = Characteristic.Permissions.READABLE
_WRITEABLE = Characteristic.Permissions.WRITEABLE


class DisplayPasskeyDelegate(PairingDelegate):
    """A device with a display: it shows a fixed passkey for the hub to type in."""

    def __init__(self, passkey: int = PASSKEY) -> None:
        super().__init__(io_capability=PairingDelegate.IoCapability.DISPLAY_OUTPUT_ONLY)
        self.passkey = passkey

    async def generate_passkey(self) -> int:
        return self.passkey


def advertising_data(
    name: str | None,
    *,
    service_uuid16: int | None = None,
    manufacturer: bool = False,
    tx_power: bool = False,
    service_data: bool = False,
) -> bytes:
    """Build raw advertising data with the requested AD structures."""
    structures: list[tuple[int, bytes]] = [(AdvertisingData.FLAGS, b"\x06")]
    if name is not None:
        structures.append((AdvertisingData.COMPLETE_LOCAL_NAME, name.encode()))
    if service_uuid16 is not None:
        structures.append(
            (
                AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                bytes(UUID(f"{service_uuid16:04X}")),
            )
        )
    if manufacturer:
        structures.append(
            (
                AdvertisingData.MANUFACTURER_SPECIFIC_DATA,
                MANUFACTURER_ID.to_bytes(2, "little") + MANUFACTURER_PAYLOAD,
            )
        )
    if tx_power:
        structures.append(
            (AdvertisingData.TX_POWER_LEVEL, TX_POWER_DBM.to_bytes(1, "little", signed=True))
        )
    if service_data:
        structures.append(
            (AdvertisingData.SERVICE_DATA_16_BIT_UUID, b"\x0f\x18" + SERVICE_DATA_PAYLOAD)
        )
    return bytes(AdvertisingData(structures))


@dataclass
class Peripheral:
    """A Bumble GATT server on the radio, with queues that record what the hub did to it."""

    device: Device
    address: str
    characteristics: dict[str, Characteristic[bytes]]
    writes: asyncio.Queue[tuple[str, bytes]] = field(default_factory=asyncio.Queue)
    subscriptions: asyncio.Queue[tuple[str, bool, bool]] = field(default_factory=asyncio.Queue)
    connections: asyncio.Queue[Connection] = field(default_factory=asyncio.Queue)
    pairings: asyncio.Queue[Connection] = field(default_factory=asyncio.Queue)
    hang_started: asyncio.Event = field(default_factory=asyncio.Event)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)

    def connection(self) -> Connection:
        """Return the device's only connection (the hub)."""
        (connection,) = self.device.connections.values()
        return connection

    async def stop(self) -> None:
        """Stop advertising and drop every connection, as a device switched off."""
        await self.device.stop_advertising()
        for connection in list(self.device.connections.values()):
            await connection.disconnect()


def _recording_write(peripheral: list[Peripheral], uuid: str) -> CharacteristicValue[bytes]:
    def write(_connection: Connection, value: bytes) -> None:
        if value[:1] == bytes([REJECTED_PREFIX]):
            raise att.ATT_Error(att.ErrorCode.VALUE_NOT_ALLOWED)
        peripheral[0].writes.put_nowait((uuid, value))

    return CharacteristicValue(write=write)


def _test_service(holder: list[Peripheral]) -> tuple[Service, dict[str, Characteristic[bytes]]]:
    def raise_application_error(_connection: Connection) -> bytes:
        raise att.ATT_Error(APPLICATION_ERROR)

    async def disconnect_mid_read(connection: Connection) -> bytes:
        # The device drops the link while the hub waits for the Read Response.
        holder[0].hang_started.set()
        await connection.disconnect()
        await asyncio.get_running_loop().create_future()
        return b""

    async def never_answer(_connection: Connection) -> bytes:
        # The device keeps the link but never sends the Read Response.
        holder[0].slow_started.set()
        await asyncio.get_running_loop().create_future()
        return b""

    characteristics: dict[str, Characteristic[bytes]] = {
        READ_CHAR: Characteristic(
            READ_CHAR,
            _READ,
            _READABLE,
            READ_VALUE,
            descriptors=[Descriptor(USER_DESCRIPTION, _READABLE | _WRITEABLE, b"Greeting")],
        ),
        WRITE_CHAR: Characteristic(
            WRITE_CHAR,
            Characteristic.Properties.WRITE,
            _WRITEABLE,
            _recording_write(holder, WRITE_CHAR),
        ),
        WRITE_NO_RESPONSE_CHAR: Characteristic(
            WRITE_NO_RESPONSE_CHAR,
            Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
            _WRITEABLE,
            _recording_write(holder, WRITE_NO_RESPONSE_CHAR),
        ),
        NOTIFY_CHAR: Characteristic(NOTIFY_CHAR, _NOTIFY, _READABLE, b""),
        INDICATE_CHAR: Characteristic(INDICATE_CHAR, _INDICATE, _READABLE, b""),
        BOTH_CHAR: Characteristic(BOTH_CHAR, _NOTIFY | _INDICATE, _READABLE, b""),
        ERROR_CHAR: Characteristic(
            ERROR_CHAR, _READ, _READABLE, CharacteristicValue(read=raise_application_error)
        ),
        HANG_CHAR: Characteristic(
            HANG_CHAR, _READ, _READABLE, CharacteristicValue(read=disconnect_mid_read)
        ),
        SLOW_CHAR: Characteristic(
            SLOW_CHAR, _READ, _READABLE, CharacteristicValue(read=never_answer)
        ),
        SECURE_CHAR: Characteristic(
            SECURE_CHAR,
            _READ,
            _READABLE | Characteristic.Permissions.READ_REQUIRES_ENCRYPTION,
            b"secret",
        ),
    }
    return Service(TEST_SERVICE, list(characteristics.values())), characteristics


def _blood_pressure_service() -> tuple[Service, Characteristic[bytes]]:
    measurement: Characteristic[bytes] = Characteristic(
        BLOOD_PRESSURE_MEASUREMENT, _INDICATE, _READABLE, b""
    )
    return Service(BLOOD_PRESSURE_SERVICE, [measurement]), measurement


async def start_peripheral(
    radio: Radio,
    address: str,
    *,
    name: str = "VB-Test",
    adv_data: bytes | None = None,
    scan_response: bytes = b"",
    pairing_delegate: PairingDelegate | None = None,
) -> Peripheral:
    """Power on a test peripheral (test service and Blood Pressure service) and advertise."""
    device = radio.device(name, address)
    holder: list[Peripheral] = []
    service, characteristics = _test_service(holder)
    bps, measurement = _blood_pressure_service()
    characteristics[BLOOD_PRESSURE_MEASUREMENT] = measurement
    device.add_services([service, bps])
    peripheral = Peripheral(device, address, characteristics)
    holder.append(peripheral)
    by_handle = {c.handle: uuid for uuid, c in characteristics.items()}

    def on_subscription(
        _connection: Connection, characteristic: Characteristic[bytes], notify: bool, indicate: bool
    ) -> None:
        uuid = by_handle.get(characteristic.handle, str(characteristic.uuid))
        peripheral.subscriptions.put_nowait((uuid, notify, indicate))

    device.on("characteristic_subscription", on_subscription)

    def on_connection(connection: Connection) -> None:
        peripheral.connections.put_nowait(connection)
        connection.on("pairing", lambda _keys: peripheral.pairings.put_nowait(connection))

    device.on("connection", on_connection)
    if pairing_delegate is not None:
        delegate = pairing_delegate
        device.pairing_config_factory = lambda _connection: PairingConfig(
            sc=True, mitm=True, bonding=True, delegate=delegate
        )
    await device.power_on()
    await device.start_advertising(
        advertising_data=adv_data or advertising_data(name, service_uuid16=0x1810),
        scan_response_data=scan_response,
        auto_restart=True,
        advertising_interval_min=20,
        advertising_interval_max=20,
    )
    return peripheral
