"""RACP against the simulated glucose meter, end to end through bleak's public API.

The hub does what the gateway will do: subscribe to the measurement, context and RACP
characteristics before writing any request, then collect records until the RACP response.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError

import device_profiles
from device_profiles.racp import OpCode, RecordAccessControlPoint, ResponseCode
from simulators.bleak_backend import AdapterSettings, BumbleClient, BumbleScanner, use_radio
from simulators.devices import Behaviours, GlucoseMeter, SimulatorConfig
from simulators.radio import Radio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from device_profiles.glucose import GlucoseMeasurement

TIMEOUT_S = 30
FAST = AdapterSettings(connect_timeout_s=2.0)
ADDRESS = "F0:10:20:30:40:51"
GLUCOSE = "00002a18-0000-1000-8000-00805f9b34fb"
CONTEXT = "00002a34-0000-1000-8000-00805f9b34fb"
RACP = "00002a52-0000-1000-8000-00805f9b34fb"


class LinkLostError(Exception):
    """The meter dropped the link before answering the RACP request."""


class Hub:
    """A bleak client subscribed to everything a glucose sync needs."""

    def __init__(self, client: BleakClient, lost: asyncio.Event) -> None:
        self.client = client
        self.lost = lost
        self.records: asyncio.Queue[GlucoseMeasurement] = asyncio.Queue()
        self.answers: asyncio.Queue[RecordAccessControlPoint] = asyncio.Queue()

    async def subscribe(self) -> None:
        await self.client.start_notify(
            GLUCOSE, lambda _, data: self.records.put_nowait(device_profiles.decode(0x2A18, data))
        )
        await self.client.start_notify(CONTEXT, lambda _, __: None)
        await self.client.start_notify(
            RACP, lambda _, data: self.answers.put_nowait(device_profiles.decode(0x2A52, data))
        )

    async def request(self, request: RecordAccessControlPoint) -> RecordAccessControlPoint:
        await self.client.write_gatt_char(RACP, request.encode(), response=True)
        answer = asyncio.ensure_future(self.answers.get())
        lost = asyncio.ensure_future(self.lost.wait())
        done, pending = await asyncio.wait({answer, lost}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if answer not in done:
            raise LinkLostError
        return answer.result()

    def drain(self) -> list[int]:
        numbers = []
        while not self.records.empty():
            numbers.append(self.records.get_nowait().sequence_number)
        return numbers


@contextlib.asynccontextmanager
async def meter_with_records(count: int, behaviours: Behaviours) -> AsyncIterator[GlucoseMeter]:
    radio = Radio(seed=3)
    meter = GlucoseMeter.on_radio(radio, ADDRESS, SimulatorConfig(seed=9, behaviours=behaviours))
    await meter.start()
    try:
        for _ in range(count):
            await meter.measure()  # nobody listens: each reading is stored for RACP
        async with use_radio(radio, FAST):
            yield meter
    finally:
        await meter.stop()


async def connect() -> Hub:
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=5.0, backend=BumbleScanner)
    assert device is not None
    lost = asyncio.Event()
    client = BleakClient(device, disconnected_callback=lambda _: lost.set(), backend=BumbleClient)
    await client.connect()
    hub = Hub(client, lost)
    await hub.subscribe()
    return hub


@pytest.mark.asyncio
async def test_count_report_newer_than_delete_and_no_records():
    async with asyncio.timeout(TIMEOUT_S), meter_with_records(5, Behaviours()) as meter:
        stored = [record.sequence_number for record in meter.stored_records]  # type: ignore[attr-defined]
        assert len(stored) == 5
        hub = await connect()
        try:
            count = await hub.request(RecordAccessControlPoint.report_number_of_stored_records())
            assert count.number_of_records == 5
            newer = stored[2]
            answer = await hub.request(RecordAccessControlPoint.report_records_from(newer))
            assert answer.is_success
            assert answer.request_op_code is OpCode.REPORT_STORED_RECORDS
            assert hub.drain() == stored[2:]
            deleted = await hub.request(RecordAccessControlPoint.delete_stored_records())
            assert deleted.is_success
            count = await hub.request(RecordAccessControlPoint.report_number_of_stored_records())
            assert count.number_of_records == 0
            empty = await hub.request(RecordAccessControlPoint.report_all_records())
            assert empty.no_records_found
            assert hub.drain() == []
        finally:
            await hub.client.disconnect()


@pytest.mark.asyncio
async def test_disconnect_mid_transfer_then_resume_loses_nothing():
    behaviours = Behaviours(racp_disconnect_after_records=2)
    async with asyncio.timeout(TIMEOUT_S), meter_with_records(5, behaviours) as meter:
        stored = [record.sequence_number for record in meter.stored_records]  # type: ignore[attr-defined]
        received: list[int] = []
        request = RecordAccessControlPoint.report_all_records()
        drops = 0
        for _attempt in range(5):
            hub = await connect()
            try:
                answer = await hub.request(request)
            except (LinkLostError, BleakError):
                drops += 1
                # The meter dropped the link mid-transfer: keep what arrived, resume after it.
                received.extend(hub.drain())
                request = RecordAccessControlPoint.report_records_from(received[-1] + 1)
                continue
            received.extend(hub.drain())
            assert answer.is_success
            await hub.client.disconnect()
            break
        assert drops >= 1
        assert received == stored


@pytest.mark.asyncio
async def test_abort_stops_a_report_in_progress():
    slow = Behaviours(notification_interval_s=0.05)
    async with asyncio.timeout(TIMEOUT_S), meter_with_records(20, slow):
        hub = await connect()
        client = hub.client
        try:
            await client.write_gatt_char(
                RACP, RecordAccessControlPoint.report_all_records().encode(), response=True
            )
            await hub.records.get()  # the transfer is under way
            await client.write_gatt_char(
                RACP, RecordAccessControlPoint.abort_operation().encode(), response=True
            )
            answers = [await hub.answers.get()]
            if answers[0].request_op_code is OpCode.REPORT_STORED_RECORDS:
                answers.append(await hub.answers.get())
            abort = answers[-1]
            assert abort.request_op_code is OpCode.ABORT_OPERATION
            assert abort.response_code_value is ResponseCode.SUCCESS
            assert 1 <= len(hub.drain()) + 1 < 20
        finally:
            await client.disconnect()
