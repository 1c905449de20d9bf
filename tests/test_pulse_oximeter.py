"""Pulse Oximeter Service codecs against hand-built payloads from the PLXS 1.0 field tables.

Tables followed: PLXS Table 3.2 (PLX Spot-check Measurement fields, 0x2A5E) with Table 3.3
(its Flags), Table 3.4 (Measurement Status) and Table 3.5 (Device and Sensor Status); Table 3.6
(PLX Continuous Measurement fields, 0x2A5F) with Table 3.7 (its Flags); Table 3.8 (PLX Features
fields, 0x2A60) with Table 3.9 (Supported Features), 3.10 and 3.11 (the two support fields).
"""

from __future__ import annotations

import enum
import itertools

import pytest

import device_profiles
from device_profiles import DateTime, DecodeError, EncodeError, Number, SpecialValue
from device_profiles.pulse_oximeter import (
    PLXContinuousMeasurement,
    PLXDeviceAndSensorStatus,
    PLXFeatures,
    PLXMeasurementStatus,
    PLXSpotCheckMeasurement,
    PLXSupportedFeatures,
    SpO2PR,
)

# Wire pieces written as literals from the field tables (little-endian).
SPO2_98 = bytes([0x62, 0x00])  # SFLOAT 98, exponent 0
PR_72 = bytes([0x48, 0x00])
SPO2_97 = bytes([0x61, 0x00])
PR_75 = bytes([0x4B, 0x00])
SPO2_96 = bytes([0x60, 0x00])
PR_70 = bytes([0x46, 0x00])
PAI_5_2 = bytes([0x34, 0xF0])  # SFLOAT 52 x 10^-1
TIME_2024_03_05 = bytes([0xE8, 0x07, 3, 5, 7, 30, 15])  # 2024-03-05 07:30:15
STATUS_VALIDATED_QUALIFIED = bytes([0x80, 0x01])  # bits 7 and 8
DEVICE_LOW_PERFUSION = bytes([0x20, 0x00, 0x00])  # bit 5

NORMAL = SpO2PR(Number(98, 0), Number(72, 0))
FAST = SpO2PR(Number(97, 0), Number(75, 0))
SLOW = SpO2PR(Number(96, 0), Number(70, 0))
TIMESTAMP = DateTime(2024, 3, 5, 7, 30, 15)
VALIDATED_QUALIFIED = (
    PLXMeasurementStatus.VALIDATED_DATA | PLXMeasurementStatus.FULLY_QUALIFIED_DATA
)
LOW_PERFUSION = PLXDeviceAndSensorStatus.LOW_PERFUSION_DETECTED
PAI = Number(52, -1)

SPECIALS = [
    (bytes([0xFF, 0x07]), SpecialValue.NAN),
    (bytes([0x00, 0x08]), SpecialValue.NRES),
    (bytes([0xFE, 0x07]), SpecialValue.POSITIVE_INFINITY),
    (bytes([0x02, 0x08]), SpecialValue.NEGATIVE_INFINITY),
    (bytes([0x01, 0x08]), SpecialValue.RESERVED),
]

# PLXS Table 3.4: bits 5-15, in table order.
MEASUREMENT_STATUS_BITS = [
    (5, PLXMeasurementStatus.MEASUREMENT_ONGOING),
    (6, PLXMeasurementStatus.EARLY_ESTIMATED_DATA),
    (7, PLXMeasurementStatus.VALIDATED_DATA),
    (8, PLXMeasurementStatus.FULLY_QUALIFIED_DATA),
    (9, PLXMeasurementStatus.DATA_FROM_MEASUREMENT_STORAGE),
    (10, PLXMeasurementStatus.DATA_FOR_DEMONSTRATION),
    (11, PLXMeasurementStatus.DATA_FOR_TESTING),
    (12, PLXMeasurementStatus.CALIBRATION_ONGOING),
    (13, PLXMeasurementStatus.MEASUREMENT_UNAVAILABLE),
    (14, PLXMeasurementStatus.QUESTIONABLE_MEASUREMENT_DETECTED),
    (15, PLXMeasurementStatus.INVALID_MEASUREMENT_DETECTED),
]

