"""From a decoded measurement to a Reading: canonical units, codes, patient, time and id.

Pure: the hub's receive time, clock knowledge and patient map come in as arguments; nothing is
read from a clock, a file or the network, and nothing is logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from pydantic import ValidationError

from device_profiles.blood_pressure import (
    BloodPressureMeasurement,
    EnhancedBloodPressureMeasurement,
    EnhancedIntermediateCuffPressure,
    IntermediateCuffPressure,
)
from device_profiles.body_composition import BodyCompositionMeasurement
from device_profiles.codes import CODES, Observation, canonical, loinc_for
from device_profiles.glucose import (
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseRecord,
    GlucoseType,
    SampleLocation,
    SensorStatus,
)
from device_profiles.health_thermometer import IntermediateTemperature, TemperatureMeasurement
from device_profiles.heart_rate import HeartRateMeasurement, SensorContactStatus
from device_profiles.pulse_oximeter import PLXContinuousMeasurement, PLXSpotCheckMeasurement
from device_profiles.weight_scale import UNKNOWN_USER, WeightMeasurement
from gateway.errors import VitalbridgeError
from gateway.reading import (
    UNASSIGNED,
    Component,
    DeviceInfo,
    Reading,
    ReadingKind,
    derive_reading_id,
)
from gateway.timebase import TimeSource, resolve_time

if TYPE_CHECKING:
    import datetime as dt
    import enum
    from collections.abc import Mapping, Sequence
    from zoneinfo import ZoneInfo

    from device_profiles.date_time import DateTime
    from gateway.timebase import ClockState

__all__ = ["Normalisable", "NormaliseError", "normalise", "to_component"]

Normalisable = (
    BloodPressureMeasurement
    | EnhancedBloodPressureMeasurement
    | PLXSpotCheckMeasurement
    | PLXContinuousMeasurement
    | WeightMeasurement
    | BodyCompositionMeasurement
    | TemperatureMeasurement
    | GlucoseMeasurement
    | GlucoseRecord
    | HeartRateMeasurement
)
"""The decoded results `normalise` turns into readings."""

_INTERMEDIATE: Final = (
    IntermediateCuffPressure,
    EnhancedIntermediateCuffPressure,
    IntermediateTemperature,
)


class NormaliseError(VitalbridgeError, ValueError):
    """A decoded result that is not a reading (an intermediate value, a lone context, ...)."""

    measurement_type: str
    detail: str

    def __init__(self, measurement_type: str, detail: str) -> None:
        self.measurement_type = measurement_type
        self.detail = detail
        super().__init__(f"cannot normalise {measurement_type}: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        # Keeps the typed attributes when the error crosses a process or a pickle.
        return (type(self), (self.measurement_type, self.detail))


@dataclass(slots=True)
class _Facts:
    """What one measurement says, before the hub adds patient, time and identity."""

    kind: ReadingKind
    characteristic: int
    observations: tuple[Observation, ...]
    device_time: dt.datetime | None = None
    user_index: int | None = None
    record_id: int | None = None
    status: list[str] = field(default_factory=list)
    qualifiers: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    distrust_clock: str | None = None
    """Why the device's own flags say its time is wrong, when they do."""


def to_component(observation: Observation) -> Component:
    """Return the observation in its canonical UCUM unit, exact to its resolution, with codes."""
    number, unit = canonical(observation)
    entry = CODES[observation.quantity]
    return Component(
        code=observation.quantity,
        field=observation.field,
        value=number.value,
        special=number.special,
        unit=unit,
        resolution=number.resolution,
        mdc_code=entry.mdc_code,
        mdc_reference_id=entry.mdc_reference_id,
        loinc=loinc_for(observation.quantity, unit),
    )


def _flag_names(flags: enum.IntFlag | None) -> list[str]:
    if flags is None:
        return []
    return [member.name.lower() for member in type(flags) if member.name and member in flags]


def _code_name(code: enum.IntEnum) -> str:
    # Reserved codes keep their number ("reserved_12"), so nothing is mistaken for a known one.
    return code.name.lower()


def _timestamp(value: DateTime | None, facts: _Facts) -> dt.datetime | None:
    if value is None:
        return None
    if value.timestamp is None:
        facts.warnings.append("device time has an unknown (0) year, month or day")
    return value.timestamp


def _blood_pressure(m: BloodPressureMeasurement | EnhancedBloodPressureMeasurement) -> _Facts:
    facts = _Facts(ReadingKind.BLOOD_PRESSURE, m.UUID, m.observations(), user_index=m.user_id)
    facts.status = _flag_names(m.measurement_status)
    if isinstance(m, EnhancedBloodPressureMeasurement):
        # The user-facing time is the device's local time; the time stamp is in the device's
        # time base, which is local time too unless the Device Time Service says otherwise.
        facts.device_time = m.user_facing_time or m.timestamp
    else:
        facts.device_time = _timestamp(m.timestamp, facts)
    return facts


