"""Weight Scale Service 1.0 characteristics.

Field tables: GATT Specification Supplement (GSS) sections Weight Measurement (0x2A9D) and Weight
Scale Feature (0x2A9E). The measurement-units flag, the mass and height scales and the resolution
codes defined here are shared with the Body Composition Service (`body_composition`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Final, Self

from device_profiles._enums import CodeEnum
from device_profiles._errors import EncodeError
from device_profiles._user import UNKNOWN_USER, UserIdMixin
from device_profiles._wire import Reader, Writer
from device_profiles.codes import Observation, Quantity
from device_profiles.date_time import DateTime, read_date_time, write_date_time
from device_profiles.ieee11073 import Number, Scale, SpecialValue
from device_profiles.units import Unit

__all__ = [
    "UNKNOWN_USER",
    "HeightMeasurementResolution",
    "MeasurementUnits",
    "WeightMeasurement",
    "WeightMeasurementResolution",
    "WeightScaleFeature",
    "WeightScaleFeatures",
]


# Flags of 0x2A9D (GSS "Flags" field); bits 4-7 are reserved.
_IMPERIAL: Final = 0x01
_TIME_STAMP: Final = 0x02
_USER_ID: Final = 0x04
_BMI_AND_HEIGHT: Final = 0x08
_KNOWN_FLAGS: Final = 0x0F

# Weight Scale Feature (0x2A9E): bits 0-2 flags, 3-6 weight resolution, 7-9 height resolution.
_FEATURE_FLAGS: Final = 0x07
_WEIGHT_RESOLUTION_SHIFT: Final = 3
_HEIGHT_RESOLUTION_SHIFT: Final = 7
_MAX_WEIGHT_RESOLUTION: Final = 0x0F
_MAX_HEIGHT_RESOLUTION: Final = 0x07
_KNOWN_FEATURES: Final = 0x03FF

_BMI_SCALE: Final = Scale(1, -1)


class MeasurementUnits(enum.IntEnum):
    """The Measurement Units flag (bit 0): SI (kg, m) or imperial (lb, in)."""

    SI = 0
    IMPERIAL = 1

    @property
    def mass_unit(self) -> Unit:
        """The unit of weight and mass fields: kg (SI) or lb (imperial)."""
        return Unit.POUND if self is MeasurementUnits.IMPERIAL else Unit.KILOGRAM

    @property
    def length_unit(self) -> Unit:
        """The unit of the height field: m (SI) or in (imperial)."""
        return Unit.INCH if self is MeasurementUnits.IMPERIAL else Unit.METRE

    @property
    def mass_scale(self) -> Scale:
        """The resolution of weight and mass fields: 0.005 kg (SI) or 0.01 lb (imperial)."""
        return Scale(1, -2) if self is MeasurementUnits.IMPERIAL else Scale(5, -3)

    @property
    def length_scale(self) -> Scale:
        """The resolution of the height field: 0.001 m (SI) or 0.1 in (imperial)."""
        return Scale(1, -1) if self is MeasurementUnits.IMPERIAL else Scale(1, -3)


# Indexed by the units flag bit, so that decoding looks the scales up once per payload.
_UNIT_SETS: Final = tuple(
    (units, units.mass_scale, units.length_scale, units.mass_unit, units.length_unit)
    for units in MeasurementUnits
)


class WeightMeasurementResolution(CodeEnum):
    """Weight (mass) Measurement Resolution code, 4 bits; 8-15 are reserved."""

    NOT_SPECIFIED = 0
    KG_0_5_OR_LB_1 = 1
    KG_0_2_OR_LB_0_5 = 2
    KG_0_1_OR_LB_0_2 = 3
    KG_0_05_OR_LB_0_1 = 4
    KG_0_02_OR_LB_0_05 = 5
    KG_0_01_OR_LB_0_02 = 6
    KG_0_005_OR_LB_0_01 = 7

    @property
    def si_resolution(self) -> Decimal | None:
        """The resolution in kilograms, or None when not specified or reserved."""
        pair = _MASS_RESOLUTIONS.get(int(self))
        return None if pair is None else pair[0]

    @property
    def imperial_resolution(self) -> Decimal | None:
        """The resolution in pounds, or None when not specified or reserved."""
        pair = _MASS_RESOLUTIONS.get(int(self))
        return None if pair is None else pair[1]


class HeightMeasurementResolution(CodeEnum):
    """Height Measurement Resolution code, 3 bits; 4-7 are reserved."""

    NOT_SPECIFIED = 0
    M_0_01_OR_IN_1 = 1
    M_0_005_OR_IN_0_5 = 2
    M_0_001_OR_IN_0_1 = 3

    @property
    def si_resolution(self) -> Decimal | None:
        """The resolution in metres, or None when not specified or reserved."""
        pair = _HEIGHT_RESOLUTIONS.get(int(self))
        return None if pair is None else pair[0]

    @property
    def imperial_resolution(self) -> Decimal | None:
        """The resolution in inches, or None when not specified or reserved."""
        pair = _HEIGHT_RESOLUTIONS.get(int(self))
        return None if pair is None else pair[1]


# (SI, imperial) resolution of each defined code, from the GSS feature bit tables.
_MASS_RESOLUTIONS: Final[dict[int, tuple[Decimal, Decimal]]] = {
    1: (Decimal("0.5"), Decimal(1)),
    2: (Decimal("0.2"), Decimal("0.5")),
    3: (Decimal("0.1"), Decimal("0.2")),
    4: (Decimal("0.05"), Decimal("0.1")),
    5: (Decimal("0.02"), Decimal("0.05")),
    6: (Decimal("0.01"), Decimal("0.02")),
    7: (Decimal("0.005"), Decimal("0.01")),
}
_HEIGHT_RESOLUTIONS: Final[dict[int, tuple[Decimal, Decimal]]] = {
    1: (Decimal("0.01"), Decimal(1)),
    2: (Decimal("0.005"), Decimal("0.5")),
    3: (Decimal("0.001"), Decimal("0.1")),
}

# Every code resolved once, reserved ones included: decoding is then a tuple lookup.
_WEIGHT_RESOLUTION_CODES: Final = tuple(WeightMeasurementResolution(code) for code in range(16))
_HEIGHT_RESOLUTION_CODES: Final = tuple(HeightMeasurementResolution(code) for code in range(8))


class WeightScaleFeatures(enum.IntFlag):
    """Weight Scale Feature flag bits (GSS 0x2A9E bits 0-2)."""

    TIME_STAMP_SUPPORTED = 0x01
    MULTIPLE_USERS_SUPPORTED = 0x02
    BMI_SUPPORTED = 0x04


_FEATURE_SETS: Final = tuple(WeightScaleFeatures(bits) for bits in range(_FEATURE_FLAGS + 1))


@dataclass(frozen=True, slots=True)
class WeightMeasurement(UserIdMixin):
    """Weight Measurement (0x2A9D): one weighing, with BMI and height when the scale knows them.

    A weight of 0xFFFF on the wire is "measurement unsuccessful" (a special `Number`). The spec
    then disables every optional field but time stamp and user ID: decode still reads BMI and
    height if the flags announce them, with a warning; encode refuses them.
    """

    UUID: ClassVar[int] = 0x2A9D
    NAME: ClassVar[str] = "Weight Measurement"
    LABEL: ClassVar[str] = "Weight Measurement (0x2A9D)"

    weight: Number
    measurement_units: MeasurementUnits = MeasurementUnits.SI
    timestamp: DateTime | None = None
    user_id: int | None = None
    bmi: Number | None = None
    height: Number | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Weight Measurement value (GSS 0x2A9D field table)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u8("flags"), _KNOWN_FLAGS, "flags")
        units, mass_scale, length_scale, _, _ = _UNIT_SETS[flags & _IMPERIAL]
        weight = reader.fixed_u16("weight", mass_scale, unsuccessful=True)
        timestamp = read_date_time(reader, "timestamp") if flags & _TIME_STAMP else None
        user_id = reader.u8("user_id") if flags & _USER_ID else None
        bmi = height = None
        if flags & _BMI_AND_HEIGHT:
            bmi = reader.fixed_u16("bmi", _BMI_SCALE)
            height = reader.fixed_u16("height", length_scale)
            if weight.special is not None:
                reader.warnings.append(
                    "weight: 'measurement unsuccessful' with BMI and height present; "
                    "the spec allows only time stamp and user ID with it"
                )
        return cls(weight, units, timestamp, user_id, bmi, height, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Weight Measurement value; BMI and height go together or not at all."""
        writer = Writer(self.LABEL)
        imperial = self.measurement_units is MeasurementUnits.IMPERIAL
        _, mass_scale, length_scale, _, _ = _UNIT_SETS[imperial]
        flags = _IMPERIAL if imperial else 0
        if self.timestamp is not None:
            flags |= _TIME_STAMP
        if self.user_id is not None:
            flags |= _USER_ID
        if (self.bmi is None) != (self.height is None):
            missing = "bmi" if self.bmi is None else "height"
            raise EncodeError(
                self.LABEL, missing, "BMI and height share one flag: give both or neither"
            )
        if self.bmi is not None:
            flags |= _BMI_AND_HEIGHT
            if self.weight.special is SpecialValue.MEASUREMENT_UNSUCCESSFUL:
                raise EncodeError(
                    self.LABEL, "bmi", "no BMI or height with an unsuccessful weight measurement"
                )
        writer.u8(flags, "flags")
        writer.fixed_u16(self.weight, "weight", mass_scale, unsuccessful=True)
        if self.timestamp is not None:
            write_date_time(writer, self.timestamp, "timestamp")
        if self.user_id is not None:
            writer.u8(self.user_id, "user_id")
        if self.bmi is not None and self.height is not None:
            writer.fixed_u16(self.bmi, "bmi", _BMI_SCALE)
            writer.fixed_u16(self.height, "height", length_scale)
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        units = self.measurement_units
        observations = [Observation("weight", Quantity.BODY_WEIGHT, self.weight, units.mass_unit)]
        if self.bmi is not None:
            observations.append(Observation("bmi", Quantity.BMI, self.bmi, Unit.KG_PER_M2))
        if self.height is not None:
            observations.append(
                Observation("height", Quantity.BODY_HEIGHT, self.height, units.length_unit)
            )
        return tuple(observations)