# PLXS Table 3.5: bits 0-15, in table order.
DEVICE_STATUS_BITS = [
    (0, PLXDeviceAndSensorStatus.EXTENDED_DISPLAY_UPDATE_ONGOING),
    (1, PLXDeviceAndSensorStatus.EQUIPMENT_MALFUNCTION_DETECTED),
    (2, PLXDeviceAndSensorStatus.SIGNAL_PROCESSING_IRREGULARITY_DETECTED),
    (3, PLXDeviceAndSensorStatus.INADEQUATE_SIGNAL_DETECTED),
    (4, PLXDeviceAndSensorStatus.POOR_SIGNAL_DETECTED),
    (5, PLXDeviceAndSensorStatus.LOW_PERFUSION_DETECTED),
    (6, PLXDeviceAndSensorStatus.ERRATIC_SIGNAL_DETECTED),
    (7, PLXDeviceAndSensorStatus.NONPULSATILE_SIGNAL_DETECTED),
    (8, PLXDeviceAndSensorStatus.QUESTIONABLE_PULSE_DETECTED),
    (9, PLXDeviceAndSensorStatus.SIGNAL_ANALYSIS_ONGOING),
    (10, PLXDeviceAndSensorStatus.SENSOR_INTERFERENCE_DETECTED),
    (11, PLXDeviceAndSensorStatus.SENSOR_UNCONNECTED_TO_USER),
    (12, PLXDeviceAndSensorStatus.UNKNOWN_SENSOR_CONNECTED),
    (13, PLXDeviceAndSensorStatus.SENSOR_DISPLACED),
    (14, PLXDeviceAndSensorStatus.SENSOR_MALFUNCTIONING),
    (15, PLXDeviceAndSensorStatus.SENSOR_DISCONNECTED),
]


def _subsets(items):
    return [
        combo for size in range(len(items) + 1) for combo in itertools.combinations(items, size)
    ]


def _bit_id(value):
    return value.name if isinstance(value, enum.Flag) else f"bit{value}"


def _combo_id(combo):
    return "+".join(name for _, name, _, _ in combo) or "none"


# ---------------------------------------------------------------------------------------------
# PLX Spot-Check Measurement (0x2A5E)


def test_spot_check_minimal():
    """Table 3.2 with Flags 0x00: only the mandatory SpO2PR-Spot-Check field."""
    data = bytes([0x00]) + SPO2_98 + PR_72
    result = device_profiles.decode("2A5E", data)
    assert result == PLXSpotCheckMeasurement(NORMAL)
    assert result.encode() == data


def test_spot_check_every_field():
    """Table 3.2 with Flags 0x1F: every optional field present and the clock is not set."""
    data = (
        bytes([0x1F])
        + SPO2_98
        + PR_72
        + TIME_2024_03_05
        + STATUS_VALIDATED_QUALIFIED
        + DEVICE_LOW_PERFUSION
        + PAI_5_2
    )
    result = PLXSpotCheckMeasurement.decode(data)
    assert result == PLXSpotCheckMeasurement(
        SpO2PR(Number(98, 0), Number(72, 0)),
        DateTime(2024, 3, 5, 7, 30, 15),
        PLXMeasurementStatus.VALIDATED_DATA | PLXMeasurementStatus.FULLY_QUALIFIED_DATA,
        PLXDeviceAndSensorStatus.LOW_PERFUSION_DETECTED,
        Number(52, -1),
        device_clock_is_not_set=True,
    )
    assert result.encode() == data


SPOT_OPTIONAL = [
    (0x01, "timestamp", TIME_2024_03_05, TIMESTAMP),
    (0x02, "measurement_status", STATUS_VALIDATED_QUALIFIED, VALIDATED_QUALIFIED),
    (0x04, "device_and_sensor_status", DEVICE_LOW_PERFUSION, LOW_PERFUSION),
    (0x08, "pulse_amplitude_index", PAI_5_2, PAI),
]


@pytest.mark.parametrize("present", _subsets(SPOT_OPTIONAL), ids=_combo_id)
@pytest.mark.parametrize("clock_not_set", [False, True], ids=["clock-set", "clock-not-set"])
def test_spot_check_every_flag_combination(present, clock_not_set):
    """Table 3.3: each subset of optional fields, in Table 3.2 order, and flag bit 4."""
    flags = 0x10 if clock_not_set else 0x00
    payload = b""
    expected: dict[str, object] = {}
    for bit, name, wire, value in present:
        flags |= bit
        payload += wire
        expected[name] = value
    data = bytes([flags]) + SPO2_98 + PR_72 + payload
    result = PLXSpotCheckMeasurement.decode(data)
    assert result == PLXSpotCheckMeasurement(
        NORMAL,
        device_clock_is_not_set=clock_not_set,
        **expected,  # type: ignore[arg-type]
    )
    assert result.encode() == data


@pytest.mark.parametrize(("wire", "special"), SPECIALS)
@pytest.mark.parametrize("position", ["spo2", "pr", "pulse_amplitude_index"])
def test_spot_check_special_values(wire, special, position):
    """Section 3.1.1.2/3.1.1.6: an unavailable SpO2, PR or PAI is sent as a special SFLOAT."""
    spo2 = wire if position == "spo2" else SPO2_98
    pr = wire if position == "pr" else PR_72
    pai = wire if position == "pulse_amplitude_index" else PAI_5_2
    data = bytes([0x08]) + spo2 + pr + pai
    result = PLXSpotCheckMeasurement.decode(data)
    value = Number.special_value(special)
    assert result == PLXSpotCheckMeasurement(
        SpO2PR(
            value if position == "spo2" else Number(98, 0),
            value if position == "pr" else Number(72, 0),
        ),
        pulse_amplitude_index=value if position == "pulse_amplitude_index" else PAI,
    )
    assert result.encode() == data


