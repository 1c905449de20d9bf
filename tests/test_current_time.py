"""Current Time Service codecs against hand-built payloads from the GSS field tables.

Tables followed: GSS "Current Time" (0x2A2B: Exact Time 256, Adjust Reason bits 0-3, bits 4-7
RFU), "Exact Time 256" (Day Date Time, Fractions256), "Day Date Time" (Date Time, Day of Week),
"Day of Week" (0 unknown, 1 Monday .. 7 Sunday, 8-255 RFU), "Local Time Information" (0x2A0F:
Time Zone, DST Offset), "Time Zone" (sint8, 15 min steps, -48..+56, -128 unknown) and "DST
Offset" (0, 2, 4, 8, 255 unknown, others RFU).
"""

from __future__ import annotations

import datetime as dt

import pytest

import device_profiles
from device_profiles import DateTime, DecodeError, EncodeError
from device_profiles.current_time import (
    TIME_ZONE_UNKNOWN,
    AdjustReason,
    CurrentTime,
    DayOfWeek,
    DstOffset,
    LocalTimeInformation,
)

# 2024-03-05 (a Tuesday) 07:30:15, little-endian year first.
DATE_2024_03_05 = bytes([0xE8, 0x07, 3, 5, 7, 30, 15])
DATE_UNKNOWN = bytes([0x00, 0x00, 0, 0, 0, 0, 0])
TUESDAY = bytes([2])
HALF_SECOND = bytes([128])  # 128/256 s
MANUAL = bytes([0x01])


def _error(cls, data):
    with pytest.raises(DecodeError) as info:
        cls.decode(data)
    return info.value


# --- Current Time (0x2A2B) -----------------------------------------------------------------------


def test_current_time_all_fields():
    """Date Time, Day of Week 2, Fractions256 128, Adjust Reason bit 0 (manual time update)."""
    data = DATE_2024_03_05 + TUESDAY + HALF_SECOND + MANUAL
    result = device_profiles.decode("2A2B", data)
    assert result == CurrentTime(
        DateTime(2024, 3, 5, 7, 30, 15),
        DayOfWeek.TUESDAY,
        128,
        AdjustReason.MANUAL_TIME_UPDATE,
    )
    assert result.encode() == data
    assert result.timestamp == dt.datetime(2024, 3, 5, 7, 30, 15, 500000)  # noqa: DTZ001


@pytest.mark.parametrize(
    ("bits", "reason"),
    [
        (0x00, AdjustReason(0)),
        (0x01, AdjustReason.MANUAL_TIME_UPDATE),
        (0x02, AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE),
        (0x04, AdjustReason.CHANGE_OF_TIME_ZONE),
        (0x08, AdjustReason.CHANGE_OF_DST),
        (
            0x0F,
            AdjustReason.MANUAL_TIME_UPDATE
            | AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE
            | AdjustReason.CHANGE_OF_TIME_ZONE
            | AdjustReason.CHANGE_OF_DST,
        ),
    ],
)
def test_every_adjust_reason_bit(bits, reason):
    data = DATE_2024_03_05 + TUESDAY + bytes([0, bits])
    result = CurrentTime.decode(data)
    assert result == CurrentTime(DateTime(2024, 3, 5, 7, 30, 15), DayOfWeek.TUESDAY, 0, reason)
    assert result.encode() == data


@pytest.mark.parametrize("bits", [0x10, 0x20, 0x40, 0x80, 0xF0])
def test_reserved_adjust_reason_bits_are_warnings(bits):
    data = DATE_2024_03_05 + TUESDAY + bytes([0, bits | 0x02])
    assert CurrentTime.decode(data) == CurrentTime(
        DateTime(2024, 3, 5, 7, 30, 15),
        DayOfWeek.TUESDAY,
        0,
        AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE,
        (f"adjust_reason: reserved bits 0x{bits:x} set and ignored",),
    )