@dataclass(frozen=True, slots=True)
class WeightScaleFeature:
    """Weight Scale Feature (0x2A9E): what the scale supports and how finely it measures."""

    UUID: ClassVar[int] = 0x2A9E
    NAME: ClassVar[str] = "Weight Scale Feature"
    LABEL: ClassVar[str] = "Weight Scale Feature (0x2A9E)"

    features: WeightScaleFeatures
    weight_measurement_resolution: WeightMeasurementResolution = (
        WeightMeasurementResolution.NOT_SPECIFIED
    )
    height_measurement_resolution: HeightMeasurementResolution = (
        HeightMeasurementResolution.NOT_SPECIFIED
    )
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Weight Scale Feature value (GSS 0x2A9E bit table); bits 10-31 are reserved."""
        reader = Reader(data, cls.LABEL)
        raw = reader.flags(reader.u32("features"), _KNOWN_FEATURES, "features")
        return cls(
            _FEATURE_SETS[raw & _FEATURE_FLAGS],
            _WEIGHT_RESOLUTION_CODES[(raw >> _WEIGHT_RESOLUTION_SHIFT) & _MAX_WEIGHT_RESOLUTION],
            _HEIGHT_RESOLUTION_CODES[raw >> _HEIGHT_RESOLUTION_SHIFT],
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a Weight Scale Feature value."""
        writer = Writer(self.LABEL)
        features = int(self.features)
        if features & ~_FEATURE_FLAGS:
            raise EncodeError(self.LABEL, "features", f"bits 0x{features:x} beyond bits 0-2")
        if not 0 <= self.weight_measurement_resolution <= _MAX_WEIGHT_RESOLUTION:
            raise EncodeError(self.LABEL, "weight_measurement_resolution", "code is not 0..15")
        if not 0 <= self.height_measurement_resolution <= _MAX_HEIGHT_RESOLUTION:
            raise EncodeError(self.LABEL, "height_measurement_resolution", "code is not 0..7")
        writer.u32(
            features
            | int(self.weight_measurement_resolution) << _WEIGHT_RESOLUTION_SHIFT
            | int(self.height_measurement_resolution) << _HEIGHT_RESOLUTION_SHIFT,
            "features",
        )
        return writer.bytes()


CHARACTERISTICS: Final = (WeightMeasurement, WeightScaleFeature)
"""The codec classes this module registers."""