def _spot_check(m: PLXSpotCheckMeasurement) -> _Facts:
    facts = _Facts(ReadingKind.PULSE_OXIMETRY, m.UUID, m.observations())
    facts.device_time = _timestamp(m.timestamp, facts)
    facts.status = _flag_names(m.measurement_status) + _flag_names(m.device_and_sensor_status)
    if m.device_clock_is_not_set:
        facts.status.append("device_clock_is_not_set")
        facts.distrust_clock = "the oximeter flagged its clock as not set"
    return facts


def _continuous(m: PLXContinuousMeasurement) -> _Facts:
    facts = _Facts(ReadingKind.PULSE_OXIMETRY, m.UUID, m.observations())
    facts.status = _flag_names(m.measurement_status) + _flag_names(m.device_and_sensor_status)
    return facts


def _weight(m: WeightMeasurement) -> _Facts:
    facts = _Facts(ReadingKind.BODY_WEIGHT, m.UUID, m.observations(), user_index=m.user_id)
    facts.device_time = _timestamp(m.timestamp, facts)
    return facts


def _body_composition(m: BodyCompositionMeasurement) -> _Facts:
    if m.multiple_packet_measurement:
        raise NormaliseError(
            type(m).__name__,
            "this is one packet of a split measurement; join the packets with "
            "device_profiles.body_composition.BodyCompositionReassembler first",
        )
    facts = _Facts(ReadingKind.BODY_COMPOSITION, m.UUID, m.observations(), user_index=m.user_id)
    facts.device_time = _timestamp(m.timestamp, facts)
    return facts


def _temperature(m: TemperatureMeasurement) -> _Facts:
    facts = _Facts(ReadingKind.BODY_TEMPERATURE, m.UUID, m.observations())
    facts.device_time = _timestamp(m.timestamp, facts)
    if m.temperature_type is not None:
        facts.qualifiers["temperature_type"] = _code_name(m.temperature_type)
    return facts


def _glucose(record: GlucoseRecord) -> _Facts:
    m = record.measurement
    if m is None:
        raise NormaliseError(
            "GlucoseRecord",
            f"context {record.sequence_number} has no measurement; a context alone is not a "
            "reading (pair contexts with device_profiles.glucose.pair_records)",
        )
    facts = _Facts(ReadingKind.BLOOD_GLUCOSE, m.UUID, record.observations())
    facts.record_id = m.sequence_number
    facts.device_time = m.measurement_time
    if facts.device_time is None:
        facts.warnings.append("device time has an unknown (0) year, month or day")
    facts.status = _flag_names(m.sensor_status_annunciation)
    if m.sensor_status_annunciation is not None and (
        SensorStatus.TIME_FAULT in m.sensor_status_annunciation
    ):
        facts.distrust_clock = "the meter reported a time fault"
    if m.glucose_concentration is None:
        facts.warnings.append("no glucose concentration: the meter sent status only")
    if m.type is not None:
        facts.qualifiers["glucose_type"] = _code_name(m.type)
    if m.sample_location is not None:
        facts.qualifiers["sample_location"] = _code_name(m.sample_location)
    if m.type is GlucoseType.CONTROL_SOLUTION or (
        m.sample_location is SampleLocation.CONTROL_SOLUTION
    ):
        facts.warnings.append("control solution test: a meter check, not a patient measurement")
    if record.context_missing:
        facts.warnings.append("the meter announced a measurement context that did not arrive")
    if record.context_unexpected:
        facts.warnings.append("a measurement context arrived that the meter did not announce")
    context = record.context
    if context is not None:
        _glucose_context(context, facts)
    return facts


def _glucose_context(context: GlucoseMeasurementContext, facts: _Facts) -> None:
    for name, code in (
        ("carbohydrate_id", context.carbohydrate_id),
        ("meal", context.meal),
        ("tester", context.tester),
        ("health", context.health),
        ("medication_id", context.medication_id),
    ):
        if code is not None:
            facts.qualifiers[name] = _code_name(code)
    facts.warnings.extend(f"context: {warning}" for warning in context.warnings)


def _heart_rate(m: HeartRateMeasurement) -> _Facts:
    facts = _Facts(ReadingKind.HEART_RATE, m.UUID, m.observations())
    if m.sensor_contact_status is SensorContactStatus.DETECTED:
        facts.status.append("sensor_contact_detected")
    elif m.sensor_contact_status is SensorContactStatus.NOT_DETECTED:
        facts.status.append("sensor_contact_not_detected")
    return facts


