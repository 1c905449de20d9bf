"""Body Composition Service codecs and the multiple-packet reassembler against hand-built payloads.

Tables followed: GSS "Body Composition Measurement" (0x2A9C) Flags / field order / units (legacy
GATT XML org.bluetooth.characteristic.body_composition_measurement: bit 0 units, 1 time stamp,
2 user ID, 3 basal metabolism, 4 muscle percentage, 5 muscle mass, 6 fat free mass, 7 soft lean
mass, 8 body water mass, 9 impedance, 10 weight, 11 height, 12 multiple packet measurement, 13-15
RFU; percentages 0.1 %, basal metabolism 1 kJ, masses 0.005 kg or 0.01 lb, impedance 0.1 Ohm,
height 0.001 m or 0.1 in; body fat 0xFFFF "measurement unsuccessful") and "Body Composition
Feature" (0x2A9B: bits 0-10 flags, 11-14 mass resolution, 15-17 height resolution, 18-31 RFU).
"""

from __future__ import annotations

import itertools
import pickle
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies_body_composition import body_composition_measurements

import device_profiles
from device_profiles import DateTime, DecodeError, EncodeError, Number, Quantity, SpecialValue, Unit
from device_profiles.body_composition import (
    DEFAULT_MAX_PACKET_SIZE,
    UNKNOWN_USER,
    BodyCompositionFeature,
    BodyCompositionFeatures,
    BodyCompositionMeasurement,
    BodyCompositionReassembler,
    HeightMeasurementResolution,
    MassMeasurementResolution,
    MeasurementUnits,
    ReassemblyError,
    merge,
    split,
)

SI = MeasurementUnits.SI
IMPERIAL = MeasurementUnits.IMPERIAL

# Wire pieces written as literals from the field table (little-endian).
BODY_FAT_25 = bytes([0xFA, 0x00])  # 250 x 0.1 %
UNSUCCESSFUL = bytes([0xFF, 0xFF])
TIME_2024_03_05 = bytes([0xE8, 0x07, 3, 5, 7, 30, 15])  # 2024-03-05 07:30:15
USER_3 = bytes([0x03])
TIMESTAMP = DateTime(2024, 3, 5, 7, 30, 15)
FAT_25 = Number(250, -1)
FAILED = Number(0, 0, SpecialValue.MEASUREMENT_UNSUCCESSFUL)

# (flag bit, field, SI wire, SI value, imperial wire, imperial value), in the table's order.
VALUE_FIELDS = [
    (0x0008, "basal_metabolism", b"\x70\x17", Number(6000, 0), b"\x70\x17", Number(6000, 0)),
    (0x0010, "muscle_percentage", b"\x92\x01", Number(402, -1), b"\x92\x01", Number(402, -1)),
    # 6100 x 0.005 kg = 30.5 kg; 6724 x 0.01 lb = 67.24 lb.
    (0x0020, "muscle_mass", b"\xd4\x17", Number(30500, -3, None, 5), b"\x44\x1a", Number(6724, -2)),
    (
        0x0040,
        "fat_free_mass",
        b"\x04\x29",
        Number(52500, -3, None, 5),
        b"\x36\x2d",
        Number(11574, -2),
    ),
    (
        0x0080,
        "soft_lean_mass",
        b"\x48\x26",
        Number(49000, -3, None, 5),
        b"\x33\x2a",
        Number(10803, -2),
    ),
    (
        0x0100,
        "body_water_mass",
        b"\x14\x1e",
        Number(38500, -3, None, 5),
        b"\x28\x21",
        Number(8488, -2),
    ),
    (0x0200, "impedance", b"\x88\x13", Number(5000, -1), b"\x88\x13", Number(5000, -1)),
    (0x0400, "weight", b"\xb0\x36", Number(70000, -3, None, 5), b"\x48\x3c", Number(15432, -2)),
    (0x0800, "height", b"\xe5\x06", Number(1765, -3), b"\xb7\x02", Number(695, -1)),
]
# Time stamp and user ID sit between body fat and the value fields.
OPTIONAL = [
    (0x0002, "timestamp", TIME_2024_03_05, TIMESTAMP, TIME_2024_03_05, TIMESTAMP),
    (0x0004, "user_id", USER_3, 3, USER_3, 3),
    *VALUE_FIELDS,
]


