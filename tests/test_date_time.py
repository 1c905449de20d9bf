"""Date Time (0x2A08) against hand-built payloads from the GSS field table.

Table followed: GSS "Date Time": Year uint16 (1582..9999, 0 = not known), Month uint8 (1..12,
0 = not known), Day uint8 (1..31, 0 = not known), Hours uint8 (0..23), Minutes uint8 (0..59),
Seconds uint8 (0..59), all other values reserved; little-endian.
"""

from __future__ import annotations

import datetime as dt

import pytest

import device_profiles
from device_profiles import DateTime, DecodeError, EncodeError
from device_profiles._wire import Reader
from device_profiles.date_time import read_date_time


def _wire(year, month, day, hours=0, minutes=0, seconds=0):
    return year.to_bytes(2, "little") + bytes([month, day, hours, minutes, seconds])


def test_date_time_example():
    data = bytes([0xE8, 0x07, 0x03, 0x05, 0x07, 0x1E, 0x0F])  # 2024-03-05 07:30:15
    result = device_profiles.decode("2A08", data)
    assert result == DateTime(2024, 3, 5, 7, 30, 15)
    assert result.is_known
    assert result.timestamp == dt.datetime(2024, 3, 5, 7, 30, 15)  # noqa: DTZ001
    assert result.encode() == data


@pytest.mark.parametrize(
    "value",
    [
        DateTime(1582, 1, 1, 0, 0, 0),  # first valid year
        DateTime(9999, 12, 31, 23, 59, 59),  # last valid year, every field at its maximum
        DateTime(2024, 2, 29, 12, 0, 0),  # leap day
        DateTime(2000, 2, 29),  # century leap year
        DateTime(2023, 1, 31),
    ],
)
def test_valid_range_ends(value):
    data = _wire(value.year, value.month, value.day, value.hours, value.minutes, value.seconds)
    assert DateTime.decode(data) == value
    assert value.encode() == data
    assert value.timestamp == dt.datetime(  # noqa: DTZ001
        value.year, value.month, value.day, value.hours, value.minutes, value.seconds
    )


@pytest.mark.parametrize(
    "value",
    [
        DateTime(0, 3, 5, 7, 30, 15),  # year not known
        DateTime(2024, 0, 5, 7, 30, 15),  # month not known
        DateTime(2024, 3, 0, 7, 30, 15),  # day not known
        DateTime(0, 0, 0, 0, 0, 0),  # nothing known
        DateTime(0, 2, 29),  # Feb 29 is fine when the year is not known
    ],
)
def test_unknown_fields(value):
    data = _wire(value.year, value.month, value.day, value.hours, value.minutes, value.seconds)
    result = DateTime.decode(data)
    assert result == value
    assert not result.is_known
    assert result.timestamp is None
    assert result.encode() == data


INVALID = [
    ("month_13", _wire(2024, 13, 1), "month 13 is outside 1..12"),
    ("month_255", _wire(2024, 255, 1), "month 255 is outside 1..12"),
    ("day_32", _wire(2024, 1, 32), "day 32 is outside 1..31"),
    ("feb_30", _wire(2024, 2, 30), "2024-02-30 is not a calendar date"),
    ("feb_29_common_year", _wire(2023, 2, 29), "2023-02-29 is not a calendar date"),
    ("feb_29_1900", _wire(1900, 2, 29), "1900-02-29 is not a calendar date"),
    ("apr_31", _wire(2024, 4, 31), "2024-04-31 is not a calendar date"),
    ("hours_24", _wire(2024, 1, 1, 24), "hours 24 is outside 0..23"),
    ("minutes_60", _wire(2024, 1, 1, 0, 60), "minutes 60 is outside 0..59"),
    ("seconds_60", _wire(2024, 1, 1, 0, 0, 60), "seconds 60 is outside 0..59"),
    ("year_1", _wire(1, 1, 1), "year 1 is outside 1582..9999"),
    ("year_1581", _wire(1581, 12, 31), "year 1581 is outside 1582..9999"),
    ("year_10000", _wire(10000, 1, 1), "year 10000 is outside 1582..9999"),
    ("year_65535", _wire(0xFFFF, 1, 1), "year 65535 is outside 1582..9999"),
]