@pytest.mark.parametrize(("bit", "member"), MEASUREMENT_STATUS_BITS, ids=_bit_id)
def test_spot_check_each_measurement_status_bit(bit, member):
    """Table 3.4: bits 5-15 of the Measurement Status field each name one condition."""
    data = bytes([0x02]) + SPO2_98 + PR_72 + (1 << bit).to_bytes(2, "little")
    result = PLXSpotCheckMeasurement.decode(data)
    assert result == PLXSpotCheckMeasurement(NORMAL, measurement_status=member)
    assert result.encode() == data


@pytest.mark.parametrize(("bit", "member"), DEVICE_STATUS_BITS, ids=_bit_id)
def test_spot_check_each_device_and_sensor_status_bit(bit, member):
    """Table 3.5: bits 0-15 of the 24-bit Device and Sensor Status field."""
    data = bytes([0x04]) + SPO2_98 + PR_72 + (1 << bit).to_bytes(3, "little")
    result = PLXSpotCheckMeasurement.decode(data)
    assert result == PLXSpotCheckMeasurement(NORMAL, device_and_sensor_status=member)
    assert result.encode() == data


def test_spot_check_all_status_bits_together():
    data = bytes([0x06]) + SPO2_98 + PR_72 + bytes([0xE0, 0xFF, 0xFF, 0xFF, 0x00])
    result = PLXSpotCheckMeasurement.decode(data)
    assert result.measurement_status == PLXMeasurementStatus(0xFFE0)
    assert result.device_and_sensor_status == PLXDeviceAndSensorStatus(0xFFFF)
    assert len(list(result.measurement_status)) == 11
    assert len(list(result.device_and_sensor_status)) == 16
    assert result.warnings == ()


def test_spot_check_reserved_flag_bits_do_not_shift_the_parse():
    """Table 3.3 bits 5-7 are RFU: ignored with a warning, PAI still read after SpO2PR."""
    data = bytes([0xE8]) + SPO2_98 + PR_72 + PAI_5_2
    result = PLXSpotCheckMeasurement.decode(data)
    assert result == PLXSpotCheckMeasurement(
        NORMAL,
        pulse_amplitude_index=PAI,
        warnings=("flags: reserved bits 0xe0 set and ignored",),
    )


def test_spot_check_reserved_status_bits_warn():
    """Table 3.4 bits 0-4 and Table 3.5 bits 16-23 are RFU: ignored with warnings."""
    data = bytes([0x06]) + SPO2_98 + PR_72 + bytes([0x9F, 0x01]) + bytes([0x20, 0x00, 0x81])
    result = PLXSpotCheckMeasurement.decode(data)
    assert result == PLXSpotCheckMeasurement(
        NORMAL,
        measurement_status=VALIDATED_QUALIFIED,
        device_and_sensor_status=LOW_PERFUSION,
        warnings=(
            "measurement_status: reserved bits 0x1f set and ignored",
            "device_and_sensor_status: reserved bits 0x810000 set and ignored",
        ),
    )


def test_spot_check_trailing_bytes_warn():
    data = bytes([0x00]) + SPO2_98 + PR_72 + b"\x00\x00"
    assert PLXSpotCheckMeasurement.decode(data) == PLXSpotCheckMeasurement(
        NORMAL, warnings=("2 trailing byte(s) after the last field ignored",)
    )


@pytest.mark.parametrize(
    ("data", "kind", "field", "offset"),
    [
        (b"", "empty", "flags", 0),
        (bytes([0x00]), "missing_field", "spo2pr_spot_check.spo2", 1),
        (bytes([0x00, 0x62]), "truncated", "spo2pr_spot_check.spo2", 1),
        (bytes([0x00]) + SPO2_98, "missing_field", "spo2pr_spot_check.pr", 3),
        (bytes([0x00]) + SPO2_98 + b"\x48", "truncated", "spo2pr_spot_check.pr", 3),
        (bytes([0x01]) + SPO2_98 + PR_72, "missing_field", "timestamp", 5),
        (bytes([0x01]) + SPO2_98 + PR_72 + TIME_2024_03_05[:6], "truncated", "timestamp", 5),
        (
            bytes([0x01]) + SPO2_98 + PR_72 + bytes([0xE8, 0x07, 2, 30, 7, 30, 15]),
            "invalid_value",
            "timestamp",
            5,
        ),
        (bytes([0x02]) + SPO2_98 + PR_72, "missing_field", "measurement_status", 5),
        (bytes([0x02]) + SPO2_98 + PR_72 + b"\x80", "truncated", "measurement_status", 5),
        (bytes([0x04]) + SPO2_98 + PR_72, "missing_field", "device_and_sensor_status", 5),
        (
            bytes([0x06]) + SPO2_98 + PR_72 + STATUS_VALIDATED_QUALIFIED + b"\x20\x00",
            "truncated",
            "device_and_sensor_status",
            7,
        ),
        (bytes([0x08]) + SPO2_98 + PR_72, "missing_field", "pulse_amplitude_index", 5),
        (
            bytes([0x0F])
            + SPO2_98
            + PR_72
            + TIME_2024_03_05
            + STATUS_VALIDATED_QUALIFIED
            + DEVICE_LOW_PERFUSION
            + b"\x34",
            "truncated",
            "pulse_amplitude_index",
            17,
        ),
    ],
)
def test_spot_check_malformed_payloads_raise_typed_errors(data, kind, field, offset):
    with pytest.raises(DecodeError) as info:
        PLXSpotCheckMeasurement.decode(data)
    error = info.value
    assert (error.kind, error.field, error.offset) == (kind, field, offset)
    assert error.characteristic == "PLX Spot-Check Measurement (0x2A5E)"