def _every_subset():
    return [
        combo
        for size in range(len(OPTIONAL) + 1)
        for combo in itertools.combinations(OPTIONAL, size)
    ]


def test_minimal_measurement():
    """Flags 0x0000: SI units, the mandatory body fat percentage only (250 x 0.1 % = 25.0 %)."""
    data = bytes([0x00, 0x00]) + BODY_FAT_25
    result = device_profiles.decode(0x2A9C, data)
    assert result == BodyCompositionMeasurement(FAT_25)
    assert result.body_fat_percentage.value == Decimal("25.0")
    assert result.encode() == data


@pytest.mark.parametrize(
    "present",
    _every_subset(),
    ids=lambda combo: "+".join(entry[1] for entry in combo) or "none",
)
def test_every_flag_combination(present):
    """Each of the 2**11 subsets of optional fields, in both units, with and without bit 12."""
    for imperial, multiple in itertools.product((False, True), repeat=2):
        flags = (0x0001 if imperial else 0) | (0x1000 if multiple else 0)
        payload = b""
        values = {}
        for bit, name, si_wire, si_value, lb_wire, lb_value in present:
            flags |= bit
            payload += lb_wire if imperial else si_wire
            values[name] = lb_value if imperial else si_value
        data = flags.to_bytes(2, "little") + BODY_FAT_25 + payload
        result = BodyCompositionMeasurement.decode(data)
        assert result == BodyCompositionMeasurement(
            FAT_25,
            IMPERIAL if imperial else SI,
            multiple_packet_measurement=multiple,
            **values,
        )
        assert result.encode() == data


def test_full_measurement_imperial():
    """Flags 0x0FFF: imperial, every optional field; the values the table defines for each."""
    data = (
        bytes([0xFF, 0x0F])
        + BODY_FAT_25
        + TIME_2024_03_05
        + USER_3
        + b"".join(entry[4] for entry in VALUE_FIELDS)
    )
    result = device_profiles.decode("2a9c", data)
    assert result == BodyCompositionMeasurement(
        FAT_25,
        IMPERIAL,
        TIMESTAMP,
        3,
        Number(6000, 0),
        Number(402, -1),
        Number(6724, -2),
        Number(11574, -2),
        Number(10803, -2),
        Number(8488, -2),
        Number(5000, -1),
        Number(15432, -2),
        Number(695, -1),
    )
    assert result.impedance is not None
    assert result.impedance.value == Decimal("500.0")
    assert result.encode() == data


@pytest.mark.parametrize("flags", [0x0000, 0x0001, 0x0006, 0x1007])
def test_unsuccessful_body_fat_is_a_special_value(flags):
    """Body fat 0xFFFF is "measurement unsuccessful"; time stamp and user ID may accompany it."""
    data = flags.to_bytes(2, "little") + UNSUCCESSFUL
    if flags & 0x0002:
        data += TIME_2024_03_05
    if flags & 0x0004:
        data += USER_3
    result = BodyCompositionMeasurement.decode(data)
    assert result.body_fat_percentage == FAILED
    assert result.warnings == ()
    assert result.encode() == data
    assert result.observations() == (
        ("body_fat_percentage", Quantity.BODY_FAT_PERCENTAGE, FAILED, Unit.PERCENT),
    )


def test_unsuccessful_body_fat_with_other_fields_warns_but_keeps_them():
    """The spec disables every field but time stamp and user ID after 0xFFFF; still read them."""
    data = bytes([0x08, 0x04]) + UNSUCCESSFUL + b"\x70\x17" + b"\xb0\x36"
    result = BodyCompositionMeasurement.decode(data)
    assert result == BodyCompositionMeasurement(
        FAILED,
        basal_metabolism=Number(6000, 0),
        weight=Number(70000, -3, None, 5),
        warnings=(
            (
                "body_fat_percentage: 'measurement unsuccessful' with other measured fields "
                "present; the spec allows only time stamp and user ID with it"
            ),
        ),
    )


def test_only_body_fat_carries_the_unsuccessful_value():
    """Other uint16 fields have no special value: 0xFFFF is 327.675 kg there."""
    result = BodyCompositionMeasurement.decode(bytes([0x00, 0x04]) + BODY_FAT_25 + UNSUCCESSFUL)
    assert result.weight == Number(327675, -3, None, 5)


