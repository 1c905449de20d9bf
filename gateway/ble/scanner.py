"""The scanner: finds provisioned health devices, reports strangers once, survives a stuck adapter.

One bleak scanner runs for the life of the hub, filtered on the health services. Each
advertisement goes to the `DeviceRegistry`; provisioned devices (and those the open pairing
window accepts) go on to ``on_device``. A watchdog restarts the scanner when the adapter goes
silent (and power-cycles it where configured); a scanner that cannot start is retried with a
capped, jittered backoff. Each change of state is logged once, not each retry.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

import structlog
from bleak.exc import BleakError

from gateway.ble.registry import HEALTH_SERVICE_UUIDS, AdmissionOutcome

if TYPE_CHECKING:
    from collections.abc import Callable

    from bleak import BleakScanner
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

    from gateway.ble.backend import BleBackend
    from gateway.ble.registry import DeviceRegistry
    from gateway.config import BleSettings, DeviceConfig

__all__ = ["DeviceCallback", "Scanner", "ScannerState", "ScannerStatus"]

_log = structlog.get_logger("gateway.ble")

# Starting or stopping a scan is one D-Bus round trip on BlueZ; longer means it is wedged.
START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0
_CHECK_BLUETOOTH: Final = (
    "check that Bluetooth is on and the adapter present: `bluetoothctl show` (Powered: yes), "
    "`rfkill list` (not blocked), `systemctl status bluetooth`"
)

DeviceCallback: TypeAlias = "Callable[[DeviceConfig, BLEDevice, AdvertisementData], None]"
"""Called from the detection callback with a provisioned device: must return at once."""


class ScannerState(enum.StrEnum):
    """What the scanner is doing."""

    STARTING = "starting"
    SCANNING = "scanning"
    RESTARTING = "restarting"
    """The adapter went silent: stopping, maybe power-cycling, and starting again."""
    FAILED = "failed"
    """The scanner cannot start; it is retried with backoff."""


@dataclass(frozen=True, slots=True)
class ScannerStatus:
    """A snapshot of the scanner for the hub status."""

    state: ScannerState
    adverts_seen: int
    seconds_since_last_advert: float | None
    """None before the first advertisement."""
    restarts: int
    """Restarts after a silence."""
    start_failures: int
    last_error: str | None

    def as_dict(self) -> dict[str, object]:
        """Return the snapshot as the status document's ``scanner`` section."""
        return {
            "state": self.state.value,
            "adverts_seen": self.adverts_seen,
            "seconds_since_last_advert": self.seconds_since_last_advert,
            "restarts": self.restarts,
            "start_failures": self.start_failures,
            "last_error": self.last_error,
        }


