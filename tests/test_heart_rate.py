"""Heart Rate Service codecs against hand-built payloads from the GSS field tables.

Tables followed: GSS "Heart Rate Measurement" (0x2A37) Flags (Heart Rate Value Format bit,
Sensor Contact Status bits, Energy Expended Status bit, RR-Interval bit) and field order, with
the units of Heart Rate Service 1.0 section 3.1.1 (bpm, kJ, 1/1024 s); "Body Sensor Location"
(0x2A38) values.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

import device_profiles
from device_profiles import (
    DecodeError,
    EncodeError,
    Number,
    Observation,
    Quantity,
    Scale,
    SpecialValue,
    Unit,
)
from device_profiles.heart_rate import (
    BodySensorLocation,
    HeartRateMeasurement,
    HeartRateValueFormat,
    SensorContactStatus,
    SensorLocation,
)

RR = Scale(9765625, -10)  # 1/1024 s, written out: 0.0009765625 s


def rr(raw: int) -> Number:
    """An RR interval of `raw` 1/1024 s units."""
    return Number.fixed(raw, RR)


def bpm(value: int) -> Number:
    return Number(value, 0)


# Wire pieces written as literals from the field table (little-endian).
HR_72_U8 = bytes([0x48])
HR_72_U16 = bytes([0x48, 0x00])
ENERGY_300 = bytes([0x2C, 0x01])
RR_1024 = bytes([0x00, 0x04])  # 1024/1024 s = 1 s
RR_819 = bytes([0x33, 0x03])  # 819/1024 s = 0.7998046875 s


def test_minimal_measurement():
    """Flags 0x00: UINT8 value, contact not supported (code 0), nothing optional."""
    data = bytes([0x00]) + HR_72_U8
    assert HeartRateMeasurement.decode(data) == HeartRateMeasurement(bpm(72))


def test_full_measurement_uint16():
    """Flags 0x1F: UINT16 value, contact detected, Energy Expended and two RR-Intervals."""
    data = bytes([0x1F, 0x2C, 0x01]) + ENERGY_300 + RR_1024 + RR_819
    result = device_profiles.decode("2A37", data)
    assert result == HeartRateMeasurement(
        bpm(300),
        HeartRateValueFormat.UINT16,
        SensorContactStatus.DETECTED,
        Number(300, 0),
        (rr(1024), rr(819)),
    )
    assert [interval.value for interval in result.rr_interval] == [
        Decimal(1),
        Decimal("0.7998046875"),
    ]
    assert result.encode() == data


# (flags bits 1-2 code, expected status, expected not_supported_code)
CONTACT = [
    (0, SensorContactStatus.NOT_SUPPORTED, 0),
    (1, SensorContactStatus.NOT_SUPPORTED, 1),
    (2, SensorContactStatus.NOT_DETECTED, 0),
    (3, SensorContactStatus.DETECTED, 0),
]


@pytest.mark.parametrize("uint16", [False, True], ids=["uint8", "uint16"])
@pytest.mark.parametrize("contact", CONTACT, ids=lambda c: f"contact{c[0]}")
@pytest.mark.parametrize("energy", [False, True], ids=["no-energy", "energy"])
@pytest.mark.parametrize("intervals", [False, True], ids=["no-rr", "rr"])
def test_every_flag_combination(uint16, contact, energy, intervals):
    """GSS Flags bits 0-4: each combination decodes to exactly its fields and re-encodes."""
    code, status, not_supported_code = contact
    flags = (
        (0x01 if uint16 else 0) | code << 1 | (0x08 if energy else 0) | (0x10 if intervals else 0)
    )
    data = (
        bytes([flags])
        + (HR_72_U16 if uint16 else HR_72_U8)
        + (ENERGY_300 if energy else b"")
        + (RR_1024 + RR_819 + RR_1024 if intervals else b"")
    )
    result = HeartRateMeasurement.decode(data)
    assert result == HeartRateMeasurement(
        bpm(72),
        HeartRateValueFormat.UINT16 if uint16 else HeartRateValueFormat.UINT8,
        status,
        Number(300, 0) if energy else None,
        (rr(1024), rr(819), rr(1024)) if intervals else (),
        not_supported_code,
    )
    assert result.encode() == data


def test_uint16_value_below_256_re_encodes_as_uint16():
    """Heart Rate Value Format bit 1 with 72 bpm: the wider field is kept on the way back."""
    data = bytes([0x01]) + HR_72_U16
    result = HeartRateMeasurement.decode(data)
    assert result.heart_rate_value_format is HeartRateValueFormat.UINT16
    assert result.encode() == data


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (bytes([0x00, 0x00]), 0),
        (bytes([0x00, 0xFF]), 255),
        (bytes([0x01, 0x00, 0x01]), 256),
        (bytes([0x01, 0xFF, 0xFF]), 65535),
    ],
)
def test_heart_rate_value_limits(wire, value):
    result = HeartRateMeasurement.decode(wire)
    assert result.heart_rate_measurement_value == bpm(value)
    assert result.encode() == wire


def test_one_rr_interval_fills_the_payload_exactly():
    """RR-Interval bit with Energy Expended: the intervals start after the energy field."""
    data = bytes([0x18]) + HR_72_U8 + ENERGY_300 + RR_819
    result = HeartRateMeasurement.decode(data)
    assert result.energy_expended == Number(300, 0)
    assert result.rr_interval == (rr(819),)
    assert result.warnings == ()


def test_every_whole_pair_after_the_rr_flag_is_an_rr_interval():
    """With the RR-Interval bit set, no bytes are trailing: each pair is one more interval."""
    data = bytes([0x10]) + HR_72_U8 + RR_1024 * 8
    result = HeartRateMeasurement.decode(data)
    assert result.rr_interval == (rr(1024),) * 8
    assert result.warnings == ()


def test_odd_trailing_byte_in_rr_intervals_is_truncated():
    """A half RR interval at the end is an error, never silently dropped."""
    data = bytes([0x10]) + HR_72_U8 + RR_1024 + RR_819 + bytes([0x07])
    with pytest.raises(DecodeError) as info:
        HeartRateMeasurement.decode(data)
    assert (info.value.kind, info.value.field, info.value.offset) == ("truncated", "rr_interval", 6)


def test_rr_flag_without_any_interval_is_a_missing_field():
    """The RR-Interval bit announces one or more values; none at all is a missing field."""
    with pytest.raises(DecodeError) as info:
        HeartRateMeasurement.decode(bytes([0x16]) + HR_72_U8)
    assert (info.value.kind, info.value.field, info.value.offset) == (
        "missing_field",
        "rr_interval",
        2,
    )


def test_trailing_bytes_without_rr_flag_are_a_warning():
    data = bytes([0x04]) + HR_72_U8 + b"\x00\x04\x00"
    assert HeartRateMeasurement.decode(data) == HeartRateMeasurement(
        bpm(72),
        sensor_contact_status=SensorContactStatus.NOT_DETECTED,
        warnings=("3 trailing byte(s) after the last field ignored",),
    )


def test_reserved_flag_bits_do_not_shift_the_parse():
    """Flags 0xE8: RFU bits 5-7 set; Energy Expended still read right after the value."""
    data = bytes([0xE8]) + HR_72_U8 + ENERGY_300
    assert HeartRateMeasurement.decode(data) == HeartRateMeasurement(
        bpm(72),
        energy_expended=Number(300, 0),
        warnings=("flags: reserved bits 0xe0 set and ignored",),
    )


def test_saturated_energy_expended_stays_a_number():
    """HRS 3.1.1.3: Energy Expended stays at 0xFFFF kJ once reached, until the client resets it."""
    result = HeartRateMeasurement.decode(bytes([0x08]) + HR_72_U8 + bytes([0xFF, 0xFF]))
    assert result.energy_expended == Number(65535, 0)


@pytest.mark.parametrize(
    ("data", "kind", "field", "offset"),
    [
        (b"", "empty", "flags", 0),
        (bytes([0x00]), "missing_field", "heart_rate_measurement_value", 1),
        (bytes([0x01]), "missing_field", "heart_rate_measurement_value", 1),
        (bytes([0x01, 0x48]), "truncated", "heart_rate_measurement_value", 1),
        (bytes([0x08, 0x48]), "missing_field", "energy_expended", 2),
        (bytes([0x09, 0x48, 0x00, 0x2C]), "truncated", "energy_expended", 3),
        (bytes([0x18, 0x48, 0x2C, 0x01]), "missing_field", "rr_interval", 4),
        (bytes([0x10, 0x48, 0x00]), "truncated", "rr_interval", 2),
    ],
)
def test_malformed_payloads_raise_typed_errors(data, kind, field, offset):
    with pytest.raises(DecodeError) as info:
        HeartRateMeasurement.decode(data)
    error = info.value
    assert (error.kind, error.field, error.offset) == (kind, field, offset)
    assert error.characteristic == "Heart Rate Measurement (0x2A37)"


def test_encode_example_byte_for_byte():
    """Object to GSS 0x2A37 bytes: 72 bpm UINT8, contact detected, RR 0.5 s and 0.75 s."""
    measurement = HeartRateMeasurement(
        bpm(72),
        sensor_contact_status=SensorContactStatus.DETECTED,
        rr_interval=(Number.from_decimal("0.5"), Number.from_decimal("0.75")),
    )
    assert measurement.encode() == bytes([0x16, 0x48, 0x00, 0x02, 0x00, 0x03])


def test_encode_not_supported_code_1():
    """Sensor Contact Status code 1 (also "not supported") is sent as given."""
    measurement = HeartRateMeasurement(bpm(60), not_supported_code=1)
    assert measurement.encode() == bytes([0x02, 0x3C])


@pytest.mark.parametrize(
    ("measurement", "field"),
    [
        (HeartRateMeasurement(bpm(256)), "heart_rate_measurement_value"),
        (HeartRateMeasurement(bpm(-1)), "heart_rate_measurement_value"),
        (
            HeartRateMeasurement(bpm(65536), HeartRateValueFormat.UINT16),
            "heart_rate_measurement_value",
        ),
        (HeartRateMeasurement(Number(725, -1)), "heart_rate_measurement_value"),
        (
            HeartRateMeasurement(Number.special_value(SpecialValue.NAN)),
            "heart_rate_measurement_value",
        ),
        (HeartRateMeasurement(bpm(72), energy_expended=Number(65536, 0)), "energy_expended"),
        (HeartRateMeasurement(bpm(72), rr_interval=(Number(1, -3),)), "rr_interval"),
        (HeartRateMeasurement(bpm(72), rr_interval=(rr(0x10000),)), "rr_interval"),
        (HeartRateMeasurement(bpm(72), rr_interval=(rr(-1),)), "rr_interval"),
        (HeartRateMeasurement(bpm(72), not_supported_code=2), "not_supported_code"),
        (
            HeartRateMeasurement(
                bpm(72), sensor_contact_status=SensorContactStatus.DETECTED, not_supported_code=1
            ),
            "not_supported_code",
        ),
    ],
)
def test_out_of_range_values_raise_encode_error(measurement, field):
    with pytest.raises(EncodeError) as info:
        measurement.encode()
    assert info.value.field == field
    assert info.value.characteristic == "Heart Rate Measurement (0x2A37)"


def test_uint8_overflow_error_says_what_to_do():
    with pytest.raises(EncodeError, match="UINT16"):
        HeartRateMeasurement(bpm(300)).encode()


def test_observations_list_every_value_with_its_unit():
    result = HeartRateMeasurement(
        bpm(72), energy_expended=Number(300, 0), rr_interval=(rr(1024), rr(819))
    )
    assert result.observations() == (
        Observation("heart_rate_measurement_value", Quantity.HEART_RATE, bpm(72), Unit.PER_MINUTE),
        Observation("energy_expended", Quantity.ENERGY_EXPENDED, Number(300, 0), Unit.KILOJOULE),
        Observation("rr_interval", Quantity.RR_INTERVAL, rr(1024), Unit.SECOND),
        Observation("rr_interval", Quantity.RR_INTERVAL, rr(819), Unit.SECOND),
    )
    assert HeartRateMeasurement(bpm(72)).observations() == (
        Observation("heart_rate_measurement_value", Quantity.HEART_RATE, bpm(72), Unit.PER_MINUTE),
    )


def test_as_dict_is_json_ready():
    result = HeartRateMeasurement.decode(bytes([0x12]) + HR_72_U8 + RR_819)
    assert device_profiles.as_dict(result) == {
        "heart_rate_measurement_value": "72",
        "heart_rate_value_format": "uint8",
        "sensor_contact_status": "not_supported",
        "energy_expended": None,
        "rr_interval": ["0.7998046875"],
        "not_supported_code": 1,
        "warnings": [],
    }


LOCATIONS = [
    (0, SensorLocation.OTHER),
    (1, SensorLocation.CHEST),
    (2, SensorLocation.WRIST),
    (3, SensorLocation.FINGER),
    (4, SensorLocation.HAND),
    (5, SensorLocation.EAR_LOBE),
    (6, SensorLocation.FOOT),
]


@pytest.mark.parametrize(("code", "member"), LOCATIONS, ids=str)
def test_every_body_sensor_location(code, member):
    """GSS Body Sensor Location values 0-6."""
    result = device_profiles.decode(0x2A38, bytes([code]))
    assert result == BodySensorLocation(member)
    assert result.body_sensor_location is member
    assert not member.is_reserved
    assert result.encode() == bytes([code])


@pytest.mark.parametrize("code", [7, 0x80, 0xFF])
def test_reserved_body_sensor_locations_are_kept(code):
    """GSS Body Sensor Location: 7-255 are reserved; kept as RESERVED_n, no warning."""
    result = BodySensorLocation.decode(bytes([code]))
    assert result.body_sensor_location == code
    assert result.body_sensor_location.name == f"RESERVED_{code}"
    assert result.body_sensor_location.is_reserved
    assert result.warnings == ()
    assert result.encode() == bytes([code])


def test_body_sensor_location_trailing_byte_is_a_warning():
    assert BodySensorLocation.decode(bytes([0x01, 0x00])) == BodySensorLocation(
        SensorLocation.CHEST, ("1 trailing byte(s) after the last field ignored",)
    )


def test_body_sensor_location_errors():
    with pytest.raises(DecodeError) as info:
        BodySensorLocation.decode(b"")
    assert (info.value.kind, info.value.field, info.value.offset) == (
        "empty",
        "body_sensor_location",
        0,
    )
    with pytest.raises(EncodeError) as encode_info:
        BodySensorLocation(SensorLocation(256)).encode()
    assert encode_info.value.field == "body_sensor_location"


def test_contact_code_combinations_are_all_distinct_on_the_wire():
    """The four Sensor Contact Status codes re-encode to four different flag bytes."""
    encoded = {
        HeartRateMeasurement(
            bpm(72), sensor_contact_status=status, not_supported_code=code
        ).encode()[0]
        for _, status, code in CONTACT
    }
    assert encoded == {0x00, 0x02, 0x04, 0x06}
