"""Each fault behaviour of the simulated devices does what it claims, seen from the bleak side."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest
from bleak import BleakClient, BleakScanner

import device_profiles
from device_profiles import DecodeError, SpecialValue
from simulators.bleak_backend import AdapterSettings, BumbleClient, BumbleScanner, use_radio
from simulators.devices import (
    EPOCH_1970,
    Behaviours,
    BloodPressureCuff,
    HeartRateStrap,
    PayloadFault,
    SimulatedDevice,
    SimulatorConfig,
)
from simulators.radio import Radio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TIMEOUT_S = 30
FAST = AdapterSettings(connect_timeout_s=2.0)
ADDRESS = "F0:10:20:30:40:52"
BPM = "00002a35-0000-1000-8000-00805f9b34fb"
HRM = "00002a37-0000-1000-8000-00805f9b34fb"
BATTERY = "00002a19-0000-1000-8000-00805f9b34fb"


@contextlib.asynccontextmanager
async def hub_and(
    device_type: type[SimulatedDevice], behaviours: Behaviours
) -> AsyncIterator[tuple[SimulatedDevice, BleakClient, asyncio.Queue[bytes], asyncio.Event]]:
    """Start a device with `behaviours`, connect a bleak hub and subscribe to its measurement."""
    radio = Radio(seed=4)
    device = device_type.on_radio(radio, ADDRESS, SimulatorConfig(seed=6, behaviours=behaviours))
    await device.start()
    try:
        async with use_radio(radio, FAST):
            found = await BleakScanner.find_device_by_address(
                ADDRESS, timeout=5.0, backend=BumbleScanner
            )
            assert found is not None
            lost = asyncio.Event()
            received: asyncio.Queue[bytes] = asyncio.Queue()
            client = BleakClient(found, lambda _: lost.set(), backend=BumbleClient)
            await client.connect()
            uuid = BPM if device_type is BloodPressureCuff else HRM
            await client.start_notify(uuid, lambda _, data: received.put_nowait(bytes(data)))
            try:
                yield device, client, received, lost
            finally:
                await client.disconnect()
    finally:
        await device.stop()


@pytest.mark.asyncio
async def test_truncated_payload_is_a_decode_error_at_the_hub():
    behaviours = Behaviours(payload_fault=PayloadFault.TRUNCATED)
    async with (
        asyncio.timeout(TIMEOUT_S),
        hub_and(BloodPressureCuff, behaviours) as (
            cuff,
            _,
            received,
            _,
        ),
    ):
        await cuff.measure()
        data = await received.get()
        assert data == cuff.sent[-1].data
        assert data == cuff.sent[-1].value.encode()[:-1]
        with pytest.raises(DecodeError) as info:
            device_profiles.decode(0x2A35, data)
        assert info.value.kind in {"truncated", "missing_field"}


@pytest.mark.asyncio
async def test_malformed_payload_is_only_the_flags():
    behaviours = Behaviours(payload_fault=PayloadFault.MALFORMED)
    async with (
        asyncio.timeout(TIMEOUT_S),
        hub_and(BloodPressureCuff, behaviours) as (
            cuff,
            _,
            received,
            _,
        ),
    ):
        await cuff.measure()
        with pytest.raises(DecodeError) as info:
            device_profiles.decode(0x2A35, await received.get())
        assert (info.value.kind, info.value.field) == ("missing_field", "systolic")


@pytest.mark.asyncio
async def test_reserved_bits_arrive_as_warnings_and_values_survive():
    behaviours = Behaviours(payload_fault=PayloadFault.RESERVED_BITS)
    async with (
        asyncio.timeout(TIMEOUT_S),
        hub_and(BloodPressureCuff, behaviours) as (
            cuff,
            _,
            received,
            _,
        ),
    ):
        await cuff.measure()
        decoded = device_profiles.decode(0x2A35, await received.get())
        intended = cuff.sent[-1].value
        assert decoded.warnings
        assert decoded.systolic == intended.systolic  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_special_values_never_become_numbers():
    behaviours = Behaviours(payload_fault=PayloadFault.SPECIAL_VALUES)
    async with (
        asyncio.timeout(TIMEOUT_S),
        hub_and(BloodPressureCuff, behaviours) as (
            cuff,
            _,
            received,
            _,
        ),
    ):
        await cuff.measure()
        decoded = device_profiles.decode(0x2A35, await received.get())
        specials = [
            value.special
            for value in (decoded.mean_arterial_pressure, decoded.pulse_rate)
            if value is not None
        ]
        assert specials
        assert all(isinstance(special, SpecialValue) for special in specials)


@pytest.mark.asyncio
async def test_lossy_link_drops_notifications_the_device_records_as_dropped():
    behaviours = Behaviours(notification_loss_rate=0.5)
    async with (
        asyncio.timeout(TIMEOUT_S),
        hub_and(HeartRateStrap, behaviours) as (
            strap,
            client,
            received,
            _,
        ),
    ):
        for _ in range(40):
            await strap.measure()
        # A final read is answered after every earlier notification has been delivered.
        await client.read_gatt_char(BATTERY)
        delivered = received.qsize()
        sent = [s for s in strap.sent if s.uuid == 0x2A37]
        dropped = [s for s in sent if s.dropped]
        assert 0 < len(dropped) < len(sent)
        assert delivered == len(sent) - len(dropped)


@pytest.mark.asyncio
async def test_clock_at_1970_and_low_battery_are_what_the_hub_reads():
    behaviours = Behaviours(clock_start=EPOCH_1970, battery_percent=5)
    async with (
        asyncio.timeout(TIMEOUT_S),
        hub_and(BloodPressureCuff, behaviours) as (
            cuff,
            client,
            received,
            _,
        ),
    ):
        battery = device_profiles.decode(0x2A19, await client.read_gatt_char(BATTERY))
        assert battery.battery_level.value == 5
        await cuff.measure()
        decoded = device_profiles.decode(0x2A35, await received.get())
        assert decoded.timestamp is not None
        assert decoded.timestamp.year == 1970


@pytest.mark.asyncio
async def test_device_hangs_up_after_sending():
    behaviours = Behaviours(disconnect_after_send_s=0.1)
    async with (
        asyncio.timeout(TIMEOUT_S),
        hub_and(BloodPressureCuff, behaviours) as (
            cuff,
            client,
            received,
            lost,
        ),
    ):
        await cuff.measure()
        await received.get()
        await lost.wait()
        assert not client.is_connected


@pytest.mark.asyncio
async def test_button_press_device_is_invisible_until_pressed():
    radio = Radio(seed=4)
    config = SimulatorConfig(seed=6, behaviours=Behaviours(advertise_on_button_press=True))
    cuff = BloodPressureCuff.on_radio(radio, ADDRESS, config)
    async with asyncio.timeout(TIMEOUT_S):
        await cuff.start()
        try:
            async with use_radio(radio, FAST):
                before = await BleakScanner.find_device_by_address(
                    ADDRESS, timeout=0.5, backend=BumbleScanner
                )
                assert before is None
                await cuff.press_button()
                after = await BleakScanner.find_device_by_address(
                    ADDRESS, timeout=5.0, backend=BumbleScanner
                )
                assert after is not None
        finally:
            await cuff.stop()
