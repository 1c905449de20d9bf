"""Bluetooth SIG health profiles as pure, exact codecs: bytes in, typed immutable results out.

`decode(characteristic_uuid, data)` picks the codec by UUID; every result has `encode()`, and
`as_dict(result)` gives its JSON-ready form. Malformed bytes raise `DecodeError` (a ValueError)
naming the characteristic, field, byte offset and kind of problem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from device_profiles._dict import as_dict
from device_profiles._errors import DecodeError, EncodeError, ErrorKind, UnknownCharacteristicError
from device_profiles._registry import (
    CHARACTERISTICS,
    SERVICES,
    Characteristic,
    codec_for,
    parse_uuid,
)
from device_profiles.codes import CODES, CodeEntry, Observation, Quantity
from device_profiles.date_time import DateTime
from device_profiles.ieee11073 import Number, Scale, SpecialValue
from device_profiles.units import Unit, convert, to_canonical

if TYPE_CHECKING:
    import uuid

__all__ = [
    "CHARACTERISTICS",
    "CODES",
    "SERVICES",
    "Characteristic",
    "CodeEntry",
    "DateTime",
    "DecodeError",
    "EncodeError",
    "ErrorKind",
    "Number",
    "Observation",
    "Quantity",
    "Scale",
    "SpecialValue",
    "Unit",
    "UnknownCharacteristicError",
    "as_dict",
    "codec_for",
    "convert",
    "decode",
    "encode",
    "parse_uuid",
    "to_canonical",
]


def decode(characteristic_uuid: int | str | uuid.UUID, data: bytes | bytearray) -> Any:  # noqa: ANN401
    """Decode a characteristic value by its UUID (0x2A35, "2A35", "0x2a35" or the full UUID)."""
    return codec_for(characteristic_uuid).decode(bytes(data))


def encode(result: Characteristic) -> bytes:
    """Encode a decoded (or hand-built) result back into its characteristic value."""
    return result.encode()