def test_spot_check_encode_example_byte_for_byte():
    """Table 3.2: 96.5 % SpO2 (SFLOAT 965e-1), PR 61, timestamp, clock not set (flags 0x11)."""
    measurement = PLXSpotCheckMeasurement(
        SpO2PR(Number(965, -1), Number(61, 0)),
        timestamp=DateTime(2023, 12, 31, 23, 59, 59),
        device_clock_is_not_set=True,
    )
    assert measurement.encode() == bytes(
        [0x11, 0xC5, 0xF3, 0x3D, 0x00, 0xE7, 0x07, 12, 31, 23, 59, 59]
    )


@pytest.mark.parametrize(
    ("measurement", "field"),
    [
        (PLXSpotCheckMeasurement(SpO2PR(Number(5000, 0), Number(1, 0))), "spo2pr_spot_check.spo2"),
        (PLXSpotCheckMeasurement(SpO2PR(Number(1, 0), Number(1, 9))), "spo2pr_spot_check.pr"),
        (PLXSpotCheckMeasurement(NORMAL, timestamp=DateTime(2023, 2, 29)), "timestamp"),
        (
            PLXSpotCheckMeasurement(NORMAL, measurement_status=PLXMeasurementStatus(0x0001)),
            "measurement_status",
        ),
        (
            PLXSpotCheckMeasurement(NORMAL, measurement_status=PLXMeasurementStatus(0x10000)),
            "measurement_status",
        ),
        (
            PLXSpotCheckMeasurement(
                NORMAL, device_and_sensor_status=PLXDeviceAndSensorStatus(0x10000)
            ),
            "device_and_sensor_status",
        ),
        (
            PLXSpotCheckMeasurement(
                NORMAL,
                pulse_amplitude_index=Number.special_value(SpecialValue.MEASUREMENT_UNSUCCESSFUL),
            ),
            "pulse_amplitude_index",
        ),
    ],
)
def test_spot_check_encode_refuses_values_outside_their_field(measurement, field):
    with pytest.raises(EncodeError) as info:
        measurement.encode()
    assert info.value.field == field
    assert info.value.characteristic == "PLX Spot-Check Measurement (0x2A5E)"


def test_spot_check_observations():
    result = PLXSpotCheckMeasurement(NORMAL, pulse_amplitude_index=PAI)
    assert [(o.field, o.quantity.value, o.value, o.unit.value) for o in result.observations()] == [
        ("spo2pr_spot_check.spo2", "spo2", Number(98, 0), "%"),
        ("spo2pr_spot_check.pr", "plx_pulse_rate", Number(72, 0), "/min"),
        ("pulse_amplitude_index", "pulse_amplitude_index", PAI, "%"),
    ]
    assert [o.field for o in PLXSpotCheckMeasurement(NORMAL).observations()] == [
        "spo2pr_spot_check.spo2",
        "spo2pr_spot_check.pr",
    ]


def test_spot_check_as_dict_nests_the_pair():
    data = bytes([0x12]) + SPO2_98 + PR_72 + STATUS_VALIDATED_QUALIFIED
    assert device_profiles.as_dict(device_profiles.decode(0x2A5E, data)) == {
        "spo2pr_spot_check": {"spo2": "98", "pr": "72"},
        "timestamp": None,
        "measurement_status": ["validated_data", "fully_qualified_data"],
        "device_and_sensor_status": None,
        "pulse_amplitude_index": None,
        "device_clock_is_not_set": True,
        "warnings": [],
    }


# ---------------------------------------------------------------------------------------------
# PLX Continuous Measurement (0x2A5F)


