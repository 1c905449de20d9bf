"""Battery Service characteristics.

Field table: GATT Specification Supplement (GSS) section Battery Level (0x2A19).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Self

from device_profiles._errors import EncodeError
from device_profiles._wire import Reader, Writer
from device_profiles.codes import Observation, Quantity
from device_profiles.ieee11073 import Number, Scale
from device_profiles.units import Unit

__all__ = ["BatteryLevel"]

_MAX_PERCENT: Final = 100
_PERCENT: Final = Scale(1, 0)
_LEVELS: Final = tuple(Number(percent, 0) for percent in range(_MAX_PERCENT + 1))


@dataclass(frozen=True, slots=True)
class BatteryLevel:
    """Battery Level (0x2A19): remaining charge in percent, 0 (empty) to 100 (full).

    The GSS reserves 101-255. Such a value is rejected with an invalid_value DecodeError rather
    than kept with a warning: the level is the characteristic's only field, so a warning would
    still hand the gateway a number like 255 % to publish, and there is nothing else to salvage.
    """

    UUID: ClassVar[int] = 0x2A19
    NAME: ClassVar[str] = "Battery Level"
    LABEL: ClassVar[str] = "Battery Level (0x2A19)"

    battery_level: Number
    """Percent of full charge, a whole number from 0 to 100."""
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Battery Level value; a reserved level (101-255) raises DecodeError."""
        reader = Reader(data, cls.LABEL)
        raw = reader.u8("battery_level")
        if raw > _MAX_PERCENT:
            raise reader.invalid("battery_level", 0, f"{raw} % is reserved (allowed: 0..100)")
        return cls(_LEVELS[raw], reader.finish())

    def encode(self) -> bytes:
        """Encode as a Battery Level value; levels outside 0..100 raise EncodeError."""
        writer = Writer(self.LABEL)
        raw = self.battery_level.raw_units(_PERCENT, self.LABEL, "battery_level")
        if raw > _MAX_PERCENT:
            raise EncodeError(self.LABEL, "battery_level", f"{raw} % is above 100")
        writer.u8(raw, "battery_level")
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the battery level with its quantity and unit."""
        return (
            Observation("battery_level", Quantity.BATTERY_LEVEL, self.battery_level, Unit.PERCENT),
        )


CHARACTERISTICS: Final = (BatteryLevel,)
"""The codec classes this module registers."""
