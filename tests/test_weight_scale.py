"""Weight Scale Service codecs against hand-built payloads from the GSS field tables.

Tables followed: GSS "Weight Measurement" (0x2A9D) Flags / field order / units (legacy GATT XML
org.bluetooth.characteristic.weight_measurement: bit 0 units, 1 time stamp, 2 user ID, 3 BMI and
height, 4-7 RFU; weight 0.005 kg or 0.01 lb, 0xFFFF "measurement unsuccessful"; BMI 0.1 kg/m2;
height 0.001 m or 0.1 in) and "Weight Scale Feature" (0x2A9E: bits 0-2 flags, 3-6 weight
resolution, 7-9 height resolution, 10-31 RFU).
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

import device_profiles
from device_profiles import (
    DateTime,
    DecodeError,
    EncodeError,
    Number,
    Quantity,
    SpecialValue,
    Unit,
)
from device_profiles.weight_scale import (
    UNKNOWN_USER,
    HeightMeasurementResolution,
    MeasurementUnits,
    WeightMeasurement,
    WeightMeasurementResolution,
    WeightScaleFeature,
    WeightScaleFeatures,
)

# Wire pieces written as literals from the field table (little-endian).
WEIGHT_70_KG = bytes([0xB0, 0x36])  # 14000 x 0.005 kg
WEIGHT_154_32_LB = bytes([0x48, 0x3C])  # 15432 x 0.01 lb
UNSUCCESSFUL = bytes([0xFF, 0xFF])
TIME_2024_03_05 = bytes([0xE8, 0x07, 3, 5, 7, 30, 15])  # 2024-03-05 07:30:15
USER_2 = bytes([0x02])
BMI_24_5 = bytes([0xF5, 0x00])  # 245 x 0.1 kg/m2
HEIGHT_1_765_M = bytes([0xE5, 0x06])  # 1765 x 0.001 m
HEIGHT_69_5_IN = bytes([0xB7, 0x02])  # 695 x 0.1 in

TIMESTAMP = DateTime(2024, 3, 5, 7, 30, 15)
KG_70 = Number(70000, -3, None, 5)
LB_154_32 = Number(15432, -2)
BMI = Number(245, -1)
M_1_765 = Number(1765, -3)
IN_69_5 = Number(695, -1)
FAILED = Number(0, 0, SpecialValue.MEASUREMENT_UNSUCCESSFUL)


def test_minimal_measurement_si():
    """Flags 0x00: SI units, weight only (14000 x 0.005 kg = 70 kg)."""
    data = bytes([0x00]) + WEIGHT_70_KG
    result = device_profiles.decode(0x2A9D, data)
    assert result == WeightMeasurement(KG_70)
    assert result.weight.value == Decimal("70.000")
    assert result.weight.resolution == Decimal("0.005")
    assert result.encode() == data


def test_minimal_measurement_imperial():
    """Flags 0x01: imperial units, weight in 0.01 lb."""
    data = bytes([0x01]) + WEIGHT_154_32_LB
    result = WeightMeasurement.decode(data)
    assert result == WeightMeasurement(LB_154_32, MeasurementUnits.IMPERIAL)
    assert result.weight.value == Decimal("154.32")
    assert result.encode() == data


def test_full_measurement_si():
    """Flags 0x0E: time stamp, user ID, BMI and height, in the table's field order."""
    data = bytes([0x0E]) + WEIGHT_70_KG + TIME_2024_03_05 + USER_2 + BMI_24_5 + HEIGHT_1_765_M
    result = device_profiles.decode("2A9D", data)
    assert result == WeightMeasurement(KG_70, MeasurementUnits.SI, TIMESTAMP, 2, BMI, M_1_765)
    assert result.encode() == data


OPTIONAL = [
    (0x02, "timestamp"),
    (0x04, "user_id"),
    (0x08, "bmi_and_height"),
]


