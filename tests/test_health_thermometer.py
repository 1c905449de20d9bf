"""Health Thermometer Service codecs against hand-built payloads from the GSS field tables.

Tables followed: GSS "Temperature Measurement" (0x2A1C) Flags / field order, "Intermediate
Temperature" (0x2A1E, same layout), "Temperature Type" (0x2A1D) description values, "Measurement
Interval" (0x2A21), and "Date Time" (0x2A08) for the Time Stamp field.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

import device_profiles
from device_profiles import (
    DateTime,
    DecodeError,
    EncodeError,
    Number,
    Observation,
    Quantity,
    SpecialValue,
    Unit,
)
from device_profiles.health_thermometer import (
    NO_PERIODIC_MEASUREMENT,
    IntermediateTemperature,
    MeasurementInterval,
    TemperatureMeasurement,
    TemperatureType,
    TemperatureTypeDescription,
)

# Wire pieces written as literals from the field tables (little-endian).
CEL_36_5 = bytes([0x6D, 0x01, 0x00, 0xFF])  # FLOAT 365 x 10^-1
DEGF_98_6 = bytes([0xDA, 0x03, 0x00, 0xFF])  # FLOAT 986 x 10^-1
MINUS_5_0 = bytes([0xCE, 0xFF, 0xFF, 0xFF])  # FLOAT -50 x 10^-1
TIME_2024_03_05 = bytes([0xE8, 0x07, 3, 5, 7, 30, 15])  # 2024-03-05 07:30:15
TYPE_MOUTH = bytes([0x06])

TIMESTAMP = DateTime(2024, 3, 5, 7, 30, 15)
CLASSES = [TemperatureMeasurement, IntermediateTemperature]


def test_minimal_measurement_celsius():
    """Flags 0x00: Celsius, only the mandatory FLOAT value."""
    data = bytes([0x00]) + CEL_36_5
    result = TemperatureMeasurement.decode(data)
    assert result == TemperatureMeasurement(Number(365, -1), Unit.CELSIUS)
    assert result.temperature_measurement_value.value == Decimal("36.5")


def test_full_measurement_fahrenheit():
    """Flags 0x07: Fahrenheit, Time Stamp and Temperature Type present, in table order."""
    data = bytes([0x07]) + DEGF_98_6 + TIME_2024_03_05 + TYPE_MOUTH
    result = device_profiles.decode("2A1C", data)
    assert result == TemperatureMeasurement(
        Number(986, -1), Unit.FAHRENHEIT, TIMESTAMP, TemperatureTypeDescription.MOUTH
    )
    assert result.encode() == data
    assert result.timestamp is not None
    assert result.timestamp.timestamp == dt.datetime(2024, 3, 5, 7, 30, 15)  # noqa: DTZ001


def test_intermediate_temperature_same_layout():
    """0x2A1E: the 0x2A1C layout, value field named Intermediate Temperature."""
    data = bytes([0x06]) + MINUS_5_0 + TIME_2024_03_05 + bytes([0x03])
    result = device_profiles.decode(0x2A1E, data)
    assert result == IntermediateTemperature(
        Number(-50, -1), Unit.CELSIUS, TIMESTAMP, TemperatureTypeDescription.EAR
    )
    assert result.encode() == data


OPTIONAL = [
    (0x02, "timestamp", TIME_2024_03_05, TIMESTAMP),
    (0x04, "temperature_type", TYPE_MOUTH, TemperatureTypeDescription.MOUTH),
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "present",
    [
        combo
        for size in range(len(OPTIONAL) + 1)
        for combo in itertools.combinations(OPTIONAL, size)
    ],
    ids=lambda combo: "+".join(name for _, name, _, _ in combo) or "none",
)
@pytest.mark.parametrize("fahrenheit", [False, True], ids=["Cel", "degF"])
def test_every_flag_combination(cls, present, fahrenheit):
    """GSS Flags bits 0-2: each unit and subset of optional fields decodes to exactly those."""
    flags = 0x01 if fahrenheit else 0x00
    payload = b""
    expected: dict[str, object] = {}
    for bit, name, wire, value in present:
        flags |= bit
        payload += wire
        expected[name] = value
    data = bytes([flags]) + CEL_36_5 + payload
    result = cls.decode(data)
    assert result == cls(
        Number(365, -1),
        Unit.FAHRENHEIT if fahrenheit else Unit.CELSIUS,
        **expected,
    )
    assert result.encode() == data


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("wire", "special"),
    [
        (bytes([0xFF, 0xFF, 0x7F, 0x00]), SpecialValue.NAN),
        (bytes([0x00, 0x00, 0x80, 0x00]), SpecialValue.NRES),
        (bytes([0xFE, 0xFF, 0x7F, 0x00]), SpecialValue.POSITIVE_INFINITY),
        (bytes([0x02, 0x00, 0x80, 0x00]), SpecialValue.NEGATIVE_INFINITY),
        (bytes([0x01, 0x00, 0x80, 0x00]), SpecialValue.RESERVED),
    ],
)
def test_float_special_values(cls, wire, special):
    """IEEE 11073 FLOAT special words in the temperature field stay special, and re-encode."""
    data = bytes([0x00]) + wire
    result = cls.decode(data)
    assert result == cls(Number.special_value(special))
    assert result.observations()[0].value.value is None
    assert result.encode() == data


TYPE_CODES = [
    (1, TemperatureTypeDescription.ARMPIT),
    (2, TemperatureTypeDescription.BODY_GENERAL),
    (3, TemperatureTypeDescription.EAR),
    (4, TemperatureTypeDescription.FINGER),
    (5, TemperatureTypeDescription.GASTRO_INTESTINAL_TRACT),
    (6, TemperatureTypeDescription.MOUTH),
    (7, TemperatureTypeDescription.RECTUM),
    (8, TemperatureTypeDescription.TOE),
    (9, TemperatureTypeDescription.TYMPANUM),
]


@pytest.mark.parametrize(("code", "member"), TYPE_CODES, ids=str)
def test_every_temperature_type(code, member):
    """GSS Temperature Type description values 1-9, alone (0x2A1D) and inside 0x2A1C."""
    assert TemperatureType.decode(bytes([code])) == TemperatureType(member)
    assert not member.is_reserved
    data = bytes([0x04]) + CEL_36_5 + bytes([code])
    assert TemperatureMeasurement.decode(data).temperature_type is member


@pytest.mark.parametrize("code", [0, 10, 0x7F, 0xFF])
def test_reserved_temperature_types_are_kept(code):
    """GSS Temperature Type: 0 and 10-255 are reserved; kept as RESERVED_n, no warning."""
    result = TemperatureType.decode(bytes([code]))
    description = result.temperature_type_description
    assert description == code
    assert description.name == f"RESERVED_{code}"
    assert description.is_reserved
    assert result.warnings == ()
    assert result.encode() == bytes([code])
    assert device_profiles.as_dict(result) == {
        "temperature_type_description": f"reserved_{code}",
        "warnings": [],
    }
    inner = TemperatureMeasurement.decode(bytes([0x04]) + CEL_36_5 + bytes([code]))
    assert inner.temperature_type == code
    assert inner.encode() == bytes([0x04]) + CEL_36_5 + bytes([code])


def test_reserved_flag_bits_do_not_shift_the_parse():
    """Flags 0xFC: RFU bits 3-7 set; Temperature Type still read right after the value."""
    data = bytes([0xFC]) + CEL_36_5 + TYPE_MOUTH
    result = TemperatureMeasurement.decode(data)
    assert result == TemperatureMeasurement(
        Number(365, -1),
        temperature_type=TemperatureTypeDescription.MOUTH,
        warnings=("flags: reserved bits 0xf8 set and ignored",),
    )


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_trailing_bytes_are_ignored_with_a_warning(cls):
    data = bytes([0x00]) + CEL_36_5 + b"\x00\x00"
    assert cls.decode(data) == cls(
        Number(365, -1), warnings=("2 trailing byte(s) after the last field ignored",)
    )


@pytest.mark.parametrize(
    ("cls", "data", "kind", "field", "offset"),
    [
        (TemperatureMeasurement, b"", "empty", "flags", 0),
        (
            TemperatureMeasurement,
            bytes([0x00]),
            "missing_field",
            "temperature_measurement_value",
            1,
        ),
        (
            TemperatureMeasurement,
            bytes([0x00, 0x6D, 0x01]),
            "truncated",
            "temperature_measurement_value",
            1,
        ),
        (IntermediateTemperature, bytes([0x00, 0x6D]), "truncated", "intermediate_temperature", 1),
        (TemperatureMeasurement, bytes([0x02]) + CEL_36_5, "missing_field", "timestamp", 5),
        (
            TemperatureMeasurement,
            bytes([0x02]) + CEL_36_5 + TIME_2024_03_05[:6],
            "truncated",
            "timestamp",
            5,
        ),
        (TemperatureMeasurement, bytes([0x04]) + CEL_36_5, "missing_field", "temperature_type", 5),
        (
            IntermediateTemperature,
            bytes([0x06]) + CEL_36_5 + TIME_2024_03_05,
            "missing_field",
            "temperature_type",
            12,
        ),
        (
            TemperatureMeasurement,
            bytes([0x02]) + CEL_36_5 + bytes([0xE8, 0x07, 13, 5, 7, 30, 15]),
            "invalid_value",
            "timestamp",
            5,
        ),
        (
            IntermediateTemperature,
            bytes([0x02]) + CEL_36_5 + bytes([0xE8, 0x07, 2, 30, 7, 30, 15]),
            "invalid_value",
            "timestamp",
            5,
        ),
        (TemperatureType, b"", "empty", "temperature_type_description", 0),
        (MeasurementInterval, b"", "empty", "measurement_interval", 0),
        (MeasurementInterval, bytes([0x3C]), "truncated", "measurement_interval", 0),
    ],
)
def test_malformed_payloads_raise_typed_errors(cls, data, kind, field, offset):
    with pytest.raises(DecodeError) as info:
        cls.decode(data)
    error = info.value
    assert (error.kind, error.field, error.offset) == (kind, field, offset)
    assert error.characteristic == cls.LABEL


def test_encode_example_byte_for_byte():
    """Object to GSS 0x2A1C bytes: Fahrenheit with a Temperature Type, no Time Stamp."""
    measurement = TemperatureMeasurement(
        Number(1004, -1), Unit.FAHRENHEIT, temperature_type=TemperatureTypeDescription.TYMPANUM
    )
    assert measurement.encode() == bytes([0x05, 0xEC, 0x03, 0x00, 0xFF, 0x09])


def test_encode_keeps_the_stated_exponent():
    """37 with exponent 0 and 37.00 with exponent -2 are different FLOAT words."""
    assert TemperatureMeasurement(Number(37, 0)).encode() == bytes([0x00, 0x25, 0x00, 0x00, 0x00])
    assert TemperatureMeasurement(Number(3700, -2)).encode() == bytes(
        [0x00, 0x74, 0x0E, 0x00, 0xFE]
    )


@pytest.mark.parametrize(
    ("result", "field"),
    [
        (TemperatureMeasurement(Number(365, -1), Unit.KILOGRAM), "unit"),
        (IntermediateTemperature(Number(365, -1), Unit.MMHG), "unit"),
        (TemperatureMeasurement(Number(2**23, -1)), "temperature_measurement_value"),
        (IntermediateTemperature(Number(1, 128)), "intermediate_temperature"),
        (
            TemperatureMeasurement(Number.special_value(SpecialValue.MEASUREMENT_UNSUCCESSFUL)),
            "temperature_measurement_value",
        ),
        (
            TemperatureMeasurement(Number(365, -1), timestamp=DateTime(2023, 2, 29)),
            "timestamp",
        ),
        (
            TemperatureMeasurement(
                Number(365, -1), temperature_type=TemperatureTypeDescription(256)
            ),
            "temperature_type",
        ),
        (TemperatureType(TemperatureTypeDescription(-1)), "temperature_type_description"),
        (MeasurementInterval(0x10000), "measurement_interval"),
        (MeasurementInterval(-1), "measurement_interval"),
    ],
)
def test_out_of_range_values_raise_encode_error(result, field):
    with pytest.raises(EncodeError) as info:
        result.encode()
    assert info.value.field == field
    assert info.value.characteristic == result.LABEL


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (TemperatureMeasurement, "temperature_measurement_value"),
        (IntermediateTemperature, "intermediate_temperature"),
    ],
)
@pytest.mark.parametrize("unit", [Unit.CELSIUS, Unit.FAHRENHEIT])
def test_observation_is_body_temperature_in_the_sent_unit(cls, field, unit):
    result = cls(Number(365, -1), unit)
    assert result.observations() == (
        Observation(field, Quantity.BODY_TEMPERATURE, Number(365, -1), unit),
    )


def test_temperature_type_characteristic_round_trip():
    """GSS 0x2A1D: one uint8 description; a trailing byte is a warning."""
    assert TemperatureType(TemperatureTypeDescription.RECTUM).encode() == bytes([0x07])
    assert TemperatureType.decode(bytes([0x02, 0x00])) == TemperatureType(
        TemperatureTypeDescription.BODY_GENERAL,
        ("1 trailing byte(s) after the last field ignored",),
    )


@pytest.mark.parametrize(
    ("wire", "seconds", "interval"),
    [
        (bytes([0x00, 0x00]), 0, None),
        (bytes([0x3C, 0x00]), 60, dt.timedelta(minutes=1)),
        (bytes([0x10, 0x0E]), 3600, dt.timedelta(hours=1)),
        (bytes([0xFF, 0xFF]), 65535, dt.timedelta(seconds=65535)),
    ],
)
def test_measurement_interval(wire, seconds, interval):
    """GSS 0x2A21: uint16 seconds; 0 means no periodic measurement."""
    result = MeasurementInterval.decode(wire)
    assert result == MeasurementInterval(seconds)
    assert result.interval == interval
    assert result.is_periodic is (seconds != NO_PERIODIC_MEASUREMENT)
    assert result.encode() == wire


def test_measurement_interval_trailing_byte_is_a_warning():
    assert MeasurementInterval.decode(bytes([0x3C, 0x00, 0x01])) == MeasurementInterval(
        60, ("1 trailing byte(s) after the last field ignored",)
    )


def test_as_dict_is_json_ready():
    data = bytes([0x07]) + DEGF_98_6 + TIME_2024_03_05 + TYPE_MOUTH
    assert device_profiles.as_dict(TemperatureMeasurement.decode(data)) == {
        "temperature_measurement_value": "98.6",
        "unit": "[degF]",
        "timestamp": {
            "year": 2024,
            "month": 3,
            "day": 5,
            "hours": 7,
            "minutes": 30,
            "seconds": 15,
            "iso": "2024-03-05T07:30:15",
        },
        "temperature_type": "mouth",
        "warnings": [],
    }
