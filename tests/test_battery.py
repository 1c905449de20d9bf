"""Battery Service codec against hand-built payloads from the GSS field table.

Table followed: GSS "Battery Level" (0x2A19): one uint8, percent, 0 to 100; 101-255 reserved.
"""

from __future__ import annotations

import pytest

import device_profiles
from device_profiles import (
    DecodeError,
    EncodeError,
    Number,
    Observation,
    Quantity,
    SpecialValue,
    Unit,
)
from device_profiles.battery import BatteryLevel


@pytest.mark.parametrize(("wire", "percent"), [(b"\x00", 0), (b"\x5a", 90), (b"\x64", 100)])
def test_levels_in_range(wire, percent):
    """0 % is fully discharged, 100 % fully charged."""
    result = device_profiles.decode("2A19", wire)
    assert result == BatteryLevel(Number(percent, 0))
    assert result.encode() == wire


@pytest.mark.parametrize("raw", [101, 0x80, 0xFF])
def test_reserved_levels_are_invalid(raw):
    """101-255 are reserved: never reported as a percentage (no 255 % battery)."""
    with pytest.raises(DecodeError) as info:
        BatteryLevel.decode(bytes([raw]))
    error = info.value
    assert (error.kind, error.field, error.offset) == ("invalid_value", "battery_level", 0)
    assert error.characteristic == "Battery Level (0x2A19)"


def test_empty_payload():
    with pytest.raises(DecodeError) as info:
        BatteryLevel.decode(b"")
    assert (info.value.kind, info.value.field, info.value.offset) == ("empty", "battery_level", 0)


def test_trailing_bytes_are_a_warning():
    assert BatteryLevel.decode(b"\x32\x00\x00") == BatteryLevel(
        Number(50, 0), ("2 trailing byte(s) after the last field ignored",)
    )


def test_encode_example_byte_for_byte():
    assert BatteryLevel(Number(75, 0)).encode() == b"\x4b"
    assert BatteryLevel(Number.from_decimal("75.0")).encode() == b"\x4b"


@pytest.mark.parametrize(
    "level",
    [
        Number(101, 0),
        Number(255, 0),
        Number(-1, 0),
        Number(505, -1),
        Number.special_value(SpecialValue.NAN),
    ],
)
def test_out_of_range_levels_raise_encode_error(level):
    with pytest.raises(EncodeError) as info:
        BatteryLevel(level).encode()
    assert info.value.field == "battery_level"
    assert info.value.characteristic == "Battery Level (0x2A19)"


def test_observation_is_battery_level_in_percent():
    assert BatteryLevel(Number(42, 0)).observations() == (
        Observation("battery_level", Quantity.BATTERY_LEVEL, Number(42, 0), Unit.PERCENT),
    )


def test_as_dict_is_json_ready():
    assert device_profiles.as_dict(BatteryLevel.decode(b"\x5a")) == {
        "battery_level": "90",
        "warnings": [],
    }