def test_reserved_flag_bits_do_not_shift_the_parse():
    """Flags 0xE200: RFU bits 13-15 set; impedance still read right after body fat."""
    data = bytes([0x00, 0xE2]) + BODY_FAT_25 + b"\x88\x13"
    assert BodyCompositionMeasurement.decode(data) == BodyCompositionMeasurement(
        FAT_25,
        impedance=Number(5000, -1),
        warnings=("flags: reserved bits 0xe000 set and ignored",),
    )


def test_trailing_bytes_are_ignored_with_a_warning():
    data = bytes([0x00, 0x00]) + BODY_FAT_25 + b"\x01"
    assert BodyCompositionMeasurement.decode(data).warnings == (
        "1 trailing byte(s) after the last field ignored",
    )


def test_unknown_user_is_explicit():
    result = BodyCompositionMeasurement.decode(bytes([0x04, 0x00]) + BODY_FAT_25 + b"\xff")
    assert result.user_id == UNKNOWN_USER
    assert result.unknown_user
    assert not BodyCompositionMeasurement(FAT_25, user_id=3).unknown_user


@pytest.mark.parametrize(
    ("data", "kind", "field", "offset"),
    [
        (b"", "empty", "flags", 0),
        (bytes([0x00]), "truncated", "flags", 0),
        (bytes([0x00, 0x00]), "missing_field", "body_fat_percentage", 2),
        (bytes([0x00, 0x00, 0xFA]), "truncated", "body_fat_percentage", 2),
        (bytes([0x02, 0x00]) + BODY_FAT_25, "missing_field", "timestamp", 4),
        (bytes([0x02, 0x00]) + BODY_FAT_25 + b"\xe8\x07", "truncated", "timestamp", 4),
        (bytes([0x04, 0x00]) + BODY_FAT_25, "missing_field", "user_id", 4),
        (
            bytes([0x02, 0x00]) + BODY_FAT_25 + bytes([0xE8, 0x07, 3, 5, 24, 0, 0]),
            "invalid_value",
            "timestamp",
            4,
        ),
        (
            bytes([0x06, 0x08]) + BODY_FAT_25 + TIME_2024_03_05 + USER_3,
            "missing_field",
            "height",
            12,
        ),
    ],
)
def test_malformed_payloads_raise_typed_errors(data, kind, field, offset):
    with pytest.raises(DecodeError) as info:
        BodyCompositionMeasurement.decode(data)
    error = info.value
    assert (error.kind, error.field, error.offset) == (kind, field, offset)
    assert error.characteristic == "Body Composition Measurement (0x2A9C)"


@pytest.mark.parametrize(("bit", "name"), [(entry[0], entry[1]) for entry in VALUE_FIELDS])
def test_each_announced_value_field_missing_or_truncated(bit, name):
    """A flag announces a 2-octet field right after body fat: absent, then cut in half."""
    head = bit.to_bytes(2, "little") + BODY_FAT_25
    for data, kind in ((head, "missing_field"), (head + b"\x01", "truncated")):
        with pytest.raises(DecodeError) as info:
            BodyCompositionMeasurement.decode(data)
        assert (info.value.kind, info.value.field, info.value.offset) == (kind, name, 4)


def test_encode_example_byte_for_byte():
    """Objects to the literal bytes of the field table."""
    measurement = BodyCompositionMeasurement(
        Number.from_decimal("18.3"),
        SI,
        user_id=UNKNOWN_USER,
        muscle_mass=Number.from_decimal("30.5"),
        weight=Number.from_decimal("70.005"),
        multiple_packet_measurement=True,
    )
    assert measurement.encode() == bytes([0x24, 0x14, 0xB7, 0x00, 0xFF, 0xD4, 0x17, 0xB1, 0x36])
    assert BodyCompositionMeasurement(FAILED, IMPERIAL).encode() == bytes([0x01, 0x00, 0xFF, 0xFF])


