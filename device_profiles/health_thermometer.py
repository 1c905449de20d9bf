"""Health Thermometer Service 1.0 characteristics.

Field tables: GATT Specification Supplement (GSS) sections Temperature Measurement (0x2A1C),
Temperature Type (0x2A1D), Intermediate Temperature (0x2A1E) and Measurement Interval (0x2A21).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Self

from device_profiles._enums import CodeEnum
from device_profiles._errors import EncodeError
from device_profiles._wire import Reader, Writer
from device_profiles.codes import Observation, Quantity
from device_profiles.date_time import DateTime, read_date_time, write_date_time
from device_profiles.units import Unit

if TYPE_CHECKING:
    from device_profiles.ieee11073 import Number

__all__ = [
    "NO_PERIODIC_MEASUREMENT",
    "IntermediateTemperature",
    "MeasurementInterval",
    "TemperatureMeasurement",
    "TemperatureType",
    "TemperatureTypeDescription",
]

NO_PERIODIC_MEASUREMENT: Final = 0
"""Measurement Interval 0: the thermometer does not measure periodically."""

# Flags of 0x2A1C/0x2A1E (GSS "Flags" field); bits 3-7 are reserved.
_FAHRENHEIT: Final = 0x01
_TIME_STAMP: Final = 0x02
_TEMPERATURE_TYPE: Final = 0x04
_KNOWN_FLAGS: Final = 0x07


class TemperatureTypeDescription(CodeEnum):
    """Where on the body the temperature is taken (GSS 0x2A1D); 0 and 10-255 are reserved."""

    ARMPIT = 1
    BODY_GENERAL = 2
    EAR = 3
    FINGER = 4
    GASTRO_INTESTINAL_TRACT = 5
    MOUTH = 6
    RECTUM = 7
    TOE = 8
    TYMPANUM = 9


# Every uint8 code resolved once, reserved ones included: decoding is then a tuple lookup.
_TYPES: Final = tuple(TemperatureTypeDescription(code) for code in range(256))


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    """Temperature Measurement (0x2A1C): one completed (stable) temperature reading."""

    UUID: ClassVar[int] = 0x2A1C
    NAME: ClassVar[str] = "Temperature Measurement"
    LABEL: ClassVar[str] = "Temperature Measurement (0x2A1C)"

    temperature_measurement_value: Number
    unit: Unit = Unit.CELSIUS
    timestamp: DateTime | None = None
    temperature_type: TemperatureTypeDescription | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Temperature Measurement value (GSS 0x2A1C field table)."""
        reader = Reader(data, cls.LABEL)
        return cls(*_read_temperature(reader, "temperature_measurement_value"), reader.finish())

    def encode(self) -> bytes:
        """Encode as a Temperature Measurement value."""
        writer = Writer(self.LABEL)
        _write_temperature(
            writer,
            "temperature_measurement_value",
            self.temperature_measurement_value,
            self.unit,
            self.timestamp,
            self.temperature_type,
        )
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured temperature with its quantity and unit."""
        return (
            Observation(
                "temperature_measurement_value",
                Quantity.BODY_TEMPERATURE,
                self.temperature_measurement_value,
                self.unit,
            ),
        )


@dataclass(frozen=True, slots=True)
class IntermediateTemperature:
    """Intermediate Temperature (0x2A1E): a reading shown while the measurement is in progress.

    Same layout as 0x2A1C; the GSS names the value field "Intermediate Temperature".
    """

    UUID: ClassVar[int] = 0x2A1E
    NAME: ClassVar[str] = "Intermediate Temperature"
    LABEL: ClassVar[str] = "Intermediate Temperature (0x2A1E)"

    intermediate_temperature: Number
    unit: Unit = Unit.CELSIUS
    timestamp: DateTime | None = None
    temperature_type: TemperatureTypeDescription | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode an Intermediate Temperature value (GSS 0x2A1E field table)."""
        reader = Reader(data, cls.LABEL)
        return cls(*_read_temperature(reader, "intermediate_temperature"), reader.finish())

    def encode(self) -> bytes:
        """Encode as an Intermediate Temperature value."""
        writer = Writer(self.LABEL)
        _write_temperature(
            writer,
            "intermediate_temperature",
            self.intermediate_temperature,
            self.unit,
            self.timestamp,
            self.temperature_type,
        )
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the intermediate temperature with its quantity and unit."""
        return (
            Observation(
                "intermediate_temperature",
                Quantity.BODY_TEMPERATURE,
                self.intermediate_temperature,
                self.unit,
            ),
        )


def _read_temperature(
    reader: Reader, value_field: str
) -> tuple[Number, Unit, DateTime | None, TemperatureTypeDescription | None]:
    flags = reader.flags(reader.u8("flags"), _KNOWN_FLAGS, "flags")
    value = reader.float32(value_field)
    timestamp = read_date_time(reader, "timestamp") if flags & _TIME_STAMP else None
    kind = _TYPES[reader.u8("temperature_type")] if flags & _TEMPERATURE_TYPE else None
    return value, Unit.FAHRENHEIT if flags & _FAHRENHEIT else Unit.CELSIUS, timestamp, kind


def _write_temperature(
    writer: Writer,
    value_field: str,
    value: Number,
    unit: Unit,
    timestamp: DateTime | None,
    temperature_type: TemperatureTypeDescription | None,
) -> None:
    if unit is Unit.CELSIUS:
        flags = 0
    elif unit is Unit.FAHRENHEIT:
        flags = _FAHRENHEIT
    else:
        raise EncodeError(writer.characteristic, "unit", f"{unit.value} is not Cel or [degF]")
    if timestamp is not None:
        flags |= _TIME_STAMP
    if temperature_type is not None:
        flags |= _TEMPERATURE_TYPE
    writer.u8(flags, "flags")
    writer.float32(value, value_field)
    if timestamp is not None:
        write_date_time(writer, timestamp, "timestamp")
    if temperature_type is not None:
        writer.u8(temperature_type, "temperature_type")


@dataclass(frozen=True, slots=True)
class TemperatureType:
    """Temperature Type (0x2A1D): the fixed measurement site of a thermometer."""

    UUID: ClassVar[int] = 0x2A1D
    NAME: ClassVar[str] = "Temperature Type"
    LABEL: ClassVar[str] = "Temperature Type (0x2A1D)"

    temperature_type_description: TemperatureTypeDescription
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Temperature Type value."""
        reader = Reader(data, cls.LABEL)
        description = _TYPES[reader.u8("temperature_type_description")]
        return cls(description, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Temperature Type value."""
        writer = Writer(self.LABEL)
        writer.u8(self.temperature_type_description, "temperature_type_description")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class MeasurementInterval:
    """Measurement Interval (0x2A21): seconds between periodic measurements, 0 for none."""

    UUID: ClassVar[int] = 0x2A21
    NAME: ClassVar[str] = "Measurement Interval"
    LABEL: ClassVar[str] = "Measurement Interval (0x2A21)"

    measurement_interval_s: int
    """Seconds between measurements; NO_PERIODIC_MEASUREMENT (0) when there are none."""
    warnings: tuple[str, ...] = ()

    @property
    def is_periodic(self) -> bool:
        """Whether the thermometer measures periodically (the interval is not 0)."""
        return self.measurement_interval_s != NO_PERIODIC_MEASUREMENT

    @property
    def interval(self) -> dt.timedelta | None:
        """The interval as a timedelta, or None when there is no periodic measurement."""
        if self.measurement_interval_s == NO_PERIODIC_MEASUREMENT:
            return None
        return dt.timedelta(seconds=self.measurement_interval_s)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Measurement Interval value."""
        reader = Reader(data, cls.LABEL)
        seconds = reader.u16("measurement_interval")
        return cls(seconds, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Measurement Interval value."""
        writer = Writer(self.LABEL)
        writer.u16(self.measurement_interval_s, "measurement_interval")
        return writer.bytes()


CHARACTERISTICS: Final = (
    TemperatureMeasurement,
    TemperatureType,
    IntermediateTemperature,
    MeasurementInterval,
)
"""The codec classes this module registers."""
