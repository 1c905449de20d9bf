"""Blood Pressure Service 1.1 and Enhanced Blood Pressure Service 1.0 characteristics.

Field tables: GATT Specification Supplement (GSS) sections Blood Pressure Measurement (0x2A35),
Intermediate Cuff Pressure (0x2A36), Blood Pressure Feature (0x2A49), Enhanced Blood Pressure
Measurement (0x2B34) and Enhanced Intermediate Cuff Pressure (0x2B35).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from device_profiles._errors import EncodeError
from device_profiles._user import UNKNOWN_USER, UserIdMixin
from device_profiles._wire import Reader, Writer
from device_profiles.codes import Observation, Quantity
from device_profiles.date_time import DateTime, read_date_time, write_date_time
from device_profiles.ieee11073 import Number, SpecialValue
from device_profiles.units import Unit

__all__ = [
    "UNKNOWN_USER",
    "BloodPressureFeature",
    "BloodPressureFeatures",
    "BloodPressureMeasurement",
    "BloodPressureStatus",
    "EnhancedBloodPressureMeasurement",
    "EnhancedIntermediateCuffPressure",
    "EpochStart",
    "IntermediateCuffPressure",
]


# Flags of 0x2A35/0x2A36 (GSS "Flags" field); 0x2B34/0x2B35 add bits 5 and 6.
_KPA: Final = 0x01
_TIMESTAMP: Final = 0x02
_PULSE_RATE: Final = 0x04
_USER_ID: Final = 0x08
_STATUS: Final = 0x10
_USER_FACING_TIME: Final = 0x20
_EPOCH_2000: Final = 0x40
_CLASSIC_FLAGS: Final = 0x1F
_ENHANCED_FLAGS: Final = 0x7F

_PULSE_RATE_RANGE_MASK: Final = 0x18
_STATUS_BITS: Final = 0x3F
_NAN: Final = Number(0, 0, SpecialValue.NAN)
_PRESSURE_FIELDS: Final = ("systolic", "diastolic", "mean_arterial_pressure")


class BloodPressureStatus(enum.IntFlag):
    """Measurement Status (GSS table "Measurement Status field"); bits 6-15 are reserved.

    Bits 3-4 are a 2-bit Pulse Rate Range field: 0 within range, 1 above the upper limit,
    2 below the lower limit, 3 reserved (reported as a warning, neither flag set).
    """

    BODY_MOVEMENT_DETECTED = 0x01
    CUFF_TOO_LOOSE = 0x02
    IRREGULAR_PULSE_DETECTED = 0x04
    PULSE_RATE_ABOVE_UPPER_LIMIT = 0x08
    PULSE_RATE_BELOW_LOWER_LIMIT = 0x10
    IMPROPER_MEASUREMENT_POSITION = 0x20


class BloodPressureFeatures(enum.IntFlag):
    """Blood Pressure Feature bits (GSS 0x2A49); bits 9-15 are reserved."""

    BODY_MOVEMENT_DETECTION = 0x0001
    CUFF_FIT_DETECTION = 0x0002
    IRREGULAR_PULSE_DETECTION = 0x0004
    PULSE_RATE_RANGE_DETECTION = 0x0008
    MEASUREMENT_POSITION_DETECTION = 0x0010
    MULTIPLE_BOND = 0x0020
    E2E_CRC = 0x0040
    USER_DATA_SERVICE = 0x0080
    USER_FACING_TIME = 0x0100


class EpochStart(enum.IntEnum):
    """The epoch of the Enhanced BP uint32 timestamps (flag bit 6)."""

    YEAR_1900 = 1900
    YEAR_2000 = 2000


def _read_status(reader: Reader) -> BloodPressureStatus:
    raw = reader.u16("measurement_status")
    value = reader.flags(raw, _STATUS_BITS, "measurement_status")
    if value & _PULSE_RATE_RANGE_MASK == _PULSE_RATE_RANGE_MASK:
        reader.warnings.append("measurement_status: pulse rate range value 3 is reserved")
        value &= ~_PULSE_RATE_RANGE_MASK
    return BloodPressureStatus(value)


def _write_status(writer: Writer, status: BloodPressureStatus) -> None:
    writer.u16(int(status), "measurement_status")


def _pressure_observations(
    result: BloodPressureMeasurement | EnhancedBloodPressureMeasurement,
) -> tuple[Observation, ...]:
    observations = [
        Observation("systolic", Quantity.SYSTOLIC_PRESSURE, result.systolic, result.unit),
        Observation("diastolic", Quantity.DIASTOLIC_PRESSURE, result.diastolic, result.unit),
        Observation(
            "mean_arterial_pressure",
            Quantity.MEAN_ARTERIAL_PRESSURE,
            result.mean_arterial_pressure,
            result.unit,
        ),
    ]
    if result.pulse_rate is not None:
        observations.append(
            Observation("pulse_rate", Quantity.PULSE_RATE, result.pulse_rate, Unit.PER_MINUTE)
        )
    return tuple(observations)


def _cuff_observations(
    result: IntermediateCuffPressure | EnhancedIntermediateCuffPressure,
) -> tuple[Observation, ...]:
    observations = [
        Observation("cuff_pressure", Quantity.CUFF_PRESSURE, result.cuff_pressure, result.unit)
    ]
    if result.pulse_rate is not None:
        observations.append(
            Observation("pulse_rate", Quantity.PULSE_RATE, result.pulse_rate, Unit.PER_MINUTE)
        )
    return tuple(observations)


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement(UserIdMixin):
    """Blood Pressure Measurement (0x2A35): one completed cuff measurement."""

    UUID: ClassVar[int] = 0x2A35
    NAME: ClassVar[str] = "Blood Pressure Measurement"
    LABEL: ClassVar[str] = "Blood Pressure Measurement (0x2A35)"

    systolic: Number
    diastolic: Number
    mean_arterial_pressure: Number
    unit: Unit = Unit.MMHG
    timestamp: DateTime | None = None
    pulse_rate: Number | None = None
    user_id: int | None = None
    measurement_status: BloodPressureStatus | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Blood Pressure Measurement value (GSS 0x2A35 field table)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u8("flags"), _CLASSIC_FLAGS, "flags")
        systolic = reader.sfloat("systolic")
        diastolic = reader.sfloat("diastolic")
        mean_arterial_pressure = reader.sfloat("mean_arterial_pressure")
        timestamp = read_date_time(reader, "timestamp") if flags & _TIMESTAMP else None
        pulse_rate = reader.sfloat("pulse_rate") if flags & _PULSE_RATE else None
        user_id = reader.u8("user_id") if flags & _USER_ID else None
        status = _read_status(reader) if flags & _STATUS else None
        return cls(
            systolic,
            diastolic,
            mean_arterial_pressure,
            Unit.KPA if flags & _KPA else Unit.MMHG,
            timestamp,
            pulse_rate,
            user_id,
            status,
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a Blood Pressure Measurement value."""
        writer = Writer(self.LABEL)
        _write_classic(
            writer,
            self.unit,
            (self.systolic, self.diastolic, self.mean_arterial_pressure),
            self.timestamp,
            self.pulse_rate,
            self.user_id,
            self.measurement_status,
        )
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        return _pressure_observations(self)


