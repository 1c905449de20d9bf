"""The Reading schema, `normalise`, `reading_id` and the time rules, from literal payload bytes.

Payloads are written byte by byte from the GSS field tables (as in the codec tests); each example
is checked against the whole published JSON object.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import pickle
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from strategies_blood_pressure import STRATEGIES as BLOOD_PRESSURE
from strategies_body_composition import STRATEGIES as BODY_COMPOSITION
from strategies_glucose import contexts as glucose_contexts
from strategies_glucose import measurements as glucose_measurements
from strategies_health_thermometer import STRATEGIES as THERMOMETER
from strategies_heart_rate import STRATEGIES as HEART_RATE
from strategies_pulse_oximeter import STRATEGIES as PULSE_OXIMETER
from strategies_weight_scale import STRATEGIES as WEIGHT_SCALE

import device_profiles
from device_profiles import DateTime, Number, Observation, Quantity, Scale, SpecialValue, Unit
from device_profiles.blood_pressure import (
    BloodPressureMeasurement,
    EnhancedBloodPressureMeasurement,
    EnhancedIntermediateCuffPressure,
    IntermediateCuffPressure,
)
from device_profiles.body_composition import BodyCompositionMeasurement
from device_profiles.codes import canonical
from device_profiles.glucose import GlucoseMeasurement, GlucoseMeasurementContext, GlucoseRecord
from device_profiles.health_thermometer import IntermediateTemperature, TemperatureMeasurement
from device_profiles.heart_rate import HeartRateMeasurement
from device_profiles.pulse_oximeter import PLXContinuousMeasurement, PLXSpotCheckMeasurement
from device_profiles.weight_scale import WeightMeasurement
from gateway import reading as reading_module
from gateway.errors import VitalbridgeError
from gateway.normalise import NormaliseError, normalise, to_component
from gateway.reading import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    UNASSIGNED,
    Component,
    DeviceInfo,
    Reading,
    ReadingKind,
    derive_reading_id,
    main,
    schema_text,
)
from gateway.timebase import ClockState, ClockSync, TimeSource, resolve_measured_at, resolve_time

LONDON = ZoneInfo("Europe/London")
UTC = dt.UTC
RECEIVED = dt.datetime(2024, 3, 5, 7, 31, tzinfo=UTC)
SYNCED = ClockState.synced()
PATIENTS = {None: "patient-a", 1: "patient-a", 2: "patient-b"}

# Wire pieces written as literals from the field tables (little-endian).
TIME_2024_03_05 = bytes([0xE8, 0x07, 3, 5, 7, 30, 15])  # 2024-03-05 07:30:15, device local


def _device(device_id: str, profile: str) -> DeviceInfo:
    return DeviceInfo(
        id=device_id,
        address="C0:FF:EE:00:00:01",
        manufacturer="Acme Health",
        model="M-1",
        serial="SN0001",
        firmware="1.2.3",
        profile=profile,
    )


def _device_json(device_id: str, profile: str) -> dict[str, object]:
    return {
        "id": device_id,
        "address": "C0:FF:EE:00:00:01",
        "manufacturer": "Acme Health",
        "model": "M-1",
        "serial": "SN0001",
        "firmware": "1.2.3",
        "profile": profile,
    }


# The expected standard codes of each quantity, written out (MDC code, reference id, LOINC)
# rather than read from device_profiles.codes, so that a changed table shows up here.
EXPECTED_CODES: dict[str, tuple[int, str, str | None]] = {
    "systolic_pressure": (150021, "MDC_PRESS_BLD_NONINV_SYS", "8480-6"),
    "diastolic_pressure": (150022, "MDC_PRESS_BLD_NONINV_DIA", "8462-4"),
    "mean_arterial_pressure": (150023, "MDC_PRESS_BLD_NONINV_MEAN", "8478-0"),
    "pulse_rate": (149546, "MDC_PULS_RATE_NON_INV", "8867-4"),
    "spo2": (150456, "MDC_PULS_OXIM_SAT_O2", "59408-5"),
    "plx_pulse_rate": (149530, "MDC_PULS_OXIM_PULS_RATE", "8889-8"),
    "pulse_amplitude_index": (150448, "MDC_PULS_OXIM_PERF_REL", "61006-3"),
    "body_weight": (188736, "MDC_MASS_BODY_ACTUAL", "29463-7"),
    "bmi": (188752, "MDC_RATIO_MASS_BODY_LEN_SQ", "39156-5"),
    "body_height": (188740, "MDC_LEN_BODY_ACTUAL", "8302-2"),
    "body_fat_percentage": (188748, "MDC_BODY_FAT", "41982-0"),
    "basal_metabolism": (188768, "MDC_BASAL_METABOLISM", None),
    "muscle_percentage": (188772, "MDC_BODY_MUSCLE", None),
    "impedance": (188780, "MDC_BODY_ELECTRICAL_IMPEDANCE", None),
    "body_temperature": (150364, "MDC_TEMP_BODY", "8310-5"),
    # Glucose in mmol/L takes the molar LOINC (14743-9), not the mass one (41653-7).
    "glucose_concentration": (160184, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", "14743-9"),
    "carbohydrate": (8417764, "MDC_CTXT_GLU_CARB", "9059-7"),
    "medication": (8417796, "MDC_CTXT_MEDICATION", None),
    "heart_rate": (147842, "MDC_ECG_HEART_RATE", "8867-4"),
    "energy_expended": (8454263, "MDC_HF_ENERGY", None),
    "rr_interval": (147240, "MDC_ECG_TIME_PD_RR_GL", "8637-1"),
}


def _component(code: str, field: str, value: str, unit: str, resolution: str) -> dict[str, object]:
    mdc, reference, loinc = EXPECTED_CODES[code]
    return {
        "code": code,
        "field": field,
        "value": value,
        "special": None,
        "unit": unit,
        "resolution": resolution,
        "mdc_code": mdc,
        "mdc_reference_id": reference,
        "loinc": loinc,
    }


def _normalise(
    uuid: str,
    raw: bytes,
    *,
    device: DeviceInfo | None = None,
    clock: ClockState = SYNCED,
    patients: dict[int | None, str] = PATIENTS,
    received_at: dt.datetime = RECEIVED,
    battery_level: int | None = 80,
) -> Reading:
    return normalise(
        device_profiles.decode(uuid, raw),
        device or _device("dev-1", "test"),
        clock,
        patients,
        hub_id="hub-kitchen",
        hub_tz=LONDON,
        received_at=received_at,
        raw=raw,
        battery_level=battery_level,
    )


# --- One example per measurement kind, checked against the whole published object ----------

BP_RAW = bytes.fromhex("1e78005000a5f3") + TIME_2024_03_05 + bytes.fromhex("4800 01 0400")
EBP_RAW = bytes.fromhex("67 a0f0 6bf0 7cf0 8786792d 4800 8786792d")
SPOT_RAW = bytes.fromhex("0f 6100 4000") + TIME_2024_03_05 + bytes.fromhex("8000 200000 19f0")
CONTINUOUS_RAW = bytes.fromhex("01 6200 4600 6100 4800")
WEIGHT_RAW = bytes.fromhex("0f 983a") + TIME_2024_03_05 + bytes.fromhex("02 dd00 b202")
BODY_RAW = (
    bytes.fromhex("1e0e e100") + TIME_2024_03_05 + bytes.fromhex("01 6419 6001 8813 b036 d606")
)
TEMPERATURE_RAW = bytes.fromhex("07 da0300ff") + TIME_2024_03_05 + bytes.fromhex("06")
GLUCOSE_RAW = bytes.fromhex("1f 2a00") + TIME_2024_03_05 + bytes.fromhex("fbff 35c0 12 0100")
CONTEXT_RAW = bytes.fromhex("13 2a00 01 32d0 01 01 04a0")
HEART_RATE_RAW = bytes.fromhex("1e 48 6400 0004 2003")


def _envelope(**fields: object) -> dict[str, object]:
    """The published object with the fields every example shares, then the example's own."""
    base: dict[str, object] = {
        "schema_version": "1.0",
        "hub_id": "hub-kitchen",
        "user_index": None,
        "status": [],
        "qualifiers": {},
        "received_at": "2024-03-05T07:31:00Z",
        "clock_offset_s": None,
        "battery_level": 80,
        "warnings": [],
    }
    base.update(fields)
    return base