def _facts(measurement: object) -> _Facts:
    match measurement:
        case BloodPressureMeasurement() | EnhancedBloodPressureMeasurement():
            facts = _blood_pressure(measurement)
        case PLXSpotCheckMeasurement():
            facts = _spot_check(measurement)
        case PLXContinuousMeasurement():
            facts = _continuous(measurement)
        case WeightMeasurement():
            facts = _weight(measurement)
        case BodyCompositionMeasurement():
            facts = _body_composition(measurement)
        case TemperatureMeasurement():
            facts = _temperature(measurement)
        case GlucoseMeasurement():
            facts = _glucose(GlucoseRecord(measurement.sequence_number, measurement, None))
        case GlucoseRecord():
            facts = _glucose(measurement)
        case HeartRateMeasurement():
            facts = _heart_rate(measurement)
        case _ if isinstance(measurement, _INTERMEDIATE):
            raise NormaliseError(
                type(measurement).__name__,
                "an intermediate value shown while measuring is not a reading; "
                "normalise the final measurement",
            )
        case GlucoseMeasurementContext():
            raise NormaliseError(
                "GlucoseMeasurementContext",
                "a context alone is not a reading; pair it with its measurement "
                "(device_profiles.glucose.pair_records) and normalise the GlucoseRecord",
            )
        case _:
            raise NormaliseError(
                type(measurement).__name__,
                "not a health measurement normalise knows; expected one of "
                "gateway.normalise.Normalisable",
            )
    # The decoder's own warnings come first; a record's are its measurement's.
    own = measurement.measurement if isinstance(measurement, GlucoseRecord) else measurement
    facts.warnings[:0] = getattr(own, "warnings", ())
    return facts


def _patient(
    user_index: int | None, patient_map: Mapping[int | None, str], warnings: list[str]
) -> str:
    # Attribution is never guessed: an unknown user (0xFF), or an index the hub has no mapping
    # for, stays unassigned for a person to resolve.
    if user_index == UNKNOWN_USER:
        warnings.append("the device did not know the user (user index 255)")
        return UNASSIGNED
    patient = patient_map.get(user_index)
    if patient is None:
        which = "no user index" if user_index is None else f"user index {user_index}"
        warnings.append(f"no patient is mapped for {which} on this device")
        return UNASSIGNED
    return patient


def normalise(
    measurement: object,
    device: DeviceInfo,
    clock: ClockState,
    patient_map: Mapping[int | None, str],
    *,
    hub_id: str,
    hub_tz: ZoneInfo,
    received_at: dt.datetime,
    raw: bytes | Sequence[bytes],
    battery_level: int | None = None,
) -> Reading:
    """Build the Reading of one decoded measurement (see `Normalisable` for the kinds).

    `patient_map` maps the device's user index (None for a device without users) to an opaque
    patient reference. `raw` is the characteristic value as received, or for a measurement
    carried by several values (a GlucoseRecord: measurement then context; the packets of a
    split body composition measurement) those values in arrival order. Raise NormaliseError
    for a result that is not a reading, or for arguments a Reading cannot hold.
    """
    name = type(measurement).__name__
    facts = _facts(measurement)
    values = (raw,) if isinstance(raw, bytes | bytearray) else tuple(raw)
    if not values or not all(values):
        raise NormaliseError(name, "raw is empty: pass the characteristic value(s) as received")
    # A device that flags its own clock as wrong is believed: its time is not used.
    reason = facts.distrust_clock
    try:
        resolution = resolve_time(
            None if reason is not None else facts.device_time, clock, hub_tz, received_at
        )
    except ValueError as exc:
        raise NormaliseError(name, f"{exc}") from exc
    reason = reason or resolution.rejected
    if reason is not None:
        facts.warnings.append(f"{reason}; measured_at is the hub receive time")
    device_time = (
        None if facts.device_time is None else facts.device_time.isoformat(timespec="seconds")
    )
    characteristic = f"{facts.characteristic:04X}"
    # A glucose context may be lost on one delivery and not the next: only the measurement's
    # own value identifies the record.
    identity = values[0] if isinstance(measurement, GlucoseRecord) else b"".join(values)
    trusted = resolution.time_source is not TimeSource.HUB_RECEIVE_TIME
    reading_id = derive_reading_id(
        device_id=device.id,
        characteristic=characteristic,
        record_id=facts.record_id,
        device_time=device_time if trusted else None,
        received_at=received_at,
        raw=bytes(identity),
    )
    patient = _patient(facts.user_index, patient_map, facts.warnings)
    try:
        return Reading(
            reading_id=reading_id,
            hub_id=hub_id,
            device=device,
            patient=patient,
            user_index=facts.user_index,
            kind=facts.kind,
            components=tuple(to_component(o) for o in facts.observations),
            status=tuple(facts.status),
            qualifiers=facts.qualifiers,
            measured_at=resolution.measured_at,
            device_time=device_time,
            received_at=received_at,
            time_source=resolution.time_source,
            clock_offset_s=resolution.clock_offset_s,
            battery_level=battery_level,
            raw=" ".join(bytes(value).hex() for value in values),
            characteristic=characteristic,
            warnings=tuple(facts.warnings),
        )
    except ValidationError as exc:
        # Field names only: the values may be patient references, which stay out of messages.
        fields = ", ".join(".".join(map(str, error["loc"])) for error in exc.errors())
        raise NormaliseError(
            name,
            f"the reading would be invalid in {fields}; check hub_id, device.id, the patient "
            "map's references (letters, digits, . _ : -) and battery_level (0-100)",
        ) from exc
