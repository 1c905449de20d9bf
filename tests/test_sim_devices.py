"""The simulated health devices, seen by a Bumble central on the same radio (Bumble GATT client)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import random
import statistics

import pytest
from bumble import att, core
from sim_device_helpers import T0, GatedClock, running

from device_profiles import DateTime, DecodeError, ErrorKind, Number, Scale, SpecialValue, decode
from device_profiles.battery import BatteryLevel
from device_profiles.blood_pressure import IntermediateCuffPressure
from device_profiles.body_composition import BodyCompositionReassembler
from device_profiles.current_time import CurrentTime
from device_profiles.glucose import SensorStatus, pair_records
from device_profiles.pulse_oximeter import PLXMeasurementStatus
from device_profiles.racp import (
    OpCode,
    Operator,
    RecordAccessControlPoint,
    ResponseCode,
    UserFacingTime,
)
from device_profiles.user_data import (
    DatabaseChangeIncrement,
    UserControlPoint,
    UserControlPointOpCode,
    UserControlPointResponseValue,
    UserIndex,
)
from simulators.devices import (
    COPD,
    DEVICE_TYPES,
    DIABETIC,
    EPOCH_1970,
    HYPERTENSIVE,
    NORMAL,
    Behaviours,
    BloodPressureCuff,
    BodyCompositionScale,
    ContinuousOximeter,
    GlucoseMeter,
    HeartRateStrap,
    ManualClock,
    Pairing,
    PayloadFault,
    Physiology,
    SimulatorConfig,
    SpotCheckOximeter,
    Thermometer,
    WeightScale,
)
from simulators.devices._gatt import short_uuid
from simulators.radio import Radio

BPM, ICP = 0x2A35, 0x2A36
SPOT, CONTINUOUS = 0x2A5E, 0x2A5F
WEIGHT, BODY = 0x2A9D, 0x2A9C
TEMPERATURE, INTERMEDIATE_TEMPERATURE = 0x2A1C, 0x2A1E
GLUCOSE, CONTEXT = 0x2A18, 0x2A34
HEART_RATE = 0x2A37
RACP = 0x2A52
UCP, USER_INDEX, CHANGE_INCREMENT = 0x2A9F, 0x2A9A, 0x2A99
CURRENT_TIME, BATTERY = 0x2A2B, 0x2A19
DEADLINE_S = 20

# Per device type: the service it is built around, and what a hub subscribes to (uuid, indicate).
PROFILES = {
    "blood_pressure_cuff": (0x1810, [(ICP, False), (BPM, True)]),
    "spot_check_oximeter": (0x1822, [(SPOT, True)]),
    "continuous_oximeter": (0x1822, [(CONTINUOUS, False)]),
    "weight_scale": (0x181D, [(WEIGHT, True)]),
    "body_composition_scale": (0x181B, [(WEIGHT, True), (BODY, True)]),
    "thermometer": (0x1809, [(INTERMEDIATE_TEMPERATURE, False), (TEMPERATURE, True)]),
    "glucose_meter": (0x1808, [(GLUCOSE, False), (CONTEXT, False)]),
    "heart_rate_strap": (0x180D, [(HEART_RATE, False)]),
}


async def subscribe_all(hub, subscriptions):
    for uuid, indicate in subscriptions:
        await hub.subscribe(uuid, indicate=indicate)


async def received_values(sim, hub):
    """Every value the simulator sent (none dropped), as the hub decoded it, in order."""
    decoded = []
    for sent in sim.sent:
        assert not sent.dropped
        decoded.append((sent.uuid, await hub.next(sent.uuid), sent.value))
    return decoded


async def racp(hub, request):
    """Write a RACP request and return the control point's answer."""
    await hub.write(RACP, request)
    return await hub.next(RACP)


# -- every device type ---------------------------------------------------------------------


def test_every_device_type_is_listed():
    assert set(DEVICE_TYPES) == set(PROFILES)


@pytest.mark.parametrize("kind", sorted(PROFILES))
@pytest.mark.asyncio
async def test_device_serves_its_profile_device_information_and_battery(kind):
    device_type = DEVICE_TYPES[kind]
    async with asyncio.timeout(DEADLINE_S), running(device_type) as (sim, hub):
        await hub.connect(sim)
        service, _ = PROFILES[kind]
        expected = {service, 0x180A, 0x180F} | ({0x1805} if device_type.HAS_CURRENT_TIME else set())
        assert expected <= hub.service_uuids()
        identity = sim.identity
        assert (await hub.read(0x2A29)).manufacturer_name == identity.manufacturer
        assert (await hub.read(0x2A24)).model_number == identity.model
        assert (await hub.read(0x2A25)).serial_number == identity.serial
        assert (await hub.read(0x2A26)).firmware_revision == identity.firmware
        assert await hub.read(BATTERY) == BatteryLevel(Number(85, 0))


