"""The hub's configuration: a TOML file plus ``VITALBRIDGE_*`` environment overrides, checked.

A support engineer edits ``/etc/vitalbridge/config.toml``; every mistake is reported as a
`ConfigError` naming the file, the field and what to write instead, before anything starts.
Environment variables override the file (``VITALBRIDGE_HUB_ID``, nested fields with a double
underscore: ``VITALBRIDGE_MQTT__BROKER_URL``; a whole section or the device list as JSON). Secrets
are never values in this file: the MQTT password comes from a file or an environment variable
named here.

Only variables that name a setting are read. Other ``VITALBRIDGE_*`` variables are left alone,
because they belong to other parts of the system (the simulated radio's
``VITALBRIDGE_BUMBLE_HCI``); a variable that names a section and a field that section does not have
(``VITALBRIDGE_BLE__MAX_CONECTIONS``) is a `ConfigError` naming the variable.

Error messages quote field names and never values: a patient reference or a mistyped password
must not end up in a terminal scrollback or a support ticket.
"""

from __future__ import annotations

import enum
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from gateway.errors import ConfigError
from gateway.hubclock import HubClockPolicy
from gateway.mqtt.settings import PublisherSettings  # noqa: TC001 - pydantic needs it at runtime
from gateway.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, OutboxPolicy
from gateway.web.server import WebSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pydantic_core import ErrorDetails

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_STATE_DIR",
    "ENV_PREFIX",
    "BleSettings",
    "DeviceConfig",
    "DeviceProfile",
    "HubConfig",
    "LoggingSettings",
    "OutboxSettings",
    "PairingMethod",
    "config_from_mapping",
    "dump_redacted",
    "load_config",
]

DEFAULT_CONFIG_PATH: Final = Path("/etc/vitalbridge/config.toml")
DEFAULT_STATE_DIR: Final = Path("/var/lib/vitalbridge")
ENV_PREFIX: Final = "VITALBRIDGE_"

_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_ADDRESS = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"
_MAX_USER_INDEX: Final = 254  # UDS user index range; 255 is "unknown user"
Identifier = Annotated[str, StringConstraints(pattern=_IDENTIFIER)]
Address = Annotated[str, StringConstraints(pattern=_ADDRESS, to_upper=True)]


class DeviceProfile(enum.StrEnum):
    """The Bluetooth SIG health profile a provisioned device is read through."""

    BLOOD_PRESSURE = "blood_pressure"
    PULSE_OXIMETER = "pulse_oximeter"
    WEIGHT_SCALE = "weight_scale"
    BODY_COMPOSITION = "body_composition"
    HEALTH_THERMOMETER = "health_thermometer"
    GLUCOSE = "glucose"
    HEART_RATE = "heart_rate"


class PairingMethod(enum.StrEnum):
    """How the hub bonds with a device before reading it."""

    NONE = "none"
    """No pairing: the device serves its data on an unencrypted link."""
    JUST_WORKS = "just_works"
    """Encrypted without a passkey (no display, no keypad on the device)."""
    PASSKEY = "passkey"
    """The device shows a six-digit passkey that the person pairing types in."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class DeviceConfig(_Section):
    """One provisioned device: who it is, how it is read, and whose readings it takes."""

    id: Identifier
    """The hub's stable id for the device, used in topics and readings (e.g. ``cuff-kitchen``)."""
    address: Address
    """Its Bluetooth address, ``AA:BB:CC:DD:EE:FF``."""
    profile: DeviceProfile
    name: str | None = None
    """A label for support staff (e.g. "bedroom scale"); never a patient's name."""
    patients: dict[int, Identifier] = Field(default_factory=dict)
    """User index on the device -> opaque patient reference (single-user devices: ``patient``)."""
    patient: Identifier | None = None
    """The patient reference of a device without users (most cuffs, oximeters, thermometers)."""
    consent_codes: dict[int, Annotated[int, Field(ge=0, le=9999)]] = Field(default_factory=dict)
    """User index -> the UDS consent code (0-9999) the hub registered that user with."""
    pairing: PairingMethod = PairingMethod.NONE

    @field_validator("patients")
    @classmethod
    def _check_user_indexes(cls, patients: dict[int, str]) -> dict[int, str]:
        # Only the index is quoted: the value is a patient reference.
        for index in patients:
            if not 0 <= index <= _MAX_USER_INDEX:
                msg = (
                    f"user index {index} is not 0-{_MAX_USER_INDEX} (255 means an unknown user): "
                    "use the index the device shows for that user"
                )
                raise ValueError(msg)
        return patients

    @field_validator("consent_codes")
    @classmethod
    def _check_consent_codes(cls, codes: dict[int, int], info: ValidationInfo) -> dict[int, int]:
        # A failed patients table is reported on its own; nothing to compare against here.
        patients = info.data.get("patients")
        if patients is None:
            return codes
        missing = sorted(set(codes) - set(patients))
        if missing:
            msg = (
                f"user index {missing} has a consent code but no entry in patients: "
                "map each user index to a patient reference, or remove its consent code"
            )
            raise ValueError(msg)
        return codes

    def patient_map(self) -> dict[int | None, str]:
        """Return the user index -> patient map for `normalise` (None: readings without a user)."""
        mapping: dict[int | None, str] = dict(self.patients.items())
        if self.patient is not None:
            mapping[None] = self.patient
        return mapping