@pytest.mark.parametrize(
    ("data", "detail"), [(d, m) for _, d, m in INVALID], ids=[n for n, _, _ in INVALID]
)
def test_invalid_fields_are_invalid_value(data, detail):
    with pytest.raises(DecodeError) as info:
        DateTime.decode(data)
    error = info.value
    assert (error.kind, error.field, error.offset) == ("invalid_value", "date_time", 0)
    assert error.detail == detail


def test_invalid_date_inside_a_record_points_at_the_date_field():
    # Three bytes of an enclosing record, then 2024-02-30: the error names the embedded field.
    reader = Reader(b"\x01\x02\x03" + _wire(2024, 2, 30), "Some Measurement (0xFFFF)")
    reader.take(3, "header")
    with pytest.raises(DecodeError) as info:
        read_date_time(reader, "timestamp")
    error = info.value
    assert (error.kind, error.field, error.offset) == ("invalid_value", "timestamp", 3)
    assert error.characteristic == "Some Measurement (0xFFFF)"


def test_empty():
    with pytest.raises(DecodeError) as info:
        DateTime.decode(b"")
    assert (info.value.kind, info.value.field, info.value.offset) == ("empty", "date_time", 0)


@pytest.mark.parametrize("size", [1, 3, 6])
def test_truncated(size):
    with pytest.raises(DecodeError) as info:
        DateTime.decode(_wire(2024, 3, 5)[:size])
    assert (info.value.kind, info.value.field, info.value.offset) == ("truncated", "date_time", 0)


def test_trailing_bytes_are_reported():
    result = DateTime.decode(_wire(2024, 3, 5) + b"\x00")
    assert result.warnings == ("1 trailing byte(s) after the last field ignored",)
    assert result.timestamp == dt.datetime(2024, 3, 5)  # noqa: DTZ001


@pytest.mark.parametrize(("month", "day"), [(2, 30), (4, 31), (6, 31), (9, 31), (11, 31)])
def test_impossible_day_of_month_is_rejected_even_with_unknown_year(month, day):
    with pytest.raises(DecodeError) as info:
        DateTime.decode(_wire(0, month, day))
    assert (info.value.kind, info.value.offset) == ("invalid_value", 0)


def test_29_february_with_unknown_year_is_possible():
    assert DateTime.decode(_wire(0, 2, 29)) == DateTime(0, 2, 29, 0, 0, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2024, 3, 5, 7, 30, 15, 999999), DateTime(2024, 3, 5, 7, 30, 15)),  # noqa: DTZ001
        (dt.datetime(1582, 1, 1), DateTime(1582, 1, 1, 0, 0, 0)),  # noqa: DTZ001
        (dt.datetime(9999, 12, 31, 23, 59, 59), DateTime(9999, 12, 31, 23, 59, 59)),  # noqa: DTZ001
    ],
)
def test_from_datetime_drops_sub_seconds(value, expected):
    result = DateTime.from_datetime(value)
    assert result == expected
    assert result.timestamp == value.replace(microsecond=0)


def test_from_datetime_before_1582_cannot_be_encoded():
    result = DateTime.from_datetime(dt.datetime(1581, 12, 31))  # noqa: DTZ001
    with pytest.raises(EncodeError) as info:
        result.encode()
    assert info.value.field == "date_time"


@pytest.mark.parametrize(
    "value",
    [
        DateTime(2024, 13, 1),
        DateTime(2024, 1, 32),
        DateTime(2024, 2, 30),
        DateTime(1581, 1, 1),
        DateTime(10000, 1, 1),
        DateTime(2024, 1, 1, 24),
        DateTime(2024, 1, 1, 0, 60),
        DateTime(2024, 1, 1, 0, 0, 60),
        DateTime(2024, -1, 1),
        DateTime(2024, 1, 1, -1),
    ],
)
def test_invalid_values_are_an_encode_error(value):
    with pytest.raises(EncodeError) as info:
        value.encode()
    assert info.value.field == "date_time"
