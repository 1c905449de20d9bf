"""Little-endian field readers and writers that turn a short or bad payload into a typed error."""

from __future__ import annotations

import struct
from typing import Final

from device_profiles._errors import DecodeError, EncodeError, ErrorKind
from device_profiles.ieee11073 import (
    Number,
    Scale,
    SpecialValue,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)

__all__ = ["Reader", "Writer"]

_U16: Final = struct.Struct("<H")
_S16: Final = struct.Struct("<h")
_U32: Final = struct.Struct("<I")
_UNSUCCESSFUL_U16: Final = 0xFFFF


class Reader:
    """A cursor over one characteristic payload; each read names its field for the error."""

    __slots__ = ("characteristic", "data", "offset", "warnings")

    def __init__(self, data: bytes, characteristic: str) -> None:
        self.data = bytes(data)
        self.characteristic = characteristic
        self.offset = 0
        self.warnings: list[str] = []

    def _need(self, size: int, field: str) -> int:
        """Return the offset of a field of `size` bytes, raising the right error if it is short."""
        offset = self.offset
        left = len(self.data) - offset
        if left >= size:
            self.offset = offset + size
            return offset
        if not self.data:
            kind = ErrorKind.EMPTY
            detail = "the payload is empty"
        elif left <= 0:
            kind = ErrorKind.MISSING_FIELD
            detail = f"needs {size} bytes, the payload ended"
        else:
            kind = ErrorKind.TRUNCATED
            detail = f"needs {size} bytes, {left} left"
        raise DecodeError(self.characteristic, field, offset, kind, detail)

    @property
    def remaining(self) -> int:
        """How many bytes are left after the cursor."""
        return len(self.data) - self.offset

    def u8(self, field: str) -> int:
        """Read an unsigned 8-bit integer."""
        return self.data[self._need(1, field)]

    def s8(self, field: str) -> int:
        """Read a signed 8-bit integer."""
        value = self.data[self._need(1, field)]
        return value - 0x100 if value & 0x80 else value

    def u16(self, field: str) -> int:
        """Read an unsigned little-endian 16-bit integer."""
        return int(_U16.unpack_from(self.data, self._need(2, field))[0])

    def s16(self, field: str) -> int:
        """Read a signed little-endian 16-bit integer."""
        return int(_S16.unpack_from(self.data, self._need(2, field))[0])

    def u24(self, field: str) -> int:
        """Read an unsigned little-endian 24-bit integer."""
        offset = self._need(3, field)
        return int.from_bytes(self.data[offset : offset + 3], "little")

    def u32(self, field: str) -> int:
        """Read an unsigned little-endian 32-bit integer."""
        return int(_U32.unpack_from(self.data, self._need(4, field))[0])

    def uint(self, size: int, field: str) -> int:
        """Read an unsigned little-endian integer of `size` bytes."""
        offset = self._need(size, field)
        return int.from_bytes(self.data[offset : offset + size], "little")

    def sfloat(self, field: str) -> Number:
        """Read an IEEE 11073 16-bit SFLOAT."""
        return decode_sfloat(_U16.unpack_from(self.data, self._need(2, field))[0])

    def float32(self, field: str) -> Number:
        """Read an IEEE 11073 32-bit FLOAT."""
        return decode_float(_U32.unpack_from(self.data, self._need(4, field))[0])

    def fixed_u16(self, field: str, scale: Scale, *, unsuccessful: bool = False) -> Number:
        """Read a fixed-point uint16; with `unsuccessful`, 0xFFFF is "measurement unsuccessful"."""
        raw = int(_U16.unpack_from(self.data, self._need(2, field))[0])
        if unsuccessful and raw == _UNSUCCESSFUL_U16:
            return Number(0, 0, SpecialValue.MEASUREMENT_UNSUCCESSFUL)
        return Number(raw * scale.step, scale.exponent, None, scale.step)

    def take(self, size: int, field: str) -> bytes:
        """Read `size` raw bytes."""
        offset = self._need(size, field)
        return self.data[offset : offset + size]

    def rest(self) -> bytes:
        """Read every byte left (a variable-length last field)."""
        offset = self.offset
        self.offset = len(self.data)
        return self.data[offset:]

    def utf8_rest(self, field: str) -> str:
        """Read every byte left as UTF-8 text (a GATT utf8s field), trailing NULs dropped."""
        offset = self.offset
        raw = self.rest()
        try:
            # Some devices pad fixed-size buffers with NULs; they are not part of the text.
            return raw.rstrip(b"\x00").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(
                self.characteristic,
                field,
                offset + exc.start,
                ErrorKind.INVALID_VALUE,
                "not valid UTF-8",
            ) from exc

    def invalid(self, field: str, offset: int, detail: str) -> DecodeError:
        """Build the error for a complete field whose value the specification forbids."""
        return DecodeError(self.characteristic, field, offset, ErrorKind.INVALID_VALUE, detail)

    def flags(self, raw: int, known_mask: int, field: str) -> int:
        """Keep the defined bits of a flag field; note reserved bits that are set in warnings."""
        reserved = raw & ~known_mask
        if reserved:
            self.warnings.append(f"{field}: reserved bits 0x{reserved:x} set and ignored")
        return raw & known_mask

    def finish(self) -> tuple[str, ...]:
        """Note whole trailing bytes after the last field and return the warnings as a tuple."""
        left = len(self.data) - self.offset
        if left > 0:
            self.warnings.append(f"{left} trailing byte(s) after the last field ignored")
        return tuple(self.warnings)