def test_continuous_minimal():
    """Table 3.6 with Flags 0x00: only SpO2PR-Normal."""
    data = bytes([0x00]) + SPO2_98 + PR_72
    result = device_profiles.decode(0x2A5F, data)
    assert result == PLXContinuousMeasurement(NORMAL)
    assert result.encode() == data


def test_continuous_every_field():
    """Table 3.6 with Flags 0x1F: Normal, Fast, Slow, both statuses and PAI, in that order."""
    data = (
        bytes([0x1F])
        + SPO2_98
        + PR_72
        + SPO2_97
        + PR_75
        + SPO2_96
        + PR_70
        + STATUS_VALIDATED_QUALIFIED
        + DEVICE_LOW_PERFUSION
        + PAI_5_2
    )
    result = PLXContinuousMeasurement.decode(data)
    assert result == PLXContinuousMeasurement(
        SpO2PR(Number(98, 0), Number(72, 0)),
        SpO2PR(Number(97, 0), Number(75, 0)),
        SpO2PR(Number(96, 0), Number(70, 0)),
        PLXMeasurementStatus.VALIDATED_DATA | PLXMeasurementStatus.FULLY_QUALIFIED_DATA,
        PLXDeviceAndSensorStatus.LOW_PERFUSION_DETECTED,
        Number(52, -1),
    )
    assert result.encode() == data


def test_continuous_slow_without_fast_is_read_right_after_normal():
    """Table 3.7 flags 0x02: SpO2PR-Slow present, Fast absent; Slow starts at byte 5, not 9."""
    data = bytes([0x02]) + SPO2_98 + PR_72 + SPO2_96 + PR_70
    result = PLXContinuousMeasurement.decode(data)
    assert result == PLXContinuousMeasurement(NORMAL, spo2pr_slow=SLOW)
    assert result.spo2pr_fast is None
    assert result.encode() == data


def test_continuous_pai_without_statuses_follows_the_pairs():
    """Table 3.7 flags 0x11: Fast then PAI, with no status bytes in between."""
    data = bytes([0x11]) + SPO2_98 + PR_72 + SPO2_97 + PR_75 + PAI_5_2
    assert PLXContinuousMeasurement.decode(data) == PLXContinuousMeasurement(
        NORMAL, spo2pr_fast=FAST, pulse_amplitude_index=PAI
    )


CONTINUOUS_OPTIONAL = [
    (0x01, "spo2pr_fast", SPO2_97 + PR_75, FAST),
    (0x02, "spo2pr_slow", SPO2_96 + PR_70, SLOW),
    (0x04, "measurement_status", STATUS_VALIDATED_QUALIFIED, VALIDATED_QUALIFIED),
    (0x08, "device_and_sensor_status", DEVICE_LOW_PERFUSION, LOW_PERFUSION),
    (0x10, "pulse_amplitude_index", PAI_5_2, PAI),
]


@pytest.mark.parametrize("present", _subsets(CONTINUOUS_OPTIONAL), ids=_combo_id)
def test_continuous_every_flag_combination(present):
    """Table 3.7: each of the 32 subsets of optional fields, packed in Table 3.6 order."""
    flags = 0
    payload = b""
    expected: dict[str, object] = {}
    for bit, name, wire, value in present:
        flags |= bit
        payload += wire
        expected[name] = value
    data = bytes([flags]) + SPO2_98 + PR_72 + payload
    result = PLXContinuousMeasurement.decode(data)
    assert result == PLXContinuousMeasurement(NORMAL, **expected)  # type: ignore[arg-type]
    assert result.encode() == data


@pytest.mark.parametrize(("wire", "special"), SPECIALS)
@pytest.mark.parametrize("position", range(7))
def test_continuous_special_values(wire, special, position):
    """Sections 3.2.1.2-3.2.1.4, 3.2.1.7: any SFLOAT subfield may be NaN or another special."""
    words = [SPO2_98, PR_72, SPO2_97, PR_75, SPO2_96, PR_70, PAI_5_2]
    numbers = [Number(98, 0), Number(72, 0), Number(97, 0), Number(75, 0)]
    numbers += [Number(96, 0), Number(70, 0), PAI]
    words[position] = wire
    numbers[position] = Number.special_value(special)
    data = bytes([0x13]) + b"".join(words)
    result = PLXContinuousMeasurement.decode(data)
    assert result == PLXContinuousMeasurement(
        SpO2PR(numbers[0], numbers[1]),
        SpO2PR(numbers[2], numbers[3]),
        SpO2PR(numbers[4], numbers[5]),
        pulse_amplitude_index=numbers[6],
    )
    assert result.encode() == data


@pytest.mark.parametrize(("bit", "member"), MEASUREMENT_STATUS_BITS, ids=_bit_id)
def test_continuous_each_measurement_status_bit(bit, member):
    """Section 3.2.1.5: same Measurement Status bits as Table 3.4."""
    data = bytes([0x04]) + SPO2_98 + PR_72 + (1 << bit).to_bytes(2, "little")
    assert PLXContinuousMeasurement.decode(data) == PLXContinuousMeasurement(
        NORMAL, measurement_status=member
    )