class Scanner:
    """Scan for health devices until cancelled, passing provisioned ones to a callback.

    `clock` ticks in seconds like the event loop's (`time.monotonic`). `connected` tells whether
    the hub holds a device connection now: a device stops advertising while connected, so a
    silence then is expected and the adapter (and that connection) is left alone.
    """

    def __init__(
        self,
        backend: BleBackend,
        registry: DeviceRegistry,
        on_device: DeviceCallback,
        settings: BleSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        connected: Callable[[], bool] | None = None,
    ) -> None:
        self._backend = backend
        self._connected = connected
        self._registry = registry
        self._on_device = on_device
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not security
        self._state = ScannerState.STARTING
        self._adverts = 0
        self._last_advert: float | None = None
        self._restarts = 0
        self._start_failures = 0
        self._last_error: str | None = None
        self._silence_from = clock()
        self._adverts_at_start = 0
        self._changed = asyncio.Event()

    # The status

    def snapshot(self) -> ScannerStatus:
        """Return the scanner's state and counters."""
        last = self._last_advert
        return ScannerStatus(
            state=self._state,
            adverts_seen=self._adverts,
            seconds_since_last_advert=None if last is None else max(0.0, self._clock() - last),
            restarts=self._restarts,
            start_failures=self._start_failures,
            last_error=self._last_error,
        )

    def status(self) -> dict[str, object]:
        """Return the scanner's state and counters for the hub status."""
        return self.snapshot().as_dict()

    async def wait_until(self, predicate: Callable[[ScannerStatus], bool]) -> ScannerStatus:
        """Wait until the status (checked at each change of state or counter) satisfies `predicate`.

        Advertisements alone do not wake waiters, so the detection callback stays O(1); the first
        sighting of an unprovisioned device does.
        """
        while not predicate(status := self.snapshot()):
            await self._changed.wait()
        return status

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _enter(self, state: ScannerState) -> None:
        self._state = state
        self._notify()

    # Running

    async def run(self) -> None:
        """Scan until cancelled: restart after a silence, retry a failed start with backoff."""
        failures = 0
        while True:
            scanner = self._backend.scanner(self._on_advertisement, list(HEALTH_SERVICE_UUIDS))
            try:
                async with asyncio.timeout(START_TIMEOUT_S):
                    await scanner.start()
            except (BleakError, OSError, TimeoutError) as exc:
                # OSError: no system D-Bus at all; TimeoutError: BlueZ does not answer.
                await self._stop(scanner)
                failures += 1
                await self._start_failed(exc, failures)
                continue
            self._scanning(failures)
            failures = 0
            try:
                await self._watch_silence()
            finally:
                # Also when cancelled: leave the adapter not scanning on our behalf.
                await self._stop(scanner)
            await self._after_silence()

    async def _start_failed(self, exc: BaseException, failures: int) -> None:
        self._start_failures += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        delay = _backoff(
            failures - 1, self._settings.backoff_base_s, self._settings.backoff_cap_s, self._rng
        )
        if self._state is not ScannerState.FAILED:
            _log.error(
                "scanner_start_failed",
                backend=self._backend.name,
                adapter=self._backend.adapter,
                error=self._last_error,
                hint=f"retrying with backoff until it starts; {_CHECK_BLUETOOTH}",
            )
            self._enter(ScannerState.FAILED)
        else:
            _log.debug(
                "scanner_start_retry_failed",
                attempt=failures,
                error=self._last_error,
                retry_in_s=round(delay, 3),
            )
            self._notify()
        await asyncio.sleep(delay)

    def _scanning(self, failures: int) -> None:
        previous = self._state
        self._silence_from = self._clock()
        self._adverts_at_start = self._adverts
        if previous is ScannerState.FAILED:
            _log.info("scanner_recovered", backend=self._backend.name, attempts=failures + 1)
        elif previous is ScannerState.RESTARTING:
            _log.info("scanner_restarted", backend=self._backend.name, restarts=self._restarts)
        else:
            _log.info("scanner_started", backend=self._backend.name, adapter=self._backend.adapter)
        self._enter(ScannerState.SCANNING)

    async def _watch_silence(self) -> None:
        """Return once no advertisement has come for `scan_silence_s` with no device connected."""
        silence_s = self._settings.scan_silence_s
        while True:
            last = self._last_advert
            heard = self._silence_from if last is None else max(last, self._silence_from)
            remaining = heard + silence_s - self._clock()
            if remaining > 0:
                await asyncio.sleep(remaining)
            elif self._connected is not None and self._connected():
                _log.debug("scanner_silent_while_connected", silence_s=silence_s)
                self._silence_from = self._clock()
            else:
                return

    async def _after_silence(self) -> None:
        self._restarts += 1
        self._last_error = f"no advertisement for {self._settings.scan_silence_s:g} s"
        action = "restarting the scanner" + (
            " and power-cycling the adapter" if self._settings.power_cycle_adapter else ""
        )
        silent_since_start = self._adverts == self._adverts_at_start
        if silent_since_start and self._restarts > 1:
            # Still nothing since the last restart: a quiet household, or the same fault.
            _log.debug("scanner_still_silent", restarts=self._restarts, action=action)
        else:
            _log.warning(
                "scanner_silent",
                silence_s=self._settings.scan_silence_s,
                adverts_seen=self._adverts,
                action=action,
                hint=(
                    "no advertisement at all while scanning; normal while no health device is "
                    f"in use, a stuck adapter if devices are; {_CHECK_BLUETOOTH}"
                ),
            )
        self._enter(ScannerState.RESTARTING)
        if self._settings.power_cycle_adapter:
            await self._backend.power_cycle()

    async def _stop(self, scanner: BleakScanner) -> None:
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await scanner.stop()
        except (BleakError, OSError, TimeoutError) as exc:
            # Stopping a scan on an adapter that vanished fails; the next start says why.
            _log.debug("scanner_stop_failed", error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a backend's failed stop must not stop the hub
            # Seen with the simulated controller under load (a command answered out of turn);
            # the adapter is reset or restarted by the next start anyway.
            _log.warning("scanner_stop_failed", error=f"{type(exc).__name__}: {exc}")

    # The detection callback: called for every advertisement, so O(1) and no I/O but pairing.

    def _on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        self._adverts += 1
        self._last_advert = self._clock()
        admission = self._registry.consider(
            device.address, adv.service_uuids, adv.local_name, adv.rssi
        )
        if admission.device is not None:
            try:
                self._on_device(admission.device, device, adv)
            except Exception:  # noqa: BLE001 - logged with its traceback; one device's handler failing must not stop the scan
                _log.exception("device_handler_failed", device_id=admission.device.id)
        elif admission.outcome is AdmissionOutcome.UNPROVISIONED_FIRST_SEEN:
            self._notify()


def _backoff(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter, at least a tenth of the base so retries never spin."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, 32))
    return rng.uniform(min(base_s, ceiling) / 10, ceiling)