class BleSettings(_Section):
    """How the hub uses Bluetooth."""

    backend: str = "bleak"
    """``bleak`` (BlueZ on Linux), or a module exposing ``scanner_backend`` and ``client_backend``
    (the simulated radio is ``simulators.bleak_backend``)."""
    backend_options: dict[str, str] = Field(default_factory=dict)
    """Passed to the backend module's ``configure()`` (e.g. ``hci_spec`` of the simulated radio)."""
    adapter: str | None = None
    """The BlueZ adapter, e.g. ``hci0``; the system default when unset."""
    max_connections: int = Field(default=3, ge=1, le=10)
    """Devices connected at once; a Raspberry Pi's controller manages about 3-5 reliably."""
    connect_timeout_s: float = Field(default=20.0, gt=0, le=120)
    session_timeout_s: float = Field(default=120.0, gt=0)
    """The longest one connection may last (a stored-record transfer included)."""
    racp_timeout_s: float = Field(default=30.0, gt=0)
    """How long a RACP request may go without the device sending a record or its answer."""
    scan_silence_s: float = Field(default=300.0, gt=0)
    """No health advertisement for this long while scanning: the scanner is restarted.

    Health devices advertise only when used, so a quiet night looks like this too; a restart
    every few minutes costs nothing, and it revives an adapter that stopped reporting."""
    power_cycle_adapter: bool = False
    """Also power-cycle the adapter (BlueZ) when restarting a silent scanner."""
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_cap_s: float = Field(default=300.0, gt=0)
    quiet_after_s: float = Field(default=4.0, gt=0, le=60)
    """Hang up once a device has sent nothing for this long after the sync steps."""
    resync_interval_s: float = Field(default=30.0, ge=0)
    """After a good session, leave a device alone this long even if it keeps advertising."""


class OutboxSettings(_Section):
    """The durable outbox's bounds (defaults hold 30 days of a busy household's readings)."""

    max_rows: int = Field(default=DEFAULT_MAX_ROWS, ge=100)
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1_000_000)
    policy: OutboxPolicy = OutboxPolicy.REFUSE_NEW


class LoggingSettings(_Section):
    """Where and how the daemon logs."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: readable console lines on a terminal, JSON lines otherwise (journald)."""


