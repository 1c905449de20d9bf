"""Date Time (0x2A08): the 7-byte calendar timestamp that every health measurement embeds.

GATT Specification Supplement, Date Time: Year uint16 (1582..9999, 0 = not known), Month uint8
(1..12, 0 = not known), Day uint8 (1..31, 0 = not known), Hours uint8 (0..23), Minutes uint8
(0..59), Seconds uint8 (0..59). The time is the device's local time, without a zone.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from device_profiles._errors import EncodeError
from device_profiles._wire import Reader, Writer

__all__ = ["DateTime", "read_date_time", "write_date_time"]

_MIN_YEAR: Final = 1582
_MAX_YEAR: Final = 9999
_MAX_MONTH: Final = 12
_MAX_DAY: Final = 31
_MAX_HOURS: Final = 23
_MAX_MINUTES: Final = 59
_MAX_SECONDS: Final = 59
_LEAP_YEAR: Final = 2000


@dataclass(frozen=True, slots=True)
class DateTime:
    """A device timestamp as sent; `timestamp` is None when year, month or day is 0 (unknown)."""

    UUID: ClassVar[int] = 0x2A08
    NAME: ClassVar[str] = "Date Time"
    LABEL: ClassVar[str] = "Date Time (0x2A08)"

    year: int
    month: int
    day: int
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    warnings: tuple[str, ...] = ()
    """Only for a standalone 0x2A08 value; an embedded Date Time has none of its own."""

    @classmethod
    def from_datetime(cls, value: dt.datetime) -> DateTime:
        """Build the GATT form of a (naive, device-local) datetime, dropping sub-seconds."""
        return cls(value.year, value.month, value.day, value.hour, value.minute, value.second)

    @property
    def is_known(self) -> bool:
        """Whether year, month and day are all known."""
        return bool(self.year and self.month and self.day)

    @property
    def timestamp(self) -> dt.datetime | None:
        """The naive device-local datetime, or None when the date is not known."""
        if not (self.year and self.month and self.day):
            return None
        return dt.datetime(  # noqa: DTZ001 - the device sends local time without a zone
            self.year, self.month, self.day, self.hours, self.minutes, self.seconds
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Date Time characteristic value."""
        reader = Reader(data, cls.LABEL)
        value = read_date_time(reader, "date_time")
        return cls(
            value.year,
            value.month,
            value.day,
            value.hours,
            value.minutes,
            value.seconds,
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a Date Time characteristic value."""
        writer = Writer(self.LABEL)
        write_date_time(writer, self, "date_time")
        return writer.bytes()


def read_date_time(reader: Reader, field: str) -> DateTime:
    """Read a 7-byte Date Time at the cursor; an impossible date rejects the whole record."""
    start = reader.offset
    data = reader.take(7, field)
    year = data[0] | (data[1] << 8)
    month, day, hours, minutes, seconds = data[2], data[3], data[4], data[5], data[6]
    problem = _problem(year, month, day, hours, minutes, seconds)
    if problem is not None:
        raise reader.invalid(field, start, problem)
    return DateTime(year, month, day, hours, minutes, seconds)


def write_date_time(writer: Writer, value: DateTime, field: str) -> None:
    """Write a 7-byte Date Time; an impossible date raises EncodeError."""
    problem = _problem(
        value.year, value.month, value.day, value.hours, value.minutes, value.seconds
    )
    if problem is not None:
        raise EncodeError(writer.characteristic, field, problem)
    writer.u16(value.year, field)
    writer.raw(bytes((value.month, value.day, value.hours, value.minutes, value.seconds)))


def _problem(year: int, month: int, day: int, hours: int, minutes: int, seconds: int) -> str | None:
    """Say what is impossible about these fields, or None for a valid (or unknown) date."""
    if year != 0 and not _MIN_YEAR <= year <= _MAX_YEAR:
        return f"year {year} is outside {_MIN_YEAR}..{_MAX_YEAR}"
    if not 0 <= month <= _MAX_MONTH:
        return f"month {month} is outside 1..12"
    if not 0 <= day <= _MAX_DAY:
        return f"day {day} is outside 1..31"
    if not 0 <= hours <= _MAX_HOURS:
        return f"hours {hours} is outside 0..23"
    if not 0 <= minutes <= _MAX_MINUTES:
        return f"minutes {minutes} is outside 0..59"
    if not 0 <= seconds <= _MAX_SECONDS:
        return f"seconds {seconds} is outside 0..59"
    # With the year unknown, 29 February stays possible but 30 February never is.
    if month and day > calendar.monthrange(year or _LEAP_YEAR, month)[1]:
        return f"{year:04d}-{month:02d}-{day:02d} is not a calendar date"
    return None


CHARACTERISTICS: Final = (DateTime,)
"""The codec classes this module registers."""
