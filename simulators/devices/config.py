"""How a simulated device is set up: whom it measures, its identity, its behaviours and faults."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from simulators.devices.physiology import NORMAL, PatientProfile

if TYPE_CHECKING:
    import datetime as dt

    from device_profiles import Characteristic

__all__ = [
    "LOW_BATTERY_PERCENT",
    "QUIRK_BEHAVIOURS",
    "Behaviours",
    "DeviceIdentity",
    "Pairing",
    "PayloadFault",
    "Sent",
    "SimulatorConfig",
]

QUIRK_BEHAVIOURS: Final = (
    "requires_clock_set",
    "zero_fills_absent_fields",
    "consent_required_to_send",
)
"""The Behaviours fields that are vendor quirks (device_profiles.quirks lists the models)."""

LOW_BATTERY_PERCENT: Final = 10
"""At or below this level a device reports a low battery where its profile has a flag for it."""


class Pairing(enum.StrEnum):
    """How a device that requires pairing pairs."""

    JUST_WORKS = "just_works"
    """No input or output: encryption without protection against a man in the middle."""
    PASSKEY = "passkey"
    """The device shows a six-digit passkey that the hub's user types in (authenticated)."""


class PayloadFault(enum.StrEnum):
    """A deliberate defect in the measurement payloads a device sends."""

    TRUNCATED = "truncated"
    """The last byte is cut off: the decoder sees a truncated or missing field."""
    MALFORMED = "malformed"
    """Only the first byte (the flags) is sent: every mandatory field is missing."""
    RESERVED_BITS = "reserved_bits"
    """The top bit of the flags field, reserved in every measurement, is set."""
    SPECIAL_VALUES = "special_values"
    """Measured values are the special values (NaN, NRes, measurement unsuccessful)."""


@dataclass(frozen=True, slots=True)
class Behaviours:
    """What a device does beyond the happy path; every switch defaults to a well-behaved device."""

    store_offline: bool = True
    """Keep measurements taken while no hub listens, and send them later (RACP or on subscribe)."""
    clock_drift_ppm: float = 0.0
    """How fast (positive) or slow the device clock runs, in parts per million."""
    clock_start: dt.datetime | None = None
    """None: the clock shows the household time at power-on; else it starts there, not set."""
    battery_change_resets_clock: bool = True
    """Whether `change_battery` sends the clock back to 1970, as most small devices do."""
    battery_percent: int = 85
    """The battery level at power-on; LOW_BATTERY_PERCENT or less is a low battery."""
    advertising_interval_ms: float = 20.0
    """How often the device advertises: 20 ms is the fast advertising of a device with data."""
    advertise_on_button_press: bool = False
    """Advertise only after `press_button`, and stop once a hub has connected."""
    disconnect_after_send_s: float | None = None
    """Disconnect from the hub this long after the last measurement or RACP transfer."""
    pairing: Pairing | None = None
    """Require pairing: protected characteristics need an encrypted (or authenticated) link."""
    racp_disconnect_after_records: int | None = None
    """Drop the link after sending this many records of a RACP report (every report)."""
    payload_fault: PayloadFault | None = None
    """A defect put into measurement payloads."""
    payload_fault_every: int = 1
    """Put the fault into every Nth measurement (1: all of them)."""
    notification_interval_s: float = 0.0
    """A slow link: wait this long after each notification."""
    notification_loss_rate: float = 0.0
    """A lossy link: the share of notifications dropped (indications are acknowledged, never)."""
    requires_clock_set: bool = False
    """A vendor quirk: send no measurement, live or kept, until a hub writes Current Time on the
    link; then send what is kept, as on subscription. Its default model is VB-xx-QCLOCK."""
    zero_fills_absent_fields: bool = False
    """A vendor quirk (cuff): send zero, with its present flag, for the mean arterial pressure
    and pulse rate the cuff does not measure. Its default model is VB-BP-QZERO."""
    consent_required_to_send: bool = False
    """A vendor quirk (scales): send no reading at all on a link, not even an unknown user's,
    until the hub gives User Data Service consent on it. Its default model is VB-xx-QCONSENT."""

    def __post_init__(self) -> None:
        if not 0 <= self.battery_percent <= 100:  # noqa: PLR2004 - a percentage
            raise ValueError(f"battery_percent {self.battery_percent} is outside 0..100")
        if not 0.0 <= self.notification_loss_rate <= 1.0:
            raise ValueError("notification_loss_rate must be within 0..1")
        if self.notification_interval_s < 0:
            raise ValueError("notification_interval_s must not be negative")
        if self.payload_fault_every < 1:
            raise ValueError("payload_fault_every must be at least 1")
        if (
            self.racp_disconnect_after_records is not None
            and self.racp_disconnect_after_records < 1
        ):
            raise ValueError("racp_disconnect_after_records must be at least 1")
        if self.disconnect_after_send_s is not None and self.disconnect_after_send_s < 0:
            raise ValueError("disconnect_after_send_s must not be negative")
        if not 20.0 <= self.advertising_interval_ms <= 10_240.0:  # noqa: PLR2004 - Core spec range
            raise ValueError("advertising_interval_ms must be within 20..10240")
        if not math.isfinite(self.clock_drift_ppm):
            raise ValueError("clock_drift_ppm must be a finite number")

    @property
    def quirks(self) -> frozenset[str]:
        """The names of the vendor-quirk behaviours switched on."""
        return frozenset(name for name in QUIRK_BEHAVIOURS if getattr(self, name))

    @property
    def low_battery(self) -> bool:
        """Whether the device starts with a low battery."""
        return self.battery_percent <= LOW_BATTERY_PERCENT


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What Device Information serves."""

    manufacturer: str
    model: str
    serial: str
    firmware: str
    hardware: str = "1.0"


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """One simulated device: its name, patient, seed, identity and behaviours."""

    name: str | None = None
    """The advertised local name; None takes the device type's default."""
    patient: PatientProfile = NORMAL
    """Whom the device measures (user index 0 of a multi-user device, and any unknown user)."""
    household: tuple[PatientProfile, ...] = ()
    """Further users of a multi-user device: user index N (N >= 1) is household[N - 1]."""
    seed: int = 0
    """Seeds every random choice of the device: the same seed gives the same readings."""
    identity: DeviceIdentity | None = None
    """Device Information; None takes the device type's default with a serial from the seed."""
    behaviours: Behaviours = field(default_factory=Behaviours)


@dataclass(frozen=True, slots=True)
class Sent:
    """One value a device put on the air (or dropped on a lossy link), for observers."""

    at: dt.datetime
    """The household time when it was sent."""
    uuid: int
    """The 16-bit characteristic UUID."""
    data: bytes
    """The bytes as sent (after any payload fault)."""
    method: Literal["notify", "indicate"]
    value: Characteristic
    """The value the device meant to send, before any payload fault."""
    dropped: bool = False
    """A lossy link dropped this notification: the hub never saw it."""
    fault: PayloadFault | None = None
    """The payload fault put into `data`, if any."""