@pytest.mark.parametrize(("bit", "member"), DEVICE_STATUS_BITS, ids=_bit_id)
def test_continuous_each_device_and_sensor_status_bit(bit, member):
    """Section 3.2.1.6: same Device and Sensor Status bits as Table 3.5."""
    data = bytes([0x08]) + SPO2_98 + PR_72 + (1 << bit).to_bytes(3, "little")
    assert PLXContinuousMeasurement.decode(data) == PLXContinuousMeasurement(
        NORMAL, device_and_sensor_status=member
    )


def test_continuous_reserved_bits_warn_and_trailing_bytes_warn():
    """Table 3.7 bits 5-7 RFU, Table 3.4 bits 0-4 RFU, then one stray byte."""
    data = bytes([0x24]) + SPO2_98 + PR_72 + bytes([0x01, 0x00]) + b"\xaa"
    assert PLXContinuousMeasurement.decode(data) == PLXContinuousMeasurement(
        NORMAL,
        measurement_status=PLXMeasurementStatus(0),
        warnings=(
            "flags: reserved bits 0x20 set and ignored",
            "measurement_status: reserved bits 0x1 set and ignored",
            "1 trailing byte(s) after the last field ignored",
        ),
    )


@pytest.mark.parametrize(
    ("data", "kind", "field", "offset"),
    [
        (b"", "empty", "flags", 0),
        (bytes([0x1F]), "missing_field", "spo2pr_normal.spo2", 1),
        (bytes([0x00]) + SPO2_98 + b"\x48", "truncated", "spo2pr_normal.pr", 3),
        (bytes([0x01]) + SPO2_98 + PR_72, "missing_field", "spo2pr_fast.spo2", 5),
        (bytes([0x01]) + SPO2_98 + PR_72 + SPO2_97, "missing_field", "spo2pr_fast.pr", 7),
        (bytes([0x02]) + SPO2_98 + PR_72 + b"\x60", "truncated", "spo2pr_slow.spo2", 5),
        (
            bytes([0x03]) + SPO2_98 + PR_72 + SPO2_97 + PR_75 + SPO2_96,
            "missing_field",
            "spo2pr_slow.pr",
            11,
        ),
        (bytes([0x04]) + SPO2_98 + PR_72, "missing_field", "measurement_status", 5),
        (bytes([0x08]) + SPO2_98 + PR_72 + b"\x20", "truncated", "device_and_sensor_status", 5),
        (
            bytes([0x1C]) + SPO2_98 + PR_72 + STATUS_VALIDATED_QUALIFIED + DEVICE_LOW_PERFUSION,
            "missing_field",
            "pulse_amplitude_index",
            10,
        ),
    ],
)
def test_continuous_malformed_payloads_raise_typed_errors(data, kind, field, offset):
    with pytest.raises(DecodeError) as info:
        PLXContinuousMeasurement.decode(data)
    error = info.value
    assert (error.kind, error.field, error.offset) == (kind, field, offset)
    assert error.characteristic == "PLX Continuous Measurement (0x2A5F)"


def test_continuous_encode_example_byte_for_byte():
    """Table 3.6: Normal 95/80, Slow NaN/79, status 'measurement ongoing' (flags 0x06)."""
    measurement = PLXContinuousMeasurement(
        SpO2PR(Number(95, 0), Number(80, 0)),
        spo2pr_slow=SpO2PR(Number.special_value(SpecialValue.NAN), Number(79, 0)),
        measurement_status=PLXMeasurementStatus.MEASUREMENT_ONGOING,
    )
    assert measurement.encode() == bytes(
        [0x06, 0x5F, 0x00, 0x50, 0x00, 0xFF, 0x07, 0x4F, 0x00, 0x20, 0x00]
    )


@pytest.mark.parametrize(
    ("measurement", "field"),
    [
        (PLXContinuousMeasurement(SpO2PR(Number(1, 8), Number(1, 0))), "spo2pr_normal.spo2"),
        (
            PLXContinuousMeasurement(NORMAL, spo2pr_fast=SpO2PR(Number(1, 0), Number(-3000, 0))),
            "spo2pr_fast.pr",
        ),
        (
            PLXContinuousMeasurement(NORMAL, spo2pr_slow=SpO2PR(Number(1, -9), Number(1, 0))),
            "spo2pr_slow.spo2",
        ),
        (
            PLXContinuousMeasurement(NORMAL, measurement_status=PLXMeasurementStatus(0x0010)),
            "measurement_status",
        ),
        (
            PLXContinuousMeasurement(
                NORMAL, device_and_sensor_status=PLXDeviceAndSensorStatus(0x800000)
            ),
            "device_and_sensor_status",
        ),
        (
            PLXContinuousMeasurement(NORMAL, pulse_amplitude_index=Number(4096, 0)),
            "pulse_amplitude_index",
        ),
    ],
)
def test_continuous_encode_refuses_values_outside_their_field(measurement, field):
    with pytest.raises(EncodeError) as info:
        measurement.encode()
    assert info.value.field == field


