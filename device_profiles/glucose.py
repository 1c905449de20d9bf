"""Glucose Service 1.0 characteristics, and pairing of measurements with their contexts.

Field tables: GATT Specification Supplement (GSS) sections Glucose Measurement (0x2A18), Glucose
Measurement Context (0x2A34) and Glucose Feature (0x2A51); the bit and code tables of the Bluetooth
SIG GATT XML definitions of the same characteristics (glucose_measurement.xml,
glucose_measurement_context.xml, glucose_feature.xml).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Self

from device_profiles._enums import CodeEnum
from device_profiles._errors import EncodeError
from device_profiles._wire import Reader, Writer
from device_profiles.codes import Observation, Quantity
from device_profiles.date_time import DateTime, read_date_time, write_date_time
from device_profiles.ieee11073 import Number, Scale, SpecialValue
from device_profiles.units import Unit

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "EXERCISE_DURATION_OVERRUN",
    "CarbohydrateId",
    "GlucoseFeature",
    "GlucoseFeatures",
    "GlucoseMeasurement",
    "GlucoseMeasurementContext",
    "GlucoseRecord",
    "GlucoseType",
    "Health",
    "Meal",
    "MedicationId",
    "SampleLocation",
    "SensorStatus",
    "Tester",
    "pair_records",
    "resolve_measurement_time",
]

EXERCISE_DURATION_OVERRUN: Final = 0xFFFF
"""Exercise Duration 0xFFFF: the exercise lasted longer than 65534 s (decoded as +INFINITY)."""

# Flags of 0x2A18 (GSS "Flags" field); bits 5-7 are reserved.
_TIME_OFFSET: Final = 0x01
_CONCENTRATION: Final = 0x02
_MOL_PER_LITRE: Final = 0x04
_SENSOR_STATUS: Final = 0x08
_CONTEXT_FOLLOWS: Final = 0x10
_MEASUREMENT_FLAGS: Final = 0x1F
_SENSOR_STATUS_BITS: Final = 0x0FFF

# Flags of 0x2A34; all eight bits are defined.
_CARBOHYDRATE: Final = 0x01
_MEAL: Final = 0x02
_TESTER_HEALTH: Final = 0x04
_EXERCISE: Final = 0x08
_MEDICATION: Final = 0x10
_MEDICATION_LITRES: Final = 0x20
_HBA1C: Final = 0x40
_EXTENDED_FLAGS: Final = 0x80

_FEATURE_BITS: Final = 0x07FF
_NIBBLE: Final = 0x0F
_UNITS: Final = Scale(1, 0)
_OVERRUN: Final = Number(0, 0, SpecialValue.POSITIVE_INFINITY)


class GlucoseType(CodeEnum):
    """Type nibble of 0x2A18 (GSS "Type-Sample Location", low nibble); 0 and 11-15 reserved."""

    CAPILLARY_WHOLE_BLOOD = 1
    CAPILLARY_PLASMA = 2
    VENOUS_WHOLE_BLOOD = 3
    VENOUS_PLASMA = 4
    ARTERIAL_WHOLE_BLOOD = 5
    ARTERIAL_PLASMA = 6
    UNDETERMINED_WHOLE_BLOOD = 7
    UNDETERMINED_PLASMA = 8
    INTERSTITIAL_FLUID = 9
    CONTROL_SOLUTION = 10


class SampleLocation(CodeEnum):
    """Sample Location nibble of 0x2A18 (high nibble); 0 and 5-14 reserved."""

    FINGER = 1
    ALTERNATE_SITE_TEST = 2
    EARLOBE = 3
    CONTROL_SOLUTION = 4
    NOT_AVAILABLE = 15


class SensorStatus(enum.IntFlag):
    """Sensor Status Annunciation of 0x2A18, each bit "at time of measurement"; 12-15 reserved."""

    DEVICE_BATTERY_LOW = 0x0001
    SENSOR_MALFUNCTION = 0x0002
    SAMPLE_SIZE_INSUFFICIENT = 0x0004
    STRIP_INSERTION_ERROR = 0x0008
    STRIP_TYPE_INCORRECT = 0x0010
    RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS = 0x0020
    RESULT_LOWER_THAN_DEVICE_CAN_PROCESS = 0x0040
    TEMPERATURE_TOO_HIGH = 0x0080
    TEMPERATURE_TOO_LOW = 0x0100
    READ_INTERRUPTED = 0x0200
    GENERAL_DEVICE_FAULT = 0x0400
    TIME_FAULT = 0x0800


class GlucoseFeatures(enum.IntFlag):
    """Glucose Feature bits (GSS 0x2A51), each "supported"; bits 11-15 are reserved."""

    LOW_BATTERY_DETECTION = 0x0001
    SENSOR_MALFUNCTION_DETECTION = 0x0002
    SENSOR_SAMPLE_SIZE = 0x0004
    SENSOR_STRIP_INSERTION_ERROR_DETECTION = 0x0008
    SENSOR_STRIP_TYPE_ERROR_DETECTION = 0x0010
    SENSOR_RESULT_HIGH_LOW_DETECTION = 0x0020
    SENSOR_TEMPERATURE_HIGH_LOW_DETECTION = 0x0040
    SENSOR_READ_INTERRUPT_DETECTION = 0x0080
    GENERAL_DEVICE_FAULT = 0x0100
    TIME_FAULT = 0x0200
    MULTIPLE_BOND = 0x0400


class CarbohydrateId(CodeEnum):
    """Carbohydrate ID of 0x2A34; 0 and 8-255 reserved."""

    BREAKFAST = 1
    LUNCH = 2
    DINNER = 3
    SNACK = 4
    DRINK = 5
    SUPPER = 6
    BRUNCH = 7


class Meal(CodeEnum):
    """Meal of 0x2A34; 0 and 6-255 reserved."""

    PREPRANDIAL = 1
    POSTPRANDIAL = 2
    FASTING = 3
    CASUAL = 4
    BEDTIME = 5


class Tester(CodeEnum):
    """Tester nibble of 0x2A34 (GSS "Tester-Health", low nibble); 0 and 4-14 reserved."""

    SELF = 1
    HEALTH_CARE_PROFESSIONAL = 2
    LAB_TEST = 3
    NOT_AVAILABLE = 15


class Health(CodeEnum):
    """Health nibble of 0x2A34 (high nibble); 0 and 6-14 reserved."""

    MINOR_HEALTH_ISSUES = 1
    MAJOR_HEALTH_ISSUES = 2
    DURING_MENSES = 3
    UNDER_STRESS = 4
    NO_HEALTH_ISSUES = 5
    NOT_AVAILABLE = 15


class MedicationId(CodeEnum):
    """Medication ID of 0x2A34; 0 and 6-255 reserved."""

    RAPID_ACTING_INSULIN = 1
    SHORT_ACTING_INSULIN = 2
    INTERMEDIATE_ACTING_INSULIN = 3
    LONG_ACTING_INSULIN = 4
    PRE_MIXED_INSULIN = 5


# Every code a field can carry, built once: decoding indexes a tuple instead of calling the enum
# (which, for a reserved code, builds a new pseudo-member each time).
_GLUCOSE_TYPES: Final = tuple(GlucoseType(code) for code in range(16))
_SAMPLE_LOCATIONS: Final = tuple(SampleLocation(code) for code in range(16))
_TESTERS: Final = tuple(Tester(code) for code in range(16))
_HEALTHS: Final = tuple(Health(code) for code in range(16))
_CARBOHYDRATE_IDS: Final = tuple(CarbohydrateId(code) for code in range(256))
_MEALS: Final = tuple(Meal(code) for code in range(256))
_MEDICATION_IDS: Final = tuple(MedicationId(code) for code in range(256))


def resolve_measurement_time(
    base_time: DateTime, time_offset_min: int | None
) -> dt.datetime | None:
    """Return Base Time plus Time Offset as a naive device-local datetime.

    None when the base date is unknown (year, month or day 0) or the sum leaves the datetime
    range (past year 9999); an absent offset counts as 0.
    """
    timestamp = base_time.timestamp
    if timestamp is None or not time_offset_min:
        return timestamp
    try:
        return timestamp + dt.timedelta(minutes=time_offset_min)
    except OverflowError:
        return None


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    """Glucose Measurement (0x2A18): one stored or live glucose reading.

    `glucose_concentration`, `type` and `sample_location` are present together (flag bit 1).
    `unit` is the concentration unit flag (bit 2), kept even when no concentration is sent.
    """

    UUID: ClassVar[int] = 0x2A18
    NAME: ClassVar[str] = "Glucose Measurement"
    LABEL: ClassVar[str] = "Glucose Measurement (0x2A18)"

    sequence_number: int
    base_time: DateTime
    time_offset_min: int | None = None
    """Minutes to add to `base_time` to get the measurement time (sint16), when sent."""
    glucose_concentration: Number | None = None
    unit: Unit = Unit.KG_PER_LITRE
    type: GlucoseType | None = None
    sample_location: SampleLocation | None = None
    sensor_status_annunciation: SensorStatus | None = None
    context_information_follows: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def measurement_time(self) -> dt.datetime | None:
        """Base Time plus Time Offset (see `resolve_measurement_time`)."""
        return resolve_measurement_time(self.base_time, self.time_offset_min)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Glucose Measurement value (GSS 0x2A18 field table)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u8("flags"), _MEASUREMENT_FLAGS, "flags")
        sequence_number = reader.u16("sequence_number")
        base_time = read_date_time(reader, "base_time")
        time_offset = reader.s16("time_offset") if flags & _TIME_OFFSET else None
        concentration = glucose_type = sample_location = None
        if flags & _CONCENTRATION:
            concentration = reader.sfloat("glucose_concentration")
            type_sample_location = reader.u8("type_sample_location")
            glucose_type = _GLUCOSE_TYPES[type_sample_location & _NIBBLE]
            sample_location = _SAMPLE_LOCATIONS[type_sample_location >> 4]
        status = None
        if flags & _SENSOR_STATUS:
            raw = reader.u16("sensor_status_annunciation")
            status = SensorStatus(
                reader.flags(raw, _SENSOR_STATUS_BITS, "sensor_status_annunciation")
            )
        return cls(
            sequence_number,
            base_time,
            time_offset,
            concentration,
            Unit.MOL_PER_LITRE if flags & _MOL_PER_LITRE else Unit.KG_PER_LITRE,
            glucose_type,
            sample_location,
            status,
            bool(flags & _CONTEXT_FOLLOWS),
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a Glucose Measurement value."""
        writer = Writer(self.LABEL)
        concentration = self.glucose_concentration
        glucose_type = self.type
        sample_location = self.sample_location
        present = concentration is not None
        if present != (glucose_type is not None) or present != (sample_location is not None):
            raise EncodeError(
                self.LABEL,
                "glucose_concentration",
                "glucose_concentration, type and sample_location share one flag: give all or none",
            )
        flags = _concentration_unit_flag(writer, self.unit)
        if self.time_offset_min is not None:
            flags |= _TIME_OFFSET
        if present:
            flags |= _CONCENTRATION
        if self.sensor_status_annunciation is not None:
            flags |= _SENSOR_STATUS
        if self.context_information_follows:
            flags |= _CONTEXT_FOLLOWS
        writer.u8(flags, "flags")
        writer.u16(self.sequence_number, "sequence_number")
        write_date_time(writer, self.base_time, "base_time")
        if self.time_offset_min is not None:
            writer.s16(self.time_offset_min, "time_offset")
        if concentration is not None and glucose_type is not None and sample_location is not None:
            writer.sfloat(concentration, "glucose_concentration")
            writer.u8(
                _nibbles(writer, glucose_type, "type", sample_location, "sample_location"),
                "type_sample_location",
            )
        if self.sensor_status_annunciation is not None:
            writer.u16(int(self.sensor_status_annunciation), "sensor_status_annunciation")
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        if self.glucose_concentration is None:
            return ()
        return (
            Observation(
                "glucose_concentration",
                Quantity.GLUCOSE_CONCENTRATION,
                self.glucose_concentration,
                self.unit,
            ),
        )


