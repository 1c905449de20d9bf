"""The Reading: one measurement as the hub publishes it, a versioned pydantic model.

Every backend codes against this model's JSON form (`Reading.to_json_bytes`, the MQTT payload)
and its JSON Schema, committed at gateway/schemas/reading.schema.json. Regenerate the file after
changing the model, and bump `SCHEMA_VERSION` when the change is not backwards compatible:

    python -m gateway.reading --write-schema

Values are exact decimals: a `Decimal` in Python and a plain decimal string in JSON ("120.5",
never 120.49999999999999), with the resolution beside it. `normalise` (gateway.normalise) builds
readings from decoded measurements; `derive_reading_id` gives each its deterministic id.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

# pydantic resolves the field annotations at runtime, so these imports cannot be type-only.
from device_profiles.codes import Quantity  # noqa: TC001
from device_profiles.ieee11073 import SpecialValue  # noqa: TC001
from device_profiles.units import Unit  # noqa: TC001
from gateway._schema_file import schema_cli, schema_file_text
from gateway.timebase import TimeSource

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "UNASSIGNED",
    "Component",
    "DeviceInfo",
    "Reading",
    "ReadingKind",
    "TimeSource",
    "derive_reading_id",
    "main",
    "reading_json_schema",
    "schema_text",
    "write_schema",
]

SCHEMA_VERSION: Final = "1.0"
"""The version of the Reading schema; `Reading.schema_version` only accepts this value."""

UNASSIGNED: Final = "unassigned"
"""The patient of a reading the hub cannot attribute (unknown user, or no mapping)."""

SCHEMA_PATH: Final = Path(__file__).parent / "schemas" / "reading.schema.json"
"""Where the committed JSON Schema of Reading lives."""

_READING_ID_TAG: Final = "vitalbridge.reading_id/1"
_READING_ID_HEX_CHARS: Final = 32

# Identifiers that end up in MQTT topics (hub, device) or in patient records: no spaces, no
# topic separators or wildcards (/ + #), so a name cannot slip in as a patient reference.
_IDENTIFIER: Final = r"^[A-Za-z0-9._:-]{1,128}$"
_DECIMAL: Final = r"^-?[0-9]+(\.[0-9]+)?$"
_DECIMAL_RE: Final = re.compile(_DECIMAL)

Identifier = Annotated[str, StringConstraints(pattern=_IDENTIFIER)]


def _to_decimal(value: object) -> Decimal:
    # A float would carry its binary rounding artefact into the value, so only exact inputs
    # are accepted: a finite Decimal, an int, or a string in plain decimal notation.
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
        return Decimal(value)
    raise ValueError(
        f"expected an exact decimal (a Decimal, or a string such as '120.5'), got {value!r}"
    )


def _decimal_text(value: Decimal) -> str:
    # Plain notation keeps the digits the device sent: "0.050" stays "0.050", 1E+1 is "10".
    return format(value, "f")


ExactDecimal = Annotated[
    Decimal,
    PlainValidator(_to_decimal),
    PlainSerializer(_decimal_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _DECIMAL,
            "description": "An exact decimal in plain notation; trailing zeros are significant.",
        }
    ),
]
"""A Decimal in Python, a plain decimal string in JSON."""


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


def _sorted_dict(value: dict[str, str]) -> dict[str, str]:
    # Sorted so that the JSON form is canonical whatever order the items were given in.
    return dict(sorted(value.items()))


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""An aware datetime, stored and published in UTC ("...Z")."""


class ReadingKind(enum.StrEnum):
    """What was measured; also the last MQTT topic level (`hubs/{hub_id}/readings/{kind}`)."""

    BLOOD_PRESSURE = "blood_pressure"
    PULSE_OXIMETRY = "pulse_oximetry"
    BODY_WEIGHT = "body_weight"
    BODY_COMPOSITION = "body_composition"
    BODY_TEMPERATURE = "body_temperature"
    BLOOD_GLUCOSE = "blood_glucose"
    HEART_RATE = "heart_rate"


class DeviceInfo(BaseModel):
    """The device a reading came from, as the hub knows it (Device Information Service)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        use_attribute_docstrings=True,
    )

    id: Identifier
    """The hub's stable id for the device (survives address rotation and re-pairing)."""
    address: str | None = None
    """The Bluetooth address the device was last seen at."""
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    profile: str | None = None
    """The health profile the reading came through, e.g. "blood_pressure"."""