def test_continuous_observations_list_every_present_pair():
    result = PLXContinuousMeasurement(NORMAL, FAST, SLOW, pulse_amplitude_index=PAI)
    assert [(o.field, o.quantity.value, o.value, o.unit.value) for o in result.observations()] == [
        ("spo2pr_normal.spo2", "spo2", Number(98, 0), "%"),
        ("spo2pr_normal.pr", "plx_pulse_rate", Number(72, 0), "/min"),
        ("spo2pr_fast.spo2", "spo2", Number(97, 0), "%"),
        ("spo2pr_fast.pr", "plx_pulse_rate", Number(75, 0), "/min"),
        ("spo2pr_slow.spo2", "spo2", Number(96, 0), "%"),
        ("spo2pr_slow.pr", "plx_pulse_rate", Number(70, 0), "/min"),
        ("pulse_amplitude_index", "pulse_amplitude_index", PAI, "%"),
    ]
    assert [o.field for o in PLXContinuousMeasurement(NORMAL).observations()] == [
        "spo2pr_normal.spo2",
        "spo2pr_normal.pr",
    ]


# ---------------------------------------------------------------------------------------------
# PLX Features (0x2A60)


def test_features_without_support_fields():
    """Table 3.8 with Supported Features 0x00FC: bits 2-7 set, neither support field present."""
    data = bytes([0xFC, 0x00])
    result = device_profiles.decode(0x2A60, data)
    assert result == PLXFeatures(
        PLXSupportedFeatures.MEASUREMENT_STORAGE_FOR_SPOT_CHECK
        | PLXSupportedFeatures.TIMESTAMP_FOR_SPOT_CHECK
        | PLXSupportedFeatures.SPO2PR_FAST
        | PLXSupportedFeatures.SPO2PR_SLOW
        | PLXSupportedFeatures.PULSE_AMPLITUDE_INDEX
        | PLXSupportedFeatures.MULTIPLE_BONDS
    )
    assert result.encode() == data


@pytest.mark.parametrize(
    ("bit", "member"),
    [
        (2, PLXSupportedFeatures.MEASUREMENT_STORAGE_FOR_SPOT_CHECK),
        (3, PLXSupportedFeatures.TIMESTAMP_FOR_SPOT_CHECK),
        (4, PLXSupportedFeatures.SPO2PR_FAST),
        (5, PLXSupportedFeatures.SPO2PR_SLOW),
        (6, PLXSupportedFeatures.PULSE_AMPLITUDE_INDEX),
        (7, PLXSupportedFeatures.MULTIPLE_BONDS),
    ],
)
def test_features_each_plain_feature_bit(bit, member):
    """Table 3.9 bits 2-7: feature bits that announce no field in this characteristic."""
    data = (1 << bit).to_bytes(2, "little")
    result = PLXFeatures.decode(data)
    assert result == PLXFeatures(member)
    assert result.encode() == data


FEATURE_OPTIONAL = [
    (0x01, "measurement_status_support", bytes([0xE0, 0xFF]), PLXMeasurementStatus(0xFFE0)),
    (
        0x02,
        "device_and_sensor_status_support",
        bytes([0xFF, 0xFF, 0x00]),
        PLXDeviceAndSensorStatus(0xFFFF),
    ),
]


@pytest.mark.parametrize("present", _subsets(FEATURE_OPTIONAL), ids=_combo_id)
def test_features_support_field_combinations(present):
    """Table 3.9 bits 0 and 1 announce the Table 3.10 and Table 3.11 fields, in that order."""
    features = 0x0008
    payload = b""
    expected: dict[str, object] = {}
    for bit, name, wire, value in present:
        features |= bit
        payload += wire
        expected[name] = value
    data = features.to_bytes(2, "little") + payload
    result = PLXFeatures.decode(data)
    assert result == PLXFeatures(PLXSupportedFeatures(features), **expected)  # type: ignore[arg-type]
    assert result.encode() == data


def test_features_device_support_alone_follows_supported_features():
    """Bit 1 without bit 0: the 24-bit support field starts at byte 2."""
    data = bytes([0x02, 0x00, 0x21, 0x04, 0x00])
    assert PLXFeatures.decode(data) == PLXFeatures(
        PLXSupportedFeatures.DEVICE_AND_SENSOR_STATUS_SUPPORT,
        device_and_sensor_status_support=(
            PLXDeviceAndSensorStatus.EXTENDED_DISPLAY_UPDATE_ONGOING
            | PLXDeviceAndSensorStatus.LOW_PERFUSION_DETECTED
            | PLXDeviceAndSensorStatus.SENSOR_INTERFERENCE_DETECTED
        ),
    )


