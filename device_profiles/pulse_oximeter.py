"""Pulse Oximeter Service 1.0 characteristics: PLX Spot-Check, PLX Continuous and PLX Features.

Field tables: Pulse Oximeter Service 1.0 (PLXS) Table 3.2 "PLX Spot-check Measurement
Characteristic fields" (0x2A5E) with Table 3.3 (Flags), Table 3.4 (Measurement Status) and
Table 3.5 (Device and Sensor Status); Table 3.6 "PLX Continuous Measurement Characteristic fields"
(0x2A5F) with Table 3.7 (Flags); Table 3.8 "PLX Features Characteristic fields" (0x2A60) with
Tables 3.9 to 3.11. Every SpO2, PR and Pulse Amplitude Index value is an SFLOAT.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Self

from device_profiles._errors import EncodeError
from device_profiles._wire import Reader, Writer
from device_profiles.codes import Observation, Quantity
from device_profiles.date_time import DateTime, read_date_time, write_date_time
from device_profiles.units import Unit

if TYPE_CHECKING:
    from device_profiles.ieee11073 import Number

__all__ = [
    "PLXContinuousMeasurement",
    "PLXDeviceAndSensorStatus",
    "PLXFeatures",
    "PLXMeasurementStatus",
    "PLXSpotCheckMeasurement",
    "PLXSupportedFeatures",
    "SpO2PR",
]

# Flags of 0x2A5E (PLXS Table 3.3); bits 5-7 are reserved.
_SPOT_TIMESTAMP: Final = 0x01
_SPOT_MEASUREMENT_STATUS: Final = 0x02
_SPOT_DEVICE_AND_SENSOR_STATUS: Final = 0x04
_SPOT_PULSE_AMPLITUDE_INDEX: Final = 0x08
_SPOT_DEVICE_CLOCK_IS_NOT_SET: Final = 0x10
_SPOT_FLAGS: Final = 0x1F

# Flags of 0x2A5F (PLXS Table 3.7); bits 5-7 are reserved.
_CONT_FAST: Final = 0x01
_CONT_SLOW: Final = 0x02
_CONT_MEASUREMENT_STATUS: Final = 0x04
_CONT_DEVICE_AND_SENSOR_STATUS: Final = 0x08
_CONT_PULSE_AMPLITUDE_INDEX: Final = 0x10
_CONT_FLAGS: Final = 0x1F

# Supported Features bits 0 and 1 of 0x2A60 (PLXS Table 3.9) also announce the optional fields.
_FEATURE_MEASUREMENT_STATUS: Final = 0x0001
_FEATURE_DEVICE_AND_SENSOR_STATUS: Final = 0x0002
_FEATURE_BITS: Final = 0x00FF

_MEASUREMENT_STATUS_BITS: Final = 0xFFE0
_DEVICE_AND_SENSOR_STATUS_BITS: Final = 0x00FFFF


class PLXMeasurementStatus(enum.IntFlag):
    """Measurement Status (PLXS Table 3.4); bits 0-4 are reserved.

    The same bits, read as "bit supported", form the Measurement Status Support field of PLX
    Features (PLXS Table 3.10).
    """

    MEASUREMENT_ONGOING = 0x0020
    EARLY_ESTIMATED_DATA = 0x0040
    VALIDATED_DATA = 0x0080
    FULLY_QUALIFIED_DATA = 0x0100
    DATA_FROM_MEASUREMENT_STORAGE = 0x0200
    DATA_FOR_DEMONSTRATION = 0x0400
    DATA_FOR_TESTING = 0x0800
    CALIBRATION_ONGOING = 0x1000
    MEASUREMENT_UNAVAILABLE = 0x2000
    QUESTIONABLE_MEASUREMENT_DETECTED = 0x4000
    INVALID_MEASUREMENT_DETECTED = 0x8000


class PLXDeviceAndSensorStatus(enum.IntFlag):
    """Device and Sensor Status (PLXS Table 3.5), a 24-bit field; bits 16-23 are reserved.

    The same bits, read as "bit supported", form the Device and Sensor Status Support field of
    PLX Features (PLXS Table 3.11).
    """

    EXTENDED_DISPLAY_UPDATE_ONGOING = 0x0001
    EQUIPMENT_MALFUNCTION_DETECTED = 0x0002
    SIGNAL_PROCESSING_IRREGULARITY_DETECTED = 0x0004
    INADEQUATE_SIGNAL_DETECTED = 0x0008
    POOR_SIGNAL_DETECTED = 0x0010
    LOW_PERFUSION_DETECTED = 0x0020
    ERRATIC_SIGNAL_DETECTED = 0x0040
    NONPULSATILE_SIGNAL_DETECTED = 0x0080
    QUESTIONABLE_PULSE_DETECTED = 0x0100
    SIGNAL_ANALYSIS_ONGOING = 0x0200
    SENSOR_INTERFERENCE_DETECTED = 0x0400
    SENSOR_UNCONNECTED_TO_USER = 0x0800
    UNKNOWN_SENSOR_CONNECTED = 0x1000
    SENSOR_DISPLACED = 0x2000
    SENSOR_MALFUNCTIONING = 0x4000
    SENSOR_DISCONNECTED = 0x8000


class PLXSupportedFeatures(enum.IntFlag):
    """Supported Features of PLX Features (PLXS Table 3.9); bits 8-15 are reserved."""

    MEASUREMENT_STATUS_SUPPORT = 0x0001
    DEVICE_AND_SENSOR_STATUS_SUPPORT = 0x0002
    MEASUREMENT_STORAGE_FOR_SPOT_CHECK = 0x0004
    TIMESTAMP_FOR_SPOT_CHECK = 0x0008
    SPO2PR_FAST = 0x0010
    SPO2PR_SLOW = 0x0020
    PULSE_AMPLITUDE_INDEX = 0x0040
    MULTIPLE_BONDS = 0x0080


@dataclass(frozen=True, slots=True)
class SpO2PR:
    """One SpO2PR field: oxygen saturation (%) and pulse rate (/min), NaN when unavailable."""

    spo2: Number
    """SpO2: oxygen saturation of haemoglobin, in percent."""
    pr: Number
    """PR: pulse rate, in beats per minute."""


def _read_measurement_status(reader: Reader) -> PLXMeasurementStatus:
    raw = reader.u16("measurement_status")
    return PLXMeasurementStatus(reader.flags(raw, _MEASUREMENT_STATUS_BITS, "measurement_status"))


def _read_device_and_sensor_status(reader: Reader) -> PLXDeviceAndSensorStatus:
    raw = reader.u24("device_and_sensor_status")
    return PLXDeviceAndSensorStatus(
        reader.flags(raw, _DEVICE_AND_SENSOR_STATUS_BITS, "device_and_sensor_status")
    )


def _write_bits(writer: Writer, value: int, known_mask: int, size: int, field: str) -> None:
    # Decode drops reserved bits with a warning, so writing them would not survive a round trip.
    reserved = value & ~known_mask
    if reserved:
        raise EncodeError(writer.characteristic, field, f"reserved bits 0x{reserved:x} set")
    writer.uint(value, size, field)


def _write_pair(writer: Writer, pair: SpO2PR, spo2_field: str, pr_field: str) -> None:
    writer.sfloat(pair.spo2, spo2_field)
    writer.sfloat(pair.pr, pr_field)


def _pair_observations(pair: SpO2PR, spo2_field: str, pr_field: str) -> list[Observation]:
    return [
        Observation(spo2_field, Quantity.SPO2, pair.spo2, Unit.PERCENT),
        Observation(pr_field, Quantity.PLX_PULSE_RATE, pair.pr, Unit.PER_MINUTE),
    ]


@dataclass(frozen=True, slots=True)
class PLXSpotCheckMeasurement:
    """PLX Spot-Check Measurement (0x2A5E): one stable SpO2 and pulse rate reading."""

    UUID: ClassVar[int] = 0x2A5E
    NAME: ClassVar[str] = "PLX Spot-Check Measurement"
    LABEL: ClassVar[str] = "PLX Spot-Check Measurement (0x2A5E)"

    spo2pr_spot_check: SpO2PR
    timestamp: DateTime | None = None
    measurement_status: PLXMeasurementStatus | None = None
    device_and_sensor_status: PLXDeviceAndSensorStatus | None = None
    pulse_amplitude_index: Number | None = None
    device_clock_is_not_set: bool = False
    """Flag bit 4: the device clock was not set when it took this measurement."""
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a PLX Spot-Check Measurement value (PLXS Table 3.2)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u8("flags"), _SPOT_FLAGS, "flags")
        pair = SpO2PR(
            reader.sfloat("spo2pr_spot_check.spo2"), reader.sfloat("spo2pr_spot_check.pr")
        )
        timestamp = read_date_time(reader, "timestamp") if flags & _SPOT_TIMESTAMP else None
        status = _read_measurement_status(reader) if flags & _SPOT_MEASUREMENT_STATUS else None
        device_status = (
            _read_device_and_sensor_status(reader)
            if flags & _SPOT_DEVICE_AND_SENSOR_STATUS
            else None
        )
        pai = (
            reader.sfloat("pulse_amplitude_index") if flags & _SPOT_PULSE_AMPLITUDE_INDEX else None
        )
        return cls(
            pair,
            timestamp,
            status,
            device_status,
            pai,
            bool(flags & _SPOT_DEVICE_CLOCK_IS_NOT_SET),
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a PLX Spot-Check Measurement value."""
        writer = Writer(self.LABEL)
        flags = _SPOT_DEVICE_CLOCK_IS_NOT_SET if self.device_clock_is_not_set else 0
        if self.timestamp is not None:
            flags |= _SPOT_TIMESTAMP
        if self.measurement_status is not None:
            flags |= _SPOT_MEASUREMENT_STATUS
        if self.device_and_sensor_status is not None:
            flags |= _SPOT_DEVICE_AND_SENSOR_STATUS
        if self.pulse_amplitude_index is not None:
            flags |= _SPOT_PULSE_AMPLITUDE_INDEX
        writer.u8(flags, "flags")
        _write_pair(
            writer, self.spo2pr_spot_check, "spo2pr_spot_check.spo2", "spo2pr_spot_check.pr"
        )
        if self.timestamp is not None:
            write_date_time(writer, self.timestamp, "timestamp")
        _write_statuses(writer, self.measurement_status, self.device_and_sensor_status)
        if self.pulse_amplitude_index is not None:
            writer.sfloat(self.pulse_amplitude_index, "pulse_amplitude_index")
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        observations = _pair_observations(
            self.spo2pr_spot_check, "spo2pr_spot_check.spo2", "spo2pr_spot_check.pr"
        )
        if self.pulse_amplitude_index is not None:
            observations.append(_pai_observation(self.pulse_amplitude_index))
        return tuple(observations)


