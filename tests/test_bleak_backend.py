"""The bleak backend over Bumble, driven only through bleak's public API against real GATT servers.

Each test builds small Bumble peripherals on its own simulated radio and talks to them with
`BleakScanner(..., backend=BumbleScanner)` and `BleakClient(..., backend=BumbleClient)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import (
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from bleak_retry_connector import (
    BleakClientWithServiceCache,
    BleakNotFoundError,
    establish_connection,
    get_connected_devices,
    path_from_ble_device,
)
from bumble import gatt_client
from bumble.device import Device
from sim_helpers import (
    APPLICATION_ERROR,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    BOTH_CHAR,
    ERROR_CHAR,
    HANG_CHAR,
    INDICATE_CHAR,
    MANUFACTURER_ID,
    MANUFACTURER_PAYLOAD,
    NOTIFY_CHAR,
    PASSKEY,
    READ_CHAR,
    READ_VALUE,
    REJECTED_PREFIX,
    SECURE_CHAR,
    SERVICE_DATA_PAYLOAD,
    SLOW_CHAR,
    TEST_SERVICE,
    TX_POWER_DBM,
    USER_DESCRIPTION,
    WRITE_CHAR,
    WRITE_NO_RESPONSE_CHAR,
    DisplayPasskeyDelegate,
    advertising_data,
    start_peripheral,
)

import device_profiles
from device_profiles import Number, Unit
from device_profiles.blood_pressure import BloodPressureMeasurement
from simulators.bleak_backend import (
    CONNECT_TIMEOUT_ENV_VAR,
    HCI_ENV_VAR,
    AdapterInUseError,
    AdapterNotConfiguredError,
    AdapterSettings,
    BumbleClient,
    BumbleScanner,
    PasskeyEntryDelegate,
    configure,
    reset_adapter,
    use_hci,
    use_radio,
)
from simulators.bleak_backend._advertisement import MergedAdvertisement
from simulators.radio import Radio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from bleak.backends.characteristic import BleakGATTCharacteristic
    from bleak.backends.scanner import AdvertisementData

CUFF = "F1:22:33:44:55:66"
SCALE = "F1:22:33:44:55:77"
OXIMETER = "F1:22:33:44:55:88"
ABSENT = "F1:22:33:44:55:99"
BATTERY_SERVICE = "0000180f-0000-1000-8000-00805f9b34fb"
CCCD = "00002902-0000-1000-8000-00805f9b34fb"
# Short, so that an absent device fails fast; a present one connects within one 20 ms
# advertising interval and is discovered in a few more milliseconds.
FAST = AdapterSettings(connect_timeout_s=1.0)
TEST_TIMEOUT_S = 20


async def scan_for(address: str) -> BLEDevice:
    device = await BleakScanner.find_device_by_address(address, timeout=5, backend=BumbleScanner)
    assert device is not None
    return device


def collector() -> tuple[
    asyncio.Queue[bytearray], Callable[[BleakGATTCharacteristic, bytearray], None]
]:
    values: asyncio.Queue[bytearray] = asyncio.Queue()

    def on_value(_sender: BleakGATTCharacteristic, data: bytearray) -> None:
        values.put_nowait(data)

    return values, on_value


# Scanning


@pytest.mark.asyncio
async def test_discover_reports_advertisement_data_as_bluez_does():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio(seed=7, rssi_noise_db=0)
        radio.rssi.set_rssi(CUFF, -63)
        ad = advertising_data(
            "Cuff", service_uuid16=0x1810, manufacturer=True, tx_power=True, service_data=True
        )
        await start_peripheral(radio, CUFF, adv_data=ad)
        async with use_radio(radio, FAST):
            found = await BleakScanner.discover(timeout=0.3, return_adv=True, backend=BumbleScanner)
        device, data = found[CUFF]
        assert device.address == CUFF
        assert device.name == "Cuff"
        assert device.details == {"source": "bumble", "address_type": 1}
        assert data.local_name == "Cuff"
        assert data.service_uuids == [BLOOD_PRESSURE_SERVICE]
        assert data.manufacturer_data == {MANUFACTURER_ID: MANUFACTURER_PAYLOAD}
        assert data.service_data == {BATTERY_SERVICE: SERVICE_DATA_PAYLOAD}
        assert data.tx_power == TX_POWER_DBM
        assert data.rssi == -63
        assert data.platform_data


@pytest.mark.asyncio
async def test_detection_callback_receives_every_device():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF, name="Cuff")
        await start_peripheral(radio, SCALE, name="Scale")
        seen: asyncio.Queue[tuple[BLEDevice, AdvertisementData]] = asyncio.Queue()
        async with (
            use_radio(radio, FAST),
            BleakScanner(lambda d, a: seen.put_nowait((d, a)), backend=BumbleScanner),
        ):
            names: dict[str, str | None] = {}
            while len(names) < 2:
                device, data = await seen.get()
                names[device.address] = data.local_name
        assert names == {CUFF: "Cuff", SCALE: "Scale"}


@pytest.mark.asyncio
async def test_service_uuid_filter_drops_other_devices():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(
            radio, CUFF, adv_data=advertising_data("Cuff", service_uuid16=0x1810)
        )
        await start_peripheral(
            radio, SCALE, adv_data=advertising_data("Scale", service_uuid16=0x181D)
        )
        seen: list[str] = []
        async with (
            use_radio(radio, FAST),
            BleakScanner(
                lambda d, _a: seen.append(d.address),
                service_uuids=[BLOOD_PRESSURE_SERVICE],
                backend=BumbleScanner,
            ) as scanner,
        ):
            # Both advertise every 20 ms: after ten reports of the cuff, the scale has sent too.
            reports = 0
            async for device, _data in scanner.advertisement_data():
                assert device.address == CUFF
                reports += 1
                if reports == 10:
                    break
        assert set(seen) == {CUFF}


@pytest.mark.asyncio
async def test_find_device_by_address_finds_a_device_and_returns_none_for_an_absent_one():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF)
        async with use_radio(radio, FAST):
            found = await BleakScanner.find_device_by_address(
                CUFF.lower(), timeout=5, backend=BumbleScanner
            )
            absent = await BleakScanner.find_device_by_address(
                ABSENT, timeout=0.2, backend=BumbleScanner
            )
        assert found is not None
        assert found.address == CUFF
        assert absent is None


@pytest.mark.asyncio
async def test_scan_response_is_merged_with_the_advertisement():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        adv = advertising_data(None, service_uuid16=0x1810, manufacturer=True)
        # The name and TX power only in the scan response, as many cuffs and scales send them.
        scan_response = advertising_data("Cuff", tx_power=True)
        await start_peripheral(radio, CUFF, adv_data=adv, scan_response=scan_response)
        async with use_radio(radio, FAST), BleakScanner(backend=BumbleScanner) as scanner:
            async for device, data in scanner.advertisement_data():
                if device.address == CUFF and data.platform_data[0].is_scan_response:
                    break
        assert data.local_name == "Cuff"
        assert data.tx_power == TX_POWER_DBM
        assert data.service_uuids == [BLOOD_PRESSURE_SERVICE]
        assert data.manufacturer_data == {MANUFACTURER_ID: MANUFACTURER_PAYLOAD}
        assert device.name == "Cuff"


@pytest.mark.asyncio
async def test_a_passive_scan_gets_no_scan_response():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        adv = advertising_data(None, service_uuid16=0x1810)
        await start_peripheral(radio, CUFF, adv_data=adv, scan_response=advertising_data("Cuff"))
        async with (
            use_radio(radio, FAST),
            BleakScanner(scanning_mode="passive", backend=BumbleScanner) as scanner,
        ):
            reports = []
            async for device, data in scanner.advertisement_data():
                if device.address == CUFF:
                    reports.append(data)
                if len(reports) == 5:
                    break
        assert {data.local_name for data in reports} == {None}
        assert not any(data.platform_data[0].is_scan_response for data in reports)
        # Without a name BlueZ shows the address, with dashes.
        assert device.name == "F1-22-33-44-55-66"


def test_merge_folds_reports_per_address_like_bluez():
    merged = MergedAdvertisement()
    merged.update(
        [
            (0x01, b"\x06"),
            (0x03, bytes.fromhex("1018")),  # Blood Pressure
            (0xFF, bytes.fromhex("3a0d01")),
            (0xFF, bytes.fromhex("4c0002")),
            (0x16, bytes.fromhex("0f1864")),
            (0x08, b"Cu"),
        ]
    )
    merged.update(
        [
            (0x09, b"Cuff"),
            (0x07, bytes.fromhex("403f2e1d5c0b7a9e3b4c1f5e00001e9a")),
            (0xFF, bytes.fromhex("3a0d09")),
            (0x0A, bytes.fromhex("f8")),
        ]
    )
    merged.update([(0x08, b"C"), (0x03, bytes.fromhex("1018"))])
    data = merged.advertisement_data(127, ())
    assert data.local_name == "Cuff"
    assert data.service_uuids == [BLOOD_PRESSURE_SERVICE, TEST_SERVICE]
    assert data.manufacturer_data == {0x0D3A: b"\x09", 0x004C: b"\x02"}
    assert data.service_data == {BATTERY_SERVICE: b"\x64"}
    assert data.tx_power == -8
    assert data.rssi == -127


@pytest.mark.asyncio
async def test_a_failing_detection_callback_does_not_stop_the_scan(
    caplog: pytest.LogCaptureFixture,
):
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF)
        later: asyncio.Queue[BLEDevice] = asyncio.Queue()
        failed = False

        def fail_once(device: BLEDevice, _data: AdvertisementData) -> None:
            nonlocal failed
            if not failed:
                failed = True
                raise RuntimeError("callback bug")
            later.put_nowait(device)

        with caplog.at_level(logging.ERROR):
            async with use_radio(radio, FAST), BleakScanner(fail_once, backend=BumbleScanner):
                assert (await later.get()).address == CUFF
        assert [r.message for r in caplog.records if "detection_callback" in r.message] == [
            f"detection_callback_failed address={CUFF}"
        ]


# Connecting, reading, writing


@pytest.mark.asyncio
async def test_connect_discovers_services_reads_and_writes():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF, name="VB-Cuff")
        async with use_radio(radio, FAST):
            device = await scan_for(CUFF)
            async with BleakClient(device, backend=BumbleClient) as client:
                assert client.is_connected
                assert client.name == "VB-Cuff"
                assert client.mtu_size == 517
                service = client.services.get_service(TEST_SERVICE)
                assert service is not None
                read_char = service.get_characteristic(READ_CHAR)
                assert read_char is not None
                assert read_char.properties == ["read"]
                assert read_char.max_write_without_response_size == 514
                assert client.services.get_characteristic(BOTH_CHAR).properties == [
                    "notify",
                    "indicate",
                ]
                description = read_char.get_descriptor(USER_DESCRIPTION)
                assert description is not None
                assert client.services.get_characteristic(NOTIFY_CHAR).get_descriptor(CCCD)

                assert await client.read_gatt_char(READ_CHAR) == bytearray(READ_VALUE)
                assert await client.read_gatt_char(READ_CHAR, use_cached=True) == READ_VALUE
                assert await client.read_gatt_descriptor(description.handle) == b"Greeting"
                await client.write_gatt_descriptor(description.handle, b"Hello")
                assert await client.read_gatt_descriptor(description.handle) == b"Hello"

                await client.write_gatt_char(WRITE_CHAR, b"\x01\x02", response=True)
                assert await peripheral.writes.get() == (WRITE_CHAR, b"\x01\x02")
                await client.write_gatt_char(WRITE_NO_RESPONSE_CHAR, b"\x03", response=False)
                assert await peripheral.writes.get() == (WRITE_NO_RESPONSE_CHAR, b"\x03")
                long_value = bytes(range(256)) * 2
                await client.write_gatt_char(WRITE_CHAR, long_value, response=True)
                assert await peripheral.writes.get() == (WRITE_CHAR, long_value)
            assert not client.is_connected


@pytest.mark.asyncio
async def test_connect_by_address_string_scans_for_the_device():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF)
        async with use_radio(radio, FAST):
            async with BleakClient(CUFF, backend=BumbleClient) as client:
                assert await client.read_gatt_char(READ_CHAR) == READ_VALUE
            with pytest.raises(BleakDeviceNotFoundError) as raised:
                await BleakClient(ABSENT, backend=BumbleClient, timeout=0.2).connect()
        assert raised.value.identifier == ABSENT


@pytest.mark.asyncio
async def test_requested_services_limit_the_collection_as_on_bluez():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF)
        async with (
            use_radio(radio, FAST),
            BleakClient(await scan_for(CUFF), services=["1810"], backend=BumbleClient) as client,
        ):
            assert [service.uuid for service in client.services] == [BLOOD_PRESSURE_SERVICE]


@pytest.mark.asyncio
async def test_att_error_is_a_gatt_protocol_error_with_its_code():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF)
        async with (
            use_radio(radio, FAST),
            BleakClient(await scan_for(CUFF), backend=BumbleClient) as client,
        ):
            with pytest.raises(BleakGATTProtocolError) as raised:
                await client.read_gatt_char(ERROR_CHAR)
            assert raised.value.code == APPLICATION_ERROR
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.write_gatt_char(WRITE_CHAR, bytes([REJECTED_PREFIX]), response=True)
            assert refused.value.code == BleakGATTProtocolErrorCode.VALUE_NOT_ALLOWED
            # The link survives an ATT error.
            assert await client.read_gatt_char(READ_CHAR) == READ_VALUE


@pytest.mark.asyncio
async def test_disconnect_during_a_read_is_a_bleak_error_and_calls_the_disconnected_callback():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF)
        dropped = asyncio.Event()
        async with use_radio(radio, FAST):
            client = BleakClient(
                await scan_for(CUFF), lambda _c: dropped.set(), backend=BumbleClient
            )
            await client.connect()
            queued = asyncio.create_task(client.read_gatt_char(READ_CHAR))
            with pytest.raises(BleakError, match="Disconnected") as raised:
                await client.read_gatt_char(HANG_CHAR)
            assert not isinstance(raised.value, BleakGATTProtocolError)
            assert peripheral.hang_started.is_set()
            # A request queued behind the lost one fails the same way, without waiting 30 s.
            with pytest.raises(BleakError):
                await queued
            await dropped.wait()
            assert not client.is_connected
            await client.disconnect()


@pytest.mark.asyncio
async def test_cancelling_the_caller_still_cancels():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF)
        async with (
            use_radio(radio, FAST),
            BleakClient(await scan_for(CUFF), backend=BumbleClient) as client,
        ):
            read = asyncio.create_task(client.read_gatt_char(SLOW_CHAR))
            await peripheral.slow_started.wait()
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await client.read_gatt_char(SLOW_CHAR)
            assert client.is_connected


@pytest.mark.asyncio
async def test_operations_on_a_disconnected_client_raise_bleak_error():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF)
        async with use_radio(radio, FAST):
            client = BleakClient(await scan_for(CUFF), backend=BumbleClient)
            await client.connect()
            read_char = client.services.get_characteristic(READ_CHAR)
            write_char = client.services.get_characteristic(WRITE_CHAR)
            notify_char = client.services.get_characteristic(NOTIFY_CHAR)
            await client.disconnect()
            await client.disconnect()  # a second disconnect is a no-op, as on BlueZ
            # As on BlueZ, the services are gone with the link, and bleak itself says so.
            with pytest.raises(BleakError):
                await client.read_gatt_char(read_char)
            with pytest.raises(BleakError):
                await client.write_gatt_char(write_char, b"x", response=True)
            with pytest.raises(BleakError):
                await client.start_notify(notify_char, lambda _s, _d: None)
            with pytest.raises(BleakError):
                await client.stop_notify(notify_char)


@pytest.mark.asyncio
async def test_solicited_disconnect_also_calls_the_callback_as_bluez_does():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF)
        calls: list[BleakClient] = []
        async with use_radio(radio, FAST):
            client = BleakClient(await scan_for(CUFF), calls.append, backend=BumbleClient)
            await client.connect()
            # Two callers at once: both return once the link is down, one callback in all.
            await asyncio.gather(client.disconnect(), client.disconnect())
            assert not client.is_connected
        assert calls == [client]


@pytest.mark.asyncio
async def test_unsolicited_disconnect_calls_the_callback():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF)
        dropped: asyncio.Future[BleakClient] = asyncio.get_running_loop().create_future()
        async with use_radio(radio, FAST):
            client = BleakClient(await scan_for(CUFF), dropped.set_result, backend=BumbleClient)
            await client.connect()
            await peripheral.connection().disconnect()
            assert await dropped is client
            assert not client.is_connected


# Notifications and indications


@pytest.mark.asyncio
async def test_notifications_and_indications_prefer_notify_and_stop():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF)
        chars = peripheral.characteristics
        async with (
            use_radio(radio, FAST),
            BleakClient(await scan_for(CUFF), backend=BumbleClient) as client,
        ):
            notified, on_notify = collector()
            indicated, on_indicate = collector()
            both, on_both = collector()
            await client.start_notify(NOTIFY_CHAR, on_notify)
            assert await peripheral.subscriptions.get() == (NOTIFY_CHAR, True, False)
            await client.start_notify(INDICATE_CHAR, on_indicate)
            assert await peripheral.subscriptions.get() == (INDICATE_CHAR, False, True)
            await client.start_notify(BOTH_CHAR, on_both)
            assert await peripheral.subscriptions.get() == (BOTH_CHAR, True, False)

            connection = peripheral.connection()
            await peripheral.device.notify_subscriber(connection, chars[NOTIFY_CHAR], b"n1")
            await peripheral.device.indicate_subscriber(connection, chars[INDICATE_CHAR], b"i1")
            await peripheral.device.notify_subscriber(connection, chars[BOTH_CHAR], b"b1")
            assert await notified.get() == b"n1"
            assert await indicated.get() == b"i1"
            assert await both.get() == b"b1"

            with pytest.raises(BleakError, match="already started"):
                await client.start_notify(NOTIFY_CHAR, on_notify)
            with pytest.raises(BleakError, match="neither notify nor indicate"):
                await client.start_notify(READ_CHAR, on_notify)

            await client.stop_notify(NOTIFY_CHAR)
            assert await peripheral.subscriptions.get() == (NOTIFY_CHAR, False, False)
            # The server now has no subscriber to send to; a forced send is dropped.
            await peripheral.device.notify_subscriber(
                connection, chars[NOTIFY_CHAR], b"n2", force=True
            )
            await peripheral.device.notify_subscriber(connection, chars[BOTH_CHAR], b"b2")
            assert await both.get() == b"b2"
            assert notified.empty()


@pytest.mark.asyncio
async def test_a_failing_notify_callback_never_blocks_the_indication_confirmation(
    caplog: pytest.LogCaptureFixture,
):
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF)
        received: asyncio.Queue[bytearray] = asyncio.Queue()

        def failing(_sender: BleakGATTCharacteristic, data: bytearray) -> None:
            received.put_nowait(data)
            raise RuntimeError("callback bug")

        with caplog.at_level(logging.ERROR):
            async with (
                use_radio(radio, FAST),
                BleakClient(await scan_for(CUFF), backend=BumbleClient) as client,
            ):
                await client.start_notify(INDICATE_CHAR, failing)
                characteristic = peripheral.characteristics[INDICATE_CHAR]
                # indicate_subscriber returns only once the hub has confirmed.
                await peripheral.device.indicate_subscriber(
                    peripheral.connection(), characteristic, b"first"
                )
                await peripheral.device.indicate_subscriber(
                    peripheral.connection(), characteristic, b"second"
                )
                assert await received.get() == b"first"
                assert await received.get() == b"second"
                assert client.is_connected
        assert sum("notify_callback_failed" in r.message for r in caplog.records) == 2


@pytest.mark.asyncio
async def test_blood_pressure_measurement_by_indication_decodes_to_what_was_sent():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF, name="Cuff")
        sent = BloodPressureMeasurement(
            Number(142, 0), Number(91, 0), Number(1080, -1), Unit.MMHG, None, Number(72, 0), 1
        )
        async with (
            use_radio(radio, FAST),
            BleakClient(await scan_for(CUFF), backend=BumbleClient) as client,
        ):
            measurements, on_measurement = collector()
            await client.start_notify(BLOOD_PRESSURE_MEASUREMENT, on_measurement)
            await peripheral.device.indicate_subscriber(
                peripheral.connection(),
                peripheral.characteristics[BLOOD_PRESSURE_MEASUREMENT],
                sent.encode(),
            )
            received = await measurements.get()
        assert device_profiles.decode(BLOOD_PRESSURE_MEASUREMENT, received) == sent


# Timeouts, serialisation and bleak-retry-connector


@pytest.mark.asyncio
async def test_connect_to_an_absent_device_times_out_with_asyncio_timeout_error():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF)
        async with use_radio(radio, FAST):
            device = await scan_for(CUFF)
            await peripheral.stop()
            client = BleakClient(device, backend=BumbleClient)
            with pytest.raises(asyncio.TimeoutError):
                await client.connect()
            assert not client.is_connected


@pytest.mark.asyncio
async def test_a_timed_out_connect_does_not_block_the_next_one():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        gone = await start_peripheral(radio, CUFF)
        await start_peripheral(radio, SCALE)
        async with use_radio(radio, FAST):
            absent = await scan_for(CUFF)
            present = await scan_for(SCALE)
            await gone.stop()
            with pytest.raises(asyncio.TimeoutError):
                await BleakClient(absent, backend=BumbleClient).connect()
            async with BleakClient(present, backend=BumbleClient) as client:
                assert await client.read_gatt_char(READ_CHAR) == READ_VALUE


@pytest.mark.asyncio
async def test_concurrent_connects_through_one_adapter_are_serialised():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        addresses = (CUFF, SCALE, OXIMETER)
        for address in addresses:
            await start_peripheral(radio, address)
        async with use_radio(radio, FAST):
            devices = [await scan_for(address) for address in addresses]
            clients = [BleakClient(device, backend=BumbleClient) for device in devices]
            await asyncio.gather(*(client.connect() for client in clients))
            values = await asyncio.gather(*(c.read_gatt_char(READ_CHAR) for c in clients))
            assert values == [READ_VALUE] * 3
            await asyncio.gather(*(client.disconnect() for client in clients))


@pytest.mark.asyncio
async def test_establish_connection_connects_with_the_bumble_backend():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF)
        async with use_radio(radio, FAST):
            device = await scan_for(CUFF)
            client = await establish_connection(
                BleakClientWithServiceCache, device, "cuff", backend=BumbleClient
            )
            try:
                assert client.is_connected
                assert await client.read_gatt_char(READ_CHAR) == READ_VALUE
            finally:
                await client.disconnect()


@pytest.mark.asyncio
async def test_establish_connection_gives_up_on_an_absent_device_as_not_found():
    # asyncio.timeout is only the fail-safe; the point is the error type: timeouts counted as
    # timeouts (not as transient errors) end as BleakNotFoundError after max_attempts.
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF)
        async with use_radio(radio, FAST):
            device = await scan_for(CUFF)
            await peripheral.stop()
            with pytest.raises(BleakNotFoundError) as raised:
                await establish_connection(
                    BleakClientWithServiceCache,
                    device,
                    "cuff",
                    max_attempts=1,
                    backend=BumbleClient,
                )
        assert isinstance(raised.value.__cause__, asyncio.TimeoutError)


@pytest.mark.asyncio
async def test_establish_connection_retries_an_absent_device_only_on_timeouts():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF)
        async with use_radio(radio, FAST):
            device = await scan_for(CUFF)
            await peripheral.stop()
            # Four attempts (the default), each a timeout: a cancelled connect must leave the
            # controller free, or the later attempts would fail as "connection errors".
            with pytest.raises(BleakNotFoundError) as raised:
                await establish_connection(
                    BleakClientWithServiceCache, device, "cuff", backend=BumbleClient
                )
        assert isinstance(raised.value.__cause__, asyncio.TimeoutError)


# Pairing


@pytest.mark.asyncio
async def test_just_works_pairing_bonds_and_bonding_survives_a_reconnect():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(radio, CUFF)
        async with use_radio(radio, FAST):
            device = await scan_for(CUFF)
            async with BleakClient(device, backend=BumbleClient) as client:
                await client.pair()
                await peripheral.pairings.get()
                assert await client.read_gatt_char(SECURE_CHAR) == b"secret"
                await client.pair()  # already bonded: nothing to do, as on BlueZ
            async with BleakClient(device, backend=BumbleClient) as client:
                # Encrypted with the stored keys when the device asks for it, no new pairing.
                assert await client.read_gatt_char(SECURE_CHAR) == b"secret"
            assert peripheral.pairings.empty()

            async with BleakClient(device, backend=BumbleClient) as client:
                await client.unpair()
                assert not client.is_connected
            async with BleakClient(device, backend=BumbleClient) as client:
                # Keys forgotten: the protected read pairs again, as BlueZ's agent would.
                assert await client.read_gatt_char(SECURE_CHAR) == b"secret"
                await peripheral.pairings.get()


@pytest.mark.asyncio
async def test_passkey_pairing_through_a_per_client_delegate():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(
            radio, CUFF, pairing_delegate=DisplayPasskeyDelegate(PASSKEY)
        )
        async with use_radio(radio, FAST):
            device = await scan_for(CUFF)
            wrong = BleakClient(
                device,
                backend=BumbleClient,
                bumble={"pairing_delegate": PasskeyEntryDelegate(PASSKEY + 1)},
            )
            async with wrong:
                with pytest.raises(BleakError, match=r"Pairing with .* failed"):
                    await wrong.pair()
            right = BleakClient(
                device,
                pair=True,
                backend=BumbleClient,
                bumble={"pairing_delegate": PasskeyEntryDelegate(PASSKEY)},
            )
            async with right:
                connection = await peripheral.pairings.get()
                assert connection.authenticated
                assert await right.read_gatt_char(SECURE_CHAR) == b"secret"


@pytest.mark.asyncio
async def test_passkey_pairing_through_the_adapter_delegate():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        peripheral = await start_peripheral(
            radio, CUFF, pairing_delegate=DisplayPasskeyDelegate(PASSKEY)
        )
        settings = AdapterSettings(
            connect_timeout_s=FAST.connect_timeout_s, pairing_delegate=PasskeyEntryDelegate(PASSKEY)
        )
        async with (
            use_radio(radio, settings),
            BleakClient(await scan_for(CUFF), backend=BumbleClient) as client,
        ):
            assert await client.read_gatt_char(SECURE_CHAR) == b"secret"
            assert (await peripheral.pairings.get()).authenticated


# The adapter


@pytest.mark.asyncio
async def test_without_an_adapter_the_error_says_how_to_configure_one(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv(HCI_ENV_VAR, raising=False)
    async with asyncio.timeout(TEST_TIMEOUT_S):
        await reset_adapter()
        with pytest.raises(AdapterNotConfiguredError, match=HCI_ENV_VAR):
            await BleakScanner(backend=BumbleScanner).start()
        with pytest.raises(AdapterNotConfiguredError, match="use_radio"):
            await BleakClient(CUFF, backend=BumbleClient).connect()


@pytest.mark.asyncio
async def test_one_adapter_at_a_time_and_reset_between_uses():
    async with asyncio.timeout(TEST_TIMEOUT_S):
        radio = Radio()
        await start_peripheral(radio, CUFF)
        async with use_radio(radio, FAST):
            with pytest.raises(AdapterInUseError):
                async with use_radio(radio, AdapterSettings(address="C0:FF:EE:00:00:02")):
                    pass
            await scan_for(CUFF)
        # The same radio and address again: the previous adapter left the link.
        async with (
            use_radio(radio, FAST),
            BleakClient(await scan_for(CUFF), backend=BumbleClient) as client,
        ):
            assert await client.read_gatt_char(READ_CHAR) == READ_VALUE


@pytest_asyncio.fixture
async def exposed_radio(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Radio, str]]:
    """A radio serving the hub's controller on a unix socket, as the simulator process does."""
    radio = Radio()
    path = tmp_path_factory.mktemp("hci") / "hub.sock"
    async with radio.expose(f"unix-server:{path}", name="hub") as exposure:
        try:
            yield radio, exposure.client_spec
        finally:
            await reset_adapter()


