"""Which devices the hub may connect: the configured ones, plus those paired in a pairing window.

Only provisioned devices are connected. A device advertising a health service that is not
provisioned is reported once (for support staff) and left alone. A pairing window, opened for a
few minutes, accepts new health devices, records them in ``paired_devices.json`` in the state
directory, and closes itself when its time is up. Paired devices have no patient until support
staff set one; their readings are sent unassigned until then.

`DeviceRegistry.consider` runs on every advertisement the scanner delivers, so it does O(1) work
and touches the file only when a device is paired.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import structlog
from pydantic import ValidationError

from gateway.ble.profiles import PROFILES, full_uuid
from gateway.config import DeviceConfig, DeviceProfile
from gateway.errors import VitalbridgeError
from gateway.state import write_atomically

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

__all__ = [
    "HEALTH_SERVICE_UUIDS",
    "PAIRED_DEVICES_FILE",
    "Admission",
    "AdmissionOutcome",
    "ConfiguredDeviceError",
    "DeviceRegistry",
    "DeviceRegistryError",
    "Sighting",
    "UnknownDeviceError",
    "profile_for_services",
]

_log = structlog.get_logger("gateway.ble")

PAIRED_DEVICES_FILE: Final = "paired_devices.json"
_FORMAT_VERSION: Final = 1
_FILE_MODE: Final = 0o600
# Sightings of unprovisioned devices kept for the status; a block of flats rarely has more.
# Past this the oldest is forgotten (and would be reported again if it came back).
MAX_SIGHTINGS: Final = 256


# In order of preference when a device advertises several: a body composition scale also
# advertises the weight scale service, and many devices add heart rate to their main service.
_PREFERRED: Final = (
    DeviceProfile.BODY_COMPOSITION,
    DeviceProfile.BLOOD_PRESSURE,
    DeviceProfile.PULSE_OXIMETER,
    DeviceProfile.GLUCOSE,
    DeviceProfile.HEALTH_THERMOMETER,
    DeviceProfile.WEIGHT_SCALE,
    DeviceProfile.HEART_RATE,
)
_SERVICE_PROFILES: Final[dict[str, DeviceProfile]] = {
    full_uuid(PROFILES[profile].service): profile for profile in _PREFERRED
}
_PREFERENCE: Final[dict[DeviceProfile, int]] = {
    profile: rank for rank, profile in enumerate(_PREFERRED)
}

HEALTH_SERVICE_UUIDS: Final[tuple[str, ...]] = tuple(_SERVICE_PROFILES)
"""The health services' 128-bit UUIDs (lower case, as bleak spells them) the scanner filters on."""


def profile_for_services(service_uuids: Sequence[str]) -> DeviceProfile | None:
    """Return the profile a device advertising these services is read through, if any."""
    best: DeviceProfile | None = None
    for service in service_uuids:
        profile = _SERVICE_PROFILES.get(service) or _SERVICE_PROFILES.get(service.lower())
        if profile is not None and (best is None or _PREFERENCE[profile] < _PREFERENCE[best]):
            best = profile
    return best


class DeviceRegistryError(VitalbridgeError):
    """A change to the paired devices that cannot be made, or saved; the message says why."""


class UnknownDeviceError(DeviceRegistryError):
    """No provisioned device has this id."""


class ConfiguredDeviceError(DeviceRegistryError):
    """The device is in the configuration file: change it there, not through pairing commands."""


class AdmissionOutcome(enum.Enum):
    """What the registry decided about one advertisement."""

    PROVISIONED = "provisioned"
    """A provisioned device: connect it."""
    PAIRED_NOW = "paired_now"
    """A new health device accepted by the open pairing window, now saved: connect it."""
    UNPROVISIONED_FIRST_SEEN = "unprovisioned_first_seen"
    """A health device that is not provisioned, seen for the first time: it has been reported."""
    IGNORED = "ignored"
    """Not a health device, or an unprovisioned one already reported: do nothing."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The registry's decision about one advertisement, with the device's configuration if any."""

    outcome: AdmissionOutcome
    device: DeviceConfig | None = None
    """The provisioned device (PROVISIONED, PAIRED_NOW)."""
    profile: DeviceProfile | None = None
    """The profile the advertised services point to (None: no health service advertised)."""

    @property
    def admitted(self) -> bool:
        """Whether the hub should connect the device."""
        return self.device is not None


_IGNORED: Final = Admission(AdmissionOutcome.IGNORED)


