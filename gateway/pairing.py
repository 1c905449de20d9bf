"""Guided pairing of one health device, step by step in plain language, independent of the UI.

`PairingFlow.steps()` is an async generator of `PairingStep` events: what to tell the person,
how far along the flow is, what was found, when a passkey is needed, and how it ended. A
terminal (`gateway.pairing_cli`) or a web page renders the steps; when a step asks for a
passkey, the UI calls `PairingFlow.enter_passkey` before taking the next step. Every failure
carries a `what_to_do` for the person holding the device.

The flow owns the Bluetooth adapter while it runs: two processes cannot both use one adapter,
so it runs with the hub service stopped (or, later, inside the service).

Passkeys need the backend's help: the hub must answer the device's passkey request at the
moment it comes. A backend module may expose ``passkey_agent(source) -> dict`` returning the
extra ``BleakClient`` keyword arguments that make it ask the async `source` for the passkey.
BlueZ through bleak has no such agent (bleak does not register an ``org.bluez.Agent1``), so on
BlueZ only Just Works devices pair here; a passkey device fails with what to do.

Bond keys: on BlueZ they live in ``/var/lib/bluetooth/<adapter>/<device>/info``, owned by
root and mode 0600; bluetoothd uses them on the hub's behalf and the service user can neither
read nor copy them, which is as it should be. The simulated backend keeps them in memory. This
module stores no key material itself: the consent code of a scale's user is kept in the paired
devices file, which the registry writes with mode 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import importlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from zoneinfo import ZoneInfo

import structlog
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

import device_profiles
from device_profiles.user_data import UserControlPoint
from gateway.ble.assembly import Assembler
from gateway.ble.profiles import PROFILES, USER_CONTROL_POINT, full_uuid
from gateway.ble.registry import (
    HEALTH_SERVICE_UUIDS,
    AdmissionOutcome,
    DeviceRegistryError,
    profile_for_services,
)
from gateway.config import DeviceConfig, DeviceProfile
from gateway.normalise import NormaliseError, normalise
from gateway.reading import UNASSIGNED, DeviceInfo
from gateway.timebase import ClockState, ClockSync

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from bleak import BleakClient
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

    from gateway.ble.backend import BleBackend
    from gateway.ble.registry import DeviceRegistry

__all__ = [
    "DEVICE_TEXTS",
    "WEAK_SIGNAL_DBM",
    "DeviceTexts",
    "Failure",
    "FoundDevice",
    "PairingFlow",
    "PairingOptions",
    "PairingStep",
    "PasskeyAgent",
    "StepKind",
    "TestReading",
    "passkey_agent_for",
]

_log = structlog.get_logger("gateway.pairing")

WEAK_SIGNAL_DBM: Final = -85
"""Below this signal strength the link is unreliable: the device is too far from the hub."""
_CONNECT_TIMEOUT_S: Final = 30.0
# Includes the time a person takes to read and type a passkey.
_PAIR_TIMEOUT_S: Final = 120.0
_UDS_TIMEOUT_S: Final = 10.0
_CONSENT_CODE_LIMIT: Final = 10_000
_MULTI_USER: Final = frozenset({DeviceProfile.WEIGHT_SCALE, DeviceProfile.BODY_COMPOSITION})

PasskeyAgent: TypeAlias = Callable[[Callable[[], Awaitable[int]]], dict[str, Any]]
"""A backend's passkey agent: given an async source of the passkey, the BleakClient keywords."""


class StepKind(enum.StrEnum):
    """What a step is for, so that a UI can choose how to show it."""

    INSTRUCTION = "instruction"
    """Something the person should do now (wake the device, bring it close)."""
    SEARCHING = "searching"
    """The hub is looking for the device."""
    FOUND = "found"
    """A device was found; `device` says which."""
    CONNECTING = "connecting"
    """The hub is connecting and pairing."""
    PASSKEY_REQUEST = "passkey_request"
    """Type the six digits the device shows: call `PairingFlow.enter_passkey`, then go on."""
    PAIRED = "paired"
    """The device is paired and bonded."""
    USER_REGISTERED = "user_registered"
    """A user was registered on a multi-user device and mapped to the patient."""
    MEASURE_NOW = "measure_now"
    """Take a test measurement now."""
    TEST_READING = "test_reading"
    """A test reading arrived; `reading` says what it was and whether it has a patient."""
    DONE = "done"
    """The flow succeeded: the device is provisioned."""
    FAILED = "failed"
    """The flow stopped: `failure` and `what_to_do` say why and what to do next."""