class HubConfig(BaseSettings):
    """The whole configuration of one hub."""

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        use_attribute_docstrings=True,
    )

    hub_id: Identifier
    """This hub's id, in every topic and reading (e.g. ``hub-0042``)."""
    mqtt: PublisherSettings
    """The broker and topics; ``hub_id`` is taken from the top level."""
    ble: BleSettings = Field(default_factory=BleSettings)
    devices: tuple[DeviceConfig, ...] = ()
    state_dir: Path = DEFAULT_STATE_DIR
    """Where the outbox, cursors and paired devices live (systemd's StateDirectory)."""
    timezone: str | None = Field(default=None, validate_default=True)
    """The household's IANA time zone (e.g. ``Europe/London``); the system zone when unset."""
    hub_clock: HubClockPolicy = HubClockPolicy.AUTO
    """When to set device clocks from the hub's: ``auto`` (only when NTP has synchronised it),
    ``trusted`` (always) or ``never`` (only read them and record their offset)."""
    status_interval_s: float = Field(default=60.0, gt=0)
    """How often the retained hub status is refreshed."""
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    """The local pairing page (off unless provisioning turns it on)."""

    @model_validator(mode="before")
    @classmethod
    def _hub_id_into_mqtt(cls, data: Any) -> Any:  # noqa: ANN401 - pydantic hands raw input
        # Without a hub_id there is nothing to copy: its absence is reported once, at the top.
        if isinstance(data, dict) and "hub_id" in data and isinstance(data.get("mqtt"), dict):
            mqtt = dict(data["mqtt"])
            mqtt.setdefault("hub_id", data["hub_id"])
            data = {**data, "mqtt": mqtt}
        return data

    @field_validator("devices")
    @classmethod
    def _check_devices_unique(cls, devices: tuple[DeviceConfig, ...]) -> tuple[DeviceConfig, ...]:
        first_by_id: dict[str, int] = {}
        first_by_address: dict[str, int] = {}
        for position, device in enumerate(devices):
            earlier = first_by_id.setdefault(device.id, position)
            if earlier != position:
                msg = (
                    f"devices.{position}.id {device.id!r} is also devices.{earlier}.id: "
                    "give each device its own id"
                )
                raise ValueError(msg)
            earlier = first_by_address.setdefault(device.address, position)
            if earlier != position:
                msg = (
                    f"devices.{position}.address {device.address} is also "
                    f"devices.{earlier}.address: list each device once"
                )
                raise ValueError(msg)
        return devices

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, name: str | None) -> str | None:
        _zone(name)  # raises for a zone name the system does not know
        return name

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.mqtt.hub_id != self.hub_id:
            msg = "mqtt.hub_id differs from hub_id: remove mqtt.hub_id (it is taken from hub_id)"
            raise ValueError(msg)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment over the file's values (handed in as init arguments); no .env files."""
        del settings_cls, dotenv_settings, file_secret_settings
        return (env_settings, init_settings)

    def zone(self) -> ZoneInfo:
        """Return the household's time zone."""
        return _zone(self.timezone)

    def device(self, device_id: str) -> DeviceConfig | None:
        """Return the provisioned device with this id, if any."""
        return next((d for d in self.devices if d.id == device_id), None)


def _zone(name: str | None) -> ZoneInfo:
    if name is None:
        system = _system_zone_name()
        try:
            return ZoneInfo(system)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = (
                f"timezone is unset and the system zone {system!r} (from TZ or /etc/localtime) is "
                "not an IANA zone name: set timezone, e.g. 'Europe/London'"
            )
            raise ValueError(msg) from exc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"timezone {name!r} is not an IANA zone name: write e.g. 'Europe/London'"
        raise ValueError(msg) from exc


def _system_zone_name() -> str:
    tz = os.environ.get("TZ", "").removeprefix(":")
    if tz:
        return tz
    localtime = Path("/etc/localtime")
    try:
        target = localtime.resolve(strict=True)
    except OSError:
        return "UTC"
    parts = target.parts
    if "zoneinfo" in parts:
        return "/".join(parts[parts.index("zoneinfo") + 1 :])
    return "UTC"