@pytest.mark.parametrize(
    ("measurement", "field"),
    [
        (BodyCompositionMeasurement(Number.from_decimal("25.05")), "body_fat_percentage"),
        (BodyCompositionMeasurement(Number.from_decimal("6553.5")), "body_fat_percentage"),
        (BodyCompositionMeasurement(Number(7000, 0)), "body_fat_percentage"),
        (BodyCompositionMeasurement(Number.special_value(SpecialValue.NAN)), "body_fat_percentage"),
        (
            BodyCompositionMeasurement(FAILED, weight=Number(70, 0)),
            "body_fat_percentage",
        ),
        (BodyCompositionMeasurement(FAT_25, user_id=-1), "user_id"),
        (
            BodyCompositionMeasurement(FAT_25, basal_metabolism=Number.from_decimal("0.5")),
            "basal_metabolism",
        ),
        (
            BodyCompositionMeasurement(FAT_25, muscle_mass=Number.from_decimal("30.501")),
            "muscle_mass",
        ),
        (
            BodyCompositionMeasurement(
                FAT_25, IMPERIAL, fat_free_mass=Number.from_decimal("1.005")
            ),
            "fat_free_mass",
        ),
        (BodyCompositionMeasurement(FAT_25, impedance=Number(7000, 0)), "impedance"),
        (BodyCompositionMeasurement(FAT_25, height=Number.from_decimal("0.0005")), "height"),
        (BodyCompositionMeasurement(FAT_25, soft_lean_mass=FAILED), "soft_lean_mass"),
        (BodyCompositionMeasurement(FAT_25, timestamp=DateTime(2024, 13, 1)), "timestamp"),
    ],
)
def test_encode_refuses_values_outside_their_field(measurement, field):
    with pytest.raises(EncodeError) as info:
        measurement.encode()
    assert info.value.field == field


@pytest.mark.parametrize(
    ("units", "mass", "length"),
    [(SI, Unit.KILOGRAM, Unit.METRE), (IMPERIAL, Unit.POUND, Unit.INCH)],
)
def test_observations_carry_quantity_and_unit(units, mass, length):
    values = {entry[1]: entry[3] for entry in VALUE_FIELDS}
    result = BodyCompositionMeasurement(FAT_25, units, **values)
    assert [(o.field, o.quantity, o.unit) for o in result.observations()] == [
        ("body_fat_percentage", Quantity.BODY_FAT_PERCENTAGE, Unit.PERCENT),
        ("basal_metabolism", Quantity.BASAL_METABOLISM, Unit.KILOJOULE),
        ("muscle_percentage", Quantity.MUSCLE_PERCENTAGE, Unit.PERCENT),
        ("muscle_mass", Quantity.MUSCLE_MASS, mass),
        ("fat_free_mass", Quantity.FAT_FREE_MASS, mass),
        ("soft_lean_mass", Quantity.SOFT_LEAN_MASS, mass),
        ("body_water_mass", Quantity.BODY_WATER_MASS, mass),
        ("impedance", Quantity.IMPEDANCE, Unit.OHM),
        ("weight", Quantity.BODY_WEIGHT, mass),
        ("height", Quantity.BODY_HEIGHT, length),
    ]


# ---- Body Composition Feature (0x2A9B) ----

FEATURE_BITS = [
    BodyCompositionFeatures.TIME_STAMP_SUPPORTED,
    BodyCompositionFeatures.MULTIPLE_USERS_SUPPORTED,
    BodyCompositionFeatures.BASAL_METABOLISM_SUPPORTED,
    BodyCompositionFeatures.MUSCLE_PERCENTAGE_SUPPORTED,
    BodyCompositionFeatures.MUSCLE_MASS_SUPPORTED,
    BodyCompositionFeatures.FAT_FREE_MASS_SUPPORTED,
    BodyCompositionFeatures.SOFT_LEAN_MASS_SUPPORTED,
    BodyCompositionFeatures.BODY_WATER_MASS_SUPPORTED,
    BodyCompositionFeatures.IMPEDANCE_SUPPORTED,
    BodyCompositionFeatures.WEIGHT_SUPPORTED,
    BodyCompositionFeatures.HEIGHT_SUPPORTED,
]


@pytest.mark.parametrize(("bit", "feature"), list(enumerate(FEATURE_BITS)))
def test_each_feature_bit(bit, feature):
    """GSS 0x2A9B bits 0-10, in table order."""
    data = (1 << bit).to_bytes(4, "little")
    result = BodyCompositionFeature.decode(data)
    assert result == BodyCompositionFeature(feature)
    assert result.encode() == data