def test_blood_pressure_cuff_with_user_status_and_synced_clock():
    reading = _normalise("2A35", BP_RAW, device=_device("cuff-1", "blood_pressure"))
    assert json.loads(reading.to_json_bytes()) == _envelope(
        reading_id="d8ddfe9a8368b53d3a9d24c2f1dfa7b7",
        device=_device_json("cuff-1", "blood_pressure"),
        patient="patient-a",
        user_index=1,
        kind="blood_pressure",
        components=[
            _component("systolic_pressure", "systolic", "120", "mm[Hg]", "1"),
            _component("diastolic_pressure", "diastolic", "80", "mm[Hg]", "1"),
            _component("mean_arterial_pressure", "mean_arterial_pressure", "93.3", "mm[Hg]", "0.1"),
            _component("pulse_rate", "pulse_rate", "72", "/min", "1"),
        ],
        status=["irregular_pulse_detected"],
        measured_at="2024-03-05T07:30:15Z",
        device_time="2024-03-05T07:30:15",
        time_source="device_clock_synced",
        raw="1e78005000a5f3e8070305071e0f4800010400",
        characteristic="2A35",
    )


def test_enhanced_blood_pressure_in_kpa_with_a_measured_clock_offset():
    # Flags 0x67: kPa, time stamp, pulse rate, user facing time, epoch 2000; 762939015 s after
    # 2000-01-01 is 2024-03-05 07:30:15. The device clock runs 120 s fast.
    reading = _normalise(
        "2B34",
        EBP_RAW,
        device=_device("cuff-2", "blood_pressure"),
        clock=ClockState.measured_offset(120.0),
    )
    assert json.loads(reading.to_json_bytes()) == _envelope(
        reading_id="2be9b7fd899e171e6eab341e29e9940e",
        device=_device_json("cuff-2", "blood_pressure"),
        patient="patient-a",
        kind="blood_pressure",
        components=[
            # 16.0, 10.7 and 12.4 kPa: to the 0.1 mmHg just finer than 0.1 kPa (0.75 mmHg).
            _component("systolic_pressure", "systolic", "120.0", "mm[Hg]", "0.1"),
            _component("diastolic_pressure", "diastolic", "80.3", "mm[Hg]", "0.1"),
            _component("mean_arterial_pressure", "mean_arterial_pressure", "93.0", "mm[Hg]", "0.1"),
            _component("pulse_rate", "pulse_rate", "72", "/min", "1"),
        ],
        measured_at="2024-03-05T07:28:15Z",
        device_time="2024-03-05T07:30:15",
        time_source="device_clock_offset",
        clock_offset_s=120.0,
        raw="67a0f06bf07cf08786792d48008786792d",
        characteristic="2B34",
    )


def test_pulse_oximeter_spot_check_with_statuses_and_an_unverified_clock():
    reading = _normalise(
        "2A5E", SPOT_RAW, device=_device("oxi-1", "pulse_oximeter"), clock=ClockState.unknown()
    )
    assert json.loads(reading.to_json_bytes()) == _envelope(
        reading_id="cc2b253f817e4832e228ec4b06303241",
        device=_device_json("oxi-1", "pulse_oximeter"),
        patient="patient-a",
        kind="pulse_oximetry",
        components=[
            _component("spo2", "spo2pr_spot_check.spo2", "97", "%", "1"),
            _component("plx_pulse_rate", "spo2pr_spot_check.pr", "64", "/min", "1"),
            _component("pulse_amplitude_index", "pulse_amplitude_index", "2.5", "%", "0.1"),
        ],
        status=["validated_data", "low_perfusion_detected"],
        measured_at="2024-03-05T07:30:15Z",
        device_time="2024-03-05T07:30:15",
        time_source="device_clock_unverified",
        raw="0f61004000e8070305071e0f800020000019f0",
        characteristic="2A5E",
    )


def test_pulse_oximeter_continuous_without_a_timestamp_takes_the_hub_time():
    reading = _normalise("2A5F", CONTINUOUS_RAW, device=_device("oxi-2", "pulse_oximeter"))
    assert json.loads(reading.to_json_bytes()) == _envelope(
        reading_id="32770be18ee8062ed74f225e9428c31a",
        device=_device_json("oxi-2", "pulse_oximeter"),
        patient="patient-a",
        kind="pulse_oximetry",
        components=[
            _component("spo2", "spo2pr_normal.spo2", "98", "%", "1"),
            _component("plx_pulse_rate", "spo2pr_normal.pr", "70", "/min", "1"),
            _component("spo2", "spo2pr_fast.spo2", "97", "%", "1"),
            _component("plx_pulse_rate", "spo2pr_fast.pr", "72", "/min", "1"),
        ],
        measured_at="2024-03-05T07:31:00Z",
        device_time=None,
        time_source="hub_receive_time",
        raw="016200460061004800",
        characteristic="2A5F",
    )


def test_weight_scale_in_pounds_and_inches_for_user_two():
    reading = _normalise("2A9D", WEIGHT_RAW, device=_device("scale-1", "weight_scale"))
    assert json.loads(reading.to_json_bytes()) == _envelope(
        reading_id="97cc3b9e3d8e7ec16e2c03bae148328f",
        device=_device_json("scale-1", "weight_scale"),
        patient="patient-b",
        user_index=2,
        kind="body_weight",
        components=[
            # 150.00 lb = 68.0388555 kg, to the 0.001 kg just finer than 0.01 lb.
            _component("body_weight", "weight", "68.039", "kg", "0.001"),
            _component("bmi", "bmi", "22.1", "kg/m2", "0.1"),
            # 69.0 in = 1.7526 m, to the 0.001 m just finer than 0.1 in.
            _component("body_height", "height", "1.753", "m", "0.001"),
        ],
        measured_at="2024-03-05T07:30:15Z",
        device_time="2024-03-05T07:30:15",
        time_source="device_clock_synced",
        raw="0f983ae8070305071e0f02dd00b202",
        characteristic="2A9D",
    )


def test_body_composition_keeps_the_scales_own_step():
    reading = _normalise("2A9C", BODY_RAW, device=_device("scale-2", "body_composition"))
    assert json.loads(reading.to_json_bytes()) == _envelope(
        reading_id="ad172b0ba86d8d2be38808b6e53be1f9",
        device=_device_json("scale-2", "body_composition"),
        patient="patient-a",
        user_index=1,
        kind="body_composition",
        components=[
            _component("body_fat_percentage", "body_fat_percentage", "22.5", "%", "0.1"),
            _component("basal_metabolism", "basal_metabolism", "6500", "kJ", "1"),
            _component("muscle_percentage", "muscle_percentage", "35.2", "%", "0.1"),
            _component("impedance", "impedance", "500.0", "Ohm", "0.1"),
            _component("body_weight", "weight", "70.000", "kg", "0.005"),
            _component("body_height", "height", "1.750", "m", "0.001"),
        ],
        measured_at="2024-03-05T07:30:15Z",
        device_time="2024-03-05T07:30:15",
        time_source="device_clock_synced",
        raw="1e0ee100e8070305071e0f01641960018813b036d606",
        characteristic="2A9C",
    )