def load_config(path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH) -> HubConfig:
    """Read and check the configuration file (plus environment); raise ConfigError if wrong."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        msg = (
            f"{file}: the configuration file does not exist; create it (see systemd/README.md) "
            "or pass --config PATH"
        )
        raise ConfigError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = (
            f"{file}: the configuration file is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        )
        raise ConfigError(msg) from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        msg = (
            f"{file}: cannot read the configuration file ({reason}); check that it is a file "
            "readable by the gateway user"
        )
        raise ConfigError(msg) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{file}: not valid TOML ({exc}); fix the syntax at that line"
        raise ConfigError(msg) from exc
    return config_from_mapping(data, source=str(file))


def config_from_mapping(data: dict[str, Any], *, source: str = "<config>") -> HubConfig:
    """Check a configuration given as a mapping (the parsed file); raise ConfigError if wrong."""
    try:
        return HubConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from exc
    except SettingsError as exc:
        raise ConfigError(_explain_settings_error(exc, source)) from exc


def dump_redacted(config: HubConfig) -> dict[str, object]:
    """Return the effective configuration as JSON-able data, without patient references."""
    data: dict[str, Any] = config.model_dump(mode="json")
    for device, dumped in zip(config.devices, data["devices"], strict=True):
        dumped["patients"] = _redacted_table(device.patients)
        dumped["patient"] = None if device.patient is None else _REDACTED
        # A consent code unlocks a user's data on the device: like a PIN, it is not shown.
        dumped["consent_codes"] = _redacted_table(device.consent_codes)
    # The configuration holds no password, only where to read one: the mqtt section stays whole.
    return data


_REDACTED: Final = "<redacted>"


def _redacted_table(table: dict[int, Any]) -> dict[str, object]:
    return {"count": len(table), "user_indexes": sorted(table)}


def _explain(exc: ValidationError, source: str) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=True)
    # A bad hub_id also fails the copy the mqtt section takes of it: report it once.
    if any(error["loc"] == ("hub_id",) for error in errors):
        errors = [error for error in errors if error["loc"] != ("mqtt", "hub_id")]
    overrides = _environment_overrides()
    lines = [f"{source}: {len(errors)} problem(s) in the configuration:"]
    for error in errors:
        where = _dotted(error["loc"]) or "(top level)"
        line = f"  {where}: {_message(error)}{_hint(error)}"
        names = _overrides_for(error["loc"], overrides)
        if names:
            line += f" [set by the environment: {', '.join(names)}]"
        lines.append(_scrub(line))
    return "\n".join(lines)


def _explain_settings_error(exc: SettingsError, source: str) -> str:
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else "?"
    names = _overrides_for((field,), _environment_overrides()) or [f"{ENV_PREFIX}{field.upper()}"]
    return (
        f"{source}: {', '.join(names)} does not hold valid JSON for {field}: write a JSON object "
        f"(or array) for the whole section, or set one field with {ENV_PREFIX}"
        f"{field.upper()}__FIELD"
    )


def _dotted(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if part == "[key]":
            text += " (as a key)"
        else:
            text += f".{part}" if text else str(part)
    return text


def _message(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        described = _PATTERNS.get(pattern) if isinstance(pattern, str) else None
        if described is not None:
            return described
    return message


def _hint(error: ErrorDetails) -> str:
    loc = error["loc"]
    if loc in _FIELD_HINTS and error["type"] == "missing":
        return _FIELD_HINTS[loc]
    if error["type"] == "extra_forbidden" and loc and str(loc[-1]).lower() in _PASSWORD_NAMES:
        return (
            " (remove it: a password is never written in this file; put it in a file named by "
            "password_file, or in an environment variable named by password_env)"
        )
    return _HINTS.get(error["type"], "")


def _environment_overrides() -> dict[str, tuple[str, ...]]:
    """Map each VITALBRIDGE_* variable's name to the field path it sets (lower case)."""
    return {
        name.upper(): tuple(name[len(ENV_PREFIX) :].lower().split("__"))
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
    }


def _overrides_for(loc: Sequence[int | str], overrides: dict[str, tuple[str, ...]]) -> list[str]:
    """Name the variables that set this field, a part of it, or the section holding it."""
    if not loc:
        return []
    path = tuple(str(part).lower() for part in loc if part != "[key]")
    return sorted(
        name
        for name, target in overrides.items()
        if path[: len(target)] == target or target[: len(path)] == path
    )


def _scrub(text: str) -> str:
    # Settings quote a mistyped broker_url; a URL's user:password@ must not be echoed with it.
    return _USERINFO.sub("://***@", text)


_USERINFO: Final = re.compile(r"://[^/@\s'\"]*@")
_PASSWORD_NAMES: Final = frozenset({"password", "passwd", "pass", "mqtt_password", "secret"})
_PATTERNS: Final = {
    _IDENTIFIER: "should be 1-128 letters, digits and . _ : -, starting with a letter or digit",
    _ADDRESS: "should be a Bluetooth address written AA:BB:CC:DD:EE:FF",
}
_FIELD_HINTS: Final[dict[tuple[int | str, ...], str]] = {
    ("hub_id",): ' (add hub_id = "hub-0001" before the first [section])',
    ("mqtt",): ' (add an [mqtt] section with broker_url = "mqtts://broker.example:8883")',
    ("mqtt", "broker_url"): ' (add broker_url = "mqtts://broker.example:8883")',
}
_HINTS: Final = {
    "missing": " (add this field)",
    "extra_forbidden": " (remove it: no such setting; check the spelling)",
    "literal_error": " (write one of these, in double quotes)",
    "enum": " (write one of these, in double quotes)",
    "int_parsing": " (write a whole number, without quotes)",
    "int_type": " (write a whole number, without quotes)",
    "int_from_float": " (write a whole number, without quotes)",
    "float_parsing": " (write a number, without quotes)",
    "float_type": " (write a number, without quotes)",
    "bool_parsing": " (write true or false, without quotes)",
    "bool_type": " (write true or false, without quotes)",
    "string_type": " (write text in double quotes)",
    "path_type": " (write a path in double quotes)",
    "dict_type": " (write a table: a [section], or { key = value })",
    "model_type": " (write a table: a [section], or { key = value })",
    "model_attributes_type": " (write a table: a [section], or { key = value })",
    "list_type": " (write an array: [ ... ], or [[section]] blocks)",
    "tuple_type": " (write an array: [ ... ], or [[section]] blocks)",
}