@pytest.mark.parametrize("kind", sorted(PROFILES))
@pytest.mark.asyncio
async def test_measurement_reaches_the_hub_as_the_simulator_meant_it(kind):
    async with asyncio.timeout(DEADLINE_S), running(DEVICE_TYPES[kind]) as (sim, hub):
        await hub.connect(sim)
        await subscribe_all(hub, PROFILES[kind][1])
        result = await sim.measure()
        received = await received_values(sim, hub)
        assert received, "the device sent nothing"
        for uuid, decoded, intended in received:
            assert decoded == intended, hex(uuid)
        main = [value for uuid, value, _ in received if uuid == PROFILES[kind][1][-1][0]]
        if kind == "glucose_meter":
            assert pair_records([r for u, r, _ in received if u == GLUCOSE], main) == (result,)
        elif kind.endswith("scale"):
            assert received[0][1] == result.weight
        else:
            assert main[-1] == result
        if kind != "glucose_meter":  # a meter keeps its memory until a hub deletes it
            assert sim.stored_records == ()


@pytest.mark.asyncio
async def test_readings_are_physiologically_plausible():
    async with asyncio.timeout(DEADLINE_S), running(BloodPressureCuff) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(BPM, indicate=True)
        for _ in range(5):
            reading = await sim.measure()
            systolic, diastolic = reading.systolic.value, reading.diastolic.value
            assert 90 <= systolic <= 150
            assert 50 <= diastolic < systolic
            assert diastolic < reading.mean_arterial_pressure.value < systolic
            assert 40 <= reading.pulse_rate.value <= 110


def test_patient_profiles_shape_the_readings():
    def draws(profile, draw, count=60):
        physiology = Physiology(profile, random.Random(1))  # noqa: S311 - seeded test data
        return [draw(physiology) for _ in range(count)]

    normal_spo2 = statistics.mean(d.spo2 for d in draws(NORMAL, Physiology.oximetry))
    copd_spo2 = statistics.mean(d.spo2 for d in draws(COPD, Physiology.oximetry))
    assert normal_spo2 > 96
    assert 86 < copd_spo2 < 92
    copd_pulse = statistics.mean(d.pulse_rate for d in draws(COPD, Physiology.oximetry))
    assert copd_pulse > statistics.mean(d.pulse_rate for d in draws(NORMAL, Physiology.oximetry))
    hypertensive = draws(HYPERTENSIVE, Physiology.blood_pressure)
    assert statistics.mean(r.systolic for r in hypertensive) > 140
    assert statistics.mean(r.diastolic for r in hypertensive) > 90
    normal_bp = draws(NORMAL, Physiology.blood_pressure)
    assert statistics.mean(r.systolic for r in normal_bp) < 130
    # Diastolic follows systolic (they are drawn correlated).
    assert (
        statistics.correlation([r.systolic for r in normal_bp], [r.diastolic for r in normal_bp])
        > 0.4
    )
    fasting = draws(DIABETIC, lambda p: p.glucose(postprandial=False))
    assert statistics.mean(fasting) > 126
    assert statistics.mean(draws(NORMAL, lambda p: p.glucose(postprandial=False))) < 100
    body = draws(NORMAL, Physiology.body, 5)
    for reading in body:
        assert 18 < reading.bmi < 30
        assert reading.fat_free_mass_kg < reading.weight_kg


@pytest.mark.asyncio
async def test_same_seed_gives_the_same_readings_and_another_seed_does_not():
    async def readings(seed):
        radio = Radio()
        sim = GlucoseMeter.on_radio(
            radio, "F0:00:00:00:00:01", SimulatorConfig(seed=seed), clock=ManualClock(T0)
        )
        await sim.start()
        for _ in range(4):
            await sim.measure()
        await sim.stop()
        return sim.stored_records

    async with asyncio.timeout(DEADLINE_S):
        first, again, other = await readings(11), await readings(11), await readings(12)
    assert first == again
    assert first != other


# -- records kept while no hub listens -------------------------------------------------------


@pytest.mark.asyncio
async def test_cuff_keeps_readings_offline_and_sends_them_when_a_hub_subscribes():
    async with asyncio.timeout(DEADLINE_S), running(BloodPressureCuff) as (sim, hub):
        taken = [await sim.measure() for _ in range(3)]
        assert sim.stored_records == tuple(taken)
        await hub.connect(sim)
        await hub.subscribe(BPM, indicate=True)
        assert [await hub.next(BPM) for _ in taken] == taken
        await sim.settle()  # the last confirmation lands just after the value
        assert sim.stored_records == ()


@pytest.mark.asyncio
async def test_cuff_without_memory_loses_offline_readings():
    config = SimulatorConfig(behaviours=Behaviours(store_offline=False))
    async with asyncio.timeout(DEADLINE_S), running(BloodPressureCuff, config) as (sim, _hub):
        await sim.measure()
        assert sim.stored_records == ()