@dataclass(frozen=True, slots=True)
class PLXContinuousMeasurement:
    """PLX Continuous Measurement (0x2A5F): the periodic SpO2 and pulse rate notification."""

    UUID: ClassVar[int] = 0x2A5F
    NAME: ClassVar[str] = "PLX Continuous Measurement"
    LABEL: ClassVar[str] = "PLX Continuous Measurement (0x2A5F)"

    spo2pr_normal: SpO2PR
    spo2pr_fast: SpO2PR | None = None
    """The fast-responding algorithm's values, when the device computes them."""
    spo2pr_slow: SpO2PR | None = None
    """The slow-responding (motion-tolerant) algorithm's values, when the device computes them."""
    measurement_status: PLXMeasurementStatus | None = None
    device_and_sensor_status: PLXDeviceAndSensorStatus | None = None
    pulse_amplitude_index: Number | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a PLX Continuous Measurement value (PLXS Table 3.6)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u8("flags"), _CONT_FLAGS, "flags")
        normal = SpO2PR(reader.sfloat("spo2pr_normal.spo2"), reader.sfloat("spo2pr_normal.pr"))
        # Each optional field sits right after the previous present one: an absent SpO2PR-Fast
        # takes no bytes, so SpO2PR-Slow then starts where Fast would have.
        fast = (
            SpO2PR(reader.sfloat("spo2pr_fast.spo2"), reader.sfloat("spo2pr_fast.pr"))
            if flags & _CONT_FAST
            else None
        )
        slow = (
            SpO2PR(reader.sfloat("spo2pr_slow.spo2"), reader.sfloat("spo2pr_slow.pr"))
            if flags & _CONT_SLOW
            else None
        )
        status = _read_measurement_status(reader) if flags & _CONT_MEASUREMENT_STATUS else None
        device_status = (
            _read_device_and_sensor_status(reader)
            if flags & _CONT_DEVICE_AND_SENSOR_STATUS
            else None
        )
        pai = (
            reader.sfloat("pulse_amplitude_index") if flags & _CONT_PULSE_AMPLITUDE_INDEX else None
        )
        return cls(normal, fast, slow, status, device_status, pai, reader.finish())

    def encode(self) -> bytes:
        """Encode as a PLX Continuous Measurement value."""
        writer = Writer(self.LABEL)
        flags = 0
        if self.spo2pr_fast is not None:
            flags |= _CONT_FAST
        if self.spo2pr_slow is not None:
            flags |= _CONT_SLOW
        if self.measurement_status is not None:
            flags |= _CONT_MEASUREMENT_STATUS
        if self.device_and_sensor_status is not None:
            flags |= _CONT_DEVICE_AND_SENSOR_STATUS
        if self.pulse_amplitude_index is not None:
            flags |= _CONT_PULSE_AMPLITUDE_INDEX
        writer.u8(flags, "flags")
        _write_pair(writer, self.spo2pr_normal, "spo2pr_normal.spo2", "spo2pr_normal.pr")
        if self.spo2pr_fast is not None:
            _write_pair(writer, self.spo2pr_fast, "spo2pr_fast.spo2", "spo2pr_fast.pr")
        if self.spo2pr_slow is not None:
            _write_pair(writer, self.spo2pr_slow, "spo2pr_slow.spo2", "spo2pr_slow.pr")
        _write_statuses(writer, self.measurement_status, self.device_and_sensor_status)
        if self.pulse_amplitude_index is not None:
            writer.sfloat(self.pulse_amplitude_index, "pulse_amplitude_index")
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        observations = _pair_observations(
            self.spo2pr_normal, "spo2pr_normal.spo2", "spo2pr_normal.pr"
        )
        if self.spo2pr_fast is not None:
            observations += _pair_observations(
                self.spo2pr_fast, "spo2pr_fast.spo2", "spo2pr_fast.pr"
            )
        if self.spo2pr_slow is not None:
            observations += _pair_observations(
                self.spo2pr_slow, "spo2pr_slow.spo2", "spo2pr_slow.pr"
            )
        if self.pulse_amplitude_index is not None:
            observations.append(_pai_observation(self.pulse_amplitude_index))
        return tuple(observations)


