"""Each vendor quirk shown by a simulated device, seen through bleak's public API.

The hub side is what the gateway runs: BleakScanner and BleakClient with the Bumble backend on
the simulated radio. It reads Device Information over GATT, looks the device up in the quirk
table (device_profiles.quirks) and does what the quirk asks; the devices are the real GATT
servers from simulators.devices with a quirk behaviour switched on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from contextlib import asynccontextmanager

import pytest
from bleak import BleakClient, BleakScanner

from device_profiles import Number, SpecialValue
from device_profiles.blood_pressure import BloodPressureMeasurement
from device_profiles.current_time import CurrentTime
from device_profiles.device_information import (
    FirmwareRevisionString,
    ManufacturerNameString,
    ModelNumberString,
)
from device_profiles.quirks import Quirks, apply_quirks, quirks_for
from device_profiles.user_data import UNKNOWN_USER, UserControlPoint
from device_profiles.weight_scale import WeightMeasurement
from simulators.bleak_backend import AdapterSettings, BumbleClient, BumbleScanner, use_radio
from simulators.devices import (
    Behaviours,
    BloodPressureCuff,
    BodyCompositionScale,
    DeviceIdentity,
    SimulatorConfig,
    WeightScale,
)
from simulators.radio import Radio
from simulators.scenario import ScenarioError, load_scenario

TIMEOUT_S = 30
FAST = AdapterSettings(connect_timeout_s=2.0)
ADDRESS = "F0:10:20:30:40:70"
BPM, ICP, CURRENT_TIME, WEIGHT, UCP = 0x2A35, 0x2A36, 0x2A2B, 0x2A9D, 0x2A9F
SET_TO = dt.datetime(2024, 5, 6, 7, 8, 9)  # noqa: DTZ001 - device clocks show local time


def _uuid(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


@asynccontextmanager
async def _hub(radio):
    """Connect the hub to the device at ADDRESS, as the gateway would."""
    async with use_radio(radio, FAST):
        found = await BleakScanner.find_device_by_address(
            ADDRESS, timeout=5.0, backend=BumbleScanner
        )
        assert found is not None, "the device was not discovered"
        async with BleakClient(found, backend=BumbleClient) as client:
            yield client


async def _quirks_of(client: BleakClient) -> Quirks:
    """Read Device Information over GATT and look the device up in the quirk table."""
    manufacturer = ManufacturerNameString.decode(await client.read_gatt_char(_uuid(0x2A29)))
    model = ModelNumberString.decode(await client.read_gatt_char(_uuid(0x2A24)))
    firmware = FirmwareRevisionString.decode(await client.read_gatt_char(_uuid(0x2A26)))
    return quirks_for(
        manufacturer.manufacturer_name, model.model_number, firmware.firmware_revision
    )


async def _listen(client: BleakClient, short: int) -> asyncio.Queue[bytes]:
    received: asyncio.Queue[bytes] = asyncio.Queue()
    await client.start_notify(_uuid(short), lambda _, data: received.put_nowait(bytes(data)))
    return received


def _sent(device, short: int) -> list[bytes]:
    return [sent.data for sent in device.sent if sent.uuid == short]


def _config(seed: int, **behaviours) -> SimulatorConfig:
    return SimulatorConfig(seed=seed, behaviours=Behaviours(**behaviours))


@pytest.mark.asyncio
async def test_clock_quirk_cuff_sends_nothing_until_the_hub_writes_current_time():
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=31)
        cuff = BloodPressureCuff.on_radio(radio, ADDRESS, _config(3, requires_clock_set=True))
        assert cuff.identity.model == "VB-BP-QCLOCK"
        await cuff.start()
        try:
            kept = await cuff.measure()  # no hub yet: kept for later
            async with _hub(radio) as client:
                quirks = await _quirks_of(client)
                assert quirks.set_clock_first
                assert not quirks.consent_before_send
                measurements = await _listen(client, BPM)
                cuff_pressures = await _listen(client, ICP)
                live = await cuff.measure()
                # Any delivery the subscription would have started has finished by now.
                await cuff.settle()
                assert _sent(cuff, BPM) == []
                assert _sent(cuff, ICP) == []
                assert measurements.empty()
                assert cuff_pressures.empty()
                assert cuff.stored_records == (kept, live)

                await client.write_gatt_char(
                    _uuid(CURRENT_TIME), CurrentTime.from_datetime(SET_TO).encode(), response=True
                )
                assert BloodPressureMeasurement.decode(await measurements.get()) == kept
                assert BloodPressureMeasurement.decode(await measurements.get()) == live
                await cuff.settle()
                assert cuff.stored_records == ()
                # From now on, on this link, readings go out as they are taken.
                after = await cuff.measure()
                assert BloodPressureMeasurement.decode(await measurements.get()) == after
                assert not cuff_pressures.empty()

            # The clock write held for that link only: a new link waits for a new one.
            async with _hub(radio) as client:
                measurements = await _listen(client, BPM)
                held = await cuff.measure()
                await cuff.settle()
                assert len(_sent(cuff, BPM)) == 3
                assert cuff.stored_records == (held,)
                await client.write_gatt_char(
                    _uuid(CURRENT_TIME), CurrentTime.from_datetime(SET_TO).encode(), response=True
                )
                assert BloodPressureMeasurement.decode(await measurements.get()) == held
        finally:
            await cuff.stop()
        assert cuff.task_errors == []


@pytest.mark.asyncio
async def test_zero_filling_cuff_sends_zeros_that_the_quirk_table_drops_with_a_warning():
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=32)
        cuff = BloodPressureCuff.on_radio(radio, ADDRESS, _config(4, zero_fills_absent_fields=True))
        await cuff.start()
        try:
            async with _hub(radio) as client:
                quirks = await _quirks_of(client)
                assert quirks.zero_means_absent == {"mean_arterial_pressure", "pulse_rate"}
                assert not quirks.set_clock_first
                measurements = await _listen(client, BPM)
                intended = await cuff.measure()
                data = await measurements.get()
        finally:
            await cuff.stop()

    # On the air: a pulse rate field announced by its flag, holding zero, and a zero mean.
    assert data[0] & 0x04
    decoded = BloodPressureMeasurement.decode(data)
    assert decoded == intended
    assert decoded.pulse_rate == Number(0, 0)
    assert decoded.mean_arterial_pressure == Number(0, 0)
    assert decoded.systolic.value > 0

    fixed = apply_quirks(decoded, quirks)
    assert fixed.pulse_rate is None
    assert fixed.mean_arterial_pressure == Number.special_value(SpecialValue.NAN)
    assert fixed.warnings == (
        (
            "mean_arterial_pressure: a zero the device sends when it did not measure; "
            "mandatory, so reported as NaN"
        ),
        "pulse_rate: a zero the device sends when it did not measure; dropped",
    )
    assert (fixed.systolic, fixed.diastolic, fixed.timestamp) == (
        decoded.systolic,
        decoded.diastolic,
        decoded.timestamp,
    )
    assert BloodPressureMeasurement.decode(fixed.encode()) == dataclasses.replace(
        fixed, warnings=()
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("device_type", "model"),
    [(WeightScale, "VB-WS-QCONSENT"), (BodyCompositionScale, "VB-BC-QCONSENT")],
)
async def test_consent_quirk_scale_sends_no_reading_until_the_hub_gives_consent(device_type, model):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=33)
        scale = device_type.on_radio(radio, ADDRESS, _config(5, consent_required_to_send=True))
        assert scale.identity.model == model
        await scale.start()
        try:
            kept = await scale.measure()  # no hub yet: an unknown user's reading, kept
            async with _hub(radio) as client:
                quirks = await _quirks_of(client)
                assert quirks.consent_before_send
                assert not quirks.set_clock_first
                weights = await _listen(client, WEIGHT)
                control_point = await _listen(client, UCP)
                live = await scale.measure()
                await scale.settle()
                assert _sent(scale, WEIGHT) == []
                assert weights.empty()

                await client.write_gatt_char(
                    _uuid(UCP), UserControlPoint.register_new_user(4321).encode(), response=True
                )
                registered = UserControlPoint.decode(await control_point.get())
                assert registered.is_success
                # Registering is not consent: still nothing.
                unconsented = await scale.measure()
                await scale.settle()
                assert _sent(scale, WEIGHT) == []
                assert scale.stored_records == (kept, live, unconsented)
                assert {r.user_id for r in scale.stored_records} == {UNKNOWN_USER}

                await client.write_gatt_char(
                    _uuid(UCP),
                    UserControlPoint.consent(registered.user_index, 4321).encode(),
                    response=True,
                )
                assert UserControlPoint.decode(await control_point.get()).is_success
                delivered = [WeightMeasurement.decode(await weights.get()) for _ in range(3)]
                assert delivered == [kept.weight, live.weight, unconsented.weight]
                # Consented: the consented user's readings go out as they are taken.
                mine = await scale.measure()
                assert mine.user_id == registered.user_index
                assert WeightMeasurement.decode(await weights.get()) == mine.weight
                await scale.settle()
                assert scale.stored_records == ()
        finally:
            await scale.stop()
        assert scale.task_errors == []


@pytest.mark.asyncio
async def test_quirky_default_models_combine_and_explicit_identities_win():
    radio = Radio(seed=34)
    both = BloodPressureCuff.on_radio(
        radio,
        "F0:10:20:30:40:71",
        _config(1, requires_clock_set=True, zero_fills_absent_fields=True),
    )
    assert both.identity.model == "VB-BP-QCLOCK-QZERO"
    quirks = quirks_for(both.identity.manufacturer, both.identity.model)
    assert quirks.set_clock_first
    assert quirks.zero_means_absent == {"mean_arterial_pressure", "pulse_rate"}
    body = BodyCompositionScale.on_radio(
        radio, "F0:10:20:30:40:72", _config(1, consent_required_to_send=True)
    )
    assert body.identity.model == "VB-BC-QCONSENT"
    assert quirks_for(body.identity.manufacturer, body.identity.model).consent_before_send
    plain = BloodPressureCuff.on_radio(radio, "F0:10:20:30:40:73", _config(1))
    assert plain.identity.model == "VB-BP200"
    assert quirks_for(plain.identity.manufacturer, plain.identity.model) is Quirks.NONE
    # A scenario that names the identity gets that identity, quirk or not.
    identity = DeviceIdentity("Acme", "BP-1", "S1", "1.0")
    named = BloodPressureCuff.on_radio(
        radio,
        "F0:10:20:30:40:75",
        dataclasses.replace(_config(1, requires_clock_set=True), identity=identity),
    )
    assert named.identity == identity


@pytest.mark.parametrize(
    ("device_type", "quirk"),
    [
        (BloodPressureCuff, "consent_required_to_send"),
        (WeightScale, "zero_fills_absent_fields"),
    ],
)
@pytest.mark.asyncio
async def test_a_quirk_the_device_type_cannot_show_is_refused(device_type, quirk):
    with pytest.raises(ValueError, match=f"does not simulate {quirk}"):
        device_type.on_radio(Radio(seed=35), "F0:10:20:30:40:74", _config(1, **{quirk: True}))


SCENARIO = """
household = "Quirky flat"

[[devices]]
type = "blood_pressure_cuff"
address = "F0:00:00:00:00:01"
[devices.behaviours]
requires_clock_set = true
zero_fills_absent_fields = true

[[devices]]
type = "weight_scale"
address = "F0:00:00:00:00:02"
[devices.behaviours]
consent_required_to_send = true
"""


def test_the_quirk_behaviours_load_from_a_scenario_file(tmp_path):
    path = tmp_path / "quirky.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    cuff, scale = load_scenario(path).devices
    assert cuff.config(1).behaviours.quirks == {"requires_clock_set", "zero_fills_absent_fields"}
    assert scale.config(2).behaviours.quirks == {"consent_required_to_send"}


def test_a_scenario_giving_a_device_a_quirk_it_cannot_show_names_the_field(tmp_path):
    path = tmp_path / "wrong.toml"
    path.write_text(
        SCENARIO.replace("zero_fills_absent_fields", "consent_required_to_send"), encoding="utf-8"
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert raised.value.fields == ("devices[0].behaviours.consent_required_to_send",)
    assert "body_composition_scale, weight_scale" in str(raised.value)