@pytest.mark.asyncio
async def test_thermometer_sends_intermediate_temperatures_then_the_result():
    async with asyncio.timeout(DEADLINE_S), running(Thermometer) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(INTERMEDIATE_TEMPERATURE)
        await hub.subscribe(TEMPERATURE, indicate=True)
        result = await sim.measure()
        warming = [await hub.next(INTERMEDIATE_TEMPERATURE) for _ in range(3)]
        values = [w.intermediate_temperature.value for w in warming]
        assert values == sorted(values)
        assert values[-1] < result.temperature_measurement_value.value
        assert await hub.next(TEMPERATURE) == result
        assert (await hub.read(0x2A1D)).temperature_type_description.name == "TYMPANUM"


@pytest.mark.asyncio
async def test_cuff_notifies_intermediate_cuff_pressure_while_inflating():
    async with asyncio.timeout(DEADLINE_S), running(BloodPressureCuff) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(ICP)
        await hub.subscribe(BPM, indicate=True)
        result = await sim.measure()
        pressures = []
        for _ in [sent for sent in sim.sent if sent.uuid == ICP]:
            pressure = await hub.next(ICP)
            assert isinstance(pressure, IntermediateCuffPressure)
            pressures.append(pressure.cuff_pressure.value)
        assert len(pressures) > 4
        assert max(pressures) > result.systolic.value
        assert pressures[0] == 0
        assert await hub.next(BPM) == result


@pytest.mark.asyncio
async def test_heart_rate_strap_sends_rr_intervals_consistent_with_the_rate():
    async with asyncio.timeout(DEADLINE_S), running(HeartRateStrap) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(HEART_RATE)
        for _ in range(5):
            result = await sim.measure()
            received = await hub.next(HEART_RATE)
            assert received == result
            mean_rr = statistics.mean(float(rr.value) for rr in received.rr_interval)
            assert abs(60 / mean_rr - float(received.heart_rate_measurement_value.value)) < 2
        assert (await hub.read(0x2A38)).body_sensor_location.name == "CHEST"


# -- RACP: glucose meter ---------------------------------------------------------------------


async def glucose_rig(hub, sim, count=5):
    for _ in range(count):
        await sim.measure()
    await hub.connect(sim)
    await hub.subscribe(GLUCOSE)
    await hub.subscribe(CONTEXT)
    await hub.subscribe(RACP, indicate=True)


async def glucose_records(hub, request):
    """Send a report request; return the records received, paired, and the response."""
    await hub.write(RACP, request)
    response = await hub.next(RACP)
    measurements = [decode(GLUCOSE, b) for b in drain(hub, GLUCOSE)]
    contexts = [decode(CONTEXT, b) for b in drain(hub, CONTEXT)]
    return pair_records(measurements, contexts), response


def drain(hub, uuid):
    queue = hub.queues[uuid]
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def response(op_code, code):
    return RecordAccessControlPoint.response(op_code, code)


@pytest.mark.asyncio
async def test_glucose_racp_reports_all_newer_first_and_last():
    async with asyncio.timeout(DEADLINE_S), running(GlucoseMeter) as (sim, hub):
        await glucose_rig(hub, sim)
        stored = sim.stored_records
        report = OpCode.REPORT_STORED_RECORDS
        records, answer = await glucose_records(hub, RecordAccessControlPoint.report_all_records())
        assert (records, answer) == (stored, response(report, ResponseCode.SUCCESS))
        records, answer = await glucose_records(
            hub, RecordAccessControlPoint.report_records_from(4)
        )
        assert records == stored[3:]
        records, _ = await glucose_records(hub, RecordAccessControlPoint.report_first_record())
        assert records == stored[:1]
        records, _ = await glucose_records(hub, RecordAccessControlPoint.report_last_record())
        assert records == stored[-1:]
        records, _ = await glucose_records(
            hub, RecordAccessControlPoint.report_records_in_range(2, 3)
        )
        assert records == stored[1:3]
        records, answer = await glucose_records(
            hub, RecordAccessControlPoint.report_records_from(9)
        )
        assert (records, answer) == ((), response(report, ResponseCode.NO_RECORDS_FOUND))


@pytest.mark.asyncio
async def test_glucose_racp_counts_and_deletes():
    async with asyncio.timeout(DEADLINE_S), running(GlucoseMeter) as (sim, hub):
        await glucose_rig(hub, sim)
        count = RecordAccessControlPoint.report_number_of_stored_records
        assert (await racp(hub, count())).number_of_records == 5
        newer = RecordAccessControlPoint.report_number_of_stored_records(
            Operator.GREATER_THAN_OR_EQUAL_TO,
            RecordAccessControlPoint.report_records_from(4).operand,
        )
        assert (await racp(hub, newer)).number_of_records == 2
        delete = RecordAccessControlPoint.delete_stored_records
        answer = await racp(hub, delete(Operator.LESS_THAN_OR_EQUAL_TO, newer.operand))
        assert answer == response(OpCode.DELETE_STORED_RECORDS, ResponseCode.SUCCESS)
        assert [r.sequence_number for r in sim.stored_records] == [5]
        assert (await racp(hub, delete())).is_success
        assert (await racp(hub, count())).number_of_records == 0
        assert (await racp(hub, delete())).no_records_found
        _, answer = await glucose_records(hub, RecordAccessControlPoint.report_all_records())
        assert answer.no_records_found