# 2024-03-04 is a Monday: one date per Day of Week code.
@pytest.mark.parametrize(
    ("code", "day", "member"),
    [
        (1, 4, DayOfWeek.MONDAY),
        (2, 5, DayOfWeek.TUESDAY),
        (3, 6, DayOfWeek.WEDNESDAY),
        (4, 7, DayOfWeek.THURSDAY),
        (5, 8, DayOfWeek.FRIDAY),
        (6, 9, DayOfWeek.SATURDAY),
        (7, 10, DayOfWeek.SUNDAY),
    ],
)
def test_every_day_of_week_on_its_date(code, day, member):
    data = bytes([0xE8, 0x07, 3, day, 12, 0, 0, code, 0, 0])
    result = CurrentTime.decode(data)
    assert result == CurrentTime(DateTime(2024, 3, day, 12, 0, 0), member)
    assert result.encode() == data


def test_day_of_week_unknown_is_allowed_with_a_known_date():
    data = DATE_2024_03_05 + bytes([0, 0, 0])
    result = CurrentTime.decode(data)
    assert result == CurrentTime(DateTime(2024, 3, 5, 7, 30, 15), DayOfWeek.UNKNOWN)
    assert result.encode() == data


@pytest.mark.parametrize("code", [8, 0x80, 0xFF])
def test_reserved_day_of_week_is_kept(code):
    data = DATE_2024_03_05 + bytes([code, 0, 0])
    result = CurrentTime.decode(data)
    assert result.day_of_week == code
    assert result.day_of_week.is_reserved
    assert result.day_of_week.name == f"RESERVED_{code}"
    assert result.warnings == ()
    assert result.encode() == data


def test_weekday_that_contradicts_the_date_is_a_warning_and_not_encodable():
    # 2024-03-05 is a Tuesday; the device says Friday (5).
    data = DATE_2024_03_05 + bytes([5, 0, 0])
    result = CurrentTime.decode(data)
    assert result == CurrentTime(
        DateTime(2024, 3, 5, 7, 30, 15),
        DayOfWeek.FRIDAY,
        warnings=("day_of_week: FRIDAY but 2024-03-05 is a TUESDAY",),
    )
    with pytest.raises(EncodeError) as info:
        result.encode()
    assert info.value.field == "day_of_week"


def test_any_weekday_goes_with_an_unknown_date():
    data = DATE_UNKNOWN + bytes([3, 0x40, 0x04])
    result = CurrentTime.decode(data)
    assert result == CurrentTime(
        DateTime(0, 0, 0), DayOfWeek.WEDNESDAY, 0x40, AdjustReason.CHANGE_OF_TIME_ZONE
    )
    assert result.timestamp is None
    assert result.encode() == data


@pytest.mark.parametrize(
    ("fractions", "microsecond"), [(0, 0), (1, 3907), (64, 250000), (128, 500000), (255, 996094)]
)
def test_timestamp_carries_fractions256(fractions, microsecond):
    result = CurrentTime(DateTime(2024, 3, 5, 7, 30, 15), DayOfWeek.TUESDAY, fractions)
    assert result.timestamp == dt.datetime(2024, 3, 5, 7, 30, 15, microsecond)  # noqa: DTZ001


@pytest.mark.parametrize(
    ("microsecond", "fractions"), [(0, 0), (3906, 0), (3907, 1), (500000, 128), (999999, 255)]
)
def test_from_datetime_sets_weekday_and_truncated_fractions(microsecond, fractions):
    value = dt.datetime(2024, 3, 10, 23, 59, 59, microsecond)  # noqa: DTZ001 - a Sunday
    result = CurrentTime.from_datetime(value, AdjustReason.CHANGE_OF_DST)
    assert result == CurrentTime(
        DateTime(2024, 3, 10, 23, 59, 59),
        DayOfWeek.SUNDAY,
        fractions,
        AdjustReason.CHANGE_OF_DST,
    )
    assert result.encode() == bytes([0xE8, 0x07, 3, 10, 23, 59, 59, 7, fractions, 0x08])


