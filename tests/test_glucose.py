"""Glucose Service 1.0: vectors hand-built from the GSS field tables of 0x2A18, 0x2A34 and 0x2A51.

Bit and code tables: the Bluetooth SIG GATT XML definitions glucose_measurement.xml,
glucose_measurement_context.xml and glucose_feature.xml. Wire words are literals on purpose.
`glucose.Tester` stays qualified: pytest would collect a bare `Tester` as a test class.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

import device_profiles
from device_profiles import DateTime, DecodeError, EncodeError, Number, SpecialValue, Unit, glucose
from device_profiles.codes import Observation, Quantity, canonical
from device_profiles.glucose import (
    EXERCISE_DURATION_OVERRUN,
    CarbohydrateId,
    GlucoseFeature,
    GlucoseFeatures,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseRecord,
    GlucoseType,
    Health,
    Meal,
    MedicationId,
    SampleLocation,
    SensorStatus,
    pair_records,
    resolve_measurement_time,
)

NAN = Number(0, 0, SpecialValue.NAN)


def _local(text):
    """A naive device-local datetime, as the Date Time field carries it."""
    return dt.datetime.fromisoformat(text)


INFINITY = Number(0, 0, SpecialValue.POSITIVE_INFINITY)

# Base Time 2024-03-15 08:30:00: year 2024 = 0x07E8 little-endian, then month, day, h, m, s.
BASE_TIME_BYTES = bytes.fromhex("e807030f081e00")
BASE_TIME = DateTime(2024, 3, 15, 8, 30, 0)

# ---------------------------------------------------------------------------------------------
# Glucose Measurement (0x2A18). GSS field table: Flags uint8, Sequence Number uint16, Base Time
# (Date Time), Time Offset sint16 minutes [bit 0], Glucose Concentration SFLOAT + Type-Sample
# Location byte [bit 1; unit kg/L, or mol/L with bit 2], Sensor Status Annunciation [bit 3];
# bit 4: context information follows; bits 5-7 reserved.
# ---------------------------------------------------------------------------------------------

SEQUENCE_42 = b"\x2a\x00"
TIME_OFFSET_MINUS_30 = b"\xe2\xff"  # sint16 -30
# SFLOAT 0xB05F: exponent -5, mantissa 95 -> 0.00095 kg/L (95 mg/dL); 0x11: type 1, location 1.
CONCENTRATION_95 = b"\x5f\xb0\x11"
STATUS_BATTERY_LOW = b"\x01\x00"


def test_measurement_kg_per_litre_with_time_offset():
    # GSS 0x2A18 table, flags 0x03: time offset and concentration (kg/L).
    payload = b"\x03" + b"\x01\x00" + BASE_TIME_BYTES + TIME_OFFSET_MINUS_30 + CONCENTRATION_95
    assert GlucoseMeasurement.decode(payload) == GlucoseMeasurement(
        sequence_number=1,
        base_time=BASE_TIME,
        time_offset_min=-30,
        glucose_concentration=Number(95, -5),
        unit=Unit.KG_PER_LITRE,
        type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
        sample_location=SampleLocation.FINGER,
    )


def test_measurement_mol_per_litre_with_status_and_context():
    # GSS 0x2A18 table, flags 0x1E: concentration in mol/L, status, context follows.
    # SFLOAT 0xC035: exponent -4, mantissa 53 -> 0.0053 mol/L; 0x24: venous plasma (4), AST (2);
    # status 0x0021: battery low and result higher than the device can process.
    payload = b"\x1e\x02\x01" + BASE_TIME_BYTES + b"\x35\xc0\x24" + b"\x21\x00"
    result = GlucoseMeasurement.decode(payload)
    assert result == GlucoseMeasurement(
        sequence_number=0x0102,
        base_time=BASE_TIME,
        glucose_concentration=Number(53, -4),
        unit=Unit.MOL_PER_LITRE,
        type=GlucoseType.VENOUS_PLASMA,
        sample_location=SampleLocation.ALTERNATE_SITE_TEST,
        sensor_status_annunciation=SensorStatus.DEVICE_BATTERY_LOW
        | SensorStatus.RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS,
        context_information_follows=True,
    )
    assert result.encode() == payload


def test_measurement_minimal():
    # GSS 0x2A18 table: only the mandatory fields.
    payload = b"\x00\x00\x00" + BASE_TIME_BYTES
    result = GlucoseMeasurement.decode(payload)
    assert result == GlucoseMeasurement(0, BASE_TIME)
    assert result.observations() == ()
    assert result.encode() == payload


@pytest.mark.parametrize("flags", range(0x20))
def test_measurement_every_flag_combination(flags):
    # GSS 0x2A18 table: each optional field appears exactly when its flag bit says so.
    payload = bytes([flags]) + SEQUENCE_42 + BASE_TIME_BYTES
    if flags & 0x01:
        payload += TIME_OFFSET_MINUS_30
    if flags & 0x02:
        payload += CONCENTRATION_95
    if flags & 0x08:
        payload += STATUS_BATTERY_LOW
    concentration = bool(flags & 0x02)
    expected = GlucoseMeasurement(
        42,
        BASE_TIME,
        -30 if flags & 0x01 else None,
        Number(95, -5) if concentration else None,
        Unit.MOL_PER_LITRE if flags & 0x04 else Unit.KG_PER_LITRE,
        GlucoseType.CAPILLARY_WHOLE_BLOOD if concentration else None,
        SampleLocation.FINGER if concentration else None,
        SensorStatus.DEVICE_BATTERY_LOW if flags & 0x08 else None,
        bool(flags & 0x10),
    )
    assert GlucoseMeasurement.decode(payload) == expected
    assert expected.encode() == payload


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        (b"\xff\x07", SpecialValue.NAN),
        (b"\x00\x08", SpecialValue.NRES),
        (b"\xfe\x07", SpecialValue.POSITIVE_INFINITY),
        (b"\x02\x08", SpecialValue.NEGATIVE_INFINITY),
        (b"\x01\x08", SpecialValue.RESERVED),
    ],
)
def test_measurement_concentration_special_values(word, expected):
    # IEEE 11073-20601 SFLOAT special words in the Glucose Concentration field.
    payload = b"\x02\x2a\x00" + BASE_TIME_BYTES + word + b"\x11"
    result = GlucoseMeasurement.decode(payload)
    assert result.glucose_concentration == Number(0, 0, expected)
    assert result.observations() == (
        Observation(
            "glucose_concentration",
            Quantity.GLUCOSE_CONCENTRATION,
            Number(0, 0, expected),
            Unit.KG_PER_LITRE,
        ),
    )
    assert result.encode() == payload


SENSOR_STATUS_BITS = [
    (0x0001, SensorStatus.DEVICE_BATTERY_LOW),
    (0x0002, SensorStatus.SENSOR_MALFUNCTION),
    (0x0004, SensorStatus.SAMPLE_SIZE_INSUFFICIENT),
    (0x0008, SensorStatus.STRIP_INSERTION_ERROR),
    (0x0010, SensorStatus.STRIP_TYPE_INCORRECT),
    (0x0020, SensorStatus.RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS),
    (0x0040, SensorStatus.RESULT_LOWER_THAN_DEVICE_CAN_PROCESS),
    (0x0080, SensorStatus.TEMPERATURE_TOO_HIGH),
    (0x0100, SensorStatus.TEMPERATURE_TOO_LOW),
    (0x0200, SensorStatus.READ_INTERRUPTED),
    (0x0400, SensorStatus.GENERAL_DEVICE_FAULT),
    (0x0800, SensorStatus.TIME_FAULT),
]


@pytest.mark.parametrize(("bit", "member"), SENSOR_STATUS_BITS)
def test_measurement_every_sensor_status_bit(bit, member):
    # GSS 0x2A18 "Sensor Status Annunciation" bit table, bits 0-11.
    payload = b"\x08\x2a\x00" + BASE_TIME_BYTES + bit.to_bytes(2, "little")
    result = GlucoseMeasurement.decode(payload)
    assert result == GlucoseMeasurement(42, BASE_TIME, sensor_status_annunciation=member)
    assert result.encode() == payload


def test_measurement_reserved_sensor_status_bits_warn():
    # Bits 12-15 are reserved: dropped with a warning, the defined bits kept.
    payload = b"\x08\x2a\x00" + BASE_TIME_BYTES + b"\x01\xf0"
    result = GlucoseMeasurement.decode(payload)
    assert result.sensor_status_annunciation == SensorStatus.DEVICE_BATTERY_LOW
    assert result.warnings == ("sensor_status_annunciation: reserved bits 0xf000 set and ignored",)


def test_measurement_reserved_flag_bits_warn_without_shifting_the_parse():
    payload = b"\xe2\x2a\x00" + BASE_TIME_BYTES + CONCENTRATION_95
    result = GlucoseMeasurement.decode(payload)
    assert result == GlucoseMeasurement(
        42,
        BASE_TIME,
        glucose_concentration=Number(95, -5),
        type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
        sample_location=SampleLocation.FINGER,
        warnings=("flags: reserved bits 0xe0 set and ignored",),
    )


def test_measurement_trailing_bytes_warn():
    payload = b"\x00\x2a\x00" + BASE_TIME_BYTES + b"\x00\x00"
    result = GlucoseMeasurement.decode(payload)
    assert result == GlucoseMeasurement(
        42, BASE_TIME, warnings=("2 trailing byte(s) after the last field ignored",)
    )


TYPE_NAMES = {
    1: "CAPILLARY_WHOLE_BLOOD",
    2: "CAPILLARY_PLASMA",
    3: "VENOUS_WHOLE_BLOOD",
    4: "VENOUS_PLASMA",
    5: "ARTERIAL_WHOLE_BLOOD",
    6: "ARTERIAL_PLASMA",
    7: "UNDETERMINED_WHOLE_BLOOD",
    8: "UNDETERMINED_PLASMA",
    9: "INTERSTITIAL_FLUID",
    10: "CONTROL_SOLUTION",
}
LOCATION_NAMES = {
    1: "FINGER",
    2: "ALTERNATE_SITE_TEST",
    3: "EARLOBE",
    4: "CONTROL_SOLUTION",
    15: "NOT_AVAILABLE",
}


@pytest.mark.parametrize("code", range(16))
def test_measurement_every_type_and_sample_location_code(code):
    # GSS 0x2A18 Type (low nibble) and Sample Location (high nibble) tables; reserved codes kept.
    other = 15 - code
    payload = b"\x02\x2a\x00" + BASE_TIME_BYTES + b"\x5f\xb0" + bytes([code | other << 4])
    result = GlucoseMeasurement.decode(payload)
    assert result.type == code
    assert result.type.name == TYPE_NAMES.get(code, f"RESERVED_{code}")
    assert result.type.is_reserved == (code not in TYPE_NAMES)
    assert result.sample_location == other
    assert result.sample_location.name == LOCATION_NAMES.get(other, f"RESERVED_{other}")
    assert result.sample_location.is_reserved == (other not in LOCATION_NAMES)
    assert result.warnings == ()
    assert result.encode() == payload


def test_measurement_time_offset_extremes():
    # sint16: 0x8000 is -32768 and 0x7FFF is +32767 minutes.
    low = GlucoseMeasurement.decode(b"\x01\x2a\x00" + BASE_TIME_BYTES + b"\x00\x80")
    high = GlucoseMeasurement.decode(b"\x01\x2a\x00" + BASE_TIME_BYTES + b"\xff\x7f")
    assert low.time_offset_min == -32768
    assert high.time_offset_min == 32767


@pytest.mark.parametrize(
    ("payload", "field", "offset", "kind"),
    [
        (b"", "flags", 0, "empty"),
        (b"\x00", "sequence_number", 1, "missing_field"),
        (b"\x00\x2a", "sequence_number", 1, "truncated"),
        (b"\x00\x2a\x00", "base_time", 3, "missing_field"),
        (b"\x00\x2a\x00\xe8\x07\x03", "base_time", 3, "truncated"),
        (b"\x01\x2a\x00" + BASE_TIME_BYTES, "time_offset", 10, "missing_field"),
        (b"\x01\x2a\x00" + BASE_TIME_BYTES + b"\xe2", "time_offset", 10, "truncated"),
        (b"\x02\x2a\x00" + BASE_TIME_BYTES, "glucose_concentration", 10, "missing_field"),
        (
            b"\x02\x2a\x00" + BASE_TIME_BYTES + b"\x5f\xb0",
            "type_sample_location",
            12,
            "missing_field",
        ),
        (
            b"\x08\x2a\x00" + BASE_TIME_BYTES + b"\x01",
            "sensor_status_annunciation",
            10,
            "truncated",
        ),
        # Month 13 is impossible: the whole record is rejected.
        (b"\x00\x2a\x00\xe8\x07\x0d\x0f\x08\x1e\x00", "base_time", 3, "invalid_value"),
        # 2023-02-29 does not exist.
        (b"\x00\x2a\x00\xe7\x07\x02\x1d\x08\x1e\x00", "base_time", 3, "invalid_value"),
    ],
)
def test_measurement_decode_errors(payload, field, offset, kind):
    with pytest.raises(DecodeError) as info:
        GlucoseMeasurement.decode(payload)
    assert (info.value.field, info.value.offset, info.value.kind) == (field, offset, kind)


@pytest.mark.parametrize(
    ("measurement", "field"),
    [
        (GlucoseMeasurement(0x10000, BASE_TIME), "sequence_number"),
        (GlucoseMeasurement(-1, BASE_TIME), "sequence_number"),
        (GlucoseMeasurement(1, DateTime(2024, 2, 30)), "base_time"),
        (GlucoseMeasurement(1, BASE_TIME, time_offset_min=0x8000), "time_offset"),
        (GlucoseMeasurement(1, BASE_TIME, time_offset_min=-0x8001), "time_offset"),
        (
            GlucoseMeasurement(1, BASE_TIME, glucose_concentration=Number(95, -5)),
            "glucose_concentration",
        ),
        (
            GlucoseMeasurement(1, BASE_TIME, type=GlucoseType.VENOUS_PLASMA),
            "glucose_concentration",
        ),
        (
            GlucoseMeasurement(
                1, BASE_TIME, glucose_concentration=Number(95, -5), type=GlucoseType.VENOUS_PLASMA
            ),
            "glucose_concentration",
        ),
        (
            GlucoseMeasurement(
                1,
                BASE_TIME,
                glucose_concentration=Number(95, -5),
                unit=Unit.MG_PER_DL,
                type=GlucoseType.VENOUS_PLASMA,
                sample_location=SampleLocation.FINGER,
            ),
            "unit",
        ),
        (
            GlucoseMeasurement(
                1,
                BASE_TIME,
                glucose_concentration=Number(5000, 0),
                type=GlucoseType.VENOUS_PLASMA,
                sample_location=SampleLocation.FINGER,
            ),
            "glucose_concentration",
        ),
        (
            GlucoseMeasurement(
                1,
                BASE_TIME,
                glucose_concentration=Number(95, -5),
                type=GlucoseType(16),
                sample_location=SampleLocation.FINGER,
            ),
            "type",
        ),
        (
            GlucoseMeasurement(
                1,
                BASE_TIME,
                glucose_concentration=Number(95, -5),
                type=GlucoseType.VENOUS_PLASMA,
                sample_location=SampleLocation(16),
            ),
            "sample_location",
        ),
        (
            GlucoseMeasurement(1, BASE_TIME, sensor_status_annunciation=SensorStatus(0x10000)),
            "sensor_status_annunciation",
        ),
    ],
)
def test_measurement_encode_errors(measurement, field):
    with pytest.raises(EncodeError) as info:
        measurement.encode()
    assert info.value.field == field


def test_measurement_encode_example():
    # Object -> bytes, GSS 0x2A18 table order: flags 0x0B, seq 7, base time, offset +15,
    # SFLOAT 0xF03A (5.8), type 9 / location 15 -> 0xF9, status time fault 0x0800.
    measurement = GlucoseMeasurement(
        7,
        BASE_TIME,
        15,
        Number(58, -1),
        Unit.KG_PER_LITRE,
        GlucoseType.INTERSTITIAL_FLUID,
        SampleLocation.NOT_AVAILABLE,
        SensorStatus.TIME_FAULT,
    )
    assert measurement.encode() == bytes.fromhex("0b0700e807030f081e000f003af0f90008")


# ---------------------------------------------------------------------------------------------
# Measurement time: Base Time + Time Offset (GSS 0x2A18 "Time Offset" description).
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_time", "offset", "expected"),
    [
        (BASE_TIME, None, _local("2024-03-15T08:30")),
        (BASE_TIME, 0, _local("2024-03-15T08:30")),
        (BASE_TIME, 90, _local("2024-03-15T10:00")),
        (BASE_TIME, -30, _local("2024-03-15T08:00")),
        # A negative offset crosses midnight and a month boundary.
        (DateTime(2024, 3, 1, 0, 10, 0), -20, _local("2024-02-29T23:50")),
        (BASE_TIME, -32768, _local("2024-02-21T14:22")),
        (BASE_TIME, 32767, _local("2024-04-07T02:37")),
        # Unknown base date: no measurement time, whatever the offset.
        (DateTime(0, 3, 15, 8, 30, 0), -30, None),
        (DateTime(2024, 0, 15), None, None),
        (DateTime(2024, 3, 0), 10, None),
        # Past year 9999 there is no datetime to give.
        (DateTime(9999, 12, 31, 23, 59, 0), 10, None),
    ],
)
def test_measurement_time_resolution(base_time, offset, expected):
    assert resolve_measurement_time(base_time, offset) == expected
    measurement = GlucoseMeasurement(1, base_time, offset)
    assert measurement.measurement_time == expected


def test_measurement_time_from_decoded_bytes():
    payload = b"\x01\x2a\x00" + BASE_TIME_BYTES + TIME_OFFSET_MINUS_30
    assert GlucoseMeasurement.decode(payload).measurement_time == _local("2024-03-15T08:00")


# ---------------------------------------------------------------------------------------------
# Glucose Measurement Context (0x2A34). GSS field table: Flags uint8, Sequence Number uint16,
# Extended Flags [bit 7], Carbohydrate ID uint8 + Carbohydrate SFLOAT kg [bit 0], Meal [bit 1],
# Tester-Health nibbles [bit 2], Exercise Duration uint16 s + Intensity uint8 % [bit 3],
# Medication ID + Medication SFLOAT kg or L [bit 4; L with bit 5], HbA1c SFLOAT % [bit 6].
# ---------------------------------------------------------------------------------------------

EXTENDED_FLAGS_0 = b"\x00"
CARBOHYDRATE_BREAKFAST_50G = b"\x01\x32\xd0"  # id 1; SFLOAT 0xD032 = 50e-3 kg
MEAL_PREPRANDIAL = b"\x01"
TESTER_SELF_NO_HEALTH_ISSUES = b"\x51"  # tester 1 (low nibble), health 5 (high nibble)
EXERCISE_30_MIN_60_PERCENT = b"\x08\x07\x3c"  # 0x0708 = 1800 s; 60 %
MEDICATION_RAPID_4 = b"\x01\x04\xa0"  # id 1; SFLOAT 0xA004 = 4e-6 (kg, or L with bit 5)
HBA1C_6_5 = b"\x41\xf0"  # SFLOAT 0xF041 = 65e-1 %


@pytest.mark.parametrize("flags", range(0x100))
def test_context_every_flag_combination(flags):
    # GSS 0x2A34 table: fields in table order, each present exactly when its bit says so.
    payload = bytes([flags]) + SEQUENCE_42
    for bit, chunk in (
        (0x80, EXTENDED_FLAGS_0),
        (0x01, CARBOHYDRATE_BREAKFAST_50G),
        (0x02, MEAL_PREPRANDIAL),
        (0x04, TESTER_SELF_NO_HEALTH_ISSUES),
        (0x08, EXERCISE_30_MIN_60_PERCENT),
        (0x10, MEDICATION_RAPID_4),
        (0x40, HBA1C_6_5),
    ):
        if flags & bit:
            payload += chunk
    expected = GlucoseMeasurementContext(
        42,
        0 if flags & 0x80 else None,
        CarbohydrateId.BREAKFAST if flags & 0x01 else None,
        Number(50, -3) if flags & 0x01 else None,
        Meal.PREPRANDIAL if flags & 0x02 else None,
        glucose.Tester.SELF if flags & 0x04 else None,
        Health.NO_HEALTH_ISSUES if flags & 0x04 else None,
        Number(1800, 0) if flags & 0x08 else None,
        Number(60, 0) if flags & 0x08 else None,
        MedicationId.RAPID_ACTING_INSULIN if flags & 0x10 else None,
        Number(4, -6) if flags & 0x10 else None,
        Unit.LITRE if flags & 0x20 else Unit.KILOGRAM,
        Number(65, -1) if flags & 0x40 else None,
    )
    assert GlucoseMeasurementContext.decode(payload) == expected
    assert expected.encode() == payload


def test_context_everything_present():
    # GSS 0x2A34 table, flags 0x7F (every field but the extended flags), medication in litres.
    payload = (
        b"\x7f\x05\x00"
        b"\x03\x64\xd0"  # dinner, SFLOAT 0xD064 = 100e-3 kg
        b"\x02"  # postprandial
        b"\xf2"  # tester 2 (health care professional), health 15 (not available)
        b"\xff\xff\x64"  # exercise duration overrun, intensity 100 %
        b"\x05\x0a\xd0"  # pre-mixed insulin, SFLOAT 0xD00A = 10e-3 L
        b"\x48\xf0"  # HbA1c 72e-1 %
    )
    result = GlucoseMeasurementContext.decode(payload)
    assert result == GlucoseMeasurementContext(
        sequence_number=5,
        carbohydrate_id=CarbohydrateId.DINNER,
        carbohydrate=Number(100, -3),
        meal=Meal.POSTPRANDIAL,
        tester=glucose.Tester.HEALTH_CARE_PROFESSIONAL,
        health=Health.NOT_AVAILABLE,
        exercise_duration=INFINITY,
        exercise_intensity=Number(100, 0),
        medication_id=MedicationId.PRE_MIXED_INSULIN,
        medication=Number(10, -3),
        medication_unit=Unit.LITRE,
        hba1c=Number(72, -1),
    )
    assert result.exercise_duration_overrun
    assert result.encode() == payload
    assert result.observations() == (
        Observation("carbohydrate", Quantity.CARBOHYDRATE, Number(100, -3), Unit.KILOGRAM),
        Observation("exercise_duration", Quantity.EXERCISE_DURATION, INFINITY, Unit.SECOND),
        Observation(
            "exercise_intensity", Quantity.EXERCISE_INTENSITY, Number(100, 0), Unit.PERCENT
        ),
        Observation("medication", Quantity.MEDICATION, Number(10, -3), Unit.LITRE),
        Observation("hba1c", Quantity.HBA1C, Number(72, -1), Unit.PERCENT),
    )
    # The observations convert to the quantities' canonical units exactly.
    carbohydrate, medication = result.observations()[0], result.observations()[3]
    assert canonical(carbohydrate) == (Number(100, 0), Unit.GRAM)
    assert canonical(medication) == (Number(10, 0), Unit.MILLILITRE)
    json.dumps(device_profiles.as_dict(result))


def test_context_exercise_duration_overrun_and_edges():
    # GSS 0x2A34 Exercise Duration: 0..65534 seconds, 65535 (0xFFFF) = overrun.
    assert EXERCISE_DURATION_OVERRUN == 0xFFFF
    overrun = GlucoseMeasurementContext.decode(b"\x08\x01\x00\xff\xff\x00")
    assert overrun.exercise_duration == INFINITY
    assert overrun.exercise_duration_overrun
    longest = GlucoseMeasurementContext.decode(b"\x08\x01\x00\xfe\xff\xff")
    assert longest.exercise_duration == Number(65534, 0)
    assert longest.exercise_intensity == Number(255, 0)
    assert not longest.exercise_duration_overrun
    assert not GlucoseMeasurementContext(1).exercise_duration_overrun
    assert overrun.observations() == (
        Observation("exercise_duration", Quantity.EXERCISE_DURATION, INFINITY, Unit.SECOND),
        Observation("exercise_intensity", Quantity.EXERCISE_INTENSITY, Number(0, 0), Unit.PERCENT),
    )


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        (b"\xff\x07", SpecialValue.NAN),
        (b"\x00\x08", SpecialValue.NRES),
        (b"\xfe\x07", SpecialValue.POSITIVE_INFINITY),
        (b"\x02\x08", SpecialValue.NEGATIVE_INFINITY),
        (b"\x01\x08", SpecialValue.RESERVED),
    ],
)
def test_context_sfloat_special_values(word, expected):
    # Carbohydrate, Medication and HbA1c are SFLOATs: every special word is kept and observed.
    payload = b"\x51\x2a\x00" + b"\x01" + word + b"\x01" + word + word
    special = Number(0, 0, expected)
    result = GlucoseMeasurementContext.decode(payload)
    assert result == GlucoseMeasurementContext(
        42,
        carbohydrate_id=CarbohydrateId.BREAKFAST,
        carbohydrate=special,
        medication_id=MedicationId.RAPID_ACTING_INSULIN,
        medication=special,
        hba1c=special,
    )
    assert [o.value for o in result.observations()] == [special, special, special]
    assert result.encode() == payload


CARBOHYDRATE_NAMES = {
    1: "BREAKFAST",
    2: "LUNCH",
    3: "DINNER",
    4: "SNACK",
    5: "DRINK",
    6: "SUPPER",
    7: "BRUNCH",
}
MEAL_NAMES = {1: "PREPRANDIAL", 2: "POSTPRANDIAL", 3: "FASTING", 4: "CASUAL", 5: "BEDTIME"}
MEDICATION_NAMES = {
    1: "RAPID_ACTING_INSULIN",
    2: "SHORT_ACTING_INSULIN",
    3: "INTERMEDIATE_ACTING_INSULIN",
    4: "LONG_ACTING_INSULIN",
    5: "PRE_MIXED_INSULIN",
}
TESTER_NAMES = {1: "SELF", 2: "HEALTH_CARE_PROFESSIONAL", 3: "LAB_TEST", 15: "NOT_AVAILABLE"}
HEALTH_NAMES = {
    1: "MINOR_HEALTH_ISSUES",
    2: "MAJOR_HEALTH_ISSUES",
    3: "DURING_MENSES",
    4: "UNDER_STRESS",
    5: "NO_HEALTH_ISSUES",
    15: "NOT_AVAILABLE",
}


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 5, 6, 7, 8, 0x7F, 0xFF])
def test_context_every_uint8_code(code):
    # GSS 0x2A34 Carbohydrate ID, Meal and Medication ID tables; reserved codes kept as sent.
    payload = b"\x13\x2a\x00" + bytes([code]) + b"\x32\xd0" + bytes([code, code]) + b"\x04\xa0"
    result = GlucoseMeasurementContext.decode(payload)
    for value, names in (
        (result.carbohydrate_id, CARBOHYDRATE_NAMES),
        (result.meal, MEAL_NAMES),
        (result.medication_id, MEDICATION_NAMES),
    ):
        assert value == code
        assert value.name == names.get(code, f"RESERVED_{code}")
        assert value.is_reserved == (code not in names)
    assert result.warnings == ()
    assert result.encode() == payload


@pytest.mark.parametrize("code", range(16))
def test_context_every_tester_and_health_code(code):
    # GSS 0x2A34 Tester (low nibble) and Health (high nibble) tables; reserved codes kept.
    other = 15 - code
    payload = b"\x04\x2a\x00" + bytes([code | other << 4])
    result = GlucoseMeasurementContext.decode(payload)
    assert result.tester == code
    assert result.tester.name == TESTER_NAMES.get(code, f"RESERVED_{code}")
    assert result.health == other
    assert result.health.name == HEALTH_NAMES.get(other, f"RESERVED_{other}")
    assert result.health.is_reserved == (other not in HEALTH_NAMES)
    assert result.encode() == payload


def test_context_extended_flags_are_kept_raw_with_a_warning():
    # GSS 0x2A34 Extended Flags: every bit reserved for future use.
    result = GlucoseMeasurementContext.decode(b"\x80\x2a\x00\x05")
    assert result == GlucoseMeasurementContext(
        42,
        extended_flags=0x05,
        warnings=("extended_flags: reserved bits 0x5 set and ignored",),
    )
    assert result.encode() == b"\x80\x2a\x00\x05"


def test_context_trailing_bytes_warn():
    result = GlucoseMeasurementContext.decode(b"\x02\x2a\x00\x01\xaa")
    assert result == GlucoseMeasurementContext(
        42,
        meal=Meal.PREPRANDIAL,
        warnings=("1 trailing byte(s) after the last field ignored",),
    )


@pytest.mark.parametrize(
    ("payload", "field", "offset", "kind"),
    [
        (b"", "flags", 0, "empty"),
        (b"\x01", "sequence_number", 1, "missing_field"),
        (b"\x01\x2a", "sequence_number", 1, "truncated"),
        (b"\x80\x2a\x00", "extended_flags", 3, "missing_field"),
        (b"\x01\x2a\x00", "carbohydrate_id", 3, "missing_field"),
        (b"\x01\x2a\x00\x01\x32", "carbohydrate", 4, "truncated"),
        (b"\x02\x2a\x00", "meal", 3, "missing_field"),
        (b"\x04\x2a\x00", "tester_health", 3, "missing_field"),
        (b"\x08\x2a\x00\x08", "exercise_duration", 3, "truncated"),
        (b"\x08\x2a\x00\x08\x07", "exercise_intensity", 5, "missing_field"),
        (b"\x10\x2a\x00\x01", "medication", 4, "missing_field"),
        (b"\x40\x2a\x00\x41", "hba1c", 3, "truncated"),
    ],
)
def test_context_decode_errors(payload, field, offset, kind):
    with pytest.raises(DecodeError) as info:
        GlucoseMeasurementContext.decode(payload)
    assert (info.value.field, info.value.offset, info.value.kind) == (field, offset, kind)


@pytest.mark.parametrize(
    ("context", "field"),
    [
        (GlucoseMeasurementContext(0x10000), "sequence_number"),
        (GlucoseMeasurementContext(1, extended_flags=0x100), "extended_flags"),
        (GlucoseMeasurementContext(1, carbohydrate_id=CarbohydrateId.LUNCH), "carbohydrate"),
        (GlucoseMeasurementContext(1, carbohydrate=Number(5, -2)), "carbohydrate"),
        (
            GlucoseMeasurementContext(
                1, carbohydrate_id=CarbohydrateId(0x100), carbohydrate=Number(5, -2)
            ),
            "carbohydrate_id",
        ),
        (GlucoseMeasurementContext(1, meal=Meal(0x100)), "meal"),
        (GlucoseMeasurementContext(1, tester=glucose.Tester.SELF), "tester_health"),
        (GlucoseMeasurementContext(1, health=Health.UNDER_STRESS), "tester_health"),
        (
            GlucoseMeasurementContext(1, tester=glucose.Tester(16), health=Health.UNDER_STRESS),
            "tester",
        ),
        (
            GlucoseMeasurementContext(1, tester=glucose.Tester.SELF, health=Health(16)),
            "health",
        ),
        (GlucoseMeasurementContext(1, exercise_duration=Number(60, 0)), "exercise"),
        (GlucoseMeasurementContext(1, exercise_intensity=Number(60, 0)), "exercise"),
        (
            GlucoseMeasurementContext(
                1, exercise_duration=Number(0xFFFF, 0), exercise_intensity=Number(60, 0)
            ),
            "exercise_duration",
        ),
        (
            GlucoseMeasurementContext(
                1, exercise_duration=Number(0x10000, 0), exercise_intensity=Number(60, 0)
            ),
            "exercise_duration",
        ),
        (
            GlucoseMeasurementContext(1, exercise_duration=NAN, exercise_intensity=Number(60, 0)),
            "exercise_duration",
        ),
        (
            GlucoseMeasurementContext(
                1, exercise_duration=Number(5, -1), exercise_intensity=Number(60, 0)
            ),
            "exercise_duration",
        ),
        (
            GlucoseMeasurementContext(
                1, exercise_duration=Number(60, 0), exercise_intensity=Number(256, 0)
            ),
            "exercise_intensity",
        ),
        (
            GlucoseMeasurementContext(1, exercise_duration=Number(60, 0), exercise_intensity=NAN),
            "exercise_intensity",
        ),
        (GlucoseMeasurementContext(1, medication_id=MedicationId.PRE_MIXED_INSULIN), "medication"),
        (GlucoseMeasurementContext(1, medication=Number(1, -3)), "medication"),
        (GlucoseMeasurementContext(1, medication_unit=Unit.MILLIGRAM), "medication_unit"),
        (GlucoseMeasurementContext(1, hba1c=Number(5000, 0)), "hba1c"),
    ],
)
def test_context_encode_errors(context, field):
    with pytest.raises(EncodeError) as info:
        context.encode()
    assert info.value.field == field


def test_context_encode_example():
    # Object -> bytes, GSS 0x2A34 table order: flags 0x0A (meal, exercise), seq 0x0203,
    # meal fasting 3, duration 600 s = 0x0258, intensity 25 %.
    context = GlucoseMeasurementContext(
        0x0203,
        meal=Meal.FASTING,
        exercise_duration=Number(600, 0),
        exercise_intensity=Number(25, 0),
    )
    assert context.encode() == bytes.fromhex("0a030203580219")
    overrun = GlucoseMeasurementContext(
        1, exercise_duration=INFINITY, exercise_intensity=Number(0, 0)
    )
    assert overrun.encode() == bytes.fromhex("080100ffff00")


# ---------------------------------------------------------------------------------------------
# Glucose Feature (0x2A51): one boolean16; bits 0-10 defined, 11-15 reserved.
# ---------------------------------------------------------------------------------------------

FEATURE_BITS = [
    (0x0001, GlucoseFeatures.LOW_BATTERY_DETECTION),
    (0x0002, GlucoseFeatures.SENSOR_MALFUNCTION_DETECTION),
    (0x0004, GlucoseFeatures.SENSOR_SAMPLE_SIZE),
    (0x0008, GlucoseFeatures.SENSOR_STRIP_INSERTION_ERROR_DETECTION),
    (0x0010, GlucoseFeatures.SENSOR_STRIP_TYPE_ERROR_DETECTION),
    (0x0020, GlucoseFeatures.SENSOR_RESULT_HIGH_LOW_DETECTION),
    (0x0040, GlucoseFeatures.SENSOR_TEMPERATURE_HIGH_LOW_DETECTION),
    (0x0080, GlucoseFeatures.SENSOR_READ_INTERRUPT_DETECTION),
    (0x0100, GlucoseFeatures.GENERAL_DEVICE_FAULT),
    (0x0200, GlucoseFeatures.TIME_FAULT),
    (0x0400, GlucoseFeatures.MULTIPLE_BOND),
]


@pytest.mark.parametrize(("bit", "member"), FEATURE_BITS)
def test_feature_every_bit(bit, member):
    payload = bit.to_bytes(2, "little")
    result = GlucoseFeature.decode(payload)
    assert result == GlucoseFeature(member)
    assert result.encode() == payload


def test_feature_all_and_none():
    assert GlucoseFeature.decode(b"\xff\x07") == GlucoseFeature(GlucoseFeatures(0x07FF))
    assert GlucoseFeature.decode(b"\x00\x00") == GlucoseFeature(GlucoseFeatures(0))


def test_feature_reserved_bits_warn():
    result = GlucoseFeature.decode(b"\x01\xf8")
    assert result == GlucoseFeature(
        GlucoseFeatures.LOW_BATTERY_DETECTION,
        ("features: reserved bits 0xf800 set and ignored",),
    )


def test_feature_trailing_bytes_warn():
    result = GlucoseFeature.decode(b"\x00\x04\x00")
    assert result == GlucoseFeature(
        GlucoseFeatures.MULTIPLE_BOND, ("1 trailing byte(s) after the last field ignored",)
    )


@pytest.mark.parametrize(("payload", "kind"), [(b"", "empty"), (b"\x01", "truncated")])
def test_feature_decode_errors(payload, kind):
    with pytest.raises(DecodeError) as info:
        GlucoseFeature.decode(payload)
    assert (info.value.field, info.value.offset, info.value.kind) == ("features", 0, kind)


def test_feature_encode_error():
    with pytest.raises(EncodeError) as info:
        GlucoseFeature(GlucoseFeatures(0x10000)).encode()
    assert info.value.field == "features"


def test_registry_maps_the_glucose_uuids():
    assert device_profiles.codec_for(0x2A18) is GlucoseMeasurement
    assert device_profiles.codec_for("2A34") is GlucoseMeasurementContext
    assert device_profiles.codec_for("0x2a51") is GlucoseFeature


# ---------------------------------------------------------------------------------------------
# Pairing measurements with contexts (Glucose Service: a context carries the sequence number of
# the measurement whose flag bit 4 announced it).
# ---------------------------------------------------------------------------------------------


def _measurement(sequence_number, *, follows=True):
    return GlucoseMeasurement(
        sequence_number,
        BASE_TIME,
        glucose_concentration=Number(95, -5),
        type=GlucoseType.CAPILLARY_PLASMA,
        sample_location=SampleLocation.FINGER,
        context_information_follows=follows,
    )


def _context(sequence_number, meal=Meal.FASTING):
    return GlucoseMeasurementContext(sequence_number, meal=meal, hba1c=Number(65, -1))


def test_pairing_matches_by_sequence_number():
    m1, m2 = _measurement(1), _measurement(2)
    c1, c2 = _context(1), _context(2)
    records = pair_records([m1, m2], [c2, c1])
    assert records == (GlucoseRecord(1, m1, c1), GlucoseRecord(2, m2, c2))
    assert all(record.complete for record in records)


def test_pairing_reports_a_missing_context():
    m = _measurement(7)
    (record,) = pair_records([m], [])
    assert record == GlucoseRecord(7, m, None)
    assert record.context_missing
    assert not record.context_unexpected
    assert not record.measurement_missing
    assert not record.complete


def test_pairing_keeps_a_context_without_its_measurement():
    m, stray = _measurement(1, follows=False), _context(9)
    records = pair_records([m], [stray])
    assert records == (GlucoseRecord(1, m, None), GlucoseRecord(9, None, stray))
    assert records[0].complete
    assert records[1].measurement_missing
    assert not records[1].context_missing
    assert not records[1].context_unexpected
    assert not records[1].complete


def test_pairing_flags_a_context_the_measurement_did_not_announce():
    m, c = _measurement(3, follows=False), _context(3)
    (record,) = pair_records([m], [c])
    assert record == GlucoseRecord(3, m, c)
    assert record.context_unexpected
    assert not record.complete


def test_pairing_repeated_sequence_numbers_pair_in_arrival_order():
    # A re-sent record, or a sequence number reused after the uint16 wraps.
    first, second = _measurement(5), _measurement(5)
    early, late, extra = (
        _context(5, Meal.FASTING),
        _context(5, Meal.BEDTIME),
        _context(5, Meal.CASUAL),
    )
    records = pair_records(iter([first, second]), iter([early, late, extra]))
    assert records == (
        GlucoseRecord(5, first, early),
        GlucoseRecord(5, second, late),
        GlucoseRecord(5, None, extra),
    )


def test_pairing_keeps_measurement_order_then_leftover_contexts_in_their_order():
    ms = [_measurement(3), _measurement(1, follows=False), _measurement(2)]
    cs = [_context(8), _context(2), _context(6), _context(3)]
    records = pair_records(ms, cs)
    assert [(r.sequence_number, r.measurement, r.context) for r in records] == [
        (3, ms[0], cs[3]),
        (1, ms[1], None),
        (2, ms[2], cs[1]),
        (8, None, cs[0]),
        (6, None, cs[2]),
    ]


def test_pairing_of_nothing_is_empty():
    assert pair_records([], []) == ()


def test_record_observations_carry_the_side_in_the_field_path():
    m, c = _measurement(1), _context(1)
    assert GlucoseRecord(1, m, c).observations() == (
        Observation(
            "measurement.glucose_concentration",
            Quantity.GLUCOSE_CONCENTRATION,
            Number(95, -5),
            Unit.KG_PER_LITRE,
        ),
        Observation("context.hba1c", Quantity.HBA1C, Number(65, -1), Unit.PERCENT),
    )
    assert GlucoseRecord(1, None, None).observations() == ()
