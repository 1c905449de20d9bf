"""Current Time Service 1.1 characteristics: Current Time (0x2A2B), Local Time Information (0x2A0F).

Field tables: GATT Specification Supplement (GSS) sections Current Time (Exact Time 256 + Adjust
Reason), Exact Time 256 (Day Date Time + Fractions256), Day Date Time (Date Time + Day of Week),
Day of Week, Local Time Information (Time Zone + DST Offset), Time Zone and DST Offset.

Reserved values: a reserved Day of Week or DST Offset code is kept as a `RESERVED_<n>` member.
Reserved Adjust Reason bits are dropped with a warning. A Time Zone outside -48..+56 (other than
-128) and a Day of Week that contradicts a known date are kept as sent, with a warning. `encode`
refuses to write what `decode` would warn about, so every value it writes reads back unchanged.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from device_profiles._enums import CodeEnum
from device_profiles._errors import EncodeError
from device_profiles._wire import Reader, Writer
from device_profiles.date_time import DateTime, read_date_time, write_date_time

__all__ = [
    "TIME_ZONE_UNKNOWN",
    "AdjustReason",
    "CurrentTime",
    "DayOfWeek",
    "DstOffset",
    "LocalTimeInformation",
]

TIME_ZONE_UNKNOWN: Final = -128
"""Time Zone -128: the device does not know its offset from UTC."""

_ADJUST_REASON_BITS: Final = 0x0F
_TIME_ZONE_MIN: Final = -48
_TIME_ZONE_MAX: Final = 56
_TIME_ZONE_STEP: Final = dt.timedelta(minutes=15)
_MICROSECONDS: Final = 1_000_000
_FRACTIONS: Final = 256


class DayOfWeek(CodeEnum):
    """Day of Week (GSS 0x2A09): ISO 8601 weekday numbers; 8-255 are reserved."""

    UNKNOWN = 0
    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7


class AdjustReason(enum.IntFlag):
    """Adjust Reason bits of Current Time (GSS 0x2A2B); bits 4-7 are reserved."""

    MANUAL_TIME_UPDATE = 0x01
    EXTERNAL_REFERENCE_TIME_UPDATE = 0x02
    CHANGE_OF_TIME_ZONE = 0x04
    CHANGE_OF_DST = 0x08


class DstOffset(CodeEnum):
    """DST Offset (GSS 0x2A0D) in 15-minute steps; 255 is unknown, every other code reserved."""

    STANDARD_TIME = 0
    HALF_AN_HOUR_DAYLIGHT_TIME = 2
    DAYLIGHT_TIME = 4
    DOUBLE_DAYLIGHT_TIME = 8
    UNKNOWN = 255

    @property
    def offset(self) -> dt.timedelta | None:
        """The daylight saving offset, or None when unknown or reserved."""
        if self is DstOffset.UNKNOWN or self.is_reserved:
            return None
        return int(self) * _TIME_ZONE_STEP


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """Current Time (0x2A2B): the device clock (Exact Time 256) and why it was last adjusted."""

    UUID: ClassVar[int] = 0x2A2B
    NAME: ClassVar[str] = "Current Time"
    LABEL: ClassVar[str] = "Current Time (0x2A2B)"

    date_time: DateTime
    day_of_week: DayOfWeek = DayOfWeek.UNKNOWN
    fractions256: int = 0
    """Fractions of the second in 1/256 s, 0..255."""
    adjust_reason: AdjustReason = AdjustReason(0)  # noqa: RUF009 - an immutable flag value
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_datetime(
        cls,
        value: dt.datetime,
        adjust_reason: AdjustReason = AdjustReason(0),  # noqa: B008 - an immutable flag value
    ) -> Self:
        """Build the Current Time of a naive device-local datetime (weekday and 1/256 s set)."""
        return cls(
            DateTime.from_datetime(value),
            DayOfWeek(value.isoweekday()),
            # Truncate: the fraction that has started, never one that rounds into the next second.
            value.microsecond * _FRACTIONS // _MICROSECONDS,
            adjust_reason,
        )

    @property
    def timestamp(self) -> dt.datetime | None:
        """The naive device-local datetime with its fraction, or None when the date is unknown.

        The microsecond is the first whole one inside the 1/256 s step, so `from_datetime` of the
        result gives the same Fractions256 back.
        """
        base = self.date_time.timestamp
        if base is None:
            return None
        return base.replace(microsecond=-(-self.fractions256 * _MICROSECONDS // _FRACTIONS))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Current Time value (GSS 0x2A2B, Exact Time 256 and Day Date Time tables)."""
        reader = Reader(data, cls.LABEL)
        date_time = read_date_time(reader, "date_time")
        day_of_week = DayOfWeek(reader.u8("day_of_week"))
        fractions256 = reader.u8("fractions256")
        raw_reason = reader.u8("adjust_reason")
        adjust_reason = AdjustReason(reader.flags(raw_reason, _ADJUST_REASON_BITS, "adjust_reason"))
        mismatch = _weekday_mismatch(date_time, day_of_week)
        if mismatch is not None:
            reader.warnings.append(f"day_of_week: {mismatch}")
        return cls(date_time, day_of_week, fractions256, adjust_reason, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Current Time value."""
        writer = Writer(self.LABEL)
        # The date is checked first: the weekday check below needs a real calendar date.
        write_date_time(writer, self.date_time, "date_time")
        mismatch = _weekday_mismatch(self.date_time, self.day_of_week)
        if mismatch is not None:
            raise EncodeError(self.LABEL, "day_of_week", mismatch)
        if int(self.adjust_reason) & ~_ADJUST_REASON_BITS:
            raise EncodeError(self.LABEL, "adjust_reason", "bits 4-7 are reserved")
        writer.u8(self.day_of_week, "day_of_week")
        writer.u8(self.fractions256, "fractions256")
        writer.u8(self.adjust_reason, "adjust_reason")
        return writer.bytes()


def _weekday_mismatch(date_time: DateTime, day_of_week: DayOfWeek) -> str | None:
    """Say how a known weekday contradicts a known date, or None when they agree (or can't)."""
    if not (DayOfWeek.MONDAY <= day_of_week <= DayOfWeek.SUNDAY and date_time.is_known):
        return None
    date = dt.date(date_time.year, date_time.month, date_time.day)
    weekday = date.isoweekday()
    if weekday == day_of_week:
        return None
    return f"{day_of_week.name} but {date.isoformat()} is a {DayOfWeek(weekday).name}"


@dataclass(frozen=True, slots=True)
class LocalTimeInformation:
    """Local Time Information (0x2A0F): the device's standard time zone and DST offset."""

    UUID: ClassVar[int] = 0x2A0F
    NAME: ClassVar[str] = "Local Time Information"
    LABEL: ClassVar[str] = "Local Time Information (0x2A0F)"

    time_zone: int
    """Standard-time offset from UTC in 15-minute steps (-48..+56), or -128 when unknown."""
    dst_offset: DstOffset = DstOffset.STANDARD_TIME
    warnings: tuple[str, ...] = ()

    @property
    def time_zone_offset(self) -> dt.timedelta | None:
        """The standard-time offset from UTC, or None when unknown or reserved."""
        if not _TIME_ZONE_MIN <= self.time_zone <= _TIME_ZONE_MAX:
            return None
        return self.time_zone * _TIME_ZONE_STEP

    @property
    def utc_offset(self) -> dt.timedelta | None:
        """Local time minus UTC (time zone plus DST), or None when either part is unknown."""
        standard = self.time_zone_offset
        daylight = self.dst_offset.offset
        if standard is None or daylight is None:
            return None
        return standard + daylight

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Local Time Information value (GSS 0x2A0F, Time Zone and DST Offset tables)."""
        reader = Reader(data, cls.LABEL)
        time_zone = reader.s8("time_zone")
        dst_offset = DstOffset(reader.u8("dst_offset"))
        # A reserved time zone is kept as sent rather than rejected: the DST offset beside it is
        # still usable, and a newer device may use a range this version calls reserved.
        if time_zone != TIME_ZONE_UNKNOWN and not _TIME_ZONE_MIN <= time_zone <= _TIME_ZONE_MAX:
            reader.warnings.append(f"time_zone: {time_zone} is reserved (valid -48..56 or -128)")
        return cls(time_zone, dst_offset, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Local Time Information value; a reserved time zone raises EncodeError."""
        writer = Writer(self.LABEL)
        time_zone = self.time_zone
        if time_zone != TIME_ZONE_UNKNOWN and not _TIME_ZONE_MIN <= time_zone <= _TIME_ZONE_MAX:
            raise EncodeError(self.LABEL, "time_zone", f"{time_zone} is outside -48..56 and -128")
        writer.s8(time_zone, "time_zone")
        writer.u8(self.dst_offset, "dst_offset")
        return writer.bytes()


CHARACTERISTICS: Final = (CurrentTime, LocalTimeInformation)
"""The codec classes this module registers."""