def test_thermometer_in_fahrenheit_with_its_measurement_site():
    reading = _normalise("2A1C", TEMPERATURE_RAW, device=_device("thermo-1", "health_thermometer"))
    assert json.loads(reading.to_json_bytes()) == _envelope(
        reading_id="0eef0bfdd3af8977368c681f6c6eeeed",
        device=_device_json("thermo-1", "health_thermometer"),
        patient="patient-a",
        kind="body_temperature",
        components=[
            # 98.6 degF is 37 Cel exactly; 0.1 degF (0.0556 Cel) is reported to 0.01 Cel.
            _component("body_temperature", "temperature_measurement_value", "37.00", "Cel", "0.01"),
        ],
        qualifiers={"temperature_type": "mouth"},
        measured_at="2024-03-05T07:30:15Z",
        device_time="2024-03-05T07:30:15",
        time_source="device_clock_synced",
        raw="07da0300ffe8070305071e0f06",
        characteristic="2A1C",
    )


def test_glucose_record_with_its_context_in_mmol_per_litre():
    (record,) = device_profiles.glucose.pair_records(
        [device_profiles.decode("2A18", GLUCOSE_RAW)], [device_profiles.decode("2A34", CONTEXT_RAW)]
    )
    reading = normalise(
        record,
        _device("meter-1", "glucose"),
        SYNCED,
        PATIENTS,
        hub_id="hub-kitchen",
        hub_tz=LONDON,
        received_at=RECEIVED,
        raw=(GLUCOSE_RAW, CONTEXT_RAW),
        battery_level=80,
    )
    assert json.loads(reading.to_json_bytes()) == _envelope(
        reading_id="e403406cdea5d728f4774ff0a01bea15",
        device=_device_json("meter-1", "glucose"),
        patient="patient-a",
        kind="blood_glucose",
        components=[
            # 0.0053 mol/L (SFLOAT 53e-4) is 5.3 mmol/L, exactly.
            _component(
                "glucose_concentration", "measurement.glucose_concentration", "5.3", "mmol/L", "0.1"
            ),
            # 0.050 kg of carbohydrate is 50 g; 4e-6 kg of medication is 4 mg.
            _component("carbohydrate", "context.carbohydrate", "50", "g", "1"),
            _component("medication", "context.medication", "4", "mg", "1"),
        ],
        status=["device_battery_low"],
        qualifiers={
            "carbohydrate_id": "breakfast",
            "glucose_type": "capillary_plasma",
            "meal": "preprandial",
            "medication_id": "rapid_acting_insulin",
            "sample_location": "finger",
        },
        # Base time 07:30:15 plus a time offset of -5 minutes.
        measured_at="2024-03-05T07:25:15Z",
        device_time="2024-03-05T07:25:15",
        time_source="device_clock_synced",
        raw="1f2a00e8070305071e0ffbff35c0120100 132a000132d0010104a0",
        characteristic="2A18",
    )


def test_heart_rate_with_energy_and_exact_rr_intervals():
    reading = _normalise("2A37", HEART_RATE_RAW, device=_device("strap-1", "heart_rate"))
    assert json.loads(reading.to_json_bytes()) == _envelope(
        reading_id="24b021eec2b063d1d8acb09d97d18d74",
        device=_device_json("strap-1", "heart_rate"),
        patient="patient-a",
        kind="heart_rate",
        components=[
            _component("heart_rate", "heart_rate_measurement_value", "72", "/min", "1"),
            _component("energy_expended", "energy_expended", "100", "kJ", "1"),
            # 1024/1024 s and 800/1024 s, exact in steps of 1/1024 s.
            _component("rr_interval", "rr_interval", "1.0000000000", "s", "0.0009765625"),
            _component("rr_interval", "rr_interval", "0.7812500000", "s", "0.0009765625"),
        ],
        status=["sensor_contact_detected"],
        measured_at="2024-03-05T07:31:00Z",
        device_time=None,
        time_source="hub_receive_time",
        raw="1e48640000042003",
        characteristic="2A37",
    )


def test_the_json_is_compact_and_in_schema_order():
    payload = _normalise("2A35", BP_RAW).to_json_bytes()
    assert payload.startswith(b'{"schema_version":"1.0","reading_id":"')
    assert b", " not in payload
    assert b": " not in payload
    assert list(json.loads(payload)) == list(Reading.model_fields)


# --- Unit conversion is exact to the field's resolution ----------------------------------------


Q = Quantity
LB, INCH = Scale(1, -2), Scale(1, -1)  # the imperial Weight Scale resolutions: 0.01 lb, 0.1 in
CONVERSIONS = [
    # 16.0 kPa * 1000 / 133.322387415 = 120.0098...; 0.1 kPa = 0.75 mmHg, so 0.1 mmHg.
    (Q.SYSTOLIC_PRESSURE, Number(160, -1), Unit.KPA, "120.0", Unit.MMHG, "0.1"),
    # 150.00 lb * 0.45359237 = 68.0388555 kg; 0.01 lb = 0.0045 kg, so 0.001 kg.
    (Q.BODY_WEIGHT, Number.fixed(15000, LB), Unit.POUND, "68.039", Unit.KILOGRAM, "0.001"),
    # 69.0 in * 0.0254 = 1.7526 m, half-even to 1.753 m.
    (Q.BODY_HEIGHT, Number.fixed(690, INCH), Unit.INCH, "1.753", Unit.METRE, "0.001"),
    # (98.6 - 32) * 5/9 = 37 exactly; 0.1 degF = 0.0556 Cel, so 0.01 Cel.
    (Q.BODY_TEMPERATURE, Number(986, -1), Unit.FAHRENHEIT, "37.00", Unit.CELSIUS, "0.01"),
    # 0.00095 kg/L = 95 mg/dL exactly (factor 100000).
    (Q.GLUCOSE_CONCENTRATION, Number(95, -5), Unit.KG_PER_LITRE, "95", Unit.MG_PER_DL, "1"),
    # 0.0053 mol/L = 5.3 mmol/L exactly (factor 1000).
    (
        Q.GLUCOSE_CONCENTRATION,
        Number(53, -4),
        Unit.MOL_PER_LITRE,
        "5.3",
        Unit.MMOL_PER_LITRE,
        "0.1",
    ),
    # Already canonical: every digit kept, trailing zeros too, with the 0.005 kg step.
    (
        Q.BODY_WEIGHT,
        Number.fixed(14000, Scale(5, -3)),
        Unit.KILOGRAM,
        "70.000",
        Unit.KILOGRAM,
        "0.005",
    ),
]


@pytest.mark.parametrize(("quantity", "number", "sent", "value", "unit", "resolution"), CONVERSIONS)
def test_unit_conversion_is_exact_to_the_resolution(
    quantity, number, sent, value, unit, resolution
):
    component = to_component(Observation("value", quantity, number, sent))
    assert (component.value, component.unit, component.resolution) == (
        Decimal(value),
        unit,
        Decimal(resolution),
    )
    published = json.loads(component.model_dump_json())
    assert (published["value"], published["resolution"]) == (value, resolution)


def test_kpa_conversion_agrees_with_decimal_arithmetic():
    for tenths in (1, 107, 124, 160, 200, 400):
        expected = (Decimal(tenths) / 10 * 1000 / Decimal("133.322387415")).quantize(Decimal("0.1"))
        observation = Observation("s", Quantity.SYSTOLIC_PRESSURE, Number(tenths, -1), Unit.KPA)
        assert to_component(observation).value == expected


def test_glucose_in_mmol_per_litre_carries_the_molar_loinc():
    observation = Observation(
        "g", Quantity.GLUCOSE_CONCENTRATION, Number(53, -4), Unit.MOL_PER_LITRE
    )
    assert to_component(observation).loinc == "14743-9"
    observation = Observation(
        "g", Quantity.GLUCOSE_CONCENTRATION, Number(95, -5), Unit.KG_PER_LITRE
    )
    assert to_component(observation).loinc == "41653-7"