class Failure(enum.StrEnum):
    """Why pairing failed, one value per message a person needs."""

    NOT_FOUND = "not_found"
    WRONG_DEVICE_TYPE = "wrong_device_type"
    TOO_FAR_AWAY = "too_far_away"
    ALREADY_ON_THIS_HUB = "already_on_this_hub"
    ALREADY_PAIRED_ELSEWHERE = "already_paired_elsewhere"
    PASSKEY_WRONG = "passkey_wrong"
    PASSKEY_NOT_SUPPORTED = "passkey_not_supported"
    CONNECTION_FAILED = "connection_failed"
    ADAPTER_UNAVAILABLE = "adapter_unavailable"
    USER_REGISTRATION_FAILED = "user_registration_failed"
    NOT_SAVED = "not_saved"


@dataclass(frozen=True, slots=True)
class DeviceTexts:
    """The plain-language texts for one kind of device."""

    noun: str
    """What the person calls it: "blood pressure cuff"."""
    wake: str
    """How to make it discoverable."""
    measure: str
    """How to take a test measurement."""


DEVICE_TEXTS: Final[dict[DeviceProfile, DeviceTexts]] = {
    DeviceProfile.BLOOD_PRESSURE: DeviceTexts(
        "blood pressure cuff",
        "Press and hold the Bluetooth button on your cuff until the light blinks.",
        "Put the cuff on your upper arm, sit still, and press Start.",
    ),
    DeviceProfile.WEIGHT_SCALE: DeviceTexts(
        "scale",
        "Tap the scale with your foot so that its display lights up.",
        "Step on the scale barefoot and stand still until the number stops changing.",
    ),
    DeviceProfile.BODY_COMPOSITION: DeviceTexts(
        "body composition scale",
        "Tap the scale with your foot so that its display lights up.",
        "Step on the scale barefoot and stand still until the number stops changing.",
    ),
    DeviceProfile.PULSE_OXIMETER: DeviceTexts(
        "pulse oximeter",
        "Press the button on the oximeter so that its screen lights up.",
        "Put your finger in the oximeter and keep your hand still for half a minute.",
    ),
    DeviceProfile.HEALTH_THERMOMETER: DeviceTexts(
        "thermometer",
        "Press the power button on the thermometer.",
        "Take your temperature as the thermometer's leaflet shows.",
    ),
    DeviceProfile.GLUCOSE: DeviceTexts(
        "glucose meter",
        "Switch the meter on and open its Bluetooth or pairing menu.",
        "Do a blood sugar test as you usually do.",
    ),
    DeviceProfile.HEART_RATE: DeviceTexts(
        "heart rate strap",
        "Wet the strap's pads and put it on: it wakes up when it touches your skin.",
        "Keep the strap on for a few seconds.",
    ),
}
"""Per device profile: its name, how to wake it, and how to measure, in plain language."""

_ANY_DEVICE: Final = DeviceTexts(
    "health device",
    "Switch the device on, and press its Bluetooth button if it has one.",
    "Take a measurement with the device as its leaflet shows.",
)


def _texts(profile: DeviceProfile | None) -> DeviceTexts:
    return _ANY_DEVICE if profile is None else DEVICE_TEXTS[profile]


@dataclass(frozen=True, slots=True)
class FoundDevice:
    """A health device the scan saw."""

    address: str
    profile: DeviceProfile
    name: str | None
    rssi: int | None


@dataclass(frozen=True, slots=True)
class TestReading:
    """The test reading: what kind, the user index it carried, and whether it has a patient."""

    kind: str
    user_index: int | None
    assigned: bool
    """False: no patient is mapped for the reading's user, so it stays unassigned."""
    summary: str
    """The values, e.g. "systolic 120 mmHg, diastolic 80 mmHg" (shown to the person, not logged)."""


@dataclass(frozen=True, slots=True)
class PairingStep:
    """One event of the flow, for a UI to show."""

    kind: StepKind
    text: str
    """What to tell the person, in plain language."""
    progress: float
    """How far along the flow is, 0.0 to 1.0."""
    device: FoundDevice | None = None
    failure: Failure | None = None
    what_to_do: str | None = None
    """For a failure: what the person should do next."""
    reading: TestReading | None = None
    user_index: int | None = None
    device_id: str | None = None
    """The hub's id for the device, once it is provisioned."""