class Writer:
    """Builds one characteristic payload; values out of a field's range raise EncodeError."""

    __slots__ = ("buffer", "characteristic")

    def __init__(self, characteristic: str) -> None:
        self.characteristic = characteristic
        self.buffer = bytearray()

    def _int(self, value: int, size: int, field: str, *, signed: bool = False) -> None:
        try:
            self.buffer += value.to_bytes(size, "little", signed=signed)
        except (OverflowError, AttributeError) as exc:
            raise EncodeError(
                self.characteristic, field, f"{value!r} does not fit in {size * 8} bits"
            ) from exc

    def u8(self, value: int, field: str) -> None:
        """Write an unsigned 8-bit integer."""
        self._int(value, 1, field)

    def s8(self, value: int, field: str) -> None:
        """Write a signed 8-bit integer."""
        self._int(value, 1, field, signed=True)

    def u16(self, value: int, field: str) -> None:
        """Write an unsigned little-endian 16-bit integer."""
        self._int(value, 2, field)

    def s16(self, value: int, field: str) -> None:
        """Write a signed little-endian 16-bit integer."""
        self._int(value, 2, field, signed=True)

    def u24(self, value: int, field: str) -> None:
        """Write an unsigned little-endian 24-bit integer."""
        self._int(value, 3, field)

    def u32(self, value: int, field: str) -> None:
        """Write an unsigned little-endian 32-bit integer."""
        self._int(value, 4, field)

    def uint(self, value: int, size: int, field: str) -> None:
        """Write an unsigned little-endian integer of `size` bytes."""
        self._int(value, size, field)

    def sfloat(self, number: Number, field: str) -> None:
        """Write an IEEE 11073 16-bit SFLOAT."""
        self.buffer += _U16.pack(encode_sfloat(number, self.characteristic, field))

    def float32(self, number: Number, field: str) -> None:
        """Write an IEEE 11073 32-bit FLOAT."""
        self.buffer += _U32.pack(encode_float(number, self.characteristic, field))

    def fixed_u16(
        self, number: Number, field: str, scale: Scale, *, unsuccessful: bool = False
    ) -> None:
        """Write a fixed-point uint16; with `unsuccessful`, that special value becomes 0xFFFF."""
        if unsuccessful and number.special is SpecialValue.MEASUREMENT_UNSUCCESSFUL:
            self.buffer += _U16.pack(_UNSUCCESSFUL_U16)
            return
        raw = number.raw_units(scale, self.characteristic, field)
        if unsuccessful and raw == _UNSUCCESSFUL_U16:
            raise EncodeError(
                self.characteristic, field, "0xFFFF is reserved for 'measurement unsuccessful'"
            )
        self._int(raw, 2, field)

    def raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.buffer += data

    def utf8(self, text: str) -> None:
        """Write text as UTF-8 (a GATT utf8s field)."""
        self.buffer += text.encode("utf-8")

    def bytes(self) -> bytes:
        """Return the payload built so far."""
        return bytes(self.buffer)