class Component(BaseModel):
    """One measured value of a reading, in its canonical UCUM unit, with its standard codes."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        use_attribute_docstrings=True,
    )

    code: Quantity
    field: str
    """Where the value came from in the decoded measurement, e.g. "spo2pr_fast.spo2"."""
    value: ExactDecimal | None
    """The exact value; null when `special` says why there is none."""
    special: SpecialValue | None = None
    """Set instead of `value` for NaN, NRes, +/-INFINITY, Reserved, MeasurementUnsuccessful."""
    unit: Unit
    resolution: ExactDecimal | None
    """The smallest step the device reports, in `unit`; null with `special`."""
    mdc_code: int | None = None
    mdc_reference_id: str | None = None
    loinc: str | None = None

    @model_validator(mode="after")
    def _value_or_special(self) -> Self:
        if (self.value is None) == (self.special is None):
            raise ValueError("exactly one of value and special is set")
        if (self.resolution is None) != (self.value is None):
            raise ValueError("resolution is set exactly when value is")
        return self


class Reading(BaseModel):
    """One measurement from one device, ready to publish: values, codes, time, patient, audit."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        use_attribute_docstrings=True,
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:vitalbridge:schema:reading:{SCHEMA_VERSION}",
        },
    )

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    reading_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    """Deterministic: the same measurement delivered again has the same id (see
    `derive_reading_id`), so a backend can drop duplicates."""
    hub_id: Identifier
    """The hub that received the measurement."""
    device: DeviceInfo
    patient: Identifier
    """An opaque patient reference from the hub's mapping of device and user index, or
    "unassigned"; never a name."""
    user_index: Annotated[int, Field(ge=0, le=255)] | None = None
    """The device's user index as sent (255: the device did not know the user)."""
    kind: ReadingKind
    components: tuple[Component, ...]
    """The measured values in the order the device sent them; empty when it sent status only."""
    status: tuple[str, ...] = ()
    """Measurement status flags the device set, by name (e.g. "irregular_pulse_detected")."""
    qualifiers: Annotated[dict[str, str], AfterValidator(_sorted_dict)] = Field(
        default_factory=dict
    )
    """Coded circumstances of the measurement by name, e.g. {"meal": "preprandial"}."""
    measured_at: UtcDatetime
    """When the measurement was taken, in UTC, as well as `time_source` allows."""
    device_time: (
        Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}$")] | None
    ) = None
    """The device's own local timestamp as sent (ISO 8601, no zone), or null when it sent none."""
    received_at: UtcDatetime
    """When the hub received the measurement, in UTC (hub clock)."""
    time_source: TimeSource
    """Where `measured_at` comes from, and so how far to trust it."""
    clock_offset_s: Annotated[float, Field(allow_inf_nan=False)] | None = None
    """The device-minus-hub clock offset subtracted from the device time, when one was."""
    battery_level: Annotated[int, Field(ge=0, le=100)] | None = None
    """The device's battery level in percent when the hub received the reading, if known."""
    raw: Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{2})+(?: (?:[0-9a-f]{2})+)*$")]
    """The characteristic value(s) as received, lowercase hex; several values (a glucose
    measurement and its context, the packets of a split measurement) separated by spaces."""
    characteristic: Annotated[str, StringConstraints(pattern=r"^[0-9A-F]{4}$")]
    """The 16-bit UUID of the characteristic that carried the measurement, e.g. "2A35"."""
    warnings: tuple[str, ...] = ()
    """What the decoder or the hub noticed (reserved bits, unattributed user, time rejected)."""

    def __hash__(self) -> int:
        # The generated frozen hash would fail on the qualifiers dict; equal readings have
        # equal ids, so hashing the id is consistent with ==.
        return hash(self.reading_id)

    def to_json_bytes(self) -> bytes:
        """Return the canonical compact JSON form: fields in schema order, UTF-8 (MQTT payload)."""
        return self.model_dump_json().encode()


def derive_reading_id(
    *,
    device_id: str,
    characteristic: str,
    record_id: int | None,
    device_time: str | None,
    received_at: dt.datetime,
    raw: bytes,
) -> str:
    """Return the deterministic id of a measurement: 32 hex digits of a SHA-256.

    The digest is over the compact JSON array, UTF-8 encoded,
    `["vitalbridge.reading_id/1", device_id, characteristic, record_id, time, raw_hex]`:

    - the tag versions the derivation: a future one can never produce an id of this one;
    - `device_id`: the same bytes from two devices are two measurements;
    - `characteristic` ("2A35"): the same bytes on two characteristics mean different things;
    - `record_id`: the record's own identity where the device numbers its records (the glucose
      sequence number, else null), which tells apart two stored records alike in every byte;
    - `time`: "device " plus the device's timestamp as sent (ISO, no zone) when it identifies
      the moment; otherwise "hub " plus `received_at` in UTC, to the microsecond. "Otherwise"
      covers no timestamp, and one the hub does not believe (a reset clock: a cuff back at
      2000-01-01 after a battery change stamps every reading alike). Two identical untimed
      readings then stay two readings, at a cost: a re-delivery of an untimed reading cannot
      be recognised and arrives as a duplicate with a new id. Duplicates are allowed, loss
      is not;
    - `raw_hex`: the bytes that carry the measurement (for a glucose record, the measurement
      value, not the context, which may arrive on one delivery and not the next).

    Not included, on purpose: the hub id (two hubs hearing one device see one measurement), the
    clock state and offset, the patient mapping and the battery level (each may change between
    deliveries of the same measurement). 128 bits leave collisions out of reach.
    """
    if device_time is not None:
        time_key = f"device {device_time}"
    else:
        if received_at.tzinfo is None or received_at.utcoffset() is None:
            raise ValueError("received_at must be an aware datetime")
        time_key = f"hub {received_at.astimezone(dt.UTC).isoformat(timespec='microseconds')}"
    material = json.dumps(
        [_READING_ID_TAG, device_id, characteristic, record_id, time_key, raw.hex()],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:_READING_ID_HEX_CHARS]


def reading_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the published Reading (serialization mode: every key present)."""
    return Reading.model_json_schema(mode="serialization")


def schema_text() -> str:
    """Return the JSON Schema as the committed file holds it (sorted keys, 2-space indent)."""
    return schema_file_text(reading_json_schema())


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    """Write the JSON Schema file."""
    path.write_text(schema_text(), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `--write-schema` regenerates the schema file, `--check-schema` compares."""
    return schema_cli(
        argv,
        module="gateway.reading",
        what="the Reading model",
        text=schema_text,
        default_path=SCHEMA_PATH,
        description=__doc__,
    )


if __name__ == "__main__":
    raise SystemExit(main())