# --- Special values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uuid", "raw", "field", "special"),
    [
        ("2A35", bytes.fromhex("00 ff07 5000 5d00"), "systolic", "NaN"),
        ("2A35", bytes.fromhex("00 0008 5000 5d00"), "systolic", "NRes"),
        ("2A35", bytes.fromhex("00 7800 fe07 5d00"), "diastolic", "+INFINITY"),
        ("2A35", bytes.fromhex("00 7800 5000 0208"), "mean_arterial_pressure", "-INFINITY"),
        ("2A9D", bytes.fromhex("00 ffff"), "weight", "MeasurementUnsuccessful"),
        ("2A1C", bytes.fromhex("00 00008000"), "temperature_measurement_value", "NRes"),
        ("2A1C", bytes.fromhex("00 01008000"), "temperature_measurement_value", "Reserved"),
    ],
)
def test_special_values_have_no_value_and_no_resolution(uuid, raw, field, special):
    reading = _normalise(uuid, raw)
    (published,) = [
        c for c in json.loads(reading.to_json_bytes())["components"] if c["field"] == field
    ]
    assert (published["value"], published["special"], published["resolution"]) == (
        None,
        special,
        None,
    )
    assert Reading.model_validate_json(reading.to_json_bytes()) == reading


def test_glucose_exercise_overrun_is_plus_infinity():
    context = GlucoseMeasurementContext(
        7,
        exercise_duration=Number.special_value(SpecialValue.POSITIVE_INFINITY),
        exercise_intensity=Number(80, 0),
    )
    measurement = device_profiles.decode("2A18", bytes.fromhex("10 0700") + TIME_2024_03_05)
    record = GlucoseRecord(7, measurement, context)
    reading = normalise(
        record,
        _device("meter-1", "glucose"),
        SYNCED,
        PATIENTS,
        hub_id="hub-kitchen",
        hub_tz=LONDON,
        received_at=RECEIVED,
        raw=(bytes(measurement.encode()), context.encode()),
    )
    duration, intensity = reading.components
    assert (duration.code, duration.value, duration.special) == (
        Quantity.EXERCISE_DURATION,
        None,
        SpecialValue.POSITIVE_INFINITY,
    )
    assert (intensity.value, intensity.unit) == (Decimal(80), Unit.PERCENT)
    # The meter sent no concentration: a status-only record, said so.
    assert "no glucose concentration: the meter sent status only" in reading.warnings


def test_a_component_holds_a_value_or_a_special_never_both():
    base = {"code": "spo2", "field": "spo2", "unit": "%"}
    with pytest.raises(ValidationError, match="exactly one of value and special"):
        Component.model_validate({**base, "value": "97", "special": "NaN", "resolution": "1"})
    with pytest.raises(ValidationError, match="exactly one of value and special"):
        Component.model_validate({**base, "value": None, "resolution": None})
    with pytest.raises(ValidationError, match="resolution is set exactly when value is"):
        Component.model_validate({**base, "value": "97", "resolution": None})


@pytest.mark.parametrize("value", [97.1, float("nan"), "9.7e1", "97.", Decimal("NaN"), True])
def test_a_component_value_is_never_a_float(value):
    with pytest.raises(ValidationError, match="exact decimal"):
        Component(
            code=Quantity.SPO2, field="spo2", value=value, unit=Unit.PERCENT, resolution="0.1"
        )


def test_a_component_value_may_be_built_from_an_int_or_a_decimal_string():
    component = Component(
        code=Quantity.SPO2, field="spo2", value=97, unit=Unit.PERCENT, resolution="0.10"
    )
    assert component.value == Decimal(97)
    assert json.loads(component.model_dump_json())["resolution"] == "0.10"
    assert component.model_dump()["value"] == Decimal(97)  # Python mode keeps the Decimal


# --- Patient attribution ------------------------------------------------------------------------


def _bp_for_user(user: int | None) -> bytes:
    if user is None:
        return bytes.fromhex("00 7800 5000 5d00")
    return bytes.fromhex("08 7800 5000 5d00") + bytes([user])


@pytest.mark.parametrize(
    ("user", "patients", "patient", "warning"),
    [
        (1, {1: "patient-a", 2: "patient-b"}, "patient-a", None),
        (2, {1: "patient-a", 2: "patient-b"}, "patient-b", None),
        (
            3,
            {1: "patient-a", 2: "patient-b"},
            UNASSIGNED,
            "no patient is mapped for user index 3 on this device",
        ),
        # 0xFF is "unknown user": never attributed, even if the map has an entry for 255.
        (
            0xFF,
            {1: "patient-a", 255: "patient-z"},
            UNASSIGNED,
            "the device did not know the user (user index 255)",
        ),
        (None, {None: "patient-a"}, "patient-a", None),
        (
            None,
            {1: "patient-a"},
            UNASSIGNED,
            "no patient is mapped for no user index on this device",
        ),
        # A device that names a user is not given the device-wide patient by guesswork.
        (
            1,
            {None: "patient-a"},
            UNASSIGNED,
            "no patient is mapped for user index 1 on this device",
        ),
    ],
)
def test_patient_comes_from_the_map_by_user_index(user, patients, patient, warning):
    reading = _normalise("2A35", _bp_for_user(user), patients=patients)
    assert (reading.patient, reading.user_index) == (patient, user)
    assert reading.warnings == (() if warning is None else (warning,))


def test_remapping_a_patient_keeps_the_reading_id():
    first = _normalise("2A35", _bp_for_user(1), patients={1: "patient-a"})
    second = _normalise("2A35", _bp_for_user(1), patients={})
    assert first.reading_id == second.reading_id
    assert (first.patient, second.patient) == ("patient-a", UNASSIGNED)


# --- What normalise refuses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "message"),
    [
        (IntermediateCuffPressure(Number(150, 0)), "intermediate value shown while measuring"),
        (EnhancedIntermediateCuffPressure(Number(150, 0)), "intermediate value"),
        (IntermediateTemperature(Number(365, -1)), "intermediate value"),
        (GlucoseMeasurementContext(5), "a context alone is not a reading"),
        (GlucoseRecord(5, None, GlucoseMeasurementContext(5)), "context 5 has no measurement"),
        (
            BodyCompositionMeasurement(Number(225, -1), multiple_packet_measurement=True),
            "BodyCompositionReassembler",
        ),
        (DateTime(2024, 3, 5), "not a health measurement normalise knows"),
        ("2A35", "not a health measurement normalise knows"),
    ],
)
def test_what_is_not_a_reading_raises_normalise_error(measurement, message):
    with pytest.raises(NormaliseError, match=message) as caught:
        normalise(
            measurement,
            _device("dev-1", "test"),
            SYNCED,
            PATIENTS,
            hub_id="hub-kitchen",
            hub_tz=LONDON,
            received_at=RECEIVED,
            raw=b"\x00",
        )
    assert isinstance(caught.value, VitalbridgeError)
    assert caught.value.measurement_type == type(measurement).__name__


def test_normalise_error_survives_a_pickle():
    error = NormaliseError("IntermediateCuffPressure", "not a reading")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (copy.measurement_type, copy.detail, str(copy)) == (
        error.measurement_type,
        error.detail,
        str(error),
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"raw": b""}, "raw is empty"),
        ({"raw": ()}, "raw is empty"),
        ({"received_at": dt.datetime(2024, 3, 5, 7, 31)}, "received_at must be an aware"),  # noqa: DTZ001
        ({"hub_id": "kitchen hub"}, "invalid in hub_id"),
        ({"battery_level": 101}, "invalid in battery_level"),
    ],
)
def test_arguments_a_reading_cannot_hold_raise_normalise_error(arguments, message):
    kwargs = {
        "hub_id": "hub-kitchen",
        "hub_tz": LONDON,
        "received_at": RECEIVED,
        "raw": BP_RAW,
        **arguments,
    }
    with pytest.raises(NormaliseError, match=message):
        normalise(
            device_profiles.decode("2A35", BP_RAW),
            _device("dev-1", "test"),
            SYNCED,
            PATIENTS,
            **kwargs,
        )