@pytest.mark.asyncio
async def test_glucose_racp_answers_bad_requests_with_their_response_codes():
    async with asyncio.timeout(DEADLINE_S), running(GlucoseMeter) as (sim, hub):
        await glucose_rig(hub, sim, count=1)
        report = OpCode.REPORT_STORED_RECORDS
        null_operator = bytes((report, Operator.NULL))
        assert await racp(hub, null_operator) == response(report, ResponseCode.INVALID_OPERATOR)
        by_time = RecordAccessControlPoint.report_stored_records(
            Operator.GREATER_THAN_OR_EQUAL_TO, UserFacingTime(DateTime(2024, 1, 1))
        )
        assert (await racp(hub, by_time)).response_code_value is ResponseCode.OPERAND_NOT_SUPPORTED
        reserved_operator = bytes((report, 0x07))
        assert (await racp(hub, reserved_operator)).response_code_value is (
            ResponseCode.OPERATOR_NOT_SUPPORTED
        )
        reserved_op_code = bytes((0x09, 0x00))
        assert (await racp(hub, reserved_op_code)).response_code_value is (
            ResponseCode.OP_CODE_NOT_SUPPORTED
        )
        truncated = RecordAccessControlPoint.report_records_from(1).encode()[:-1]
        assert (await racp(hub, truncated)).response_code_value is ResponseCode.INVALID_OPERAND


@pytest.mark.asyncio
async def test_glucose_racp_write_needs_the_indication_enabled():
    async with asyncio.timeout(DEADLINE_S), running(GlucoseMeter) as (sim, hub):
        await sim.measure()
        await hub.connect(sim)
        with pytest.raises(att.ATT_Error) as caught:
            await hub.write(RACP, RecordAccessControlPoint.report_all_records())
        assert caught.value.error_code == att.ErrorCode.CCCD_IMPROPERLY_CONFIGURED


@pytest.mark.asyncio
async def test_glucose_racp_abort_stops_a_report_in_progress():
    clock = GatedClock(T0)
    config = SimulatorConfig(behaviours=Behaviours(notification_interval_s=0.5))
    async with (
        asyncio.timeout(DEADLINE_S),
        running(GlucoseMeter, config, clock=clock) as (sim, hub),
    ):
        await glucose_rig(hub, sim)
        await hub.write(RACP, RecordAccessControlPoint.report_all_records())
        await hub.next(GLUCOSE)
        await clock.sleeping.wait()  # the meter holds the transfer after its first notification
        with pytest.raises(att.ATT_Error) as caught:
            await hub.write(RACP, RecordAccessControlPoint.report_all_records())
        assert caught.value.error_code == att.ErrorCode.PROCEDURE_ALREADY_IN_PROGRESS
        answer = await racp(hub, RecordAccessControlPoint.abort_operation())
        assert answer == response(OpCode.ABORT_OPERATION, ResponseCode.SUCCESS)
        clock.gate.set()
        count = RecordAccessControlPoint.report_number_of_stored_records()
        assert (await racp(hub, count)).number_of_records == 5
        sent_glucose = [s for s in sim.sent if s.uuid == GLUCOSE]
        assert len(sent_glucose) == 1