@dataclass(frozen=True, slots=True)
class IntermediateCuffPressure(UserIdMixin):
    """Intermediate Cuff Pressure (0x2A36): the cuff pressure while the cuff inflates.

    Same layout as 0x2A35; the systolic position carries the cuff pressure and the diastolic
    and mean arterial positions are unused (NaN on the wire, ignored when read).
    """

    UUID: ClassVar[int] = 0x2A36
    NAME: ClassVar[str] = "Intermediate Cuff Pressure"
    LABEL: ClassVar[str] = "Intermediate Cuff Pressure (0x2A36)"

    cuff_pressure: Number
    unit: Unit = Unit.MMHG
    timestamp: DateTime | None = None
    pulse_rate: Number | None = None
    user_id: int | None = None
    measurement_status: BloodPressureStatus | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode an Intermediate Cuff Pressure value (GSS 0x2A36 field table)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u8("flags"), _CLASSIC_FLAGS, "flags")
        cuff_pressure = reader.sfloat("cuff_pressure")
        reader.sfloat("diastolic")
        reader.sfloat("mean_arterial_pressure")
        timestamp = read_date_time(reader, "timestamp") if flags & _TIMESTAMP else None
        pulse_rate = reader.sfloat("pulse_rate") if flags & _PULSE_RATE else None
        user_id = reader.u8("user_id") if flags & _USER_ID else None
        status = _read_status(reader) if flags & _STATUS else None
        return cls(
            cuff_pressure,
            Unit.KPA if flags & _KPA else Unit.MMHG,
            timestamp,
            pulse_rate,
            user_id,
            status,
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as an Intermediate Cuff Pressure value (unused fields as NaN)."""
        writer = Writer(self.LABEL)
        _write_classic(
            writer,
            self.unit,
            (self.cuff_pressure, _NAN, _NAN),
            self.timestamp,
            self.pulse_rate,
            self.user_id,
            self.measurement_status,
        )
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        return _cuff_observations(self)


def _write_classic(
    writer: Writer,
    unit: Unit,
    pressures: tuple[Number, Number, Number],
    timestamp: DateTime | None,
    pulse_rate: Number | None,
    user_id: int | None,
    status: BloodPressureStatus | None,
) -> None:
    flags = _unit_flag(writer, unit)
    if timestamp is not None:
        flags |= _TIMESTAMP
    if pulse_rate is not None:
        flags |= _PULSE_RATE
    if user_id is not None:
        flags |= _USER_ID
    if status is not None:
        flags |= _STATUS
    writer.u8(flags, "flags")
    writer.sfloat(pressures[0], "systolic")
    writer.sfloat(pressures[1], "diastolic")
    writer.sfloat(pressures[2], "mean_arterial_pressure")
    if timestamp is not None:
        write_date_time(writer, timestamp, "timestamp")
    if pulse_rate is not None:
        writer.sfloat(pulse_rate, "pulse_rate")
    if user_id is not None:
        writer.u8(user_id, "user_id")
    if status is not None:
        _write_status(writer, status)


@dataclass(frozen=True, slots=True)
class BloodPressureFeature:
    """Blood Pressure Feature (0x2A49): what the cuff can detect and report."""

    UUID: ClassVar[int] = 0x2A49
    NAME: ClassVar[str] = "Blood Pressure Feature"
    LABEL: ClassVar[str] = "Blood Pressure Feature (0x2A49)"

    features: BloodPressureFeatures
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Blood Pressure Feature value."""
        reader = Reader(data, cls.LABEL)
        raw = reader.u16("features")
        features = BloodPressureFeatures(reader.flags(raw, 0x01FF, "features"))
        return cls(features, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Blood Pressure Feature value."""
        writer = Writer(self.LABEL)
        writer.u16(int(self.features), "features")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class EnhancedBloodPressureMeasurement(UserIdMixin):
    """Enhanced Blood Pressure Measurement (0x2B34): 0x2A35 with uint32 epoch timestamps."""

    UUID: ClassVar[int] = 0x2B34
    NAME: ClassVar[str] = "Enhanced Blood Pressure Measurement"
    LABEL: ClassVar[str] = "Enhanced Blood Pressure Measurement (0x2B34)"

    systolic: Number
    diastolic: Number
    mean_arterial_pressure: Number
    unit: Unit = Unit.MMHG
    timestamp_s: int | None = None
    """Seconds since `epoch_start` (device time base), when the flag announces it."""
    pulse_rate: Number | None = None
    user_id: int | None = None
    measurement_status: BloodPressureStatus | None = None
    user_facing_time_s: int | None = None
    """Seconds since `epoch_start` as shown to the user (local time), when announced."""
    epoch_start: EpochStart = EpochStart.YEAR_1900
    warnings: tuple[str, ...] = ()

    @property
    def timestamp(self) -> dt.datetime | None:
        """The time stamp as a naive datetime from the epoch start, or None when absent."""
        return _from_epoch(self.timestamp_s, self.epoch_start)

    @property
    def user_facing_time(self) -> dt.datetime | None:
        """The user-facing time as a naive datetime from the epoch start, or None when absent."""
        return _from_epoch(self.user_facing_time_s, self.epoch_start)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode an Enhanced Blood Pressure Measurement value (GSS 0x2B34 field table)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u8("flags"), _ENHANCED_FLAGS, "flags")
        systolic = reader.sfloat("systolic")
        diastolic = reader.sfloat("diastolic")
        mean_arterial_pressure = reader.sfloat("mean_arterial_pressure")
        timestamp = reader.u32("timestamp") if flags & _TIMESTAMP else None
        pulse_rate = reader.sfloat("pulse_rate") if flags & _PULSE_RATE else None
        user_id = reader.u8("user_id") if flags & _USER_ID else None
        status = _read_status(reader) if flags & _STATUS else None
        user_facing = reader.u32("user_facing_time") if flags & _USER_FACING_TIME else None
        return cls(
            systolic,
            diastolic,
            mean_arterial_pressure,
            Unit.KPA if flags & _KPA else Unit.MMHG,
            timestamp,
            pulse_rate,
            user_id,
            status,
            user_facing,
            EpochStart.YEAR_2000 if flags & _EPOCH_2000 else EpochStart.YEAR_1900,
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as an Enhanced Blood Pressure Measurement value."""
        writer = Writer(self.LABEL)
        _write_enhanced(
            writer,
            self.unit,
            (self.systolic, self.diastolic, self.mean_arterial_pressure),
            self.timestamp_s,
            self.pulse_rate,
            self.user_id,
            self.measurement_status,
            self.user_facing_time_s,
            self.epoch_start,
        )
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        return _pressure_observations(self)


@dataclass(frozen=True, slots=True)
class EnhancedIntermediateCuffPressure(UserIdMixin):
    """Enhanced Intermediate Cuff Pressure (0x2B35): one cuff pressure, uint32 timestamps."""

    UUID: ClassVar[int] = 0x2B35
    NAME: ClassVar[str] = "Enhanced Intermediate Cuff Pressure"
    LABEL: ClassVar[str] = "Enhanced Intermediate Cuff Pressure (0x2B35)"

    cuff_pressure: Number
    unit: Unit = Unit.MMHG
    timestamp_s: int | None = None
    pulse_rate: Number | None = None
    user_id: int | None = None
    measurement_status: BloodPressureStatus | None = None
    user_facing_time_s: int | None = None
    epoch_start: EpochStart = EpochStart.YEAR_1900
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode an Enhanced Intermediate Cuff Pressure value (GSS 0x2B35 field table)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u8("flags"), _ENHANCED_FLAGS, "flags")
        cuff_pressure = reader.sfloat("cuff_pressure")
        timestamp = reader.u32("timestamp") if flags & _TIMESTAMP else None
        pulse_rate = reader.sfloat("pulse_rate") if flags & _PULSE_RATE else None
        user_id = reader.u8("user_id") if flags & _USER_ID else None
        status = _read_status(reader) if flags & _STATUS else None
        user_facing = reader.u32("user_facing_time") if flags & _USER_FACING_TIME else None
        return cls(
            cuff_pressure,
            Unit.KPA if flags & _KPA else Unit.MMHG,
            timestamp,
            pulse_rate,
            user_id,
            status,
            user_facing,
            EpochStart.YEAR_2000 if flags & _EPOCH_2000 else EpochStart.YEAR_1900,
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as an Enhanced Intermediate Cuff Pressure value."""
        writer = Writer(self.LABEL)
        _write_enhanced(
            writer,
            self.unit,
            (self.cuff_pressure,),
            self.timestamp_s,
            self.pulse_rate,
            self.user_id,
            self.measurement_status,
            self.user_facing_time_s,
            self.epoch_start,
        )
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        return _cuff_observations(self)


def _write_enhanced(
    writer: Writer,
    unit: Unit,
    pressures: tuple[Number, ...],
    timestamp_s: int | None,
    pulse_rate: Number | None,
    user_id: int | None,
    status: BloodPressureStatus | None,
    user_facing_time_s: int | None,
    epoch_start: EpochStart,
) -> None:
    flags = _unit_flag(writer, unit)
    if timestamp_s is not None:
        flags |= _TIMESTAMP
    if pulse_rate is not None:
        flags |= _PULSE_RATE
    if user_id is not None:
        flags |= _USER_ID
    if status is not None:
        flags |= _STATUS
    if user_facing_time_s is not None:
        flags |= _USER_FACING_TIME
    if epoch_start is EpochStart.YEAR_2000:
        flags |= _EPOCH_2000
    writer.u8(flags, "flags")
    names = _PRESSURE_FIELDS if len(pressures) == len(_PRESSURE_FIELDS) else ("cuff_pressure",)
    for name, pressure in zip(names, pressures, strict=True):
        writer.sfloat(pressure, name)
    if timestamp_s is not None:
        writer.u32(timestamp_s, "timestamp")
    if pulse_rate is not None:
        writer.sfloat(pulse_rate, "pulse_rate")
    if user_id is not None:
        writer.u8(user_id, "user_id")
    if status is not None:
        _write_status(writer, status)
    if user_facing_time_s is not None:
        writer.u32(user_facing_time_s, "user_facing_time")


def _unit_flag(writer: Writer, unit: Unit) -> int:
    if unit is Unit.MMHG:
        return 0
    if unit is Unit.KPA:
        return _KPA
    raise EncodeError(writer.characteristic, "unit", f"{unit.value} is not mm[Hg] or kPa")


def _from_epoch(seconds: int | None, epoch_start: EpochStart) -> dt.datetime | None:
    if seconds is None:
        return None
    return dt.datetime(int(epoch_start), 1, 1) + dt.timedelta(seconds=seconds)  # noqa: DTZ001


CHARACTERISTICS: Final = (
    BloodPressureMeasurement,
    IntermediateCuffPressure,
    BloodPressureFeature,
    EnhancedBloodPressureMeasurement,
    EnhancedIntermediateCuffPressure,
)
"""The codec classes this module registers."""
