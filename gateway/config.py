"""The hub's configuration: a TOML file plus ``VITALBRIDGE_*`` environment overrides, checked.

A support engineer edits ``/etc/vitalbridge/config.toml``; every mistake is reported as a
`ConfigError` naming the file, the field and what to write instead, before anything starts.
Environment variables override the file (``VITALBRIDGE_HUB_ID``, nested fields with a double
underscore: ``VITALBRIDGE_MQTT__BROKER_URL``). Secrets are never values in this file: the MQTT
password comes from a file or an environment variable named here.
"""

from __future__ import annotations

import enum
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gateway.errors import ConfigError
from gateway.mqtt.settings import PublisherSettings  # noqa: TC001 - pydantic needs it at runtime
from gateway.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, OutboxPolicy

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
    "load_config",
]

DEFAULT_CONFIG_PATH: Final = Path("/etc/vitalbridge/config.toml")
DEFAULT_STATE_DIR: Final = Path("/var/lib/vitalbridge")
ENV_PREFIX: Final = "VITALBRIDGE_"

_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_ADDRESS = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"
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

    @model_validator(mode="after")
    def _check(self) -> Self:
        for index in self.patients:
            if not 0 <= index <= 254:  # noqa: PLR2004 - UDS user index range; 255 is "unknown"
                msg = f"user index {index} in patients is not 0-254 (255 means an unknown user)"
                raise ValueError(msg)
        missing = set(self.consent_codes) - set(self.patients)
        if missing:
            msg = f"consent_codes has user index {sorted(missing)} with no entry in patients"
            raise ValueError(msg)
        return self

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
    scan_silence_s: float = Field(default=120.0, gt=0)
    """No advertisement at all for this long while scanning: the scanner is restarted."""
    power_cycle_adapter: bool = False
    """Also power-cycle the adapter (BlueZ) when restarting a silent scanner."""
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_cap_s: float = Field(default=300.0, gt=0)


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
    timezone: str | None = None
    """The household's IANA time zone (e.g. ``Europe/London``); the system zone when unset."""
    status_interval_s: float = Field(default=60.0, gt=0)
    """How often the retained hub status is refreshed."""
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @model_validator(mode="before")
    @classmethod
    def _hub_id_into_mqtt(cls, data: Any) -> Any:  # noqa: ANN401 - pydantic hands raw input
        if isinstance(data, dict) and isinstance(data.get("mqtt"), dict):
            mqtt = dict(data["mqtt"])
            mqtt.setdefault("hub_id", data.get("hub_id"))
            data = {**data, "mqtt": mqtt}
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.mqtt.hub_id != self.hub_id:
            msg = "mqtt.hub_id differs from hub_id: remove mqtt.hub_id (it is taken from hub_id)"
            raise ValueError(msg)
        seen_ids: set[str] = set()
        seen_addresses: set[str] = set()
        for device in self.devices:
            if device.id in seen_ids:
                msg = f"device id {device.id!r} appears twice in devices: give each its own id"
                raise ValueError(msg)
            if device.address in seen_addresses:
                msg = f"address {device.address} appears twice in devices: list each device once"
                raise ValueError(msg)
            seen_ids.add(device.id)
            seen_addresses.add(device.address)
        self.zone()  # raises for an unknown zone name
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
        name = _system_zone_name()
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
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{file}: cannot read the configuration file ({exc}); check its permissions"
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


def _explain(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s) in the configuration:"]
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(error["type"], "")
        lines.append(f"  {where}: {message}{hint}")
    return "\n".join(lines)


_HINTS: Final = {
    "missing": " (add this field)",
    "extra_forbidden": " (remove it: no such setting; check the spelling)",
    "string_pattern_mismatch": " (letters, digits and . _ : - only)",
}
