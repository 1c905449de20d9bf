"""Blood Pressure Service codecs against hand-built payloads from the GSS field tables.

Tables followed: GSS "Blood Pressure Measurement" (0x2A35) Flags / field order / Measurement
Status, "Intermediate Cuff Pressure" (0x2A36), "Blood Pressure Feature" (0x2A49), "Enhanced Blood
Pressure Measurement" (0x2B34) and "Enhanced Intermediate Cuff Pressure" (0x2B35).
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

import device_profiles
from device_profiles import DateTime, DecodeError, EncodeError, Number, SpecialValue, Unit
from device_profiles.blood_pressure import (
    UNKNOWN_USER,
    BloodPressureFeature,
    BloodPressureFeatures,
    BloodPressureMeasurement,
    BloodPressureStatus,
    EnhancedBloodPressureMeasurement,
    EnhancedIntermediateCuffPressure,
    EpochStart,
    IntermediateCuffPressure,
)

# Wire pieces written as literals from the field table (little-endian).
SYS_120 = bytes([0x78, 0x00])  # SFLOAT 120, exponent 0
DIA_80 = bytes([0x50, 0x00])
MAP_93_3 = bytes([0xA5, 0xF3])  # SFLOAT 933 x 10^-1
TIME_2024_03_05 = bytes([0xE8, 0x07, 3, 5, 7, 30, 15])  # 2024-03-05 07:30:15
PULSE_72 = bytes([0x48, 0x00])
USER_1 = bytes([0x01])
STATUS_IRREGULAR = bytes([0x04, 0x00])

TIMESTAMP = DateTime(2024, 3, 5, 7, 30, 15)


def test_minimal_measurement_mmhg():
    """Flags 0x00: units mmHg, only the three mandatory SFLOAT pressures."""
    data = bytes([0x00]) + SYS_120 + DIA_80 + MAP_93_3
    assert BloodPressureMeasurement.decode(data) == BloodPressureMeasurement(
        Number(120, 0), Number(80, 0), Number(933, -1), Unit.MMHG
    )


def test_full_measurement_kpa():
    """Flags 0x1F: kPa, time stamp, pulse rate, user ID and measurement status all present."""
    data = (
        bytes([0x1F])
        + bytes([0xA0, 0xF0])  # 16.0 kPa
        + bytes([0x6B, 0xF0])  # 10.7 kPa
        + bytes([0x7C, 0xF0])  # 12.4 kPa
        + TIME_2024_03_05
        + PULSE_72
        + USER_1
        + STATUS_IRREGULAR
    )
    result = device_profiles.decode("2A35", data)
    assert result == BloodPressureMeasurement(
        Number(160, -1),
        Number(107, -1),
        Number(124, -1),
        Unit.KPA,
        TIMESTAMP,
        Number(72, 0),
        1,
        BloodPressureStatus.IRREGULAR_PULSE_DETECTED,
    )
    assert result.encode() == data
    assert result.timestamp is not None
    assert result.timestamp.timestamp == dt.datetime(2024, 3, 5, 7, 30, 15)  # noqa: DTZ001


OPTIONAL = [
    (0x02, "timestamp", TIME_2024_03_05, TIMESTAMP),
    (0x04, "pulse_rate", PULSE_72, Number(72, 0)),
    (0x08, "user_id", USER_1, 1),
    (0x10, "measurement_status", STATUS_IRREGULAR, BloodPressureStatus.IRREGULAR_PULSE_DETECTED),
]


@pytest.mark.parametrize(
    "present",
    [
        combo
        for size in range(len(OPTIONAL) + 1)
        for combo in itertools.combinations(OPTIONAL, size)
    ],
    ids=lambda combo: "+".join(name for _, name, _, _ in combo) or "none",
)
@pytest.mark.parametrize("kpa", [False, True], ids=["mmHg", "kPa"])
def test_every_flag_combination(present, kpa):
    """Each subset of optional fields, in table order, decodes to exactly those fields."""
    flags = 0x01 if kpa else 0x00
    payload = b""
    expected: dict[str, object] = {}
    for bit, name, wire, value in present:
        flags |= bit
        payload += wire
        expected[name] = value
    data = bytes([flags]) + SYS_120 + DIA_80 + MAP_93_3 + payload
    result = BloodPressureMeasurement.decode(data)
    assert result == BloodPressureMeasurement(
        Number(120, 0),
        Number(80, 0),
        Number(933, -1),
        Unit.KPA if kpa else Unit.MMHG,
        **expected,  # type: ignore[arg-type]
    )
    assert result.encode() == data


@pytest.mark.parametrize(
    ("wire", "special"),
    [
        (bytes([0xFF, 0x07]), SpecialValue.NAN),
        (bytes([0x00, 0x08]), SpecialValue.NRES),
        (bytes([0xFE, 0x07]), SpecialValue.POSITIVE_INFINITY),
        (bytes([0x02, 0x08]), SpecialValue.NEGATIVE_INFINITY),
        (bytes([0x01, 0x08]), SpecialValue.RESERVED),
    ],
)
def test_special_values_in_every_pressure_field(wire, special):
    """A cuff that could not compute MAP sends NaN there; the others stay numbers."""
    for position in range(3):
        fields = [SYS_120, DIA_80, MAP_93_3]
        fields[position] = wire
        result = BloodPressureMeasurement.decode(bytes([0x00]) + b"".join(fields))
        values = [result.systolic, result.diastolic, result.mean_arterial_pressure]
        assert values[position] == Number.special_value(special)
        assert values[position].value is None


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (0x0001, BloodPressureStatus.BODY_MOVEMENT_DETECTED),
        (0x0002, BloodPressureStatus.CUFF_TOO_LOOSE),
        (0x0004, BloodPressureStatus.IRREGULAR_PULSE_DETECTED),
        (0x0008, BloodPressureStatus.PULSE_RATE_ABOVE_UPPER_LIMIT),
        (0x0010, BloodPressureStatus.PULSE_RATE_BELOW_LOWER_LIMIT),
        (0x0020, BloodPressureStatus.IMPROPER_MEASUREMENT_POSITION),
        (0x0000, BloodPressureStatus(0)),
    ],
)
def test_each_measurement_status_bit(raw, status):
    """GSS Measurement Status field: bits 0-2 and 5 are flags, bits 3-4 a pulse-rate range."""
    data = bytes([0x10]) + SYS_120 + DIA_80 + MAP_93_3 + raw.to_bytes(2, "little")
    result = BloodPressureMeasurement.decode(data)
    assert result.measurement_status == status
    assert result.warnings == ()


def test_reserved_pulse_rate_range_value_is_a_warning_not_a_flag():
    data = bytes([0x10]) + SYS_120 + DIA_80 + MAP_93_3 + bytes([0x19, 0x00])
    result = BloodPressureMeasurement.decode(data)
    assert result.measurement_status == BloodPressureStatus.BODY_MOVEMENT_DETECTED
    assert result.warnings == ("measurement_status: pulse rate range value 3 is reserved",)


def test_reserved_status_bits_are_ignored_with_a_warning():
    data = bytes([0x10]) + SYS_120 + DIA_80 + MAP_93_3 + bytes([0x01, 0x80])
    result = BloodPressureMeasurement.decode(data)
    assert result.measurement_status == BloodPressureStatus.BODY_MOVEMENT_DETECTED
    assert result.warnings == ("measurement_status: reserved bits 0x8000 set and ignored",)


def test_reserved_flag_bits_do_not_shift_the_parse():
    """Flags 0xE4: RFU bits 5-7 set; pulse rate still read right after MAP."""
    data = bytes([0xE4]) + SYS_120 + DIA_80 + MAP_93_3 + PULSE_72
    result = BloodPressureMeasurement.decode(data)
    assert result.pulse_rate == Number(72, 0)
    assert result.warnings == ("flags: reserved bits 0xe0 set and ignored",)


def test_trailing_bytes_are_ignored_with_a_warning():
    data = bytes([0x00]) + SYS_120 + DIA_80 + MAP_93_3 + b"\x00\x00\x00"
    result = BloodPressureMeasurement.decode(data)
    assert result.systolic == Number(120, 0)
    assert result.warnings == ("3 trailing byte(s) after the last field ignored",)


def test_unknown_user_is_explicit():
    data = bytes([0x08]) + SYS_120 + DIA_80 + MAP_93_3 + bytes([0xFF])
    result = BloodPressureMeasurement.decode(data)
    assert result.user_id == UNKNOWN_USER
    assert result.unknown_user
    assert not BloodPressureMeasurement.decode(data[:-1] + bytes([0x02])).unknown_user


@pytest.mark.parametrize(
    ("data", "kind", "field", "offset"),
    [
        (b"", "empty", "flags", 0),
        (bytes([0x00]), "missing_field", "systolic", 1),
        (bytes([0x00, 0x78]), "truncated", "systolic", 1),
        (bytes([0x00]) + SYS_120 + DIA_80, "missing_field", "mean_arterial_pressure", 5),
        (bytes([0x04]) + SYS_120 + DIA_80 + MAP_93_3, "missing_field", "pulse_rate", 7),
        (bytes([0x04]) + SYS_120 + DIA_80 + MAP_93_3 + b"\x48", "truncated", "pulse_rate", 7),
        (
            bytes([0x02]) + SYS_120 + DIA_80 + MAP_93_3 + TIME_2024_03_05[:4],
            "truncated",
            "timestamp",
            7,
        ),
        (bytes([0x10]) + SYS_120 + DIA_80 + MAP_93_3, "missing_field", "measurement_status", 7),
        (
            bytes([0x02]) + SYS_120 + DIA_80 + MAP_93_3 + bytes([0xE8, 0x07, 13, 5, 7, 30, 15]),
            "invalid_value",
            "timestamp",
            7,
        ),
    ],
)
def test_malformed_payloads_raise_typed_errors(data, kind, field, offset):
    with pytest.raises(DecodeError) as info:
        BloodPressureMeasurement.decode(data)
    error = info.value
    assert (error.kind, error.field, error.offset) == (kind, field, offset)
    assert error.characteristic == "Blood Pressure Measurement (0x2A35)"
    assert isinstance(error, ValueError)


def test_encode_example_byte_for_byte():
    measurement = BloodPressureMeasurement(
        Number(1200, -1), Number(800, -1), Number(933, -1), pulse_rate=Number(72, 0), user_id=1
    )
    assert measurement.encode() == bytes(
        [0x0C, 0xB0, 0xF4, 0x20, 0xF3, 0xA5, 0xF3, 0x48, 0x00, 0x01]
    )


@pytest.mark.parametrize(
    ("measurement", "field"),
    [
        (BloodPressureMeasurement(Number(1, 0), Number(1, 0), Number(1, 0), Unit.KILOGRAM), "unit"),
        (
            BloodPressureMeasurement(Number(1, 0), Number(1, 0), Number(1, 0), user_id=256),
            "user_id",
        ),
        (BloodPressureMeasurement(Number(5000, 0), Number(1, 0), Number(1, 0)), "systolic"),
        (
            BloodPressureMeasurement(
                Number(1, 0), Number(1, 0), Number(1, 0), timestamp=DateTime(2024, 2, 30)
            ),
            "timestamp",
        ),
        (
            BloodPressureMeasurement(
                Number(1, 0),
                Number(1, 0),
                Number(1, 0),
                measurement_status=BloodPressureStatus(0x10000),
            ),
            "measurement_status",
        ),
    ],
)
def test_encode_refuses_values_outside_their_field(measurement, field):
    with pytest.raises(EncodeError) as info:
        measurement.encode()
    assert info.value.field == field


def test_intermediate_cuff_pressure_ignores_unused_fields_and_writes_nan():
    """GSS 0x2A36: same layout as 0x2A35; diastolic and MAP positions unused (NaN)."""
    data = bytes([0x04, 0x96, 0x00, 0xFF, 0x07, 0xFF, 0x07, 0x48, 0x00])
    result = device_profiles.decode(0x2A36, data)
    assert result == IntermediateCuffPressure(Number(150, 0), Unit.MMHG, pulse_rate=Number(72, 0))
    assert result.encode() == data
    assert [o.field for o in result.observations()] == ["cuff_pressure", "pulse_rate"]
    assert not result.unknown_user


def test_intermediate_cuff_pressure_errors_name_their_field():
    with pytest.raises(DecodeError) as info:
        IntermediateCuffPressure.decode(bytes([0x00, 0x96, 0x00, 0xFF]))
    assert (info.value.field, info.value.offset, info.value.kind) == ("diastolic", 3, "truncated")


@pytest.mark.parametrize("bit", range(9))
def test_each_feature_bit(bit):
    """GSS 0x2A49 Blood Pressure Feature: bits 0-8 defined."""
    result = BloodPressureFeature.decode((1 << bit).to_bytes(2, "little"))
    assert result.features == BloodPressureFeatures(1 << bit)
    assert result.warnings == ()
    assert result.encode() == (1 << bit).to_bytes(2, "little")


def test_feature_reserved_bits_warn():
    result = BloodPressureFeature.decode(bytes([0x03, 0x82]))
    assert result.features == (
        BloodPressureFeatures.BODY_MOVEMENT_DETECTION | BloodPressureFeatures.CUFF_FIT_DETECTION
    )
    assert result.warnings == ("features: reserved bits 0x8200 set and ignored",)
    with pytest.raises(DecodeError) as info:
        BloodPressureFeature.decode(bytes([0x03]))
    assert info.value.kind == "truncated"


def test_enhanced_measurement_every_field():
    """GSS 0x2B34: flags 0x7F (all fields, epoch 2000), uint32 time stamps."""
    data = (
        bytes([0x7E])
        + SYS_120
        + DIA_80
        + MAP_93_3
        + (86400).to_bytes(4, "little")
        + PULSE_72
        + USER_1
        + STATUS_IRREGULAR
        + (86400 + 3600).to_bytes(4, "little")
    )
    result = device_profiles.decode("0x2b34", data)
    assert result == EnhancedBloodPressureMeasurement(
        Number(120, 0),
        Number(80, 0),
        Number(933, -1),
        Unit.MMHG,
        86400,
        Number(72, 0),
        1,
        BloodPressureStatus.IRREGULAR_PULSE_DETECTED,
        90000,
        EpochStart.YEAR_2000,
    )
    assert result.timestamp == dt.datetime(2000, 1, 2)  # noqa: DTZ001
    assert result.user_facing_time == dt.datetime(2000, 1, 2, 1)  # noqa: DTZ001
    assert result.encode() == data
    assert not result.unknown_user


def test_enhanced_measurement_epoch_1900_and_absent_times():
    data = bytes([0x01]) + SYS_120 + DIA_80 + MAP_93_3
    result = EnhancedBloodPressureMeasurement.decode(data)
    assert result.epoch_start is EpochStart.YEAR_1900
    assert result.unit is Unit.KPA
    assert result.timestamp is None
    assert result.user_facing_time is None
    assert result.encode() == data


def test_enhanced_reserved_flag_bit_7_warns():
    data = bytes([0x80]) + SYS_120 + DIA_80 + MAP_93_3
    assert EnhancedBloodPressureMeasurement.decode(data).warnings == (
        "flags: reserved bits 0x80 set and ignored",
    )


def test_enhanced_intermediate_cuff_pressure_single_pressure():
    """GSS 0x2B35: one cuff pressure SFLOAT, then the enhanced optional fields."""
    data = bytes([0x4A, 0x96, 0x00]) + (10).to_bytes(4, "little") + bytes([0xFF])
    result = device_profiles.decode(0x2B35, data)
    assert result == EnhancedIntermediateCuffPressure(
        Number(150, 0), Unit.MMHG, 10, None, UNKNOWN_USER, None, None, EpochStart.YEAR_2000
    )
    assert result.unknown_user
    assert result.encode() == data
    assert [o.field for o in result.observations()] == ["cuff_pressure"]


def test_enhanced_missing_time_stamp():
    with pytest.raises(DecodeError) as info:
        EnhancedIntermediateCuffPressure.decode(bytes([0x02, 0x96, 0x00, 0x01, 0x02]))
    assert (info.value.kind, info.value.field, info.value.offset) == ("truncated", "timestamp", 3)


def test_observations_carry_quantity_and_unit():
    data = bytes([0x05]) + SYS_120 + DIA_80 + MAP_93_3 + PULSE_72
    result = BloodPressureMeasurement.decode(data)
    assert [(o.field, o.quantity.value, o.unit.value) for o in result.observations()] == [
        ("systolic", "systolic_pressure", "kPa"),
        ("diastolic", "diastolic_pressure", "kPa"),
        ("mean_arterial_pressure", "mean_arterial_pressure", "kPa"),
        ("pulse_rate", "pulse_rate", "/min"),
    ]


def test_as_dict_uses_gss_field_names():
    data = bytes([0x1E]) + SYS_120 + DIA_80 + MAP_93_3 + TIME_2024_03_05 + PULSE_72 + USER_1
    data += STATUS_IRREGULAR
    assert device_profiles.as_dict(device_profiles.decode(0x2A35, data)) == {
        "systolic": "120",
        "diastolic": "80",
        "mean_arterial_pressure": "93.3",
        "unit": "mm[Hg]",
        "timestamp": {
            "year": 2024,
            "month": 3,
            "day": 5,
            "hours": 7,
            "minutes": 30,
            "seconds": 15,
            "iso": "2024-03-05T07:30:15",
        },
        "pulse_rate": "72",
        "user_id": 1,
        "measurement_status": ["irregular_pulse_detected"],
        "warnings": [],
    }