def test_a_bad_patient_reference_is_refused_without_echoing_it():
    with pytest.raises(NormaliseError, match="invalid in patient") as caught:
        _normalise("2A35", BP_RAW, patients={1: "Jane Doe"})
    assert "Jane" not in str(caught.value)


# --- Device time flags and decoder warnings -----------------------------------------------------


def test_an_oximeter_that_says_its_clock_is_not_set_is_believed():
    raw = bytes.fromhex("11 6100 4000") + TIME_2024_03_05  # flags: time stamp, clock not set
    reading = _normalise("2A5E", raw)
    assert (reading.measured_at, reading.time_source) == (RECEIVED, TimeSource.HUB_RECEIVE_TIME)
    assert reading.device_time == "2024-03-05T07:30:15"
    assert reading.status == ("device_clock_is_not_set",)
    assert reading.warnings == (
        "the oximeter flagged its clock as not set; measured_at is the hub receive time",
    )


def test_a_glucose_time_fault_is_believed():
    raw = bytes.fromhex("0a 0100") + TIME_2024_03_05 + bytes.fromhex("5fb0 11 0008")
    reading = _normalise("2A18", raw)
    assert reading.time_source is TimeSource.HUB_RECEIVE_TIME
    assert reading.status == ("time_fault",)
    assert reading.warnings == (
        "the meter reported a time fault; measured_at is the hub receive time",
    )


def test_a_control_solution_test_is_flagged():
    raw = bytes.fromhex("02 0100") + TIME_2024_03_05 + bytes.fromhex("5fb0 4a")
    reading = _normalise("2A18", raw)
    assert reading.qualifiers == {
        "glucose_type": "control_solution",
        "sample_location": "control_solution",
    }
    assert "control solution test: a meter check, not a patient measurement" in reading.warnings


def test_glucose_context_announced_but_missing_or_unannounced_is_a_warning():
    announced = GlucoseMeasurement(
        9, DateTime(2024, 3, 5, 7, 30, 15), context_information_follows=True
    )
    silent = dataclasses.replace(announced, context_information_follows=False)
    common = {
        "hub_id": "hub-kitchen",
        "hub_tz": LONDON,
        "received_at": RECEIVED,
    }
    missing = normalise(
        announced, _device("m", "glucose"), SYNCED, PATIENTS, raw=announced.encode(), **common
    )
    assert "the meter announced a measurement context that did not arrive" in missing.warnings
    context = GlucoseMeasurementContext(9, meal=device_profiles.glucose.Meal(1))
    stray = normalise(
        GlucoseRecord(9, silent, context),
        _device("m", "glucose"),
        SYNCED,
        PATIENTS,
        raw=(silent.encode(), context.encode()),
        **common,
    )
    assert "a measurement context arrived that the meter did not announce" in stray.warnings
    assert stray.qualifiers == {"meal": "preprandial"}


def test_unknown_date_and_decoder_warnings_are_kept():
    # Reserved flag bit 7 set; the date has year 0 (not known).
    raw = bytes.fromhex("82 7800 5000 5d00 0000 030507 1e0f")
    reading = _normalise("2A35", raw)
    assert reading.device_time is None
    assert reading.time_source is TimeSource.HUB_RECEIVE_TIME
    assert reading.warnings[-1] == "device time has an unknown (0) year, month or day"
    assert len(reading.warnings) == 2
    assert "reserved" in reading.warnings[0]


def test_a_reset_clock_is_rejected_with_a_reason():
    raw = bytes.fromhex("02 7800 5000 5d00 b207 0101 000500")  # 1970-01-01 00:05:00
    reading = _normalise("2A35", raw)
    assert (reading.measured_at, reading.time_source) == (RECEIVED, TimeSource.HUB_RECEIVE_TIME)
    assert reading.device_time == "1970-01-01T00:05:00"
    assert reading.warnings == (
        (
            "device time 1970-01-01T00:05:00 is before 2000: a reset clock; "
            "measured_at is the hub receive time"
        ),
    )


# --- Time resolution ----------------------------------------------------------------------------

WINTER_RECEIVED = dt.datetime(2024, 1, 15, 8, 0, tzinfo=UTC)
_1970_OFFSET = (dt.datetime(1970, 1, 1) - dt.datetime(2024, 1, 15, 8, 0)).total_seconds()  # noqa: DTZ001


def _naive(*parts: int) -> dt.datetime:
    return dt.datetime(*parts)  # noqa: DTZ001 - device times are naive local times


UNKNOWN = ClockState.unknown()
OFFSET = ClockState.measured_offset
SYNCED_SOURCE = TimeSource.DEVICE_CLOCK_SYNCED
OFFSETS = TimeSource.DEVICE_CLOCK_OFFSET
UNVERIFIED = TimeSource.DEVICE_CLOCK_UNVERIFIED
HUB = TimeSource.HUB_RECEIVE_TIME
W = "2024-01-15T08:00:00Z"  # the hub's receive time in most cases (winter: GMT = UTC)

BACK = "2024-10-27T03:00:00Z"  # received after the clocks went back
FORWARD = "2024-03-31T03:00:00Z"  # received after the clocks went forward
SUMMER = "2024-07-15T07:01:00Z"

# device time as sent (naive, hub zone) | clock | received_at | measured_at | source | offset
TIME_CASES = [
    # Synced clock: the device's wall time in the hub's zone (GMT in winter, BST in summer).
    ("2024-01-15T07:59:00", SYNCED, W, "2024-01-15T07:59:00Z", SYNCED_SOURCE, None),
    ("2024-07-15T08:00:00", SYNCED, SUMMER, "2024-07-15T07:00:00Z", SYNCED_SOURCE, None),
    # Measured offset: a device 120 s fast, and one 30.5 s slow.
    ("2024-01-15T08:00:00", OFFSET(120.0), W, "2024-01-15T07:58:00Z", OFFSETS, 120.0),
    ("2024-01-15T07:59:00", OFFSET(-30.5), W, "2024-01-15T07:59:30.5Z", OFFSETS, -30.5),
    # Nobody set or read the clock: its time, labelled unverified.
    ("2024-01-15T07:30:00", UNKNOWN, W, "2024-01-15T07:30:00Z", UNVERIFIED, None),
    # No device time at all.
    (None, SYNCED, W, W, HUB, None),
    # A clock back at 1970 after a battery change, whatever the hub thinks of the clock.
    ("1970-01-01T00:05:00", SYNCED, W, W, HUB, None),
    ("1970-01-01T00:05:00", UNKNOWN, W, W, HUB, None),
    ("1999-12-31T23:59:59", SYNCED, W, W, HUB, None),
    ("2000-01-01T00:00:00", UNKNOWN, W, "2000-01-01T00:00:00Z", UNVERIFIED, None),
    # ... but a 1970 clock whose offset the hub measured after the reset gives the time.
    ("1970-01-01T00:00:00", OFFSET(_1970_OFFSET), W, W, OFFSETS, _1970_OFFSET),
    # A correction that lands before 2000 is a reset clock too.
    ("2000-01-01T00:00:00", OFFSET(60.0), W, W, HUB, None),
    # The future: up to 5 minutes after receipt is drift, beyond that the clock is wrong.
    ("2024-01-15T08:05:00", UNKNOWN, W, "2024-01-15T08:05:00Z", UNVERIFIED, None),
    ("2024-01-15T08:05:01", UNKNOWN, W, W, HUB, None),
    ("2025-01-15T08:00:00", SYNCED, W, W, HUB, None),
    # An offset that brings a fast clock back within the tolerance.
    ("2024-01-15T09:00:00", OFFSET(3600.0), W, W, OFFSETS, 3600.0),
    # Europe/London, clocks go back 2024-10-27 02:00 BST -> 01:00 GMT: 01:30 happens twice;
    # fold=0 takes the first (BST), 00:30 UTC.
    ("2024-10-27T01:30:00", SYNCED, BACK, "2024-10-27T00:30:00Z", SYNCED_SOURCE, None),
    ("2024-10-27T00:59:00", SYNCED, BACK, "2024-10-26T23:59:00Z", SYNCED_SOURCE, None),
    ("2024-10-27T02:00:00", SYNCED, BACK, "2024-10-27T02:00:00Z", SYNCED_SOURCE, None),
    # Clocks go forward 2024-03-31 01:00 GMT -> 02:00 BST: 01:30 never happens; fold=0 reads it
    # with the offset before the change (GMT), 01:30 UTC.
    ("2024-03-31T01:30:00", SYNCED, FORWARD, "2024-03-31T01:30:00Z", SYNCED_SOURCE, None),
    ("2024-03-31T00:59:59", SYNCED, FORWARD, "2024-03-31T00:59:59Z", SYNCED_SOURCE, None),
    ("2024-03-31T02:00:00", SYNCED, FORWARD, "2024-03-31T01:00:00Z", SYNCED_SOURCE, None),
    # An offset across the change: the device wall time minus 1 h lands in the gap.
    ("2024-03-31T02:30:00", OFFSET(3600.0), FORWARD, "2024-03-31T01:30:00Z", OFFSETS, 3600.0),
    # received_at in another zone is read as the instant it is.
    (None, SYNCED, "2024-07-15T10:00:00+02:00", "2024-07-15T08:00:00Z", HUB, None),
    # Offsets that leave the calendar are a wrong clock, not a crash.
    ("9999-12-31T23:00:00", OFFSET(-7200.0), W, W, HUB, None),
    ("2024-01-15T08:00:00", OFFSET(1e300), W, W, HUB, None),
]