MASS_CODES = [
    (0, None, None),
    (1, "0.5", "1"),
    (2, "0.2", "0.5"),
    (3, "0.1", "0.2"),
    (4, "0.05", "0.1"),
    (5, "0.02", "0.05"),
    (6, "0.01", "0.02"),
    (7, "0.005", "0.01"),
    *((code, None, None) for code in range(8, 16)),
]


@pytest.mark.parametrize(("code", "kilograms", "pounds"), MASS_CODES)
def test_each_mass_resolution_code(code, kilograms, pounds):
    """GSS 0x2A9B bits 11-14: the Weight Scale codes (0.5 kg / 1 lb ... 0.005 kg / 0.01 lb)."""
    data = (code << 11).to_bytes(4, "little")
    result = BodyCompositionFeature.decode(data)
    resolution = result.mass_measurement_resolution
    assert resolution == MassMeasurementResolution(code)
    assert resolution.is_reserved == (code >= 8)
    assert resolution.si_resolution == (None if kilograms is None else Decimal(kilograms))
    assert resolution.imperial_resolution == (None if pounds is None else Decimal(pounds))
    assert result.warnings == ()
    assert result.encode() == data


@pytest.mark.parametrize(
    ("code", "metres", "inches"),
    [(0, None, None), (1, "0.01", "1"), (2, "0.005", "0.5"), (3, "0.001", "0.1")]
    + [(code, None, None) for code in range(4, 8)],
)
def test_each_height_resolution_code(code, metres, inches):
    """GSS 0x2A9B bits 15-17: 0.01 m / 1 in, 0.005 m / 0.5 in, 0.001 m / 0.1 in; 4-7 RFU."""
    data = (code << 15).to_bytes(4, "little")
    result = BodyCompositionFeature.decode(data)
    resolution = result.height_measurement_resolution
    assert resolution == HeightMeasurementResolution(code)
    assert resolution.is_reserved == (code >= 4)
    assert resolution.si_resolution == (None if metres is None else Decimal(metres))
    assert resolution.imperial_resolution == (None if inches is None else Decimal(inches))
    assert result.encode() == data


def test_feature_example_and_reserved_bits():
    """0x0001BFFF: every flag, mass code 7 (0.005 kg), height code 3 (0.001 m); then RFU bits."""
    data = bytes([0xFF, 0xBF, 0x01, 0x00])
    expected = BodyCompositionFeature(
        BodyCompositionFeatures(0x07FF),
        MassMeasurementResolution.KG_0_005_OR_LB_0_01,
        HeightMeasurementResolution.M_0_001_OR_IN_0_1,
    )
    assert device_profiles.decode(0x2A9B, data) == expected
    assert expected.encode() == data
    assert BodyCompositionFeature.decode(bytes([0xFF, 0xBF, 0x05, 0x40])) == BodyCompositionFeature(
        expected.features,
        expected.mass_measurement_resolution,
        expected.height_measurement_resolution,
        ("features: reserved bits 0x40040000 set and ignored",),
    )
    assert BodyCompositionFeature.decode(data + b"\x00").warnings == (
        "1 trailing byte(s) after the last field ignored",
    )


@pytest.mark.parametrize(("data", "kind"), [(b"", "empty"), (b"\xff\xbf", "truncated")])
def test_feature_errors(data, kind):
    with pytest.raises(DecodeError) as info:
        BodyCompositionFeature.decode(data)
    assert (info.value.kind, info.value.field, info.value.offset) == (kind, "features", 0)