@pytest.mark.parametrize(
    "present",
    [combo for size in range(4) for combo in itertools.combinations(OPTIONAL, size)],
    ids=lambda combo: "+".join(name for _, name in combo) or "none",
)
@pytest.mark.parametrize("imperial", [False, True], ids=["SI", "imperial"])
def test_every_flag_combination(present, imperial):
    """Each subset of the optional fields, in table order, in both unit systems."""
    flags = 0x01 if imperial else 0x00
    payload = WEIGHT_154_32_LB if imperial else WEIGHT_70_KG
    fields: dict[str, object] = {}
    for bit, name in present:
        flags |= bit
        if name == "timestamp":
            payload += TIME_2024_03_05
            fields["timestamp"] = TIMESTAMP
        elif name == "user_id":
            payload += USER_2
            fields["user_id"] = 2
        else:
            payload += BMI_24_5 + (HEIGHT_69_5_IN if imperial else HEIGHT_1_765_M)
            fields["bmi"] = BMI
            fields["height"] = IN_69_5 if imperial else M_1_765
    data = bytes([flags]) + payload
    result = WeightMeasurement.decode(data)
    assert result == WeightMeasurement(
        LB_154_32 if imperial else KG_70,
        MeasurementUnits.IMPERIAL if imperial else MeasurementUnits.SI,
        **fields,
    )
    assert result.encode() == data


@pytest.mark.parametrize("flags", [0x00, 0x01, 0x06, 0x07])
def test_unsuccessful_weight_is_a_special_value(flags):
    """Weight 0xFFFF is "measurement unsuccessful" in either unit; time stamp and user may stay."""
    data = bytes([flags]) + UNSUCCESSFUL
    if flags & 0x02:
        data += TIME_2024_03_05
    if flags & 0x04:
        data += USER_2
    result = WeightMeasurement.decode(data)
    assert result.weight == FAILED
    assert result.weight.value is None
    assert result.warnings == ()
    assert result.encode() == data
    assert result.observations()[0].value == FAILED


def test_unsuccessful_weight_with_bmi_and_height_warns_but_keeps_them():
    """The spec disables BMI and height after 0xFFFF; a device that sends them is still read."""
    data = bytes([0x08]) + UNSUCCESSFUL + BMI_24_5 + HEIGHT_1_765_M
    result = WeightMeasurement.decode(data)
    assert result == WeightMeasurement(
        FAILED,
        bmi=BMI,
        height=M_1_765,
        warnings=(
            (
                "weight: 'measurement unsuccessful' with BMI and height present; "
                "the spec allows only time stamp and user ID with it"
            ),
        ),
    )


def test_reserved_flag_bits_do_not_shift_the_parse():
    """Flags 0xF4: RFU bits 4-7 set; the user ID is still read right after the weight."""
    data = bytes([0xF4]) + WEIGHT_70_KG + USER_2
    result = WeightMeasurement.decode(data)
    assert result == WeightMeasurement(
        KG_70, user_id=2, warnings=("flags: reserved bits 0xf0 set and ignored",)
    )


def test_trailing_bytes_are_ignored_with_a_warning():
    data = bytes([0x00]) + WEIGHT_70_KG + b"\x00\x00"
    assert WeightMeasurement.decode(data) == WeightMeasurement(
        KG_70, warnings=("2 trailing byte(s) after the last field ignored",)
    )


def test_unknown_user_is_explicit():
    """User ID 0xFF is "unknown user"."""
    result = WeightMeasurement.decode(bytes([0x04]) + WEIGHT_70_KG + bytes([0xFF]))
    assert result.user_id == UNKNOWN_USER
    assert result.unknown_user
    assert not WeightMeasurement.decode(bytes([0x04]) + WEIGHT_70_KG + USER_2).unknown_user
    assert not WeightMeasurement(KG_70).unknown_user