@pytest.mark.parametrize(
    ("device_time", "clock", "received_at", "measured_at", "source", "offset"), TIME_CASES
)
def test_resolve_measured_at(device_time, clock, received_at, measured_at, source, offset):
    result = resolve_measured_at(
        None if device_time is None else dt.datetime.fromisoformat(device_time),
        clock,
        LONDON,
        dt.datetime.fromisoformat(received_at),
    )
    assert result == (dt.datetime.fromisoformat(measured_at), source, offset)
    assert result[0].tzinfo is UTC


def test_resolve_time_says_why_it_rejected_a_device_time():
    future = resolve_time(_naive(2024, 1, 15, 9, 0), SYNCED, LONDON, WINTER_RECEIVED)
    assert future.rejected == "device time 2024-01-15T09:00:00 is 3600 s after the hub received it"
    corrected = resolve_time(
        _naive(2000, 1, 1), ClockState.measured_offset(60.0), LONDON, WINTER_RECEIVED
    )
    assert corrected.rejected == (
        "device time 2000-01-01T00:00:00 (corrected by 60.0 s) is before 2000: a reset clock"
    )
    far = resolve_time(
        _naive(9999, 12, 31, 23), SYNCED, ZoneInfo("America/New_York"), WINTER_RECEIVED
    )
    assert far.rejected == "device time 9999-12-31T23:00:00 leaves the calendar range"
    assert resolve_time(None, SYNCED, LONDON, WINTER_RECEIVED).rejected is None


def test_the_future_tolerance_is_a_parameter():
    late = _naive(2024, 1, 15, 8, 1)
    assert (
        resolve_measured_at(
            late, SYNCED, LONDON, WINTER_RECEIVED, future_tolerance=dt.timedelta(0)
        )[1]
        is TimeSource.HUB_RECEIVE_TIME
    )


def test_resolve_refuses_a_zoned_device_time_and_a_naive_receive_time():
    with pytest.raises(ValueError, match="device_time must be naive"):
        resolve_measured_at(WINTER_RECEIVED, SYNCED, LONDON, WINTER_RECEIVED)
    with pytest.raises(ValueError, match="received_at must be an aware"):
        resolve_measured_at(None, SYNCED, LONDON, _naive(2024, 1, 15, 8))


def test_clock_state_offsets_go_with_the_offset_state_only():
    assert ClockState.measured_offset(1.5) == ClockState(ClockSync.OFFSET, 1.5)
    for bad in (
        lambda: ClockState(ClockSync.OFFSET),
        lambda: ClockState(ClockSync.SYNCED, 2.0),
        lambda: ClockState.measured_offset(float("nan")),
        lambda: ClockState.measured_offset(float("inf")),
    ):
        with pytest.raises(ValueError, match="offset_s"):
            bad()


# --- reading_id ---------------------------------------------------------------------------------


def test_reading_id_follows_the_documented_derivation():
    material = json.dumps(
        [
            "vitalbridge.reading_id/1",
            "cuff-1",
            "2A35",
            None,
            "device 2024-03-05T07:30:15",
            BP_RAW.hex(),
        ],
        separators=(",", ":"),
    )
    expected = hashlib.sha256(material.encode()).hexdigest()[:32]
    reading = _normalise("2A35", BP_RAW, device=_device("cuff-1", "blood_pressure"))
    assert reading.reading_id == expected


def test_reading_id_of_an_untimed_reading_uses_the_receive_time_to_the_microsecond():
    received = dt.datetime(2024, 3, 5, 8, 31, 0, 250, tzinfo=ZoneInfo("Europe/Paris"))
    material = json.dumps(
        [
            "vitalbridge.reading_id/1",
            "strap-1",
            "2A37",
            None,
            "hub 2024-03-05T07:31:00.000250+00:00",
            HEART_RATE_RAW.hex(),
        ],
        separators=(",", ":"),
    )
    reading = _normalise(
        "2A37", HEART_RATE_RAW, device=_device("strap-1", "heart_rate"), received_at=received
    )
    assert reading.reading_id == hashlib.sha256(material.encode()).hexdigest()[:32]


def test_glucose_reading_id_uses_the_sequence_number_and_the_measurement_bytes_only():
    measurement = device_profiles.decode("2A18", GLUCOSE_RAW)
    context = device_profiles.decode("2A34", CONTEXT_RAW)
    common = {"hub_id": "hub-kitchen", "hub_tz": LONDON, "received_at": RECEIVED}
    device = _device("meter-1", "glucose")
    with_context = normalise(
        GlucoseRecord(42, measurement, context),
        device,
        SYNCED,
        PATIENTS,
        raw=(GLUCOSE_RAW, CONTEXT_RAW),
        **common,
    )
    # The same record delivered again with its context lost in transit.
    without = normalise(measurement, device, SYNCED, PATIENTS, raw=GLUCOSE_RAW, **common)
    assert with_context.reading_id == without.reading_id
    material = json.dumps(
        [
            "vitalbridge.reading_id/1",
            "meter-1",
            "2A18",
            42,
            "device 2024-03-05T07:25:15",
            GLUCOSE_RAW.hex(),
        ],
        separators=(",", ":"),
    )
    assert with_context.reading_id == hashlib.sha256(material.encode()).hexdigest()[:32]


def test_reading_id_needs_an_aware_receive_time_when_it_uses_it():
    with pytest.raises(ValueError, match="aware"):
        derive_reading_id(
            device_id="d",
            characteristic="2A37",
            record_id=None,
            device_time=None,
            received_at=_naive(2024, 1, 1),
            raw=b"\x00",
        )