@pytest.mark.asyncio
@pytest.mark.parametrize("selected_by", ["environment", "configure", "use_hci"])
async def test_cross_process_adapter_on_an_hci_socket(
    exposed_radio: tuple[Radio, str], monkeypatch: pytest.MonkeyPatch, selected_by: str
):
    radio, spec = exposed_radio
    monkeypatch.delenv(HCI_ENV_VAR, raising=False)
    async with asyncio.timeout(TEST_TIMEOUT_S), contextlib.AsyncExitStack() as stack:
        await reset_adapter()
        if selected_by == "environment":
            monkeypatch.setenv(HCI_ENV_VAR, spec)
        elif selected_by == "configure":
            configure(hci_spec=spec, settings=FAST)
        else:
            await stack.enter_async_context(use_hci(spec, FAST))
        peripheral = await start_peripheral(radio, CUFF)
        device = await scan_for(CUFF)
        async with BleakClient(device, backend=BumbleClient) as client:
            notified, on_notify = collector()
            await client.start_notify(NOTIFY_CHAR, on_notify)
            await peripheral.subscriptions.get()
            await peripheral.device.notify_subscriber(
                peripheral.connection(), peripheral.characteristics[NOTIFY_CHAR], b"hello"
            )
            assert await notified.get() == b"hello"


