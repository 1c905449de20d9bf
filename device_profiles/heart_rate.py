"""Heart Rate Service 1.0 characteristics.

Field tables: GATT Specification Supplement (GSS) sections Heart Rate Measurement (0x2A37) and
Body Sensor Location (0x2A38); units and the RR-Interval resolution from the Heart Rate Service
1.0 specification, section 3.1.1.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from device_profiles._enums import CodeEnum
from device_profiles._errors import EncodeError
from device_profiles._wire import Reader, Writer
from device_profiles.codes import Observation, Quantity
from device_profiles.ieee11073 import Number, Scale
from device_profiles.units import Unit

__all__ = [
    "BodySensorLocation",
    "HeartRateMeasurement",
    "HeartRateValueFormat",
    "SensorContactStatus",
    "SensorLocation",
]

# Flags of 0x2A37 (GSS "Flags" field); bits 5-7 are reserved.
_UINT16_FORMAT: Final = 0x01
_CONTACT_SHIFT: Final = 1
_ENERGY_EXPENDED: Final = 0x08
_RR_INTERVAL: Final = 0x10
_KNOWN_FLAGS: Final = 0x1F

_UINT8_MAX: Final = 0xFF
_WHOLE: Final = Scale(1, 0)
# 1/1024 s is exactly 9765625 * 10**-10 s, so every RR interval stays an exact decimal.
_RR_SCALE: Final = Scale(9765625, -10)
_UINT8_NUMBERS: Final = tuple(Number(value, 0) for value in range(256))


class HeartRateValueFormat(enum.IntEnum):
    """Heart Rate Value Format bit (Flags bit 0): the width of the heart rate field."""

    UINT8 = 0
    UINT16 = 1


class SensorContactStatus(enum.IntEnum):
    """Sensor Contact Status bits (Flags bits 1-2); values are the wire codes.

    Codes 0 and 1 both mean "not supported in the current connection"; which one was sent is
    kept in `HeartRateMeasurement.not_supported_code`.
    """

    NOT_SUPPORTED = 0
    NOT_DETECTED = 2
    DETECTED = 3


# Indexed by the 2-bit code: the status and which "not supported" code carried it.
_CONTACT: Final = (
    (SensorContactStatus.NOT_SUPPORTED, 0),
    (SensorContactStatus.NOT_SUPPORTED, 1),
    (SensorContactStatus.NOT_DETECTED, 0),
    (SensorContactStatus.DETECTED, 0),
)


class SensorLocation(CodeEnum):
    """Body Sensor Location values (GSS 0x2A38); 7-255 are reserved."""

    OTHER = 0
    CHEST = 1
    WRIST = 2
    FINGER = 3
    HAND = 4
    EAR_LOBE = 5
    FOOT = 6


# Every uint8 code resolved once, reserved ones included: decoding is then a tuple lookup.
_LOCATIONS: Final = tuple(SensorLocation(code) for code in range(256))


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """Heart Rate Measurement (0x2A37): heart rate, contact, energy and RR intervals.

    `rr_interval` holds the RR-Interval values in seconds, oldest first; it is empty when the
    RR-Interval flag is clear. A set flag announces at least one value, and the values run to
    the end of the payload, so an odd byte left at the end is a truncated RR interval.
    """

    UUID: ClassVar[int] = 0x2A37
    NAME: ClassVar[str] = "Heart Rate Measurement"
    LABEL: ClassVar[str] = "Heart Rate Measurement (0x2A37)"

    heart_rate_measurement_value: Number
    """Beats per minute."""
    heart_rate_value_format: HeartRateValueFormat = HeartRateValueFormat.UINT8
    sensor_contact_status: SensorContactStatus = SensorContactStatus.NOT_SUPPORTED
    energy_expended: Number | None = None
    """Kilojoules since the last reset; it stays at 65535 once reached, until a reset."""
    rr_interval: tuple[Number, ...] = ()
    not_supported_code: int = 0
    """The wire code (0 or 1) of a NOT_SUPPORTED contact status, kept for an exact re-encode."""
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Heart Rate Measurement value (GSS 0x2A37 field table)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u8("flags"), _KNOWN_FLAGS, "flags")
        if flags & _UINT16_FORMAT:
            value_format = HeartRateValueFormat.UINT16
            value = reader.fixed_u16("heart_rate_measurement_value", _WHOLE)
        else:
            value_format = HeartRateValueFormat.UINT8
            value = _UINT8_NUMBERS[reader.u8("heart_rate_measurement_value")]
        contact, not_supported_code = _CONTACT[flags >> _CONTACT_SHIFT & 0x03]
        energy = reader.fixed_u16("energy_expended", _WHOLE) if flags & _ENERGY_EXPENDED else None
        intervals: tuple[Number, ...] = ()
        if flags & _RR_INTERVAL:
            found = [reader.fixed_u16("rr_interval", _RR_SCALE)]
            while reader.remaining:
                found.append(reader.fixed_u16("rr_interval", _RR_SCALE))
            intervals = tuple(found)
        return cls(
            value,
            value_format,
            contact,
            energy,
            intervals,
            not_supported_code,
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a Heart Rate Measurement value (flags follow the fields present)."""
        writer = Writer(self.LABEL)
        label = self.LABEL
        raw = self.heart_rate_measurement_value.raw_units(
            _WHOLE, label, "heart_rate_measurement_value"
        )
        uint16 = self.heart_rate_value_format is HeartRateValueFormat.UINT16
        flags = _UINT16_FORMAT if uint16 else 0
        if self.sensor_contact_status is SensorContactStatus.NOT_SUPPORTED:
            if self.not_supported_code not in (0, 1):
                raise EncodeError(label, "not_supported_code", "must be 0 or 1")
            flags |= self.not_supported_code << _CONTACT_SHIFT
        elif self.not_supported_code:
            raise EncodeError(
                label, "not_supported_code", "must be 0 unless the contact status is NOT_SUPPORTED"
            )
        else:
            flags |= self.sensor_contact_status << _CONTACT_SHIFT
        if self.energy_expended is not None:
            flags |= _ENERGY_EXPENDED
        if self.rr_interval:
            flags |= _RR_INTERVAL
        writer.u8(flags, "flags")
        if uint16:
            writer.u16(raw, "heart_rate_measurement_value")
        elif raw > _UINT8_MAX:
            raise EncodeError(
                label,
                "heart_rate_measurement_value",
                f"{raw} does not fit the UINT8 format; use HeartRateValueFormat.UINT16",
            )
        else:
            writer.u8(raw, "heart_rate_measurement_value")
        if self.energy_expended is not None:
            writer.fixed_u16(self.energy_expended, "energy_expended", _WHOLE)
        for interval in self.rr_interval:
            writer.fixed_u16(interval, "rr_interval", _RR_SCALE)
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        observations = [
            Observation(
                "heart_rate_measurement_value",
                Quantity.HEART_RATE,
                self.heart_rate_measurement_value,
                Unit.PER_MINUTE,
            )
        ]
        if self.energy_expended is not None:
            observations.append(
                Observation(
                    "energy_expended",
                    Quantity.ENERGY_EXPENDED,
                    self.energy_expended,
                    Unit.KILOJOULE,
                )
            )
        observations.extend(
            Observation("rr_interval", Quantity.RR_INTERVAL, interval, Unit.SECOND)
            for interval in self.rr_interval
        )
        return tuple(observations)


@dataclass(frozen=True, slots=True)
class BodySensorLocation:
    """Body Sensor Location (0x2A38): where the heart rate sensor is worn."""

    UUID: ClassVar[int] = 0x2A38
    NAME: ClassVar[str] = "Body Sensor Location"
    LABEL: ClassVar[str] = "Body Sensor Location (0x2A38)"

    body_sensor_location: SensorLocation
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Body Sensor Location value."""
        reader = Reader(data, cls.LABEL)
        location = _LOCATIONS[reader.u8("body_sensor_location")]
        return cls(location, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Body Sensor Location value."""
        writer = Writer(self.LABEL)
        writer.u8(self.body_sensor_location, "body_sensor_location")
        return writer.bytes()


CHARACTERISTICS: Final = (HeartRateMeasurement, BodySensorLocation)
"""The codec classes this module registers."""