@pytest.mark.parametrize(
    ("data", "kind", "field", "offset"),
    [
        (b"", "empty", "flags", 0),
        (bytes([0x00]), "missing_field", "weight", 1),
        (bytes([0x00, 0xB0]), "truncated", "weight", 1),
        (bytes([0x02]) + WEIGHT_70_KG, "missing_field", "timestamp", 3),
        (bytes([0x02]) + WEIGHT_70_KG + TIME_2024_03_05[:3], "truncated", "timestamp", 3),
        (bytes([0x04]) + WEIGHT_70_KG, "missing_field", "user_id", 3),
        (bytes([0x08]) + WEIGHT_70_KG, "missing_field", "bmi", 3),
        (bytes([0x08]) + WEIGHT_70_KG + b"\xf5", "truncated", "bmi", 3),
        (bytes([0x08]) + WEIGHT_70_KG + BMI_24_5, "missing_field", "height", 5),
        (bytes([0x0C]) + WEIGHT_70_KG + USER_2 + BMI_24_5 + b"\xe5", "truncated", "height", 6),
        (
            bytes([0x02]) + WEIGHT_70_KG + bytes([0xE8, 0x07, 2, 30, 0, 0, 0]),
            "invalid_value",
            "timestamp",
            3,
        ),
    ],
)
def test_malformed_payloads_raise_typed_errors(data, kind, field, offset):
    with pytest.raises(DecodeError) as info:
        WeightMeasurement.decode(data)
    error = info.value
    assert (error.kind, error.field, error.offset) == (kind, field, offset)
    assert error.characteristic == "Weight Measurement (0x2A9D)"


def test_encode_examples_byte_for_byte():
    """Objects to the literal bytes of the field table."""
    assert WeightMeasurement(Number.from_decimal("70.005")).encode() == bytes([0x00, 0xB1, 0x36])
    assert WeightMeasurement(
        Number.from_decimal("154.3"),
        MeasurementUnits.IMPERIAL,
        user_id=UNKNOWN_USER,
        bmi=Number.from_decimal("24.5"),
        height=Number.from_decimal("69.5"),
    ).encode() == bytes([0x0D, 0x46, 0x3C, 0xFF, 0xF5, 0x00, 0xB7, 0x02])
    assert WeightMeasurement(FAILED, timestamp=TIMESTAMP).encode() == (
        bytes([0x02]) + UNSUCCESSFUL + TIME_2024_03_05
    )


@pytest.mark.parametrize(
    ("measurement", "field"),
    [
        (WeightMeasurement(Number.from_decimal("70.001")), "weight"),  # not a 0.005 kg step
        (WeightMeasurement(Number.from_decimal("70.005"), MeasurementUnits.IMPERIAL), "weight"),
        (WeightMeasurement(Number(400, 0)), "weight"),  # 80000 units: beyond uint16
        (WeightMeasurement(Number(-1, 0)), "weight"),
        (WeightMeasurement(Number.from_decimal("327.675")), "weight"),  # 0xFFFF is reserved
        (WeightMeasurement(Number.special_value(SpecialValue.NAN)), "weight"),
        (WeightMeasurement(KG_70, user_id=256), "user_id"),
        (WeightMeasurement(KG_70, bmi=BMI), "height"),
        (WeightMeasurement(KG_70, height=M_1_765), "bmi"),
        (WeightMeasurement(FAILED, bmi=BMI, height=M_1_765), "bmi"),
        (WeightMeasurement(KG_70, bmi=Number.from_decimal("24.55"), height=M_1_765), "bmi"),
        (WeightMeasurement(KG_70, bmi=FAILED, height=M_1_765), "bmi"),
        (
            WeightMeasurement(
                LB_154_32, MeasurementUnits.IMPERIAL, bmi=BMI, height=Number.from_decimal("1.765")
            ),
            "height",
        ),
        (WeightMeasurement(KG_70, timestamp=DateTime(2023, 2, 29)), "timestamp"),
    ],
)
def test_encode_refuses_values_outside_their_field(measurement, field):
    with pytest.raises(EncodeError) as info:
        measurement.encode()
    assert info.value.field == field