def test_a_redelivery_after_a_restart_gets_the_same_id():
    first = _normalise("2A35", BP_RAW, received_at=RECEIVED, battery_level=80)
    again = normalise(
        device_profiles.decode("2A35", BP_RAW),
        _device("dev-1", "test"),
        ClockState.measured_offset(3.0),  # a new session measured the clock instead of setting it
        {1: "patient-a"},
        hub_id="hub-hallway",  # heard by another hub of the household
        hub_tz=LONDON,
        received_at=RECEIVED + dt.timedelta(hours=6),
        raw=BP_RAW,
        battery_level=60,
    )
    assert again.reading_id == first.reading_id
    assert again != first


def test_identical_values_at_different_times_are_different_readings():
    later = bytearray(BP_RAW)
    later[13] += 1  # seconds byte of the time stamp: 07:30:16
    assert _normalise("2A35", BP_RAW).reading_id != _normalise("2A35", bytes(later)).reading_id
    untimed = [
        _normalise("2A37", HEART_RATE_RAW, received_at=RECEIVED + dt.timedelta(microseconds=us))
        for us in (0, 1)
    ]
    assert untimed[0].reading_id != untimed[1].reading_id


def test_identical_readings_from_a_reset_clock_stay_distinct():
    raw = bytes.fromhex("02 7800 5000 5d00 d007 0101 000000")  # 2000-01-01 00:00:00
    stuck = [
        _normalise("2A35", raw, clock=ClockState.measured_offset(60.0), received_at=RECEIVED + d)
        for d in (dt.timedelta(0), dt.timedelta(minutes=3))
    ]
    assert stuck[0].time_source is TimeSource.HUB_RECEIVE_TIME
    assert stuck[0].reading_id != stuck[1].reading_id


identifiers = st.text(alphabet='ab,"[]\\ :', min_size=1, max_size=6)
id_inputs = st.fixed_dictionaries(
    {
        "device_id": identifiers,
        "characteristic": st.sampled_from(["2A35", "2A37", "2A18"]),
        "record_id": st.none() | st.integers(0, 3),
        "device_time": st.none() | st.sampled_from(["2024-03-05T07:30:15", "2024-03-05T07:30:16"]),
        "received_at": st.datetimes(
            min_value=dt.datetime(2024, 1, 1),  # noqa: DTZ001
            max_value=dt.datetime(2024, 1, 2),  # noqa: DTZ001
            timezones=st.just(UTC),
        ),
        "raw": st.binary(min_size=1, max_size=4),
    }
)


def _identity(inputs: dict[str, object]) -> tuple[object, ...]:
    """What the id depends on: the receive time only when there is no device time."""
    time = inputs["device_time"] if inputs["device_time"] is not None else inputs["received_at"]
    return (
        inputs["device_id"],
        inputs["characteristic"],
        inputs["record_id"],
        inputs["device_time"] is None,
        time,
        inputs["raw"],
    )


@settings(max_examples=300)
@given(first=id_inputs, second=id_inputs)
def test_reading_id_is_the_same_exactly_when_the_identity_is(first, second):
    same_id = derive_reading_id(**first) == derive_reading_id(**second)
    assert same_id == (_identity(first) == _identity(second))
    assert re.fullmatch(r"[0-9a-f]{32}", derive_reading_id(**first))


# --- Properties of normalise over every normalisable measurement --------------------------------


def _whole(measurement: BodyCompositionMeasurement) -> BodyCompositionMeasurement:
    return dataclasses.replace(measurement, multiple_packet_measurement=False)


@st.composite
def glucose_records(draw: st.DrawFn) -> tuple[GlucoseRecord, tuple[bytes, ...]]:
    measurement = draw(glucose_measurements())
    context = draw(st.none() | glucose_contexts())
    if context is None:
        return GlucoseRecord(measurement.sequence_number, measurement, None), (
            measurement.encode(),
        )
    context = dataclasses.replace(context, sequence_number=measurement.sequence_number)
    record = GlucoseRecord(measurement.sequence_number, measurement, context)
    return record, (measurement.encode(), context.encode())


def _with_raw(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return strategy.map(lambda m: (m, m.encode()))


measurements_with_raw = st.one_of(
    _with_raw(BLOOD_PRESSURE[BloodPressureMeasurement]),
    _with_raw(BLOOD_PRESSURE[EnhancedBloodPressureMeasurement]),
    _with_raw(PULSE_OXIMETER[PLXSpotCheckMeasurement]),
    _with_raw(PULSE_OXIMETER[PLXContinuousMeasurement]),
    _with_raw(WEIGHT_SCALE[WeightMeasurement]),
    _with_raw(BODY_COMPOSITION[BodyCompositionMeasurement].map(_whole)),
    _with_raw(THERMOMETER[TemperatureMeasurement]),
    _with_raw(glucose_measurements()),
    glucose_records(),
    _with_raw(HEART_RATE[HeartRateMeasurement]),
)
clocks = st.one_of(
    st.just(SYNCED),
    st.just(ClockState.unknown()),
    st.floats(-1e9, 1e9, allow_nan=False).map(ClockState.measured_offset),
)
received_times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, LONDON, ZoneInfo("America/New_York")]),
)
patient_maps = st.dictionaries(
    st.none() | st.integers(0, 255), st.sampled_from(["patient-a", "patient-b", "p:3"]), max_size=4
)


def _run(measurement, raw, clock, received_at, patients, hub_tz=LONDON):
    return normalise(
        measurement,
        _device("dev-1", "test"),
        clock,
        patients,
        hub_id="hub-kitchen",
        hub_tz=hub_tz,
        received_at=received_at,
        raw=raw,
        battery_level=50,
    )


def _observations(measurement) -> tuple[Observation, ...]:
    if isinstance(measurement, GlucoseMeasurement):
        return GlucoseRecord(measurement.sequence_number, measurement, None).observations()
    return measurement.observations()


PROPERTY_SETTINGS = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(case=measurements_with_raw, clock=clocks, received_at=received_times, patients=patient_maps)
def test_normalise_keeps_every_value_exact(case, clock, received_at, patients):
    measurement, raw = case
    reading = _run(measurement, raw, clock, received_at, patients)
    observations = _observations(measurement)
    assert len(reading.components) == len(observations)
    for component, observation in zip(reading.components, observations, strict=True):
        number, unit = canonical(observation)
        assert (component.code, component.field, component.unit) == (
            observation.quantity,
            observation.field,
            unit,
        )
        if number.special is not None:
            assert (component.value, component.special, component.resolution) == (
                None,
                number.special,
                None,
            )
            continue
        # Equal in value and in digits: the published string is the canonical number's.
        assert component.value == number.value
        assert format(component.value, "f") == str(number)
        assert component.resolution == number.resolution
        if observation.unit is unit:
            assert component.value.as_tuple() == observation.value.value.as_tuple()


@PROPERTY_SETTINGS
@given(case=measurements_with_raw, clock=clocks, received_at=received_times, patients=patient_maps)
def test_json_round_trip(case, clock, received_at, patients):
    measurement, raw = case
    reading = _run(measurement, raw, clock, received_at, patients)
    payload = reading.to_json_bytes()
    assert Reading.model_validate_json(payload) == reading
    assert TypeAdapter(Reading).validate_json(payload) == reading
    assert Reading.model_validate_json(payload).to_json_bytes() == payload
    assert reading.measured_at.tzinfo is UTC
    assert reading.received_at.tzinfo is UTC


@PROPERTY_SETTINGS
@given(
    case=measurements_with_raw,
    clock=clocks,
    received_at=received_times,
    later=st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=30)),
    patients=patient_maps,
)
def test_reading_id_is_deterministic(case, clock, received_at, later, patients):
    measurement, raw = case
    first = _run(measurement, raw, clock, received_at, patients)
    assert _run(measurement, raw, clock, received_at, patients) == first
    if first.time_source is not TimeSource.HUB_RECEIVE_TIME:
        # Delivered again later (a re-sent record, a hub restart): the same measurement.
        again = _run(measurement, raw, clock, received_at + later, {})
        assert again.reading_id == first.reading_id