def test_from_datetime_of_timestamp_gives_every_fraction_back():
    for fractions in range(256):
        result = CurrentTime(DateTime(2024, 3, 5, 7, 30, 15), DayOfWeek.TUESDAY, fractions)
        assert result.timestamp is not None
        assert CurrentTime.from_datetime(result.timestamp) == result


def test_current_time_empty():
    error = _error(CurrentTime, b"")
    assert (error.kind, error.field, error.offset) == ("empty", "date_time", 0)


def test_current_time_truncated_date_time():
    error = _error(CurrentTime, DATE_2024_03_05[:3])
    assert (error.kind, error.field, error.offset) == ("truncated", "date_time", 0)


@pytest.mark.parametrize(
    ("size", "field"), [(7, "day_of_week"), (8, "fractions256"), (9, "adjust_reason")]
)
def test_current_time_missing_fields(size, field):
    data = (DATE_2024_03_05 + TUESDAY + HALF_SECOND + MANUAL)[:size]
    error = _error(CurrentTime, data)
    assert (error.kind, error.field, error.offset) == ("missing_field", field, size)


def test_current_time_impossible_date_is_invalid():
    data = bytes([0xE8, 0x07, 13, 5, 7, 30, 15]) + TUESDAY + HALF_SECOND + MANUAL
    error = _error(CurrentTime, data)
    assert (error.kind, error.field, error.offset) == ("invalid_value", "date_time", 0)


def test_current_time_trailing_bytes_are_a_warning():
    data = DATE_2024_03_05 + TUESDAY + HALF_SECOND + MANUAL + b"\x00\x00"
    result = CurrentTime.decode(data)
    assert result.warnings == ("2 trailing byte(s) after the last field ignored",)
    assert result.fractions256 == 128


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (CurrentTime(DateTime(2024, 3, 5), DayOfWeek.TUESDAY, 256), "fractions256"),
        (CurrentTime(DateTime(2024, 3, 5), DayOfWeek.TUESDAY, -1), "fractions256"),
        (CurrentTime(DateTime(2024, 13, 5)), "date_time"),
        (CurrentTime(DateTime(2024, 2, 30), DayOfWeek.MONDAY), "date_time"),
        (CurrentTime(DateTime(10000, 1, 1), DayOfWeek.MONDAY), "date_time"),
        (CurrentTime(DateTime(2024, 3, 5), DayOfWeek(256)), "day_of_week"),
        (CurrentTime(DateTime(2024, 3, 5), adjust_reason=AdjustReason(0x10)), "adjust_reason"),
    ],
)
def test_current_time_out_of_range_is_an_encode_error(value, field):
    with pytest.raises(EncodeError) as info:
        value.encode()
    assert info.value.field == field


# --- Local Time Information (0x2A0F) -------------------------------------------------------------


def test_local_time_central_european_summer_time():
    """Time Zone +4 (UTC+1:00), DST Offset 4 (daylight time, +1 h): UTC+2."""
    result = device_profiles.decode("2A0F", bytes([0x04, 0x04]))
    assert result == LocalTimeInformation(4, DstOffset.DAYLIGHT_TIME)
    assert result.time_zone_offset == dt.timedelta(hours=1)
    assert result.utc_offset == dt.timedelta(hours=2)
    assert result.encode() == bytes([0x04, 0x04])


def test_local_time_negative_time_zone():
    """Time Zone -20 (sint8 0xEC, UTC-5:00), standard time."""
    result = LocalTimeInformation.decode(bytes([0xEC, 0x00]))
    assert result == LocalTimeInformation(-20, DstOffset.STANDARD_TIME)
    assert result.utc_offset == dt.timedelta(hours=-5)
    assert result.encode() == bytes([0xEC, 0x00])


