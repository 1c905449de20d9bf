"""What a session reads for each health profile: its service, measurement characteristics, RACP.

Data, not code: the session walks these tables. Intermediate values (the cuff's pressure while
it inflates, a thermometer's running temperature) are not readings and are not subscribed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from gateway.config import DeviceProfile

__all__ = [
    "BATTERY_LEVEL",
    "CURRENT_TIME",
    "DEVICE_INFORMATION",
    "PROFILES",
    "RACP",
    "USER_CONTROL_POINT",
    "ProfileSpec",
    "full_uuid",
    "short_uuid",
]

_BASE: Final = "-0000-1000-8000-00805f9b34fb"


def full_uuid(short: int) -> str:
    """Return the 128-bit UUID string bleak uses for a 16-bit SIG UUID."""
    return f"0000{short:04x}{_BASE}"


def short_uuid(value: str) -> int | None:
    """Return the 16-bit SIG UUID inside a 128-bit UUID string, or None for a vendor UUID."""
    text = str(uuid.UUID(value))
    if not text.endswith(_BASE) or not text.startswith("0000"):
        return None
    return int(text[4:8], 16)


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """One health profile as a session reads it."""

    service: int
    """The primary service the device must serve."""
    measurements: tuple[int, ...]
    """Characteristics carrying readings, subscribed in this order (those the device has)."""
    streams: tuple[int, ...] = ()
    """Of `measurements`, those sent continuously (about once a second), sampled by the hub."""
    racp: bool = False
    """Stored records are fetched through RACP (when the device serves the control point)."""
    racp_sequence_filter: bool = False
    """The device's RACP filters by sequence number (Glucose); else it reports all records."""
    users: bool = False
    """Multi-user (User Data Service): readings carry a user index; consent picks the user."""


PROFILES: Final[dict[DeviceProfile, ProfileSpec]] = {
    DeviceProfile.BLOOD_PRESSURE: ProfileSpec(0x1810, (0x2A35, 0x2B34)),
    DeviceProfile.PULSE_OXIMETER: ProfileSpec(
        0x1822, (0x2A5E, 0x2A5F), streams=(0x2A5F,), racp=True
    ),
    DeviceProfile.WEIGHT_SCALE: ProfileSpec(0x181D, (0x2A9D,), users=True),
    DeviceProfile.BODY_COMPOSITION: ProfileSpec(0x181B, (0x2A9C, 0x2A9D), users=True),
    DeviceProfile.HEALTH_THERMOMETER: ProfileSpec(0x1809, (0x2A1C,)),
    DeviceProfile.GLUCOSE: ProfileSpec(
        0x1808, (0x2A18, 0x2A34), racp=True, racp_sequence_filter=True
    ),
    DeviceProfile.HEART_RATE: ProfileSpec(0x180D, (0x2A37,), streams=(0x2A37,)),
}

RACP: Final = 0x2A52
CURRENT_TIME: Final = 0x2A2B
BATTERY_LEVEL: Final = 0x2A19
USER_CONTROL_POINT: Final = 0x2A9F
DEVICE_INFORMATION: Final = {
    "manufacturer": (0x2A29, "manufacturer_name"),
    "model": (0x2A24, "model_number"),
    "serial": (0x2A25, "serial_number"),
    "firmware": (0x2A26, "firmware_revision"),
    "hardware": (0x2A27, "hardware_revision"),
}
"""Device Information strings the hub caches: DeviceIdentity field -> (UUID, decoded field)."""