def test_features_reserved_bits_warn():
    """Table 3.9 bits 8-15, Table 3.10 bits 0-4 and Table 3.11 bits 16-23 are RFU."""
    data = bytes([0x03, 0x80]) + bytes([0x2F, 0x00]) + bytes([0x01, 0x00, 0xFF]) + b"\x00"
    assert PLXFeatures.decode(data) == PLXFeatures(
        PLXSupportedFeatures.MEASUREMENT_STATUS_SUPPORT
        | PLXSupportedFeatures.DEVICE_AND_SENSOR_STATUS_SUPPORT,
        PLXMeasurementStatus.MEASUREMENT_ONGOING,
        PLXDeviceAndSensorStatus.EXTENDED_DISPLAY_UPDATE_ONGOING,
        (
            "supported_features: reserved bits 0x8000 set and ignored",
            "measurement_status_support: reserved bits 0xf set and ignored",
            "device_and_sensor_status_support: reserved bits 0xff0000 set and ignored",
            "1 trailing byte(s) after the last field ignored",
        ),
    )


@pytest.mark.parametrize(
    ("data", "kind", "field", "offset"),
    [
        (b"", "empty", "supported_features", 0),
        (bytes([0x03]), "truncated", "supported_features", 0),
        (bytes([0x01, 0x00]), "missing_field", "measurement_status_support", 2),
        (bytes([0x01, 0x00, 0xE0]), "truncated", "measurement_status_support", 2),
        (bytes([0x02, 0x00, 0xFF, 0xFF]), "truncated", "device_and_sensor_status_support", 2),
        (
            bytes([0x03, 0x00, 0xE0, 0xFF]),
            "missing_field",
            "device_and_sensor_status_support",
            4,
        ),
    ],
)
def test_features_malformed_payloads_raise_typed_errors(data, kind, field, offset):
    with pytest.raises(DecodeError) as info:
        PLXFeatures.decode(data)
    error = info.value
    assert (error.kind, error.field, error.offset) == (kind, field, offset)
    assert error.characteristic == "PLX Features (0x2A60)"


def test_features_encode_example_byte_for_byte():
    """Table 3.8: SpO2PR-Fast and PAI supported, Measurement Status Support = bits 7 and 8."""
    features = PLXFeatures(
        PLXSupportedFeatures.MEASUREMENT_STATUS_SUPPORT
        | PLXSupportedFeatures.SPO2PR_FAST
        | PLXSupportedFeatures.PULSE_AMPLITUDE_INDEX,
        measurement_status_support=VALIDATED_QUALIFIED,
    )
    assert features.encode() == bytes([0x51, 0x00, 0x80, 0x01])


@pytest.mark.parametrize(
    ("features", "field"),
    [
        (PLXFeatures(PLXSupportedFeatures.MEASUREMENT_STATUS_SUPPORT), "supported_features"),
        (
            PLXFeatures(PLXSupportedFeatures(0), measurement_status_support=VALIDATED_QUALIFIED),
            "supported_features",
        ),
        (
            PLXFeatures(PLXSupportedFeatures.DEVICE_AND_SENSOR_STATUS_SUPPORT),
            "supported_features",
        ),
        (
            PLXFeatures(PLXSupportedFeatures(0), device_and_sensor_status_support=LOW_PERFUSION),
            "supported_features",
        ),
        (PLXFeatures(PLXSupportedFeatures(0x0100)), "supported_features"),
        (
            PLXFeatures(
                PLXSupportedFeatures.MEASUREMENT_STATUS_SUPPORT,
                measurement_status_support=PLXMeasurementStatus(0x0004),
            ),
            "measurement_status_support",
        ),
        (
            PLXFeatures(
                PLXSupportedFeatures.DEVICE_AND_SENSOR_STATUS_SUPPORT,
                device_and_sensor_status_support=PLXDeviceAndSensorStatus(0x1000000),
            ),
            "device_and_sensor_status_support",
        ),
    ],
)
def test_features_encode_refuses_inconsistent_or_reserved_values(features, field):
    with pytest.raises(EncodeError) as info:
        features.encode()
    assert info.value.field == field
    assert info.value.characteristic == "PLX Features (0x2A60)"


def test_features_as_dict_lists_flag_names():
    data = bytes([0x01, 0x00, 0x20, 0x00])
    assert device_profiles.as_dict(device_profiles.decode("0x2a60", data)) == {
        "supported_features": ["measurement_status_support"],
        "measurement_status_support": ["measurement_ongoing"],
        "device_and_sensor_status_support": None,
        "warnings": [],
    }
    assert not hasattr(PLXFeatures.decode(data), "observations")