@dataclass(frozen=True, slots=True)
class PairingOptions:
    """What to pair and how long to wait."""

    profile: DeviceProfile | None = None
    """The kind of device expected; None: any health device."""
    scan_timeout_s: float = 30.0
    patient: str | None = None
    """The patient reference to map the device (or its new user) to."""
    user_index: int | None = None
    """A user already on a multi-user device to map to `patient`; None: register a new one."""
    test_reading_timeout_s: float = 60.0
    """How long to wait for a test reading; 0 skips it."""
    min_rssi_dbm: int = WEAK_SIGNAL_DBM


class _Stop(Exception):  # noqa: N818 - control flow inside the flow, never escapes it
    def __init__(self, step: PairingStep) -> None:
        super().__init__(step.text)
        self.step = step


def passkey_agent_for(backend: BleBackend) -> PasskeyAgent | None:
    """Return the backend module's ``passkey_agent``, if it has one (BlueZ has none)."""
    if backend.is_bluez:
        return None
    try:
        module = importlib.import_module(backend.name)
    except ImportError:
        return None
    agent = getattr(module, "passkey_agent", None)
    return agent if callable(agent) else None


@dataclass(eq=False)
class PairingFlow:
    """One guided pairing; iterate `steps()` once."""

    backend: BleBackend
    registry: DeviceRegistry
    options: PairingOptions = field(default_factory=PairingOptions)
    passkey_agent: PasskeyAgent | None = None
    """The backend's passkey agent (see `passkey_agent_for`); None: Just Works only."""
    hub_id: str = "hub"
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    _passkeys: asyncio.Queue[int] = field(default_factory=asyncio.Queue, init=False)
    _passkey_asked: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def enter_passkey(self, passkey: int) -> None:
        """Answer a PASSKEY_REQUEST step with the six digits the device shows."""
        if not 0 <= passkey <= 999_999:  # noqa: PLR2004 - six decimal digits
            msg = f"a passkey is six digits (000000 to 999999), not {passkey}"
            raise ValueError(msg)
        self._passkeys.put_nowait(passkey)

    async def steps(self) -> AsyncIterator[PairingStep]:
        """Run the flow, yielding each step; the last is DONE or FAILED."""
        try:
            async for step in self._run():
                yield step
        except _Stop as stop:
            _log.info("pairing_failed", failure=stop.step.failure)
            yield stop.step

    async def _run(self) -> AsyncIterator[PairingStep]:
        texts = _texts(self.options.profile)
        yield PairingStep(StepKind.INSTRUCTION, texts.wake, 0.0)
        yield PairingStep(
            StepKind.SEARCHING,
            f"Looking for your {texts.noun}. Keep it within a metre or two of the hub.",
            0.05,
        )
        found, ble_device = await self._scan()
        texts = _texts(found.profile)
        yield PairingStep(
            StepKind.FOUND,
            f"Found a {texts.noun} ({found.name or found.address}).",
            0.3,
            device=found,
        )
        yield PairingStep(StepKind.CONNECTING, f"Connecting to the {texts.noun}…", 0.35, found)
        async with self._connect(found, ble_device) as client:
            async for step in self._pair(client, found):
                yield step
            yield PairingStep(
                StepKind.PAIRED, f"The {texts.noun} is paired with this hub.", 0.6, found
            )
            device = self._record(found)
            user_index = self.options.user_index
            if found.profile in _MULTI_USER and self.options.patient is not None:
                consent_code: int | None = None
                if user_index is None:
                    user_index, consent_code = await self._register_user(client)
                device = self._map(device, user_index, consent_code)
                yield PairingStep(
                    StepKind.USER_REGISTERED,
                    f"You are user {user_index} on this scale. "
                    "Your readings will go to your record.",
                    0.7,
                    found,
                    user_index=user_index,
                    device_id=device.id,
                )
            elif self.options.patient is not None:
                device = self._map(device, None)
            if self.options.test_reading_timeout_s > 0:
                async for step in self._test_reading(client, found, device):
                    yield step
        yield PairingStep(
            StepKind.DONE,
            f"All done. The {texts.noun} will send its readings through this hub from now on.",
            1.0,
            found,
            user_index=user_index,
            device_id=device.id,
        )

    # Scanning

    async def _scan(self) -> tuple[FoundDevice, BLEDevice]:
        seen: dict[str, tuple[FoundDevice, BLEDevice]] = {}
        good = asyncio.Event()
        wanted = self.options.profile

        def on_advertisement(device: BLEDevice, adv: AdvertisementData) -> None:
            profile = profile_for_services(adv.service_uuids)
            if profile is None:
                return
            found = FoundDevice(device.address.upper(), profile, adv.local_name, adv.rssi)
            seen[found.address] = (found, device)
            if self._acceptable(found) and self.registry.lookup(found.address) is None:
                good.set()

        scanner = self.backend.scanner(on_advertisement, list(HEALTH_SERVICE_UUIDS))
        try:
            async with scanner:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.scan_timeout_s):
                        await good.wait()
        except BleakError as exc:
            _log.info("pairing_scan_failed", error=repr(exc))
            raise _Stop(
                _failed(
                    Failure.ADAPTER_UNAVAILABLE,
                    "The hub could not use its Bluetooth adapter.",
                    "If the hub service is running, stop it first (`sudo systemctl stop "
                    "vitalbridge`): two programs cannot use the adapter at once. Otherwise check "
                    "that Bluetooth is on (`bluetoothctl show`), then try again.",
                )
            ) from exc
        candidates = [entry for entry in seen.values() if wanted in {None, entry[0].profile}]
        new = [entry for entry in candidates if self.registry.lookup(entry[0].address) is None]
        strong = [entry for entry in new if self._acceptable(entry[0])]
        if strong:
            return max(strong, key=lambda entry: entry[0].rssi or -127)
        raise _Stop(self._scan_failure(seen, candidates, new))

    def _acceptable(self, found: FoundDevice) -> bool:
        wanted = self.options.profile
        strong = found.rssi is None or found.rssi >= self.options.min_rssi_dbm
        return strong and wanted in {None, found.profile}

    def _scan_failure(
        self,
        seen: dict[str, tuple[FoundDevice, BLEDevice]],
        candidates: list[tuple[FoundDevice, BLEDevice]],
        new: list[tuple[FoundDevice, BLEDevice]],
    ) -> PairingStep:
        texts = _texts(self.options.profile)
        if new:
            found = new[0][0]
            return _failed(
                Failure.TOO_FAR_AWAY,
                f"The {texts.noun} was found, but its signal is too weak ({found.rssi} dBm).",
                f"Bring the {texts.noun} within a metre or two of the hub, away from metal and "
                "microwaves, and try again.",
                found,
            )
        if candidates:
            found = candidates[0][0]
            return _failed(
                Failure.ALREADY_ON_THIS_HUB,
                f"This {texts.noun} is already paired with this hub.",
                "Nothing to do: its readings already come through this hub. To pair it again, "
                "forget it first with `vitalbridge devices`.",
                found,
            )
        if seen:
            found = next(iter(seen.values()))[0]
            other = _texts(found.profile).noun
            return _failed(
                Failure.WRONG_DEVICE_TYPE,
                f"The hub found a {other}, not a {texts.noun}.",
                f"Check that you are pairing the {texts.noun}, switch the {other} off or move it "
                "away, and try again; or pair the device you have with the matching --profile.",
                found,
            )
        return _failed(
            Failure.NOT_FOUND,
            f"The hub did not find your {texts.noun}.",
            f"Check that the {texts.noun} is switched on and has working batteries. {texts.wake} "
            "Then bring it within a metre or two of the hub and try again.",
        )

    # Connecting and pairing

    @contextlib.asynccontextmanager
    async def _connect(
        self, found: FoundDevice, ble_device: BLEDevice
    ) -> AsyncIterator[BleakClient]:
        agent_kwargs = {} if self.passkey_agent is None else self.passkey_agent(self._ask_passkey)
        texts = _texts(found.profile)
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                client = await establish_connection(
                    self.backend.client_class,
                    ble_device,
                    found.name or found.address,
                    max_attempts=3,
                    **agent_kwargs,
                )
        except (BleakError, TimeoutError) as exc:
            _log.info("pairing_connect_failed", address=found.address, error=repr(exc))
            raise _Stop(
                _failed(
                    Failure.CONNECTION_FAILED,
                    f"The hub found the {texts.noun} but could not connect to it.",
                    f"{texts.wake} Keep it close to the hub and try again. If the hub service is "
                    "running, stop it first: two programs cannot use the Bluetooth adapter at "
                    "once.",
                    found,
                )
            ) from exc
        try:
            yield client
        finally:
            with contextlib.suppress(BleakError, TimeoutError):
                async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                    await client.disconnect()

    async def _ask_passkey(self) -> int:
        self._passkey_asked.set()
        return await self._passkeys.get()

    async def _pair(self, client: BleakClient, found: FoundDevice) -> AsyncIterator[PairingStep]:
        texts = _texts(found.profile)
        self._passkey_asked.clear()
        failed: BaseException | None = None
        asked = False
        async with asyncio.TaskGroup() as group:
            pairing = group.create_task(self._bond(client), name=f"pair-{found.address}")
            asked_wait = group.create_task(self._passkey_asked.wait(), name="passkey-asked")
            await asyncio.wait({pairing, asked_wait}, return_when=asyncio.FIRST_COMPLETED)
            if asked_wait.done() and not pairing.done():
                asked = True
                yield PairingStep(
                    StepKind.PASSKEY_REQUEST,
                    f"The {texts.noun} shows six digits. Type them in.",
                    0.5,
                    found,
                )
            else:
                asked_wait.cancel()
            failed = await pairing
        if failed is None:
            return
        if asked:
            raise _Stop(
                _failed(
                    Failure.PASSKEY_WRONG,
                    "The passkey was not accepted.",
                    f"Start again, and type exactly the six digits the {texts.noun} shows at "
                    "that moment (a new number appears each time).",
                    found,
                )
            )
        if (
            found.profile is not None
            and self.passkey_agent is None
            and "auth" in str(failed).lower()
        ):
            raise _Stop(
                _failed(
                    Failure.PASSKEY_NOT_SUPPORTED,
                    f"The {texts.noun} needs a passkey, and this hub cannot ask for one yet.",
                    "Pair it once with `bluetoothctl` (agent KeyboardOnly, then pair), then run "
                    "`vitalbridge pair` again.",
                    found,
                )
            )
        raise _Stop(
            _failed(
                Failure.ALREADY_PAIRED_ELSEWHERE,
                f"The {texts.noun} refused to pair with this hub.",
                "Most often it is still paired with another hub or a phone. Remove it from that "
                "phone's Bluetooth settings or reset its pairing (see its leaflet: often hold "
                "the Bluetooth button for 10 seconds), then try again.",
                found,
            )
        )

    async def _bond(self, client: BleakClient) -> BaseException | None:
        # The outcome is returned, not raised: a failure must not cancel the TaskGroup while a
        # passkey step is out with the UI.
        try:
            async with asyncio.timeout(_PAIR_TIMEOUT_S):
                await client.pair()
        except (BleakError, TimeoutError) as exc:
            _log.info("pairing_refused", error=repr(exc))
            return exc
        return None

    # Provisioning

    def _record(self, found: FoundDevice) -> DeviceConfig:
        self.registry.open_pairing_window(_PAIR_TIMEOUT_S, found.profile, limit=1)
        try:
            admission = self.registry.consider(
                found.address, [full_uuid(PROFILES[found.profile].service)], found.name, found.rssi
            )
        finally:
            self.registry.close_pairing_window()
        if admission.device is None or admission.outcome is not AdmissionOutcome.PAIRED_NOW:
            raise _Stop(
                _failed(
                    Failure.NOT_SAVED,
                    "The device paired, but the hub could not add it to its list.",
                    "Check the hub's log, then try again.",
                    found,
                )
            )
        return admission.device

    def _map(
        self, device: DeviceConfig, user_index: int | None, consent_code: int | None = None
    ) -> DeviceConfig:
        try:
            self.registry.set_patient(
                device.id, user_index, self.options.patient, consent_code=consent_code
            )
        except DeviceRegistryError as exc:
            raise _Stop(
                _failed(
                    Failure.NOT_SAVED,
                    "The device paired, but the hub could not save whose device it is.",
                    f"{exc}. Then set the patient with the hub's device commands.",
                )
            ) from exc
        mapped = self.registry.lookup(device.address)
        return device if mapped is None else mapped

    async def _register_user(self, client: BleakClient) -> tuple[int, int]:
        answers: asyncio.Queue[UserControlPoint] = asyncio.Queue()

        def on_answer(_: object, data: bytearray) -> None:
            answers.put_nowait(UserControlPoint.decode(bytes(data)))

        ucp = full_uuid(USER_CONTROL_POINT)
        # Random, so that another hub or a guess cannot read this user's data.
        code = secrets.randbelow(_CONSENT_CODE_LIMIT)
        try:
            async with asyncio.timeout(_UDS_TIMEOUT_S):
                await client.start_notify(ucp, on_answer)
                await client.write_gatt_char(
                    ucp, UserControlPoint.register_new_user(code).encode(), response=True
                )
                registered = await answers.get()
                if not registered.is_success or registered.user_index is None:
                    raise _Stop(_user_failed(f"the scale answered {registered.response_value}"))
                user_index = registered.user_index
                await client.write_gatt_char(
                    ucp, UserControlPoint.consent(user_index, code).encode(), response=True
                )
                consented = await answers.get()
                if not consented.is_success:
                    raise _Stop(_user_failed(f"consent was refused ({consented.response_value})"))
        except (BleakError, TimeoutError, ValueError) as exc:
            raise _Stop(_user_failed(repr(exc))) from exc
        _log.info("pairing_user_registered", user_index=user_index)
        return user_index, code

    # The test reading

    async def _test_reading(
        self, client: BleakClient, found: FoundDevice, device: DeviceConfig
    ) -> AsyncIterator[PairingStep]:
        texts = _texts(found.profile)
        spec = PROFILES[found.profile]
        values: asyncio.Queue[tuple[int, bytes, dt.datetime]] = asyncio.Queue()
        available = {c.uuid.lower() for s in client.services for c in s.characteristics}
        try:
            async with asyncio.timeout(_UDS_TIMEOUT_S):
                for short in spec.measurements:
                    uuid = full_uuid(short)
                    if uuid not in available:
                        continue

                    def on_value(_: object, data: bytearray, short: int = short) -> None:
                        values.put_nowait((short, bytes(data), dt.datetime.now(dt.UTC)))

                    await client.start_notify(uuid, on_value)
        except (BleakError, TimeoutError) as exc:
            _log.info("pairing_test_reading_unavailable", error=repr(exc))
            yield PairingStep(
                StepKind.INSTRUCTION,
                f"The {texts.noun} is paired, but the hub could not ask it for a test reading. "
                "Its readings will come through when you use it.",
                0.9,
                found,
            )
            return
        yield PairingStep(
            StepKind.MEASURE_NOW, f"Now take a test measurement. {texts.measure}", 0.8, found
        )
        assembler = Assembler(streams=frozenset(spec.streams))
        try:
            async with asyncio.timeout(self.options.test_reading_timeout_s):
                while True:
                    short, raw, received_at = await values.get()
                    try:
                        decoded = device_profiles.decode(short, raw)
                    except ValueError:
                        continue
                    done, _ = assembler.add(short, decoded, raw, received_at)
                    if done:
                        break
        except TimeoutError:
            yield PairingStep(
                StepKind.INSTRUCTION,
                f"No test reading arrived. That is all right: the {texts.noun} is paired, and "
                "its readings will come through when you use it.",
                0.9,
                found,
            )
            return
        item = done[0]
        try:
            reading = normalise(
                item.measurement,
                DeviceInfo(id=device.id, address=device.address, profile=found.profile.value),
                ClockState(ClockSync.UNKNOWN),
                device.patient_map(),
                hub_id=self.hub_id,
                hub_tz=self.zone,
                received_at=item.received_at,
                raw=item.raw,
            )
        except NormaliseError:
            return
        assigned = reading.patient != UNASSIGNED
        summary = ", ".join(f"{c.field} {c.value} {c.unit}" for c in reading.components)
        test = TestReading(reading.kind.value, reading.user_index, assigned, summary)
        text = f"Test reading received: {summary}."
        if not assigned:
            text += " It is kept unassigned: no patient is set for this user on the device."
        yield PairingStep(
            StepKind.TEST_READING, text, 0.95, found, reading=test, user_index=reading.user_index
        )


def _failed(
    failure: Failure, text: str, what_to_do: str, device: FoundDevice | None = None
) -> PairingStep:
    return PairingStep(
        StepKind.FAILED, text, 1.0, device=device, failure=failure, what_to_do=what_to_do
    )


def _user_failed(detail: str) -> PairingStep:
    _log.info("pairing_user_registration_failed", error=detail)
    return _failed(
        Failure.USER_REGISTRATION_FAILED,
        "The scale is paired, but it did not register a new user.",
        "The scale may be full (most hold four to eight people): delete a user who no longer "
        "uses it, following its leaflet, then run `vitalbridge pair` again with --user-index if "
        "you already have a user on it.",
    )
