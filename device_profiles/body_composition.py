"""Body Composition Service 1.0 characteristics, and the reassembly of multiple-packet measurements.

Field tables: GATT Specification Supplement (GSS) sections Body Composition Measurement (0x2A9C)
and Body Composition Feature (0x2A9B). Units flag, mass and height scales and resolution codes are
those of the Weight Scale Service (`weight_scale`).

Multiple-packet measurements: a Body Composition Measurement can be 30 octets long, more than an
indication carries at the default ATT_MTU of 23 (20 octets of value). The server then splits it:
each packet has the Multiple Packet Measurement flag set, repeats Flags and the mandatory Body Fat
Percentage, and carries a share of the optional fields. The spec gives no packet count and no
end-of-measurement marker. Two packets always suffice at the smallest ATT_MTU (one holds flags,
body fat, time stamp, user ID and four values; the other the five values left), and the server
stacks we know of send two, so `BodyCompositionReassembler` completes a measurement on its second
packet unless told otherwise. `merge` joins any given packets; `split` is the server side, for
simulators and tests.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

from device_profiles._errors import EncodeError
from device_profiles._user import UNKNOWN_USER, UserIdMixin
from device_profiles._wire import Reader, Writer
from device_profiles.codes import Observation, Quantity
from device_profiles.date_time import DateTime, read_date_time, write_date_time
from device_profiles.ieee11073 import Number, Scale, SpecialValue
from device_profiles.units import Unit
from device_profiles.weight_scale import (
    HeightMeasurementResolution,
    MeasurementUnits,
    WeightMeasurementResolution,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "UNKNOWN_USER",
    "BodyCompositionFeature",
    "BodyCompositionFeatures",
    "BodyCompositionMeasurement",
    "BodyCompositionReassembler",
    "HeightMeasurementResolution",
    "MassMeasurementResolution",
    "MeasurementUnits",
    "ReassemblyError",
    "merge",
    "split",
]

MassMeasurementResolution = WeightMeasurementResolution
"""BCS calls the Weight Scale resolution code "Mass Measurement Resolution"; same codes."""

DEFAULT_MAX_PACKET_SIZE: Final = 20
"""The value octets one notification or indication carries at the default ATT_MTU (23 - 3)."""

# Flags of 0x2A9C (GSS "Flags" field); bits 13-15 are reserved.
_IMPERIAL: Final = 0x0001
_TIME_STAMP: Final = 0x0002
_USER_ID: Final = 0x0004
_BASAL_METABOLISM: Final = 0x0008
_MUSCLE_PERCENTAGE: Final = 0x0010
_MUSCLE_MASS: Final = 0x0020
_FAT_FREE_MASS: Final = 0x0040
_SOFT_LEAN_MASS: Final = 0x0080
_BODY_WATER_MASS: Final = 0x0100
_IMPEDANCE: Final = 0x0200
_WEIGHT: Final = 0x0400
_HEIGHT: Final = 0x0800
_MULTIPLE_PACKET: Final = 0x1000
_KNOWN_FLAGS: Final = 0x1FFF
# Bits 3-11: every optional field the spec disables when body fat is "measurement unsuccessful".
_MEASURED_FIELDS: Final = 0x0FF8

# Body Composition Feature (0x2A9B): bits 0-10 flags, 11-14 mass and 15-17 height resolution.
_FEATURE_FLAGS: Final = 0x07FF
_MASS_RESOLUTION_SHIFT: Final = 11
_HEIGHT_RESOLUTION_SHIFT: Final = 15
_MAX_MASS_RESOLUTION: Final = 0x0F
_MAX_HEIGHT_RESOLUTION: Final = 0x07
_KNOWN_FEATURES: Final = 0x0003FFFF

_PERCENT_SCALE: Final = Scale(1, -1)
_KILOJOULE_SCALE: Final = Scale(1, 0)
_OHM_SCALE: Final = Scale(1, -1)

# Indexed by the units flag bit, so that decoding looks the scales up once per payload.
_UNIT_SETS: Final = tuple(
    (units, units.mass_scale, units.length_scale, units.mass_unit, units.length_unit)
    for units in MeasurementUnits
)

# The optional value fields in wire order: (flag bit, field name, quantity).
_VALUE_FIELDS: Final = (
    (_BASAL_METABOLISM, "basal_metabolism", Quantity.BASAL_METABOLISM),
    (_MUSCLE_PERCENTAGE, "muscle_percentage", Quantity.MUSCLE_PERCENTAGE),
    (_MUSCLE_MASS, "muscle_mass", Quantity.MUSCLE_MASS),
    (_FAT_FREE_MASS, "fat_free_mass", Quantity.FAT_FREE_MASS),
    (_SOFT_LEAN_MASS, "soft_lean_mass", Quantity.SOFT_LEAN_MASS),
    (_BODY_WATER_MASS, "body_water_mass", Quantity.BODY_WATER_MASS),
    (_IMPEDANCE, "impedance", Quantity.IMPEDANCE),
    (_WEIGHT, "weight", Quantity.BODY_WEIGHT),
    (_HEIGHT, "height", Quantity.BODY_HEIGHT),
)
# Flags (2) and Body Fat Percentage (2) open every packet; the other fields take 7, 1 or 2.
_HEAD_SIZE: Final = 4
_TIME_STAMP_SIZE: Final = 7
_USER_ID_SIZE: Final = 1
_VALUE_SIZE: Final = 2


class BodyCompositionFeatures(enum.IntFlag):
    """Body Composition Feature flag bits (GSS 0x2A9B bits 0-10)."""

    TIME_STAMP_SUPPORTED = 0x0001
    MULTIPLE_USERS_SUPPORTED = 0x0002
    BASAL_METABOLISM_SUPPORTED = 0x0004
    MUSCLE_PERCENTAGE_SUPPORTED = 0x0008
    MUSCLE_MASS_SUPPORTED = 0x0010
    FAT_FREE_MASS_SUPPORTED = 0x0020
    SOFT_LEAN_MASS_SUPPORTED = 0x0040
    BODY_WATER_MASS_SUPPORTED = 0x0080
    IMPEDANCE_SUPPORTED = 0x0100
    WEIGHT_SUPPORTED = 0x0200
    HEIGHT_SUPPORTED = 0x0400


# Every code resolved once, reserved ones included: decoding is then a tuple lookup.
_MASS_RESOLUTION_CODES: Final = tuple(WeightMeasurementResolution(code) for code in range(16))
_HEIGHT_RESOLUTION_CODES: Final = tuple(HeightMeasurementResolution(code) for code in range(8))


@dataclass(frozen=True, slots=True)
class BodyCompositionMeasurement(UserIdMixin):
    """Body Composition Measurement (0x2A9C): one body composition analysis, or one packet of it.

    A body fat percentage of 0xFFFF on the wire is "measurement unsuccessful" (a special `Number`);
    it is the only field of this characteristic with that special value. The spec then disables
    every optional field but time stamp and user ID: decode still reads any the flags announce,
    with a warning, and encode refuses them.
    """

    UUID: ClassVar[int] = 0x2A9C
    NAME: ClassVar[str] = "Body Composition Measurement"
    LABEL: ClassVar[str] = "Body Composition Measurement (0x2A9C)"

    body_fat_percentage: Number
    measurement_units: MeasurementUnits = MeasurementUnits.SI
    timestamp: DateTime | None = None
    user_id: int | None = None
    basal_metabolism: Number | None = None
    muscle_percentage: Number | None = None
    muscle_mass: Number | None = None
    fat_free_mass: Number | None = None
    soft_lean_mass: Number | None = None
    body_water_mass: Number | None = None
    impedance: Number | None = None
    weight: Number | None = None
    height: Number | None = None
    multiple_packet_measurement: bool = False
    """Set on each packet of a measurement split over several; see `BodyCompositionReassembler`."""
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Body Composition Measurement value (GSS 0x2A9C field table)."""
        reader = Reader(data, cls.LABEL)
        flags = reader.flags(reader.u16("flags"), _KNOWN_FLAGS, "flags")
        units, mass, length, _, _ = _UNIT_SETS[flags & _IMPERIAL]
        body_fat = reader.fixed_u16("body_fat_percentage", _PERCENT_SCALE, unsuccessful=True)
        timestamp = read_date_time(reader, "timestamp") if flags & _TIME_STAMP else None
        user_id = reader.u8("user_id") if flags & _USER_ID else None
        basal_metabolism = (
            reader.fixed_u16("basal_metabolism", _KILOJOULE_SCALE)
            if flags & _BASAL_METABOLISM
            else None
        )
        muscle_percentage = (
            reader.fixed_u16("muscle_percentage", _PERCENT_SCALE)
            if flags & _MUSCLE_PERCENTAGE
            else None
        )
        muscle_mass = reader.fixed_u16("muscle_mass", mass) if flags & _MUSCLE_MASS else None
        fat_free_mass = reader.fixed_u16("fat_free_mass", mass) if flags & _FAT_FREE_MASS else None
        soft_lean_mass = (
            reader.fixed_u16("soft_lean_mass", mass) if flags & _SOFT_LEAN_MASS else None
        )
        body_water_mass = (
            reader.fixed_u16("body_water_mass", mass) if flags & _BODY_WATER_MASS else None
        )
        impedance = reader.fixed_u16("impedance", _OHM_SCALE) if flags & _IMPEDANCE else None
        weight = reader.fixed_u16("weight", mass) if flags & _WEIGHT else None
        height = reader.fixed_u16("height", length) if flags & _HEIGHT else None
        if flags & _MEASURED_FIELDS and body_fat.special is not None:
            reader.warnings.append(
                "body_fat_percentage: 'measurement unsuccessful' with other measured fields "
                "present; the spec allows only time stamp and user ID with it"
            )
        return cls(
            body_fat,
            units,
            timestamp,
            user_id,
            basal_metabolism,
            muscle_percentage,
            muscle_mass,
            fat_free_mass,
            soft_lean_mass,
            body_water_mass,
            impedance,
            weight,
            height,
            bool(flags & _MULTIPLE_PACKET),
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a Body Composition Measurement value."""
        writer = Writer(self.LABEL)
        _, mass, length, _, _ = _UNIT_SETS[self.measurement_units is MeasurementUnits.IMPERIAL]
        values = (
            (self.basal_metabolism, _KILOJOULE_SCALE),
            (self.muscle_percentage, _PERCENT_SCALE),
            (self.muscle_mass, mass),
            (self.fat_free_mass, mass),
            (self.soft_lean_mass, mass),
            (self.body_water_mass, mass),
            (self.impedance, _OHM_SCALE),
            (self.weight, mass),
            (self.height, length),
        )
        flags = _IMPERIAL if self.measurement_units is MeasurementUnits.IMPERIAL else 0
        if self.timestamp is not None:
            flags |= _TIME_STAMP
        if self.user_id is not None:
            flags |= _USER_ID
        for (bit, _, _), (value, _) in zip(_VALUE_FIELDS, values, strict=True):
            if value is not None:
                flags |= bit
        if self.multiple_packet_measurement:
            flags |= _MULTIPLE_PACKET
        if (
            flags & _MEASURED_FIELDS
            and self.body_fat_percentage.special is SpecialValue.MEASUREMENT_UNSUCCESSFUL
        ):
            raise EncodeError(
                self.LABEL,
                "body_fat_percentage",
                "an unsuccessful measurement carries no fields but time stamp and user ID",
            )
        writer.u16(flags, "flags")
        writer.fixed_u16(
            self.body_fat_percentage, "body_fat_percentage", _PERCENT_SCALE, unsuccessful=True
        )
        if self.timestamp is not None:
            write_date_time(writer, self.timestamp, "timestamp")
        if self.user_id is not None:
            writer.u8(self.user_id, "user_id")
        for (_, name, _), (value, scale) in zip(_VALUE_FIELDS, values, strict=True):
            if value is not None:
                writer.fixed_u16(value, name, scale)
        return writer.bytes()

    def observations(self) -> tuple[Observation, ...]:
        """Return the measured values with their quantities and units."""
        mass = self.measurement_units.mass_unit
        length = self.measurement_units.length_unit
        units = (Unit.KILOJOULE, Unit.PERCENT, mass, mass, mass, mass, Unit.OHM, mass, length)
        observations = [
            Observation(
                "body_fat_percentage",
                Quantity.BODY_FAT_PERCENTAGE,
                self.body_fat_percentage,
                Unit.PERCENT,
            )
        ]
        for (_, name, quantity), unit in zip(_VALUE_FIELDS, units, strict=True):
            value = getattr(self, name)
            if value is not None:
                observations.append(Observation(name, quantity, value, unit))
        return tuple(observations)


@dataclass(frozen=True, slots=True)
class BodyCompositionFeature:
    """Body Composition Feature (0x2A9B): what the analyser reports and how finely it measures."""

    UUID: ClassVar[int] = 0x2A9B
    NAME: ClassVar[str] = "Body Composition Feature"
    LABEL: ClassVar[str] = "Body Composition Feature (0x2A9B)"

    features: BodyCompositionFeatures
    mass_measurement_resolution: WeightMeasurementResolution = (
        WeightMeasurementResolution.NOT_SPECIFIED
    )
    height_measurement_resolution: HeightMeasurementResolution = (
        HeightMeasurementResolution.NOT_SPECIFIED
    )
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Body Composition Feature value (GSS 0x2A9B bit table); bits 18-31 reserved."""
        reader = Reader(data, cls.LABEL)
        raw = reader.flags(reader.u32("features"), _KNOWN_FEATURES, "features")
        return cls(
            BodyCompositionFeatures(raw & _FEATURE_FLAGS),
            _MASS_RESOLUTION_CODES[(raw >> _MASS_RESOLUTION_SHIFT) & _MAX_MASS_RESOLUTION],
            _HEIGHT_RESOLUTION_CODES[raw >> _HEIGHT_RESOLUTION_SHIFT],
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a Body Composition Feature value."""
        writer = Writer(self.LABEL)
        features = int(self.features)
        if features & ~_FEATURE_FLAGS:
            raise EncodeError(self.LABEL, "features", f"bits 0x{features:x} beyond bits 0-10")
        if not 0 <= self.mass_measurement_resolution <= _MAX_MASS_RESOLUTION:
            raise EncodeError(self.LABEL, "mass_measurement_resolution", "code is not 0..15")
        if not 0 <= self.height_measurement_resolution <= _MAX_HEIGHT_RESOLUTION:
            raise EncodeError(self.LABEL, "height_measurement_resolution", "code is not 0..7")
        writer.u32(
            features
            | int(self.mass_measurement_resolution) << _MASS_RESOLUTION_SHIFT
            | int(self.height_measurement_resolution) << _HEIGHT_RESOLUTION_SHIFT,
            "features",
        )
        return writer.bytes()


class ReassemblyError(ValueError):
    """Packets that cannot be one measurement: conflicting values, units or users, or a gap."""

    field: str
    detail: str
    packets: tuple[BodyCompositionMeasurement, ...]

    def __init__(
        self, field: str, detail: str, packets: tuple[BodyCompositionMeasurement, ...]
    ) -> None:
        self.field = field
        self.detail = detail
        self.packets = packets
        super().__init__(
            f"{BodyCompositionMeasurement.LABEL}: cannot reassemble field '{field}': {detail}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        # Keeps the typed attributes when the error crosses a process or a pickle.
        return (type(self), (self.field, self.detail, self.packets))


# Fields a packet may carry or leave out; where two packets both carry one, they must agree.
_SHARED_FIELDS: Final = (
    "timestamp",
    "user_id",
    *(name for _, name, _ in _VALUE_FIELDS),
)


def merge(packets: Sequence[BodyCompositionMeasurement]) -> BodyCompositionMeasurement:
    """Join the packets of one multiple-packet measurement into the whole measurement.

    Every packet must have the Multiple Packet Measurement flag, the same units and the same body
    fat percentage (the mandatory field each packet repeats). Any other field may sit in one packet
    or several; where several carry it, the values must be equal. The result has the flag clear,
    since it is the complete measurement, and each packet's warnings prefixed with its number.
    Raise ReassemblyError (with all the packets) when they cannot be one measurement.
    """
    if not packets:
        raise ReassemblyError("packets", "no packets to merge", ())
    every = tuple(packets)
    first = every[0]
    # Any: the values are of several field types, each checked against its own field by name.
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for number, packet in enumerate(every, 1):
        if not packet.multiple_packet_measurement:
            raise ReassemblyError(
                "multiple_packet_measurement",
                f"packet {number} is a whole measurement, not part of a split one",
                every,
            )
        if packet.measurement_units is not first.measurement_units:
            raise ReassemblyError(
                "measurement_units",
                f"packet {number} is in {packet.measurement_units.name}, "
                f"packet 1 in {first.measurement_units.name}",
                every,
            )
        if packet.body_fat_percentage != first.body_fat_percentage:
            raise ReassemblyError(
                "body_fat_percentage",
                f"packet {number} says {packet.body_fat_percentage}, "
                f"packet 1 says {first.body_fat_percentage}",
                every,
            )
        for name in _SHARED_FIELDS:
            value = getattr(packet, name)
            if value is None:
                continue
            known = values.setdefault(name, value)
            if known != value:
                raise ReassemblyError(
                    name, f"packet {number} says {value}, an earlier packet {known}", every
                )
        warnings.extend(f"packet {number}: {warning}" for warning in packet.warnings)
    whole = BodyCompositionMeasurement(first.body_fat_percentage, first.measurement_units)
    return dataclasses.replace(whole, warnings=tuple(warnings), **values)


class BodyCompositionReassembler:
    """Collects the packets of split Body Composition Measurements, one measurement at a time.

    Pure: no clock, no I/O. `add` returns a whole measurement when it has one, else None:

    - a packet without the Multiple Packet Measurement flag is a whole measurement: returned as is;
    - a flagged packet is kept until `packets_per_measurement` of them (2, see the module notes)
      are in, then they are merged (`merge`) and the result returned.

    When packets cannot be one measurement (a field that conflicts with an earlier packet's,
    mismatched units or user IDs, or a whole measurement arriving between the packets of a split
    one), `add` raises ReassemblyError carrying the earlier packets, which it drops; the packet
    given to `add` is not consumed, so that the caller can `add` it again to start afresh. On a
    disconnection, `reset` drops (and returns) a measurement left incomplete.
    """

    __slots__ = ("_packets", "packets_per_measurement")

    def __init__(self, packets_per_measurement: int = 2) -> None:
        if packets_per_measurement < 1:
            raise ValueError("packets_per_measurement must be at least 1")
        self.packets_per_measurement = packets_per_measurement
        self._packets: list[BodyCompositionMeasurement] = []

    @property
    def pending(self) -> tuple[BodyCompositionMeasurement, ...]:
        """The packets of the measurement being collected."""
        return tuple(self._packets)

    def add(self, packet: BodyCompositionMeasurement) -> BodyCompositionMeasurement | None:
        """Take one decoded packet; return the whole measurement once it is complete."""
        if not packet.multiple_packet_measurement:
            if self._packets:
                dropped = self.reset()
                raise ReassemblyError(
                    "multiple_packet_measurement",
                    f"a whole measurement arrived after {len(dropped)} of "
                    f"{self.packets_per_measurement} packets of a split one",
                    dropped,
                )
            return packet
        candidate = (*self._packets, packet)
        try:
            whole = merge(candidate)
        except ReassemblyError as exc:
            dropped = self.reset()
            raise ReassemblyError(exc.field, exc.detail, dropped) from exc
        if len(candidate) < self.packets_per_measurement:
            self._packets.append(packet)
            return None
        self._packets.clear()
        return whole

    def reset(self) -> tuple[BodyCompositionMeasurement, ...]:
        """Drop the measurement being collected and return its packets."""
        dropped = tuple(self._packets)
        self._packets.clear()
        return dropped


def split(
    measurement: BodyCompositionMeasurement, max_size: int = DEFAULT_MAX_PACKET_SIZE
) -> tuple[BodyCompositionMeasurement, ...]:
    """Split a measurement into packets of at most `max_size` octets, as a BCS server does.

    A measurement that fits is returned alone and unchanged. Otherwise every packet has the
    Multiple Packet Measurement flag and repeats the body fat percentage; time stamp and user ID
    go in the first; the other fields fill the packets in wire order. Warnings are not carried.
    """
    if len(measurement.encode()) <= max_size:
        return (measurement,)
    first_size = _HEAD_SIZE
    if measurement.timestamp is not None:
        first_size += _TIME_STAMP_SIZE
    if measurement.user_id is not None:
        first_size += _USER_ID_SIZE
    if max_size < max(first_size, _HEAD_SIZE + _VALUE_SIZE):
        raise EncodeError(
            measurement.LABEL, "max_size", f"{max_size} octets cannot hold a packet's fixed part"
        )
    head = BodyCompositionMeasurement(
        measurement.body_fat_percentage,
        measurement.measurement_units,
        multiple_packet_measurement=True,
    )
    groups: list[dict[str, Any]] = [
        {"timestamp": measurement.timestamp, "user_id": measurement.user_id}
    ]
    size = first_size
    for _, name, _ in _VALUE_FIELDS:
        value = getattr(measurement, name)
        if value is None:
            continue
        if size + _VALUE_SIZE > max_size:
            groups.append({})
            size = _HEAD_SIZE
        groups[-1][name] = value
        size += _VALUE_SIZE
    return tuple(dataclasses.replace(head, **group) for group in groups)


CHARACTERISTICS: Final = (BodyCompositionMeasurement, BodyCompositionFeature)
"""The codec classes this module registers."""