@pytest.mark.asyncio
async def test_glucose_racp_resumes_after_the_meter_drops_the_link_mid_transfer():
    config = SimulatorConfig(behaviours=Behaviours(racp_disconnect_after_records=2))
    async with asyncio.timeout(DEADLINE_S), running(GlucoseMeter, config) as (sim, hub):
        await glucose_rig(hub, sim)
        stored = sim.stored_records
        got = []
        request = RecordAccessControlPoint.report_all_records()
        while True:
            await hub.write(RACP, request)
            answer = asyncio.ensure_future(hub.next(RACP))
            done, _ = await asyncio.wait(
                [answer, asyncio.ensure_future(hub.disconnected())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            measurements = [decode(GLUCOSE, b) for b in drain(hub, GLUCOSE)]
            contexts = [decode(CONTEXT, b) for b in drain(hub, CONTEXT)]
            got.extend(pair_records(measurements, contexts))
            if answer in done:
                assert answer.result().is_success
                break
            answer.cancel()
            await hub.connect(sim)  # resume from the last sequence number received
            await hub.subscribe(GLUCOSE)
            await hub.subscribe(CONTEXT)
            await hub.subscribe(RACP, indicate=True)
            request = RecordAccessControlPoint.report_records_from(got[-1].sequence_number + 1)
        assert tuple(got) == stored


# -- RACP: spot-check oximeter ---------------------------------------------------------------


async def oximeter_rig(hub, sim, count=3):
    kept = [await sim.measure() for _ in range(count)]
    await hub.connect(sim)
    await hub.subscribe(SPOT, indicate=True)
    await hub.subscribe(RACP, indicate=True)
    return kept


@pytest.mark.asyncio
async def test_oximeter_keeps_readings_offline_and_serves_them_by_racp():
    async with asyncio.timeout(DEADLINE_S), running(SpotCheckOximeter) as (sim, hub):
        kept = await oximeter_rig(hub, sim)
        assert all(
            PLXMeasurementStatus.DATA_FROM_MEASUREMENT_STORAGE in r.measurement_status for r in kept
        )
        assert sim.stored_records == tuple(kept)
        count = RecordAccessControlPoint.report_number_of_stored_records()
        assert (await racp(hub, count)).number_of_records == 3
        await hub.write(RACP, RecordAccessControlPoint.report_all_records())
        assert [await hub.next(SPOT) for _ in kept] == kept
        assert (await hub.next(RACP)).is_success
        newer = RecordAccessControlPoint.report_records_from(2)
        assert (await racp(hub, newer)).response_code_value is ResponseCode.OPERATOR_NOT_SUPPORTED
        assert (await racp(hub, RecordAccessControlPoint.abort_operation())).is_success
        assert (await racp(hub, RecordAccessControlPoint.delete_stored_records())).is_success
        assert (await racp(hub, count)).number_of_records == 0
        assert (await racp(hub, RecordAccessControlPoint.report_all_records())).no_records_found
        live = await sim.measure()
        assert await hub.next(SPOT) == live
        assert PLXMeasurementStatus.DATA_FROM_MEASUREMENT_STORAGE not in live.measurement_status


@pytest.mark.asyncio
async def test_oximeter_dropping_the_link_mid_transfer_keeps_every_record():
    config = SimulatorConfig(behaviours=Behaviours(racp_disconnect_after_records=2))
    async with asyncio.timeout(DEADLINE_S), running(SpotCheckOximeter, config) as (sim, hub):
        kept = await oximeter_rig(hub, sim)
        await hub.write(RACP, RecordAccessControlPoint.report_all_records())
        first = [await hub.next(SPOT), await hub.next(SPOT)]
        await hub.disconnected()
        assert first == kept[:2]
        # PLXS has no sequence numbers: the hub reports all again and deletes once it has them.
        await hub.connect(sim)
        await hub.subscribe(SPOT, indicate=True)
        await hub.subscribe(RACP, indicate=True)
        await hub.write(RACP, RecordAccessControlPoint.report_all_records())
        again = [await hub.next(SPOT), await hub.next(SPOT)]
        await hub.disconnected()
        assert again == kept[:2]
        assert sim.stored_records == tuple(kept)


@pytest.mark.asyncio
async def test_continuous_oximeter_streams_a_reading_a_second():
    clock = ManualClock(T0)
    async with asyncio.timeout(DEADLINE_S), running(ContinuousOximeter, clock=clock) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(CONTINUOUS)
        readings = await sim.stream(5, interval_s=1.0)
        assert [await hub.next(CONTINUOUS) for _ in readings] == readings
        assert clock.now() - T0 == dt.timedelta(seconds=4)


# -- User Data Service and body composition ----------------------------------------------------


async def register_and_consent(hub, consent_code=1234):
    await hub.subscribe(UCP, indicate=True)
    await hub.write(UCP, UserControlPoint.register_new_user(consent_code))
    registered = await hub.next(UCP)
    assert registered.is_success
    await hub.write(UCP, UserControlPoint.consent(registered.user_index, consent_code))
    assert (await hub.next(UCP)).is_success
    return registered.user_index


@pytest.mark.asyncio
async def test_scale_registers_a_user_with_a_consent_code_and_tags_readings():
    ucp = UserControlPointOpCode
    value = UserControlPointResponseValue
    async with asyncio.timeout(DEADLINE_S), running(WeightScale) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(WEIGHT, indicate=True)
        assert await hub.read(USER_INDEX) == UserIndex(0xFF)
        with pytest.raises(att.ATT_Error) as caught:
            await hub.read(CHANGE_INCREMENT)
        assert caught.value.error_code == 0x80  # UDS: user data access not permitted
        user = await register_and_consent(hub)
        assert user == 0
        assert await hub.read(USER_INDEX) == UserIndex(0)
        assert await hub.read(CHANGE_INCREMENT) == DatabaseChangeIncrement(0)
        await hub.write(CHANGE_INCREMENT, DatabaseChangeIncrement(3))
        assert await hub.read(CHANGE_INCREMENT) == DatabaseChangeIncrement(3)
        reading = await sim.measure()
        weighed = await hub.next(WEIGHT)
        assert weighed == reading.weight
        assert weighed.user_id == 0
        assert weighed.bmi is not None
        assert weighed.height == Number.fixed(1680, Scale(1, -3))
        await hub.write(UCP, UserControlPoint.consent(user, 9999))
        assert await hub.next(UCP) == UserControlPoint.response(
            ucp.CONSENT, value.USER_NOT_AUTHORIZED
        )
        await hub.write(UCP, UserControlPoint.consent(3, 1234))
        assert await hub.next(UCP) == UserControlPoint.response(
            ucp.CONSENT, value.INVALID_PARAMETER
        )
        await hub.write(UCP, UserControlPoint.list_all_users())
        assert await hub.next(UCP) == UserControlPoint.response(
            ucp.LIST_ALL_USERS, value.OP_CODE_NOT_SUPPORTED
        )
        await hub.write(UCP, UserControlPoint.delete_user_data())
        assert (await hub.next(UCP)).is_success
        assert await hub.read(USER_INDEX) == UserIndex(0xFF)
        assert sim.users.consent_codes == {}


@pytest.mark.asyncio
async def test_body_composition_is_split_at_the_mtu_and_reassembles():
    async with asyncio.timeout(DEADLINE_S), running(BodyCompositionScale) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(WEIGHT, indicate=True)
        await hub.subscribe(BODY, indicate=True)
        await register_and_consent(hub)
        reading = await sim.measure()
        assert await hub.next(WEIGHT) == reading.weight
        reassembler = BodyCompositionReassembler()
        first = await hub.next(BODY)
        assert first.multiple_packet_measurement
        assert reassembler.add(first) is None
        whole = reassembler.add(await hub.next(BODY))
        assert whole == reading.body_composition
        assert whole.user_id == 0
        assert whole.impedance is not None
        assert whole.weight == reading.weight.weight


@pytest.mark.asyncio
async def test_body_composition_fits_one_packet_on_a_larger_mtu():
    async with asyncio.timeout(DEADLINE_S), running(BodyCompositionScale) as (sim, hub):
        peer = await hub.connect(sim)
        await peer.request_mtu(185)
        await hub.subscribe(WEIGHT, indicate=True)
        await hub.subscribe(BODY, indicate=True)
        await register_and_consent(hub)
        reading = await sim.measure()
        await hub.next(WEIGHT)
        single = await hub.next(BODY)
        assert not single.multiple_packet_measurement
        assert single == reading.body_composition


@pytest.mark.asyncio
async def test_scale_reports_an_unknown_user_without_body_composition():
    async with asyncio.timeout(DEADLINE_S), running(BodyCompositionScale) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(WEIGHT, indicate=True)
        await hub.subscribe(BODY, indicate=True)
        reading = await sim.measure()
        weighed = await hub.next(WEIGHT)
        assert weighed.unknown_user
        assert weighed.bmi is None
        analysis = await hub.next(BODY)
        assert analysis == reading.body_composition
        assert analysis.body_fat_percentage.special is SpecialValue.MEASUREMENT_UNSUCCESSFUL


@pytest.mark.asyncio
async def test_scale_sends_a_users_offline_readings_after_consent():
    household = SimulatorConfig(household=(HYPERTENSIVE,))
    async with asyncio.timeout(DEADLINE_S), running(WeightScale, household) as (sim, hub):
        await hub.connect(sim)
        await register_and_consent(hub, 1111)
        await register_and_consent(hub, 2222)  # now consented as user 1
        await hub.disconnect()
        first = await sim.measure(user_index=0)
        second = await sim.measure(user_index=1)
        assert second.weight.weight.value > first.weight.weight.value  # 89 kg against 66 kg
        await hub.connect(sim)
        await hub.subscribe(UCP, indicate=True)
        await hub.subscribe(WEIGHT, indicate=True)
        await hub.write(UCP, UserControlPoint.consent(1, 2222))
        assert (await hub.next(UCP)).is_success
        assert await hub.next(WEIGHT) == second.weight
        await sim.settle()
        assert sim.stored_records == (first,)


# -- payload faults ----------------------------------------------------------------------------


def faulty(fault, every=1, **behaviours):
    return SimulatorConfig(
        behaviours=Behaviours(payload_fault=fault, payload_fault_every=every, **behaviours)
    )


async def cuff_reading_bytes(config):
    async with running(BloodPressureCuff, config) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(BPM, indicate=True)
        result = await sim.measure()
        return result, await hub.next_raw(BPM), sim.sent[-1]


@pytest.mark.asyncio
async def test_truncated_payloads_fail_to_decode_at_their_last_field():
    async with asyncio.timeout(DEADLINE_S):
        result, data, sent = await cuff_reading_bytes(faulty(PayloadFault.TRUNCATED))
    assert data == result.encode()[:-1]
    assert sent.fault is PayloadFault.TRUNCATED
    assert sent.value == result
    with pytest.raises(DecodeError) as caught:
        decode(BPM, data)
    assert caught.value.kind is ErrorKind.TRUNCATED
    assert caught.value.field == "measurement_status"


@pytest.mark.asyncio
async def test_malformed_payloads_carry_flags_without_fields():
    async with asyncio.timeout(DEADLINE_S):
        _, data, _ = await cuff_reading_bytes(faulty(PayloadFault.MALFORMED))
    assert len(data) == 1
    with pytest.raises(DecodeError) as caught:
        decode(BPM, data)
    assert caught.value.kind is ErrorKind.MISSING_FIELD


@pytest.mark.asyncio
async def test_reserved_flag_bits_decode_with_a_warning():
    async with asyncio.timeout(DEADLINE_S):
        result, data, _ = await cuff_reading_bytes(faulty(PayloadFault.RESERVED_BITS))
    decoded = decode(BPM, data)
    assert data[0] & 0x80
    assert any("reserved" in warning for warning in decoded.warnings)
    assert dataclasses.replace(decoded, warnings=()) == result


@pytest.mark.asyncio
async def test_special_values_are_sent_as_the_profile_encodes_them():
    async with asyncio.timeout(DEADLINE_S):
        result, data, _ = await cuff_reading_bytes(faulty(PayloadFault.SPECIAL_VALUES))
    decoded = decode(BPM, data)
    assert decoded == result
    assert decoded.mean_arterial_pressure.special is SpecialValue.NRES
    assert decoded.pulse_rate.special is SpecialValue.NAN


@pytest.mark.parametrize(
    ("device_type", "uuid", "field"),
    [
        (Thermometer, TEMPERATURE, "temperature_measurement_value"),
        (GlucoseMeter, GLUCOSE, "glucose_concentration"),
        (WeightScale, WEIGHT, "weight"),
    ],
)
@pytest.mark.asyncio
async def test_special_values_in_other_profiles(device_type, uuid, field):
    config = faulty(PayloadFault.SPECIAL_VALUES)
    async with asyncio.timeout(DEADLINE_S), running(device_type, config) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(uuid, indicate=uuid != GLUCOSE)
        await sim.measure()
        decoded = await hub.next(uuid)
        assert getattr(decoded, field).special is not None


@pytest.mark.asyncio
async def test_faults_hit_only_every_nth_measurement():
    config = faulty(PayloadFault.TRUNCATED, every=3)
    async with asyncio.timeout(DEADLINE_S), running(HeartRateStrap, config) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(HEART_RATE)
        await sim.stream(6)
        faults = [sent.fault for sent in sim.sent]
        assert faults == [None, None, PayloadFault.TRUNCATED] * 2
        for sent in sim.sent:
            assert await hub.next_raw(HEART_RATE) == sent.data


# -- slow and lossy links ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_slow_link_spaces_notifications_on_the_clock():
    clock = ManualClock(T0)
    config = SimulatorConfig(behaviours=Behaviours(notification_interval_s=0.25))
    async with (
        asyncio.timeout(DEADLINE_S),
        running(HeartRateStrap, config, clock=clock) as (
            sim,
            hub,
        ),
    ):
        await hub.connect(sim)
        await hub.subscribe(HEART_RATE)
        await sim.stream(4, interval_s=1.0)
        times = [sent.at for sent in sim.sent]
        assert {b - a for a, b in itertools.pairwise(times)} == {dt.timedelta(seconds=1.25)}
        assert [await hub.next(HEART_RATE) for _ in times] == [s.value for s in sim.sent]


@pytest.mark.asyncio
async def test_lossy_link_drops_notifications_but_never_indications():
    config = SimulatorConfig(behaviours=Behaviours(notification_loss_rate=0.4), seed=5)
    async with asyncio.timeout(DEADLINE_S), running(HeartRateStrap, config) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(HEART_RATE)
        await sim.stream(30)
        delivered = [s for s in sim.sent if not s.dropped]
        assert 0 < len(delivered) < 30
        assert [await hub.next(HEART_RATE) for _ in delivered] == [s.value for s in delivered]
        assert hub.pending(HEART_RATE) == 0
    config = SimulatorConfig(behaviours=Behaviours(notification_loss_rate=1.0))
    async with asyncio.timeout(DEADLINE_S), running(BloodPressureCuff, config) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(ICP)
        await hub.subscribe(BPM, indicate=True)
        result = await sim.measure()
        assert await hub.next(BPM) == result
        assert hub.pending(ICP) == 0
        assert all(s.dropped for s in sim.sent if s.uuid == ICP)


# -- device clock and battery ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_device_clock_drifts_from_the_household_time():
    clock = ManualClock(T0)
    config = SimulatorConfig(behaviours=Behaviours(clock_drift_ppm=100.0))
    async with (
        asyncio.timeout(DEADLINE_S),
        running(BloodPressureCuff, config, clock=clock) as (
            sim,
            hub,
        ),
    ):
        clock.advance(dt.timedelta(days=10))
        await hub.connect(sim)
        await hub.subscribe(BPM, indicate=True)
        await sim.measure()
        stamped = (await hub.next(BPM)).timestamp.timestamp
        # 100 ppm of 10 days is 86.4 s; Date Time carries whole seconds.
        assert stamped == T0 + dt.timedelta(days=10, seconds=86)


@pytest.mark.asyncio
async def test_unset_clock_starts_in_1970_until_the_hub_sets_current_time():
    config = SimulatorConfig(behaviours=Behaviours(clock_start=EPOCH_1970))
    async with asyncio.timeout(DEADLINE_S), running(SpotCheckOximeter, config) as (sim, hub):
        await hub.connect(sim)
        await hub.subscribe(SPOT, indicate=True)
        await sim.measure()
        before = await hub.next(SPOT)
        assert before.timestamp.year == 1970
        assert before.device_clock_is_not_set
        assert (await hub.read(CURRENT_TIME)).date_time.year == 1970
        await hub.write(CURRENT_TIME, CurrentTime.from_datetime(T0))
        await sim.measure()
        after = await hub.next(SPOT)
        assert after.timestamp == DateTime.from_datetime(T0)
        assert not after.device_clock_is_not_set
        with pytest.raises(att.ATT_Error) as caught:
            await hub.write(CURRENT_TIME, b"\x00\x00")
        assert caught.value.error_code == 0x80  # CTS: data field ignored


@pytest.mark.asyncio
async def test_battery_change_resets_the_clock_and_fills_the_battery():
    config = SimulatorConfig(behaviours=Behaviours(battery_percent=5))
    async with asyncio.timeout(DEADLINE_S), running(GlucoseMeter, config) as (sim, hub):
        await hub.connect(sim)
        assert await hub.read(BATTERY) == BatteryLevel(Number(5, 0))
        await hub.subscribe(GLUCOSE)
        low = await sim.measure()
        assert SensorStatus.DEVICE_BATTERY_LOW in low.measurement.sensor_status_annunciation
        await sim.change_battery()
        await hub.disconnected()
        await hub.connect(sim)
        assert await hub.read(BATTERY) == BatteryLevel(Number(100, 0))
        assert (await hub.read(CURRENT_TIME)).date_time.year == 1970
        fresh = await sim.measure()
        status = fresh.measurement.sensor_status_annunciation
        assert SensorStatus.TIME_FAULT in status
        assert SensorStatus.DEVICE_BATTERY_LOW not in status


# -- advertising, button press and pairing ----------------------------------------------------


@pytest.mark.asyncio
async def test_button_press_advertises_and_the_device_disconnects_after_sending():
    behaviours = Behaviours(advertise_on_button_press=True, disconnect_after_send_s=3.0)
    config = SimulatorConfig(name="VB Cuff Kitchen", behaviours=behaviours)
    async with asyncio.timeout(DEADLINE_S), running(BloodPressureCuff, config) as (sim, hub):
        assert not sim.is_advertising
        taken = await sim.measure()
        await sim.press_button()
        seen = asyncio.get_running_loop().create_future()

        def on_advertisement(advertisement):
            if not seen.done() and advertisement.address == sim.device.random_address:
                seen.set_result(advertisement)

        hub.device.on(hub.device.EVENT_ADVERTISEMENT, on_advertisement)
        await hub.device.start_scanning()
        advertisement = await seen
        await hub.device.stop_scanning()
        data = advertisement.data
        names = data.get(core.AdvertisingData.Type.COMPLETE_LOCAL_NAME) or data.get(
            core.AdvertisingData.Type.SHORTENED_LOCAL_NAME
        )
        assert names == "VB Cuff Kitchen"
        uuids = data.get(core.AdvertisingData.Type.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS)
        assert 0x1810 in {short_uuid(uuid) for uuid in uuids}
        await hub.connect(sim)
        await hub.subscribe(BPM, indicate=True)
        assert await hub.next(BPM) == taken
        await hub.disconnected()  # the cuff hangs up by itself, three seconds on
        assert not sim.is_advertising
        assert sim.stored_records == ()


@pytest.mark.asyncio
async def test_pairing_just_works_is_needed_for_protected_characteristics():
    config = SimulatorConfig(behaviours=Behaviours(pairing=Pairing.JUST_WORKS))
    async with asyncio.timeout(DEADLINE_S), running(BloodPressureCuff, config) as (sim, hub):
        hub.use_pairing()
        await hub.connect(sim)
        assert await hub.read(0x2A29)  # Device Information stays open
        with pytest.raises(att.ATT_Error) as caught:
            await hub.read(0x2A49)
        assert caught.value.error_code == att.ErrorCode.INSUFFICIENT_ENCRYPTION
        with pytest.raises(att.ATT_Error):
            await hub.subscribe(BPM, indicate=True)
        await hub.connection.pair()
        assert hub.connection.is_encrypted
        assert (await hub.read(0x2A49)).features
        await hub.subscribe(BPM, indicate=True)
        result = await sim.measure()
        assert await hub.next(BPM) == result


@pytest.mark.asyncio
async def test_pairing_with_the_passkey_the_device_shows():
    config = SimulatorConfig(behaviours=Behaviours(pairing=Pairing.PASSKEY), seed=9)
    async with asyncio.timeout(DEADLINE_S), running(GlucoseMeter, config) as (sim, hub):
        hub.use_pairing(passkey=sim.displayed_passkey)
        await hub.connect(sim)
        with pytest.raises(att.ATT_Error) as caught:
            await hub.read(0x2A51)
        assert caught.value.error_code in (
            att.ErrorCode.INSUFFICIENT_ENCRYPTION,
            att.ErrorCode.INSUFFICIENT_AUTHENTICATION,
        )
        await hub.connection.pair()
        assert hub.connection.authenticated
        assert (await hub.read(0x2A51)).features
        await hub.disconnect()
        # Bonded: on the next connection encryption alone restores access, no new passkey.
        await hub.connect(sim)
        await hub.connection.encrypt()
        assert (await hub.read(0x2A51)).features