@dataclass(slots=True)
class Sighting:
    """An unprovisioned health device the scanner has seen, for the hub status."""

    address: str
    profile: DeviceProfile
    """The profile its advertised services point to."""
    name: str | None
    first_seen: float
    """On the registry's clock (monotonic seconds)."""
    last_seen: float
    rssi: int | None

    def as_dict(self) -> dict[str, object]:
        """Return the sighting for the status document."""
        return {
            "address": self.address,
            "profile": self.profile.value,
            "name": self.name,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "rssi": self.rssi,
        }


@dataclass(slots=True)
class _Window:
    deadline: float
    profile: DeviceProfile | None
    limit: int | None
    paired: int = 0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DeviceRegistry:
    """The provisioned devices: the configured ones plus those paired, saved in the state dir."""

    def __init__(
        self,
        configured: Sequence[DeviceConfig],
        paired: Sequence[DeviceConfig],
        path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self._path = path
        self._clock = clock
        self._wall_clock = wall_clock
        self._configured: dict[str, DeviceConfig] = {d.address: d for d in configured}
        self._configured_ids = {d.id for d in configured}
        self._paired: dict[str, DeviceConfig] = {}
        self._paired_at: dict[str, str] = {}
        for device in paired:
            self._add_paired(device)
        self._sightings: dict[str, Sighting] = {}
        self._window: _Window | None = None
        self._window_closed = asyncio.Event()
        self._window_closed.set()

    @classmethod
    def load(
        cls,
        configured: Sequence[DeviceConfig],
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = _utc_now,
    ) -> DeviceRegistry:
        """Read the paired devices from `state_dir` (a corrupt file is moved aside, not fatal)."""
        path = state_dir / PAIRED_DEVICES_FILE
        entries = _read_paired(path)
        configured_ids = {d.id for d in configured}
        configured_addresses = {d.address for d in configured}
        paired: list[DeviceConfig] = []
        paired_at: dict[str, str] = {}
        for device, when in entries:
            if device.address in configured_addresses:
                _log.info("paired_device_now_configured", device_id=device.id)
                continue
            if device.id in configured_ids:
                _log.warning(
                    "paired_device_id_taken",
                    device_id=device.id,
                    address=device.address,
                    hint="a configured device has this id; forget and pair the device again",
                )
                continue
            paired.append(device)
            if when is not None:
                paired_at[device.address] = when
        registry = cls(configured, paired, path, clock=clock, wall_clock=wall_clock)
        registry._paired_at.update(paired_at)
        return registry

    # Lookups

    @property
    def path(self) -> Path:
        """The file the paired devices are saved in."""
        return self._path

    def lookup(self, address: str) -> DeviceConfig | None:
        """Return the provisioned device with this Bluetooth address, if any."""
        key = address.upper()
        return self._configured.get(key) or self._paired.get(key)

    def devices(self) -> tuple[DeviceConfig, ...]:
        """Return every provisioned device, the configured ones first."""
        return (*self._configured.values(), *self._paired.values())

    def paired_devices(self) -> tuple[DeviceConfig, ...]:
        """Return the devices paired through a pairing window."""
        return tuple(self._paired.values())

    def is_configured(self, device_id: str) -> bool:
        """Whether the device with this id comes from the configuration file."""
        return device_id in self._configured_ids

    def unprovisioned(self) -> list[Sighting]:
        """Return the unprovisioned health devices seen, for the status (oldest first)."""
        return list(self._sightings.values())

    # The pairing window

    def open_pairing_window(
        self,
        duration_s: float,
        profile: DeviceProfile | None = None,
        *,
        limit: int | None = None,
    ) -> None:
        """Accept new health devices (of `profile`, if given; at most `limit`) for `duration_s`."""
        if not duration_s > 0:
            raise ValueError(f"a pairing window lasts a positive number of seconds: {duration_s}")
        if limit is not None and limit < 1:
            raise ValueError(f"a pairing window accepts at least one device: limit={limit}")
        self._window = _Window(self._clock() + duration_s, profile, limit)
        self._window_closed.clear()
        _log.info(
            "pairing_window_opened",
            duration_s=duration_s,
            profile=None if profile is None else profile.value,
            limit=limit,
        )

    def close_pairing_window(self) -> None:
        """Close the pairing window now (nothing happens if none is open)."""
        self._close_window("closed")

    @property
    def pairing_window_remaining_s(self) -> float | None:
        """Seconds left in the open pairing window; None when none is open."""
        window = self._current_window()
        return None if window is None else max(0.0, window.deadline - self._clock())

    async def wait_window_closed(self) -> None:
        """Return once no pairing window is open (closed, timed out or at its limit)."""
        while (remaining := self.pairing_window_remaining_s) is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._window_closed.wait()

    def _current_window(self) -> _Window | None:
        window = self._window
        if window is not None and self._clock() >= window.deadline:
            self._close_window("expired")
            return None
        return window

    def _close_window(self, reason: str) -> None:
        window, self._window = self._window, None
        if window is None:
            return
        self._window_closed.set()
        _log.info("pairing_window_closed", reason=reason, paired=window.paired)

    # Advertisements

    def consider(
        self,
        address: str,
        service_uuids: Sequence[str],
        name: str | None,
        rssi: int | None,
    ) -> Admission:
        """Decide what to do about one advertisement (called for each one: O(1), no I/O)."""
        key = address.upper()
        device = self._configured.get(key) or self._paired.get(key)
        if device is not None:
            return Admission(AdmissionOutcome.PROVISIONED, device, device.profile)
        profile = profile_for_services(service_uuids)
        if profile is None:
            return _IGNORED
        window = self._current_window()
        if window is not None and window.profile in {None, profile}:
            return self._pair(window, key, profile, name)
        sighting = self._sightings.get(key)
        now = self._clock()
        if sighting is not None:
            sighting.last_seen = now
            sighting.rssi = rssi
            if name is not None:
                sighting.name = name
            return Admission(AdmissionOutcome.IGNORED, None, profile)
        if len(self._sightings) >= MAX_SIGHTINGS:
            del self._sightings[next(iter(self._sightings))]
        self._sightings[key] = Sighting(key, profile, name, now, now, rssi)
        _log.info("device_not_provisioned", address=key, profile=profile.value)
        return Admission(AdmissionOutcome.UNPROVISIONED_FIRST_SEEN, None, profile)

    def _pair(
        self, window: _Window, address: str, profile: DeviceProfile, name: str | None
    ) -> Admission:
        device = DeviceConfig(
            id=self._new_id(profile, address), address=address, profile=profile, name=name
        )
        self._add_paired(device)
        self._paired_at[address] = self._wall_clock().isoformat()
        self._sightings.pop(address, None)
        window.paired += 1
        _log.info("device_paired", device_id=device.id, address=address, profile=profile.value)
        try:
            self._save()
        except DeviceRegistryError as exc:
            # The device is read from now on all the same; only a restart would forget it.
            _log.error("device_pair_not_saved", device_id=device.id, error=str(exc))
        if window.limit is not None and window.paired >= window.limit:
            self._close_window("limit")
        return Admission(AdmissionOutcome.PAIRED_NOW, device, profile)

    def _new_id(self, profile: DeviceProfile, address: str) -> str:
        hex_address = address.replace(":", "").lower()
        taken = self._configured_ids | {d.id for d in self._paired.values()}
        for candidate in (f"{profile.value}-{hex_address[-6:]}", f"{profile.value}-{hex_address}"):
            if candidate not in taken:
                return candidate
        # Only reachable if the configuration uses exactly these ids for other devices.
        serial = 2
        while f"{profile.value}-{hex_address}-{serial}" in taken:
            serial += 1
        return f"{profile.value}-{hex_address}-{serial}"

    def _add_paired(self, device: DeviceConfig) -> None:
        if device.address in self._configured or device.id in self._configured_ids:
            msg = f"device {device.id} ({device.address}) is already in the configuration file"
            raise ConfiguredDeviceError(msg)
        self._paired[device.address] = device

    # Changes from support staff

    def forget(self, device_id: str) -> bool:
        """Remove a paired device (it is then reported as unprovisioned); False if none has the id.

        Raises ConfiguredDeviceError for a device from the configuration file.
        """
        if device_id in self._configured_ids:
            msg = (
                f"device {device_id} is in the configuration file, not paired: remove it from "
                "[[devices]] in the configuration file and restart the hub"
            )
            raise ConfiguredDeviceError(msg)
        device = next((d for d in self._paired.values() if d.id == device_id), None)
        if device is None:
            return False
        del self._paired[device.address]
        paired_at = self._paired_at.pop(device.address, None)
        try:
            self._save()
        except DeviceRegistryError:
            self._paired[device.address] = device
            if paired_at is not None:
                self._paired_at[device.address] = paired_at
            raise
        _log.info("device_forgotten", device_id=device_id)
        return True

    def set_patient(
        self,
        device_id: str,
        user_index: int | None,
        patient_ref: str | None,
        *,
        consent_code: int | None = None,
    ) -> None:
        """Map a paired device's user (None: a device without users) to a patient, or unmap it.

        `consent_code` is the UDS code the hub registered that user with: kept so that every
        later session can give consent, without which the scale sends the user's readings as
        an unknown user's.
        """
        if device_id in self._configured_ids:
            msg = (
                f"device {device_id} is in the configuration file: set its patient or patients "
                "under [[devices]] in the configuration file and restart the hub"
            )
            raise ConfiguredDeviceError(msg)
        device = next((d for d in self._paired.values() if d.id == device_id), None)
        if device is None:
            msg = f"no paired device has id {device_id!r}; list the devices with the hub status"
            raise UnknownDeviceError(msg)
        patients = dict(device.patients)
        patient = device.patient
        consent_codes = dict(device.consent_codes)
        if user_index is None:
            patient = patient_ref
        elif patient_ref is None:
            patients.pop(user_index, None)
            consent_codes.pop(user_index, None)
        else:
            patients[user_index] = patient_ref
            if consent_code is not None:
                consent_codes[user_index] = consent_code
        try:
            updated = DeviceConfig.model_validate(
                {
                    **device.model_dump(),
                    "patients": patients,
                    "patient": patient,
                    "consent_codes": consent_codes,
                }
            )
        except ValidationError as exc:
            # The message names the field, never the value (a patient reference).
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            msg = f"cannot set the patient of {device_id}: {problems}"
            raise DeviceRegistryError(msg) from None
        self._paired[device.address] = updated
        try:
            self._save()
        except DeviceRegistryError:
            self._paired[device.address] = device
            raise
        _log.info("device_patient_set", device_id=device_id, user_index=user_index)

    # The file

    def _save(self) -> None:
        document = {
            "version": _FORMAT_VERSION,
            "devices": [
                {
                    **device.model_dump(mode="json"),
                    "paired_at": self._paired_at.get(device.address),
                }
                for device in self._paired.values()
            ],
        }
        data = json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        try:
            write_atomically(self._path, data)
        except OSError as exc:
            msg = (
                f"cannot save the paired devices to {self._path} ({exc}); check that the state "
                "directory exists, is writable by the hub's user, and that the disk is not full"
            )
            raise DeviceRegistryError(msg) from exc


def _read_paired(path: Path) -> list[tuple[DeviceConfig, str | None]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        msg = (
            f"cannot read the paired devices in {path} ({exc}); check the permissions of the "
            "state directory"
        )
        raise DeviceRegistryError(msg) from exc
    try:
        return _parse_paired(raw)
    except (ValueError, TypeError, KeyError) as exc:
        # ValidationError and JSONDecodeError are ValueErrors. Keep the file for support staff.
        aside = _move_aside(path)
        _log.warning(
            "paired_devices_corrupt",
            path=str(path),
            moved_to=None if aside is None else str(aside),
            error=type(exc).__name__,
            hint="the paired devices are forgotten: pair them again in a pairing window",
        )
        return []


def _parse_paired(raw: bytes) -> list[tuple[DeviceConfig, str | None]]:
    document = json.loads(raw)
    if not isinstance(document, dict) or document.get("version") != _FORMAT_VERSION:
        raise ValueError("not a version 1 paired devices document")
    items = document["devices"]
    if not isinstance(items, list):
        raise TypeError("devices is not a list")
    entries: list[tuple[DeviceConfig, str | None]] = []
    seen_ids: set[str] = set()
    seen_addresses: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise TypeError("a device is not an object")
        fields = dict(item)
        paired_at = fields.pop("paired_at", None)
        device = DeviceConfig.model_validate(fields)
        if device.id in seen_ids or device.address in seen_addresses:
            raise ValueError("a device appears twice")
        seen_ids.add(device.id)
        seen_addresses.add(device.address)
        entries.append((device, paired_at if isinstance(paired_at, str) else None))
    return entries


def _move_aside(path: Path) -> Path | None:
    for serial in range(1, 1000):
        aside = path.with_name(f"{path.name}.corrupt-{serial}")
        if not aside.exists():
            try:
                path.replace(aside)
            except OSError:
                return None
            return aside
    return None