@pytest.mark.parametrize(
    ("code", "member", "minutes"),
    [
        (0, DstOffset.STANDARD_TIME, 0),
        (2, DstOffset.HALF_AN_HOUR_DAYLIGHT_TIME, 30),
        (4, DstOffset.DAYLIGHT_TIME, 60),
        (8, DstOffset.DOUBLE_DAYLIGHT_TIME, 120),
    ],
)
def test_every_dst_offset(code, member, minutes):
    # Time Zone 22 = UTC+5:30.
    result = LocalTimeInformation.decode(bytes([22, code]))
    assert result == LocalTimeInformation(22, member)
    assert result.dst_offset.offset == dt.timedelta(minutes=minutes)
    assert result.utc_offset == dt.timedelta(hours=5, minutes=30 + minutes)
    assert result.encode() == bytes([22, code])


def test_dst_offset_unknown():
    result = LocalTimeInformation.decode(bytes([0x04, 0xFF]))
    assert result == LocalTimeInformation(4, DstOffset.UNKNOWN)
    assert result.time_zone_offset == dt.timedelta(hours=1)
    assert result.utc_offset is None


@pytest.mark.parametrize("code", [1, 3, 5, 9, 0xFE])
def test_reserved_dst_offset_is_kept(code):
    result = LocalTimeInformation.decode(bytes([0x00, code]))
    assert result.dst_offset == code
    assert result.dst_offset.is_reserved
    assert result.dst_offset.offset is None
    assert result.utc_offset is None
    assert result.warnings == ()
    assert result.encode() == bytes([0x00, code])


def test_time_zone_unknown():
    result = LocalTimeInformation.decode(bytes([0x80, 0x00]))
    assert result == LocalTimeInformation(TIME_ZONE_UNKNOWN, DstOffset.STANDARD_TIME)
    assert result.time_zone == -128
    assert result.time_zone_offset is None
    assert result.utc_offset is None
    assert result.encode() == bytes([0x80, 0x00])


@pytest.mark.parametrize(("raw", "zone", "hours"), [(0xD0, -48, -12), (0x38, 56, 14)])
def test_time_zone_range_ends(raw, zone, hours):
    result = LocalTimeInformation.decode(bytes([raw, 0x00]))
    assert result == LocalTimeInformation(zone, DstOffset.STANDARD_TIME)
    assert result.utc_offset == dt.timedelta(hours=hours)


@pytest.mark.parametrize(("raw", "zone"), [(0xCF, -49), (0x39, 57), (0x7F, 127), (0x81, -127)])
def test_reserved_time_zone_is_kept_with_a_warning(raw, zone):
    result = LocalTimeInformation.decode(bytes([raw, 0x04]))
    assert result == LocalTimeInformation(
        zone,
        DstOffset.DAYLIGHT_TIME,
        (f"time_zone: {zone} is reserved (valid -48..56 or -128)",),
    )
    assert result.time_zone_offset is None
    assert result.utc_offset is None


def test_local_time_empty():
    error = _error(LocalTimeInformation, b"")
    assert (error.kind, error.field, error.offset) == ("empty", "time_zone", 0)


def test_local_time_missing_dst_offset():
    error = _error(LocalTimeInformation, bytes([0x04]))
    assert (error.kind, error.field, error.offset) == ("missing_field", "dst_offset", 1)


def test_local_time_trailing_bytes_are_a_warning():
    result = LocalTimeInformation.decode(bytes([0x04, 0x00, 0x00]))
    assert result == LocalTimeInformation(
        4, DstOffset.STANDARD_TIME, ("1 trailing byte(s) after the last field ignored",)
    )


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (LocalTimeInformation(57), "time_zone"),
        (LocalTimeInformation(-49), "time_zone"),
        (LocalTimeInformation(-129), "time_zone"),
        (LocalTimeInformation(0, DstOffset(256)), "dst_offset"),
    ],
)
def test_local_time_out_of_range_is_an_encode_error(value, field):
    with pytest.raises(EncodeError) as info:
        value.encode()
    assert info.value.field == field
