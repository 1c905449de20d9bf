"""Every simulated device type, seen through bleak's public API on the simulated radio.

The hub side is exactly what the gateway will run: BleakScanner and BleakClient with the Bumble
backend selected by `backend=`; the devices are the real GATT servers from simulators.devices.
"""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner

import device_profiles
from device_profiles.battery import BatteryLevel
from device_profiles.device_information import ManufacturerNameString, SerialNumberString
from simulators.bleak_backend import (
    AdapterSettings,
    BumbleClient,
    BumbleScanner,
    PasskeyEntryDelegate,
    use_radio,
)
from simulators.devices import DEVICE_TYPES, Behaviours, Pairing, SimulatedDevice, SimulatorConfig
from simulators.radio import Radio

TIMEOUT_S = 30
FAST = AdapterSettings(connect_timeout_s=2.0)
ADDRESS = "F0:10:20:30:40:50"

# The characteristic each device type delivers its measurement on, and how (GSS / profile specs).
MEASUREMENT = {
    "blood_pressure_cuff": 0x2A35,
    "spot_check_oximeter": 0x2A5E,
    "continuous_oximeter": 0x2A5F,
    "weight_scale": 0x2A9D,
    "body_composition_scale": 0x2A9D,
    "thermometer": 0x2A1C,
    "glucose_meter": 0x2A18,
    "heart_rate_strap": 0x2A37,
}


def _uuid(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


def test_every_device_type_has_a_measurement_characteristic_here():
    assert set(MEASUREMENT) == set(DEVICE_TYPES)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", sorted(DEVICE_TYPES))
async def test_hub_discovers_reads_and_decodes_each_device_type(kind):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=11)
        device = DEVICE_TYPES[kind].on_radio(radio, ADDRESS, SimulatorConfig(seed=5))
        await device.start()
        try:
            async with use_radio(radio, FAST):
                found = await BleakScanner.find_device_by_address(
                    ADDRESS, timeout=5.0, backend=BumbleScanner
                )
                assert found is not None, f"{kind} was not discovered"
                received: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
                uuid = MEASUREMENT[kind]
                async with BleakClient(found, backend=BumbleClient) as client:
                    manufacturer = device_profiles.decode(
                        0x2A29, await client.read_gatt_char(_uuid(0x2A29))
                    )
                    assert manufacturer == ManufacturerNameString(device.identity.manufacturer)
                    serial = device_profiles.decode(
                        0x2A25, await client.read_gatt_char(_uuid(0x2A25))
                    )
                    assert serial == SerialNumberString(device.identity.serial)
                    battery = device_profiles.decode(
                        0x2A19, await client.read_gatt_char(_uuid(0x2A19))
                    )
                    assert isinstance(battery, BatteryLevel)
                    await client.start_notify(
                        _uuid(uuid), lambda _, data: received.put_nowait((uuid, bytes(data)))
                    )
                    await device.measure()
                    short, data = await received.get()
                    decoded = device_profiles.decode(short, data)
                    intended = [sent for sent in device.sent if sent.uuid == uuid][-1]
                    # The hub decodes exactly the value the simulator meant to send.
                    assert decoded == intended.value
                    assert data == intended.data
                    assert decoded.warnings == ()
        finally:
            await device.stop()


class _ReadsTheDisplay(PasskeyEntryDelegate):
    """A patient reading the passkey off the cuff's display and typing it in at the hub."""

    def __init__(self, device: SimulatedDevice) -> None:
        super().__init__(0)
        self.device = device
        self.asked = 0

    async def get_number(self) -> int | None:
        self.asked += 1
        return await self.device.displayed_passkey()


@pytest.mark.asyncio
@pytest.mark.parametrize("pairing", [Pairing.JUST_WORKS, Pairing.PASSKEY])
async def test_pairing_with_a_simulated_cuff_and_the_bond_survives_a_reconnect(pairing):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=12)
        config = SimulatorConfig(seed=5, behaviours=Behaviours(pairing=pairing))
        cuff = DEVICE_TYPES["blood_pressure_cuff"].on_radio(radio, ADDRESS, config)
        await cuff.start()
        try:
            async with use_radio(radio, FAST):
                found = await BleakScanner.find_device_by_address(
                    ADDRESS, timeout=5.0, backend=BumbleScanner
                )
                assert found is not None
                delegate = _ReadsTheDisplay(cuff)
                options = {"pairing_delegate": delegate} if pairing is Pairing.PASSKEY else {}
                client = BleakClient(found, backend=BumbleClient, bumble=options)
                await client.connect()
                await client.pair()
                received: asyncio.Queue[bytes] = asyncio.Queue()
                await client.start_notify(_uuid(0x2A35), lambda _, d: received.put_nowait(d))
                await cuff.measure()
                first = device_profiles.decode(0x2A35, await received.get())
                assert first == cuff.sent[-1].value
                await client.disconnect()
                # Reconnect: the stored bond encrypts the link; nobody is asked for a passkey.
                async with BleakClient(found, backend=BumbleClient) as again:
                    await again.start_notify(_uuid(0x2A35), lambda _, d: received.put_nowait(d))
                    await cuff.measure()
                    second = device_profiles.decode(0x2A35, await received.get())
                    assert second == cuff.sent[-1].value
                assert delegate.asked == (1 if pairing is Pairing.PASSKEY else 0)
        finally:
            await cuff.stop()