@pytest.mark.parametrize(
    ("measurement_units", "mass", "length"),
    [
        (MeasurementUnits.SI, Unit.KILOGRAM, Unit.METRE),
        (MeasurementUnits.IMPERIAL, Unit.POUND, Unit.INCH),
    ],
)
def test_observations_carry_quantity_and_unit(measurement_units, mass, length):
    result = WeightMeasurement(KG_70, measurement_units, bmi=BMI, height=M_1_765)
    assert [(o.field, o.quantity, o.unit) for o in result.observations()] == [
        ("weight", Quantity.BODY_WEIGHT, mass),
        ("bmi", Quantity.BMI, Unit.KG_PER_M2),
        ("height", Quantity.BODY_HEIGHT, length),
    ]
    assert measurement_units.mass_unit is mass
    assert measurement_units.length_unit is length
    assert [o.field for o in WeightMeasurement(KG_70).observations()] == ["weight"]


def test_as_dict_uses_gss_field_names():
    data = bytes([0x0F]) + WEIGHT_154_32_LB + TIME_2024_03_05 + USER_2 + BMI_24_5 + HEIGHT_69_5_IN
    assert device_profiles.as_dict(WeightMeasurement.decode(data)) == {
        "weight": "154.32",
        "measurement_units": "imperial",
        "timestamp": {
            "year": 2024,
            "month": 3,
            "day": 5,
            "hours": 7,
            "minutes": 30,
            "seconds": 15,
            "iso": "2024-03-05T07:30:15",
        },
        "user_id": 2,
        "bmi": "24.5",
        "height": "69.5",
        "warnings": [],
    }


# ---- Weight Scale Feature (0x2A9E) ----


@pytest.mark.parametrize(
    ("bit", "feature"),
    [
        (0, WeightScaleFeatures.TIME_STAMP_SUPPORTED),
        (1, WeightScaleFeatures.MULTIPLE_USERS_SUPPORTED),
        (2, WeightScaleFeatures.BMI_SUPPORTED),
    ],
)
def test_each_feature_bit(bit, feature):
    """GSS 0x2A9E bits 0-2."""
    data = (1 << bit).to_bytes(4, "little")
    result = WeightScaleFeature.decode(data)
    assert result == WeightScaleFeature(feature)
    assert result.encode() == data


WEIGHT_CODES = [
    (0, WeightMeasurementResolution.NOT_SPECIFIED, None, None),
    (1, WeightMeasurementResolution.KG_0_5_OR_LB_1, "0.5", "1"),
    (2, WeightMeasurementResolution.KG_0_2_OR_LB_0_5, "0.2", "0.5"),
    (3, WeightMeasurementResolution.KG_0_1_OR_LB_0_2, "0.1", "0.2"),
    (4, WeightMeasurementResolution.KG_0_05_OR_LB_0_1, "0.05", "0.1"),
    (5, WeightMeasurementResolution.KG_0_02_OR_LB_0_05, "0.02", "0.05"),
    (6, WeightMeasurementResolution.KG_0_01_OR_LB_0_02, "0.01", "0.02"),
    (7, WeightMeasurementResolution.KG_0_005_OR_LB_0_01, "0.005", "0.01"),
    *((code, None, None, None) for code in range(8, 16)),
]


@pytest.mark.parametrize(("code", "member", "kilograms", "pounds"), WEIGHT_CODES)
def test_each_weight_resolution_code(code, member, kilograms, pounds):
    """GSS 0x2A9E bits 3-6: codes 1-7 from 0.5 kg / 1 lb down to 0.005 kg / 0.01 lb; 8-15 RFU."""
    data = (code << 3).to_bytes(4, "little")
    result = WeightScaleFeature.decode(data)
    resolution = result.weight_measurement_resolution
    assert resolution == code
    assert result.warnings == ()
    if member is None:
        assert resolution.is_reserved == (code != 0)
        assert resolution.name == f"RESERVED_{code}"
    else:
        assert resolution is member
        assert not resolution.is_reserved
    assert resolution.si_resolution == (None if kilograms is None else Decimal(kilograms))
    assert resolution.imperial_resolution == (None if pounds is None else Decimal(pounds))
    assert result.encode() == data