def _write_statuses(
    writer: Writer,
    status: PLXMeasurementStatus | None,
    device_status: PLXDeviceAndSensorStatus | None,
) -> None:
    if status is not None:
        _write_bits(writer, int(status), _MEASUREMENT_STATUS_BITS, 2, "measurement_status")
    if device_status is not None:
        _write_bits(
            writer,
            int(device_status),
            _DEVICE_AND_SENSOR_STATUS_BITS,
            3,
            "device_and_sensor_status",
        )


def _pai_observation(pai: Number) -> Observation:
    return Observation("pulse_amplitude_index", Quantity.PULSE_AMPLITUDE_INDEX, pai, Unit.PERCENT)


@dataclass(frozen=True, slots=True)
class PLXFeatures:
    """PLX Features (0x2A60): which optional fields and status bits the oximeter supports.

    Supported Features bits 0 and 1 say whether the two support fields follow, so `encode`
    refuses a value whose bit and field disagree.
    """

    UUID: ClassVar[int] = 0x2A60
    NAME: ClassVar[str] = "PLX Features"
    LABEL: ClassVar[str] = "PLX Features (0x2A60)"

    supported_features: PLXSupportedFeatures
    measurement_status_support: PLXMeasurementStatus | None = None
    """Which Measurement Status bits the device may set; present with feature bit 0."""
    device_and_sensor_status_support: PLXDeviceAndSensorStatus | None = None
    """Which Device and Sensor Status bits the device may set; present with feature bit 1."""
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a PLX Features value (PLXS Table 3.8)."""
        reader = Reader(data, cls.LABEL)
        features = reader.flags(
            reader.u16("supported_features"), _FEATURE_BITS, "supported_features"
        )
        status_support: PLXMeasurementStatus | None = None
        if features & _FEATURE_MEASUREMENT_STATUS:
            raw = reader.u16("measurement_status_support")
            status_support = PLXMeasurementStatus(
                reader.flags(raw, _MEASUREMENT_STATUS_BITS, "measurement_status_support")
            )
        device_support: PLXDeviceAndSensorStatus | None = None
        if features & _FEATURE_DEVICE_AND_SENSOR_STATUS:
            raw = reader.u24("device_and_sensor_status_support")
            device_support = PLXDeviceAndSensorStatus(
                reader.flags(
                    raw, _DEVICE_AND_SENSOR_STATUS_BITS, "device_and_sensor_status_support"
                )
            )
        return cls(PLXSupportedFeatures(features), status_support, device_support, reader.finish())

    def encode(self) -> bytes:
        """Encode as a PLX Features value."""
        writer = Writer(self.LABEL)
        features = int(self.supported_features)
        status_support = self.measurement_status_support
        device_support = self.device_and_sensor_status_support
        if bool(features & _FEATURE_MEASUREMENT_STATUS) != (status_support is not None):
            raise EncodeError(
                self.LABEL,
                "supported_features",
                "bit 0 (measurement status support) must be set exactly when "
                "measurement_status_support is given",
            )
        if bool(features & _FEATURE_DEVICE_AND_SENSOR_STATUS) != (device_support is not None):
            raise EncodeError(
                self.LABEL,
                "supported_features",
                "bit 1 (device and sensor status support) must be set exactly when "
                "device_and_sensor_status_support is given",
            )
        _write_bits(writer, features, _FEATURE_BITS, 2, "supported_features")
        if status_support is not None:
            _write_bits(
                writer,
                int(status_support),
                _MEASUREMENT_STATUS_BITS,
                2,
                "measurement_status_support",
            )
        if device_support is not None:
            _write_bits(
                writer,
                int(device_support),
                _DEVICE_AND_SENSOR_STATUS_BITS,
                3,
                "device_and_sensor_status_support",
            )
        return writer.bytes()


CHARACTERISTICS: Final = (
    PLXSpotCheckMeasurement,
    PLXContinuousMeasurement,
    PLXFeatures,
)
"""The codec classes this module registers."""