@dataclass(frozen=True, slots=True)
class GlucoseMeasurementContext:
    """Glucose Measurement Context (0x2A34): what surrounded the measurement of the same number.

    Fields sharing a flag come together: `carbohydrate_id` with `carbohydrate` (kg),
    `tester` with `health`, `exercise_duration` (s) with `exercise_intensity` (%), and
    `medication_id` with `medication` (kg or L, per `medication_unit`). An Exercise Duration of
    0xFFFF (overrun: longer than 65534 s) is the special value +INFINITY, so that it is never
    read as a number of seconds. `extended_flags` is kept raw: every bit of it is reserved.
    """

    UUID: ClassVar[int] = 0x2A34
    NAME: ClassVar[str] = "Glucose Measurement Context"
    LABEL: ClassVar[str] = "Glucose Measurement Context (0x2A34)"

    sequence_number: int
    extended_flags: int | None = None
    carbohydrate_id: CarbohydrateId | None = None
    carbohydrate: Number | None = None
    meal: Meal | None = None
    tester: Tester | None = None
    health: Health | None = None
    exercise_duration: Number | None = None
    exercise_intensity: Number | None = None
    medication_id: MedicationId | None = None
    medication: Number | None = None
    medication_unit: Unit = Unit.KILOGRAM
    hba1c: Number | None = None
    warnings: tuple[str, ...] = ()

    @property
    def exercise_duration_overrun(self) -> bool:
        """Whether the device reported the exercise as longer than it can count (0xFFFF)."""
        duration = self.exercise_duration
        return duration is not None and duration.special is SpecialValue.POSITIVE_INFINITY

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Glucose Measurement Context value (GSS 0x2A34 field table)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.u8("flags")
        sequence_number = reader.u16("sequence_number")
        extended_flags = None
        if flags & _EXTENDED_FLAGS:
            extended_flags = reader.u8("extended_flags")
            # Kept raw for the record; the call only notes the reserved bits in the warnings.
            reader.flags(extended_flags, 0, "extended_flags")
        carbohydrate_id = carbohydrate = None
        if flags & _CARBOHYDRATE:
            carbohydrate_id = _CARBOHYDRATE_IDS[reader.u8("carbohydrate_id")]
            carbohydrate = reader.sfloat("carbohydrate")
        meal = _MEALS[reader.u8("meal")] if flags & _MEAL else None
        tester = health = None
        if flags & _TESTER_HEALTH:
            tester_health = reader.u8("tester_health")
            tester = _TESTERS[tester_health & _NIBBLE]
            health = _HEALTHS[tester_health >> 4]
        duration = intensity = None
        if flags & _EXERCISE:
            raw_duration = reader.u16("exercise_duration")
            duration = (
                _OVERRUN if raw_duration == EXERCISE_DURATION_OVERRUN else Number(raw_duration, 0)
            )
            intensity = Number(reader.u8("exercise_intensity"), 0)
        medication_id = medication = None
        if flags & _MEDICATION:
            medication_id = _MEDICATION_IDS[reader.u8("medication_id")]
            medication = reader.sfloat("medication")
        hba1c = reader.sfloat("hba1c") if flags & _HBA1C else None
        return cls(
            sequence_number,
            extended_flags,
            carbohydrate_id,
            carbohydrate,
            meal,
            tester,
            health,
            duration,
            intensity,
            medication_id,
            medication,
            Unit.LITRE if flags & _MEDICATION_LITRES else Unit.KILOGRAM,
            hba1c,
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a Glucose Measurement Context value."""
        writer = Writer(self.LABEL)
        carbohydrate = _pair(writer, self.carbohydrate_id, self.carbohydrate, "carbohydrate")
        tester_health = _pair(writer, self.tester, self.health, "tester_health")
        exercise = _pair(writer, self.exercise_duration, self.exercise_intensity, "exercise")
        medication = _pair(writer, self.medication_id, self.medication, "medication")
        flags = _medication_unit_flag(writer, self.medication_unit)
        if carbohydrate:
            flags |= _CARBOHYDRATE
        if self.meal is not None:
            flags |= _MEAL
        if tester_health:
            flags |= _TESTER_HEALTH
        if exercise:
            flags |= _EXERCISE
        if medication:
            flags |= _MEDICATION
        if self.hba1c is not None:
            flags |= _HBA1C
        if self.extended_flags is not None:
            flags |= _EXTENDED_FLAGS
        writer.u8(flags, "flags")
        writer.u16(self.sequence_number, "sequence_number")
        if self.extended_flags is not None:
            writer.u8(self.extended_flags, "extended_flags")
        if self.carbohydrate_id is not None and self.carbohydrate is not None:
            writer.u8(self.carbohydrate_id, "carbohydrate_id")
            writer.sfloat(self.carbohydrate, "carbohydrate")
        if self.meal is not None:
            writer.u8(self.meal, "meal")
        if self.tester is not None and self.health is not None:
            writer.u8(
                _nibbles(writer, self.tester, "tester", self.health, "health"), "tester_health"
            )
        if self.exercise_duration is not None and self.exercise_intensity is not None:
            _write_exercise_duration(writer, self.exercise_duration)
            writer.u8(
                self.exercise_intensity.raw_units(_UNITS, self.LABEL, "exercise_intensity"),
                "exercise_intensity",
            )
        if self.medication_id is not None and self.medication is not None:
            writer.u8(self.medication_id, "medication_id")
            writer.sfloat(self.medication, "medication")
        if self.hba1c is not None:
            writer.sfloat(self.hba1c, "hba1c")
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        observations = []
        if self.carbohydrate is not None:
            observations.append(
                Observation("carbohydrate", Quantity.CARBOHYDRATE, self.carbohydrate, Unit.KILOGRAM)
            )
        if self.exercise_duration is not None:
            observations.append(
                Observation(
                    "exercise_duration",
                    Quantity.EXERCISE_DURATION,
                    self.exercise_duration,
                    Unit.SECOND,
                )
            )
        if self.exercise_intensity is not None:
            observations.append(
                Observation(
                    "exercise_intensity",
                    Quantity.EXERCISE_INTENSITY,
                    self.exercise_intensity,
                    Unit.PERCENT,
                )
            )
        if self.medication is not None:
            observations.append(
                Observation(
                    "medication", Quantity.MEDICATION, self.medication, self.medication_unit
                )
            )
        if self.hba1c is not None:
            observations.append(Observation("hba1c", Quantity.HBA1C, self.hba1c, Unit.PERCENT))
        return tuple(observations)


@dataclass(frozen=True, slots=True)
class GlucoseFeature:
    """Glucose Feature (0x2A51): what the meter can detect and report."""

    UUID: ClassVar[int] = 0x2A51
    NAME: ClassVar[str] = "Glucose Feature"
    LABEL: ClassVar[str] = "Glucose Feature (0x2A51)"

    features: GlucoseFeatures
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Glucose Feature value."""
        reader = Reader(data, cls.LABEL)
        raw = reader.u16("features")
        features = GlucoseFeatures(reader.flags(raw, _FEATURE_BITS, "features"))
        return cls(features, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Glucose Feature value."""
        writer = Writer(self.LABEL)
        writer.u16(int(self.features), "features")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class GlucoseRecord:
    """One stored record: a measurement and its context, matched by sequence number.

    Either side may be missing; the properties say which expectation of the Glucose Service the
    pair breaks, so that a lost or stray context is reported rather than dropped.
    """

    sequence_number: int
    measurement: GlucoseMeasurement | None
    context: GlucoseMeasurementContext | None

    @property
    def context_missing(self) -> bool:
        """The measurement announced a context (flag bit 4) and none arrived."""
        measurement = self.measurement
        return (
            measurement is not None
            and measurement.context_information_follows
            and self.context is None
        )

    @property
    def context_unexpected(self) -> bool:
        """A context arrived for a measurement that did not announce one."""
        measurement = self.measurement
        return (
            measurement is not None
            and not measurement.context_information_follows
            and self.context is not None
        )

    @property
    def measurement_missing(self) -> bool:
        """A context arrived with no measurement of its sequence number."""
        return self.measurement is None

    @property
    def complete(self) -> bool:
        """Whether the record is as the service defines it: no side missing or unexpected."""
        return not (self.context_missing or self.context_unexpected or self.measurement_missing)

    def observations(self) -> tuple[Observation, ...]:
        """Return both sides' observations, field paths prefixed with the side's name."""
        observations: list[Observation] = []
        if self.measurement is not None:
            observations.extend(
                o._replace(field=f"measurement.{o.field}") for o in self.measurement.observations()
            )
        if self.context is not None:
            observations.extend(
                o._replace(field=f"context.{o.field}") for o in self.context.observations()
            )
        return tuple(observations)


def pair_records(
    measurements: Iterable[GlucoseMeasurement],
    contexts: Iterable[GlucoseMeasurementContext],
) -> tuple[GlucoseRecord, ...]:
    """Match each measurement with the context of the same sequence number.

    One record per measurement, in the measurements' order; each takes the first context of its
    sequence number not yet taken (so a number reused after a wrap or a re-sent record pairs in
    arrival order). Contexts left over follow as records without a measurement, in their order.
    Nothing is dropped: check `GlucoseRecord.complete` and its properties for what is wrong.
    """
    context_list = tuple(contexts)
    waiting: dict[int, list[int]] = {}
    for index, context in enumerate(context_list):
        waiting.setdefault(context.sequence_number, []).append(index)
    taken: set[int] = set()
    records: list[GlucoseRecord] = []
    for measurement in measurements:
        candidates = waiting.get(measurement.sequence_number)
        paired = None
        if candidates:
            index = candidates.pop(0)
            taken.add(index)
            paired = context_list[index]
        records.append(GlucoseRecord(measurement.sequence_number, measurement, paired))
    records.extend(
        GlucoseRecord(context.sequence_number, None, context)
        for index, context in enumerate(context_list)
        if index not in taken
    )
    return tuple(records)


def _concentration_unit_flag(writer: Writer, unit: Unit) -> int:
    if unit is Unit.KG_PER_LITRE:
        return 0
    if unit is Unit.MOL_PER_LITRE:
        return _MOL_PER_LITRE
    raise EncodeError(writer.characteristic, "unit", f"{unit.value} is not kg/L or mol/L")


def _medication_unit_flag(writer: Writer, unit: Unit) -> int:
    if unit is Unit.KILOGRAM:
        return 0
    if unit is Unit.LITRE:
        return _MEDICATION_LITRES
    raise EncodeError(writer.characteristic, "medication_unit", f"{unit.value} is not kg or L")


def _pair(writer: Writer, first: object, second: object, field: str) -> bool:
    """Return whether a two-field group is present; one without the other cannot be sent."""
    present = first is not None
    if present != (second is not None):
        raise EncodeError(
            writer.characteristic, field, "the two fields share one flag: give both or neither"
        )
    return present


def _nibbles(writer: Writer, low: int, low_field: str, high: int, high_field: str) -> int:
    """Pack two 4-bit codes into one byte, low nibble first as the GSS tables list them."""
    if not 0 <= low <= _NIBBLE:
        raise EncodeError(writer.characteristic, low_field, f"{low} does not fit in a nibble")
    if not 0 <= high <= _NIBBLE:
        raise EncodeError(writer.characteristic, high_field, f"{high} does not fit in a nibble")
    return low | high << 4


def _write_exercise_duration(writer: Writer, duration: Number) -> None:
    if duration.special is SpecialValue.POSITIVE_INFINITY:
        writer.u16(EXERCISE_DURATION_OVERRUN, "exercise_duration")
        return
    raw = duration.raw_units(_UNITS, writer.characteristic, "exercise_duration")
    if raw == EXERCISE_DURATION_OVERRUN:
        raise EncodeError(
            writer.characteristic, "exercise_duration", "0xFFFF is reserved for 'overrun'"
        )
    writer.u16(raw, "exercise_duration")


CHARACTERISTICS: Final = (GlucoseMeasurement, GlucoseMeasurementContext, GlucoseFeature)
"""The codec classes this module registers."""