@pytest.mark.asyncio
async def test_a_bad_hci_configuration_says_what_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    async with asyncio.timeout(TEST_TIMEOUT_S):
        await reset_adapter()
        monkeypatch.setenv(HCI_ENV_VAR, f"unix:{tmp_path / 'nobody-listens.sock'}")
        with pytest.raises(AdapterNotConfiguredError, match="Could not open"):
            await BleakScanner(backend=BumbleScanner).start()
        monkeypatch.setenv(CONNECT_TIMEOUT_ENV_VAR, "soon")
        with pytest.raises(AdapterNotConfiguredError, match=CONNECT_TIMEOUT_ENV_VAR):
            await BleakScanner(backend=BumbleScanner).start()


@pytest.mark.parametrize(
    "settings",
    [{"connect_timeout_s": 0.0}, {"connect_timeout_s": float("nan")}, {"preferred_mtu": 22}],
)
def test_adapter_settings_refuse_unusable_values(settings: dict[str, float]):
    with pytest.raises(ValueError, match="must be"):
        AdapterSettings(**settings)


# Canaries: the behaviour of other libraries this backend relies on.


def test_canary_bleak_base_client_keeps_timeout_and_disconnected_callback():
    # BumbleClient reads these protected attributes that BaseBleakClient.__init__ sets.
    def callback() -> None:
        pass

    client = BumbleClient(CUFF, disconnected_callback=callback, timeout=3.0)
    assert client._timeout == 3.0
    assert client._disconnected_callback is callback


def test_canary_retry_connector_leaves_devices_without_a_bluez_path_alone():
    # bleak-retry-connector asks D-Bus about any device whose details carry a BlueZ "path".
    device = BLEDevice(CUFF, "Cuff", {"source": "bumble", "address_type": 1})
    assert path_from_ble_device(device) is None


@pytest.mark.asyncio
async def test_canary_retry_connector_sees_no_connected_bluez_device():
    device = BLEDevice(CUFF, "Cuff", {"source": "bumble", "address_type": 1})
    assert await get_connected_devices(device) == []


def test_canary_bumble_gatt_client_cancels_the_pending_request_on_disconnection():
    # The backend turns this cancellation into a BleakError; if Bumble stops cancelling,
    # a disconnect during a read would wait for the 30 s ATT timeout instead.
    source = gatt_client.Client.on_disconnection.__code__.co_names
    assert "pending_response" in source
    assert "cancel" in source


def test_canary_bumble_device_events_the_adapter_listens_to():
    assert Device.EVENT_ADVERTISEMENT == "advertisement"
    assert Device.EVENT_CONNECTION == "connection"
    assert Device.EVENT_CONNECTION_FAILURE == "connection_failure"