@PROPERTY_SETTINGS
@given(
    case=measurements_with_raw,
    clock=clocks,
    received_at=received_times,
    later=st.timedeltas(min_value=dt.timedelta(microseconds=1), max_value=dt.timedelta(days=1)),
)
def test_reading_id_is_unique_per_measurement(case, clock, received_at, later):
    measurement, raw = case
    first = _run(measurement, raw, clock, received_at, {})
    other_device = normalise(
        measurement,
        _device("dev-2", "test"),
        clock,
        {},
        hub_id="hub-kitchen",
        hub_tz=LONDON,
        received_at=received_at,
        raw=raw,
    )
    assert other_device.reading_id != first.reading_id
    if first.time_source is TimeSource.HUB_RECEIVE_TIME:
        # Untimed: the same bytes later are another measurement with the same values.
        assert _run(measurement, raw, clock, received_at + later, {}).reading_id != (
            first.reading_id
        )


@PROPERTY_SETTINGS
@given(
    measurement=glucose_measurements(),
    other=st.integers(0, 0xFFFF),
    received_at=received_times,
)
def test_glucose_records_alike_but_for_the_sequence_number_differ(measurement, other, received_at):
    assume(other != measurement.sequence_number)
    twin = dataclasses.replace(measurement, sequence_number=other)
    ids = {_run(m, m.encode(), SYNCED, received_at, {}).reading_id for m in (measurement, twin)}
    assert len(ids) == 2


# --- The model and its exported JSON Schema -----------------------------------------------------


EXAMPLES = [
    ("2A35", BP_RAW),
    ("2B34", EBP_RAW),
    ("2A5E", SPOT_RAW),
    ("2A5F", CONTINUOUS_RAW),
    ("2A9D", WEIGHT_RAW),
    ("2A9C", BODY_RAW),
    ("2A1C", TEMPERATURE_RAW),
    ("2A18", GLUCOSE_RAW),
    ("2A37", HEART_RATE_RAW),
]


def test_the_schema_file_matches_the_model():
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema_text(), (
        f"{SCHEMA_PATH} is out of date with gateway.reading.Reading; regenerate it with: "
        "python -m gateway.reading --write-schema"
    )
    assert json.loads(committed) == Reading.model_json_schema(mode="serialization")


def test_the_schema_is_versioned_and_closed():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$id"] == f"urn:vitalbridge:schema:reading:{SCHEMA_VERSION}"
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"]) == set(Reading.model_fields)
    assert schema["$defs"]["ReadingKind"]["enum"] == [kind.value for kind in ReadingKind]
    assert schema["$defs"]["TimeSource"]["enum"] == [source.value for source in TimeSource]


def _check_against_schema(instance: object, schema: dict, defs: dict) -> None:
    """A small JSON Schema check (jsonschema is not installed): types, keys, enums, patterns."""
    if "$ref" in schema:
        _check_against_schema(instance, defs[schema["$ref"].rsplit("/", 1)[1]], defs)
        return
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _check_against_schema(instance, option, defs)
            except AssertionError as error:
                errors.append(error)
            else:
                return
        raise AssertionError(errors)
    kind = schema.get("type")
    python_types = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "null": type(None),
    }
    if kind is not None:
        assert isinstance(instance, python_types[kind]), (instance, schema)
    if "enum" in schema:
        assert instance in schema["enum"], (instance, schema["enum"])
    if "const" in schema:
        assert instance == schema["const"]
    if "pattern" in schema:
        assert re.search(schema["pattern"], instance), (instance, schema["pattern"])
    if "minimum" in schema:
        assert schema["minimum"] <= instance <= schema["maximum"]
    if kind == "object" and isinstance(instance, dict):
        properties = schema.get("properties", {})
        assert set(schema.get("required", [])) <= set(instance)
        for key, value in instance.items():
            if key in properties:
                _check_against_schema(value, properties[key], defs)
            else:
                assert schema.get("additionalProperties", True) is not False, key
                _check_against_schema(value, schema["additionalProperties"], defs)
    if kind == "array":
        for item in instance:
            _check_against_schema(item, schema["items"], defs)


@pytest.mark.parametrize(("uuid", "raw"), EXAMPLES, ids=[uuid for uuid, _ in EXAMPLES])
def test_every_example_validates_against_the_exported_schema(uuid, raw):
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    payload = _normalise(uuid, raw).to_json_bytes()
    _check_against_schema(json.loads(payload), schema, schema["$defs"])
    assert TypeAdapter(Reading).validate_json(payload).to_json_bytes() == payload


def test_the_schema_check_catches_a_drifted_payload():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    published = json.loads(_normalise("2A35", BP_RAW).to_json_bytes())
    for broken in (
        {**published, "extra": 1},
        {**published, "kind": "blood_sugar"},
        {**published, "reading_id": "not-an-id"},
        {**published, "components": [{**published["components"][0], "value": 120}]},
    ):
        with pytest.raises(AssertionError):
            _check_against_schema(broken, schema, schema["$defs"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": "2.0"}, "schema_version"),
        ({"extra": 1}, "extra"),
        ({"measured_at": "2024-03-05T07:30:15"}, "timezone"),
        ({"reading_id": "R1"}, "reading_id"),
        ({"raw": "1E78"}, "raw"),
        ({"characteristic": "0x2A35"}, "characteristic"),
        ({"device_time": "2024-03-05 07:30:15"}, "device_time"),
        ({"clock_offset_s": "NaN"}, "clock_offset_s"),
        ({"user_index": 256}, "user_index"),
        ({"patient": "Jane Doe"}, "patient"),
    ],
)
def test_the_model_refuses_what_the_schema_forbids(change, message):
    published = json.loads(_normalise("2A35", BP_RAW).to_json_bytes())
    with pytest.raises(ValidationError, match=message):
        Reading.model_validate_json(json.dumps({**published, **change}))


def test_times_are_stored_in_utc_and_the_model_is_frozen():
    published = json.loads(_normalise("2A35", BP_RAW).to_json_bytes())
    reading = Reading.model_validate({**published, "measured_at": "2024-03-05T09:30:15+02:00"})
    assert reading.measured_at == dt.datetime(2024, 3, 5, 7, 30, 15, tzinfo=UTC)
    assert reading.measured_at.tzinfo is UTC
    with pytest.raises(ValidationError, match="frozen"):
        reading.kind = ReadingKind.HEART_RATE  # type: ignore[misc]
    assert hash(reading) == hash(Reading.model_validate(published))


def test_qualifiers_are_published_in_sorted_order():
    published = json.loads(_normalise("2A35", BP_RAW).to_json_bytes())
    reading = Reading.model_validate({**published, "qualifiers": {"b": "2", "a": "1"}})
    assert b'"qualifiers":{"a":"1","b":"2"}' in reading.to_json_bytes()


def test_the_command_line_writes_and_checks_the_schema(tmp_path: Path, capsys):
    path = tmp_path / "reading.schema.json"
    assert main(["--check-schema", "--path", str(path)]) == 1
    assert "python -m gateway.reading --write-schema" in capsys.readouterr().out
    assert main(["--write-schema", "--path", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == schema_text()
    assert main(["--check-schema", "--path", str(path)]) == 0
    assert main(["--check-schema"]) == 0  # the committed file


def test_the_uplink_modules_stay_pure():
    for module in ("reading", "normalise", "timebase"):
        text = (Path(reading_module.__file__).parent / f"{module}.py").read_text(encoding="utf-8")
        for forbidden in (
            ".now(",
            ".utcnow(",
            ".today(",
            "time.time(",
            "import logging",
            "asyncio",
        ):
            assert forbidden not in text, f"gateway/{module}.py contains {forbidden}"


def test_the_documented_command_checks_the_committed_schema():
    done = subprocess.run(
        [sys.executable, "-m", "gateway.reading", "--check-schema"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
