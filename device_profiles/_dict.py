"""Turn any decoded result into a JSON-ready dict with the GSS field names in snake_case."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from device_profiles.date_time import DateTime
from device_profiles.ieee11073 import Number

__all__ = ["as_dict"]


def as_dict(result: object) -> dict[str, Any]:
    """Return a JSON-ready dict of a decoded result (numbers as exact decimal strings)."""
    if not dataclasses.is_dataclass(result) or isinstance(result, type):
        raise TypeError(f"{type(result).__name__} is not a decoded result")
    return {field.name: _value(getattr(result, field.name)) for field in dataclasses.fields(result)}


def _value(value: object) -> Any:  # noqa: ANN401 - JSON values are of any JSON type
    # Order matters: IntFlag and IntEnum are ints, and bool is an int too.
    if value is None or (isinstance(value, bool | str) and not isinstance(value, enum.Enum)):
        return value
    if isinstance(value, Number):
        return str(value)
    if isinstance(value, DateTime):
        timestamp = value.timestamp
        return {
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hours": value.hours,
            "minutes": value.minutes,
            "seconds": value.seconds,
            "iso": timestamp.isoformat() if timestamp is not None else None,
        }
    if isinstance(value, enum.IntFlag):
        return [member.name.lower() for member in type(value) if member.name and member in value]
    if isinstance(value, enum.StrEnum):
        return value.value
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, int | float):
        return value
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_value(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_dict(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")