@pytest.mark.parametrize(
    ("feature", "field"),
    [
        (BodyCompositionFeature(BodyCompositionFeatures(0x0800)), "features"),
        (
            BodyCompositionFeature(BodyCompositionFeatures(0), MassMeasurementResolution(16)),
            "mass_measurement_resolution",
        ),
        (
            BodyCompositionFeature(
                BodyCompositionFeatures(0),
                MassMeasurementResolution.NOT_SPECIFIED,
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


# ---- Multiple-packet measurements ----

# A full SI measurement (30 octets) split for ATT_MTU 23 (20 octets per packet). Packet 1:
# flags 0x107E (bit 12, time stamp, user ID, basal metabolism, muscle %, muscle mass, fat free
# mass), body fat, then those fields. Packet 2: flags 0x1F80 (bit 12 and the five fields left).
PACKET_1 = (
    bytes([0x7E, 0x10])
    + BODY_FAT_25
    + TIME_2024_03_05
    + USER_3
    + b"".join(entry[2] for entry in VALUE_FIELDS[:4])
)
PACKET_2 = bytes([0x80, 0x1F]) + BODY_FAT_25 + b"".join(entry[2] for entry in VALUE_FIELDS[4:])
WHOLE = BodyCompositionMeasurement(
    FAT_25, SI, TIMESTAMP, 3, **{entry[1]: entry[3] for entry in VALUE_FIELDS}
)


def _packet(**fields):
    return BodyCompositionMeasurement(FAT_25, multiple_packet_measurement=True, **fields)


def test_a_split_measurement_is_reassembled_from_its_two_packets():
    """Two indications with bit 12 set, each repeating flags and body fat, give one measurement."""
    assert len(PACKET_1) == DEFAULT_MAX_PACKET_SIZE
    assert len(PACKET_2) == 14
    reassembler = BodyCompositionReassembler()
    first = BodyCompositionMeasurement.decode(PACKET_1)
    assert first.multiple_packet_measurement
    assert reassembler.add(first) is None
    assert reassembler.pending == (first,)
    whole = reassembler.add(BodyCompositionMeasurement.decode(PACKET_2))
    assert whole == WHOLE
    assert not whole.multiple_packet_measurement
    assert reassembler.pending == ()
    assert len(WHOLE.encode()) == 30


def test_split_produces_the_packets_a_server_sends():
    packets = split(WHOLE)
    assert [packet.encode() for packet in packets] == [PACKET_1, PACKET_2]
    assert merge(packets) == WHOLE


def test_split_returns_a_measurement_that_fits_unchanged():
    small = BodyCompositionMeasurement(FAT_25, weight=Number(70, 0))
    assert split(small) == (small,)
    assert split(WHOLE, max_size=30) == (WHOLE,)


def test_split_into_smaller_packets_and_back():
    """12 octets: time stamp and user ID fill the first packet; then four values per packet."""
    packets = split(WHOLE, max_size=12)
    assert [len(packet.encode()) for packet in packets] == [12, 12, 12, 6]
    assert packets[0] == _packet(timestamp=TIMESTAMP, user_id=3)
    reassembler = BodyCompositionReassembler(packets_per_measurement=4)
    assert [reassembler.add(packet) for packet in packets[:-1]] == [None] * 3
    assert reassembler.add(packets[-1]) == WHOLE


@pytest.mark.parametrize("max_size", [0, 5, 11])
def test_split_refuses_a_packet_size_that_cannot_hold_the_fixed_part(max_size):
    with pytest.raises(EncodeError) as info:
        split(WHOLE, max_size=max_size)
    assert info.value.field == "max_size"


def test_a_whole_measurement_passes_straight_through():
    reassembler = BodyCompositionReassembler()
    single = BodyCompositionMeasurement(FAT_25, user_id=3)
    assert reassembler.add(single) is single
    assert reassembler.pending == ()


def test_fields_may_repeat_when_they_agree_and_sit_in_any_packet():
    """Time stamp and user ID in both packets, or only in the second: either way one result."""
    reassembler = BodyCompositionReassembler()
    assert reassembler.add(_packet(timestamp=TIMESTAMP, user_id=3, weight=Number(70, 0))) is None
    assert reassembler.add(
        _packet(timestamp=TIMESTAMP, user_id=3, weight=Number(70, 0), height=Number(2, 0))
    ) == BodyCompositionMeasurement(
        FAT_25, SI, TIMESTAMP, 3, weight=Number(70, 0), height=Number(2, 0)
    )
    assert merge([_packet(weight=Number(70, 0)), _packet(user_id=3)]) == (
        BodyCompositionMeasurement(FAT_25, user_id=3, weight=Number(70, 0))
    )


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (_packet(weight=Number(71, 0)), "weight"),
        (_packet(user_id=4), "user_id"),
        (_packet(timestamp=DateTime(2024, 3, 5, 7, 30, 16)), "timestamp"),
        (
            BodyCompositionMeasurement(FAT_25, IMPERIAL, multiple_packet_measurement=True),
            "measurement_units",
        ),
        (
            BodyCompositionMeasurement(Number(251, -1), multiple_packet_measurement=True),
            "body_fat_percentage",
        ),
    ],
)
def test_conflicting_packets_raise_and_drop_the_partial_measurement(second, field):
    """A conflicting duplicate field, other units or another user: not one measurement."""
    reassembler = BodyCompositionReassembler()
    first = _packet(user_id=3, timestamp=TIMESTAMP, weight=Number(70, 0))
    reassembler.add(first)
    with pytest.raises(ReassemblyError) as info:
        reassembler.add(second)
    assert info.value.field == field
    assert info.value.packets == (first,)
    assert reassembler.pending == ()
    # The packet that revealed the conflict was not consumed: it starts a measurement afresh.
    assert reassembler.add(second) is None
    assert reassembler.pending == (second,)
    with pytest.raises(ReassemblyError) as merged:
        merge([first, second])
    assert merged.value.field == field
    assert merged.value.packets == (first, second)


def test_a_whole_measurement_between_packets_drops_the_partial_one():
    reassembler = BodyCompositionReassembler()
    first = _packet(weight=Number(70, 0))
    reassembler.add(first)
    single = BodyCompositionMeasurement(FAT_25)
    with pytest.raises(ReassemblyError) as info:
        reassembler.add(single)
    assert info.value.field == "multiple_packet_measurement"
    assert info.value.packets == (first,)
    assert reassembler.add(single) is single


def test_merge_rejects_nothing_and_unflagged_packets():
    with pytest.raises(ReassemblyError) as info:
        merge([])
    assert (info.value.field, info.value.packets) == ("packets", ())
    with pytest.raises(ReassemblyError) as info:
        merge([_packet(), BodyCompositionMeasurement(FAT_25)])
    assert info.value.field == "multiple_packet_measurement"


def test_merge_keeps_each_packets_warnings_with_its_number():
    noisy = BodyCompositionMeasurement.decode(bytes([0x00, 0x30]) + BODY_FAT_25 + b"\x00")
    assert noisy.warnings == (
        "flags: reserved bits 0x2000 set and ignored",
        "1 trailing byte(s) after the last field ignored",
    )
    assert merge([_packet(weight=Number(70, 0)), noisy]).warnings == (
        "packet 2: flags: reserved bits 0x2000 set and ignored",
        "packet 2: 1 trailing byte(s) after the last field ignored",
    )


def test_reset_drops_and_returns_the_partial_measurement():
    reassembler = BodyCompositionReassembler(packets_per_measurement=3)
    packets = (_packet(weight=Number(70, 0)), _packet(height=Number(2, 0)))
    assert [reassembler.add(packet) for packet in packets] == [None, None]
    assert reassembler.reset() == packets
    assert reassembler.pending == ()
    assert reassembler.reset() == ()


def test_packets_per_measurement_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        BodyCompositionReassembler(packets_per_measurement=0)
    assert BodyCompositionReassembler(packets_per_measurement=1).add(_packet()) == (
        BodyCompositionMeasurement(FAT_25)
    )


def test_reassembly_error_keeps_its_attributes_through_pickle():
    error = ReassemblyError("user_id", "packet 2 says 4, an earlier packet 3", (_packet(),))
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object, just made
    assert (copy.field, copy.detail, copy.packets) == (error.field, error.detail, error.packets)
    assert str(copy) == (
        "Body Composition Measurement (0x2A9C): cannot reassemble field 'user_id': "
        "packet 2 says 4, an earlier packet 3"
    )
    assert isinstance(copy, ValueError)


@settings(max_examples=200)
@given(
    measurement=body_composition_measurements(multiple_packet=False),
    max_size=st.integers(12, 40),
)
def test_split_then_reassemble_gives_the_measurement_back(measurement, max_size):
    """Split at any packet size, through the wire, and back: the same measurement."""
    packets = split(measurement, max_size)
    wire = [packet.encode() for packet in packets]
    assert all(len(payload) <= max_size for payload in wire)
    decoded = [BodyCompositionMeasurement.decode(payload) for payload in wire]
    reassembler = BodyCompositionReassembler(packets_per_measurement=len(packets))
    results = [reassembler.add(packet) for packet in decoded]
    assert results[:-1] == [None] * (len(packets) - 1)
    assert results[-1] == measurement
    if len(packets) > 1:
        assert merge(decoded) == measurement
        assert all(packet.multiple_packet_measurement for packet in decoded)