HEIGHT_CODES = [
    (0, HeightMeasurementResolution.NOT_SPECIFIED, None, None),
    (1, HeightMeasurementResolution.M_0_01_OR_IN_1, "0.01", "1"),
    (2, HeightMeasurementResolution.M_0_005_OR_IN_0_5, "0.005", "0.5"),
    (3, HeightMeasurementResolution.M_0_001_OR_IN_0_1, "0.001", "0.1"),
    *((code, None, None, None) for code in range(4, 8)),
]


@pytest.mark.parametrize(("code", "member", "metres", "inches"), HEIGHT_CODES)
def test_each_height_resolution_code(code, member, metres, inches):
    """GSS 0x2A9E bits 7-9: codes 1-3 from 0.01 m / 1 in down to 0.001 m / 0.1 in; 4-7 RFU."""
    data = (code << 7).to_bytes(4, "little")
    result = WeightScaleFeature.decode(data)
    resolution = result.height_measurement_resolution
    assert resolution == code
    assert result.warnings == ()
    if member is None:
        assert resolution.is_reserved
        assert resolution.name == f"RESERVED_{code}"
    else:
        assert resolution is member
    assert resolution.si_resolution == (None if metres is None else Decimal(metres))
    assert resolution.imperial_resolution == (None if inches is None else Decimal(inches))
    assert result.encode() == data


def test_feature_example_and_reserved_bits():
    """0x0000018F: all three flags, weight code 1, height code 3; then RFU bits 10 and 31."""
    data = bytes([0x8F, 0x01, 0x00, 0x00])
    expected = WeightScaleFeature(
        WeightScaleFeatures.TIME_STAMP_SUPPORTED
        | WeightScaleFeatures.MULTIPLE_USERS_SUPPORTED
        | WeightScaleFeatures.BMI_SUPPORTED,
        WeightMeasurementResolution.KG_0_5_OR_LB_1,
        HeightMeasurementResolution.M_0_001_OR_IN_0_1,
    )
    assert device_profiles.decode(0x2A9E, data) == expected
    assert expected.encode() == data
    noisy = WeightScaleFeature.decode(bytes([0x8F, 0x05, 0x00, 0x80]))
    assert noisy == WeightScaleFeature(
        expected.features,
        expected.weight_measurement_resolution,
        expected.height_measurement_resolution,
        ("features: reserved bits 0x80000400 set and ignored",),
    )


@pytest.mark.parametrize(
    ("data", "kind", "offset", "warnings"),
    [
        (b"", "empty", 0, None),
        (bytes([0x8F, 0x01, 0x00]), "truncated", 0, None),
        (
            bytes([0x8F, 0x01, 0x00, 0x00, 0x00]),
            None,
            None,
            ("1 trailing byte(s) after the last field ignored",),
        ),
    ],
)
def test_feature_errors_and_trailing_bytes(data, kind, offset, warnings):
    if kind is None:
        assert WeightScaleFeature.decode(data).warnings == warnings
        return
    with pytest.raises(DecodeError) as info:
        WeightScaleFeature.decode(data)
    assert (info.value.kind, info.value.field, info.value.offset) == (kind, "features", offset)


@pytest.mark.parametrize(
    ("feature", "field"),
    [
        (WeightScaleFeature(WeightScaleFeatures(0x08)), "features"),
        (
            WeightScaleFeature(WeightScaleFeatures(0), WeightMeasurementResolution(16)),
            "weight_measurement_resolution",
        ),
        (
            WeightScaleFeature(
                WeightScaleFeatures(0),
                WeightMeasurementResolution.NOT_SPECIFIED,
                HeightMeasurementResolution(8),
            ),
            "height_measurement_resolution",
        ),
    ],
)
def test_feature_encode_refuses_values_beyond_their_bits(feature, field):
    with pytest.raises(EncodeError) as info:
        feature.encode()
    assert info.value.field == field
