"""One connection to one health device: read what it has, store it durably, hang up.

The order is the profile's and the devices' (cuffs and scales send their stored readings the
moment a hub subscribes, then hang up within seconds):

connect (bleak-retry-connector) > Device Information (cached) > quirks > Battery >
subscribe to the measurements > clock (read the device time, then set it from the hub clock when
that is synchronised) > UDS consent (multi-user scales) > RACP "records after the cursor" >
wait until the device is quiet or gone > hang up.

Bleak callbacks only put values on a queue; one consumer decodes, assembles, normalises and puts
each reading in the outbox, in arrival order. The RACP answer travels the same queue, so when a
transfer is reported complete every record before it is committed, and only then does the
cursor move. A malformed value is logged with what to do and skipped; the session goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
from typing import TYPE_CHECKING, Any, Final, Protocol

import structlog
from bleak.exc import BleakError
from bleak_retry_connector import BleakNotFoundError, establish_connection

import device_profiles
from device_profiles.current_time import AdjustReason, CurrentTime
from device_profiles.date_time import DateTime
from device_profiles.glucose import GlucoseRecord
from device_profiles.quirks import Quirks, apply_quirks, quirks_for
from device_profiles.racp import RecordAccessControlPoint
from device_profiles.user_data import UserControlPoint
from gateway.ble.assembly import Assembled, Assembler, Rejected
from gateway.ble.profiles import (
    BATTERY_LEVEL,
    CURRENT_TIME,
    DEVICE_INFORMATION,
    PROFILES,
    RACP,
    USER_CONTROL_POINT,
    ProfileSpec,
    full_uuid,
)
from gateway.config import PairingMethod
from gateway.errors import (
    DeviceProfileError,
    DeviceSessionError,
    DeviceUnavailableError,
    OutboxFullError,
    TransferError,
)
from gateway.normalise import NormaliseError, normalise
from gateway.outbox import OutboxEntry
from gateway.reading import DeviceInfo
from gateway.state import DeviceIdentity, DeviceState
from gateway.timebase import ClockState

if TYPE_CHECKING:
    from collections.abc import Callable
    from zoneinfo import ZoneInfo

    from bleak import BleakClient
    from bleak.backends.characteristic import BleakGATTCharacteristic
    from bleak.backends.device import BLEDevice

    from gateway.config import BleSettings, DeviceConfig

__all__ = ["DeviceSession", "SessionDeps", "SessionOutbox", "SessionOutcome"]

_log = structlog.get_logger("gateway.session")

GATT_TIMEOUT_S: Final = 10.0
"""One read or write; a healthy link answers in tens of milliseconds."""
QUIET_AFTER_SYNC_S: Final = 4.0
"""Hang up once the device has sent nothing for this long after the sync steps."""
CONSENT_SETTLE_S: Final = 2.0
"""After consent, how long a scale may take to start sending that user's stored readings."""
DISCONNECT_TIMEOUT_S: Final = 5.0
_LAST_SEQUENCE: Final = 0xFFFF

_session_ids = itertools.count(1)


class SessionOutbox(Protocol):
    """The part of the outbox a session uses: a durable, idempotent put."""

    async def put(self, entry: OutboxEntry) -> bool:
        """Store one reading durably; False if it was already stored."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class SessionDeps:
    """What every session shares: where readings go and the hub's clock and settings."""

    hub_id: str
    zone: ZoneInfo
    outbox: SessionOutbox
    settings: BleSettings
    client_class: type[BleakClient]
    hub_clock_synchronised: Callable[[], bool]
    now: Callable[[], dt.datetime]
    stream_interval: dt.timedelta = dt.timedelta(seconds=60)
    quiet_after_sync_s: float = QUIET_AFTER_SYNC_S


@dataclasses.dataclass(slots=True)
class SessionOutcome:
    """What one session did, for the device state, the counters and the log."""

    stored: int = 0
    """Readings newly committed to the outbox."""
    duplicates: int = 0
    """Readings the outbox already had (a device re-sending, a cursor that lagged)."""
    malformed: int = 0
    """Values that did not decode or normalise."""
    refused: int = 0
    """Readings the outbox refused (full, policy refuse_new): they stay on the device if stored."""
    stored_records: int = 0
    """Of the readings, those sent in answer to RACP (stored on the device)."""
    clock: str = "unknown"
    """What the hub did about the device clock: synced, offset, unknown."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Value:
    characteristic: int
    data: bytes
    received_at: dt.datetime
    stored: bool


class DeviceSession:
    """A session with one provisioned device; `run` it once per connection."""

    def __init__(self, device: DeviceConfig, state: DeviceState, deps: SessionDeps) -> None:
        self.device = device
        self.state = state
        self.deps = deps
        self.spec: ProfileSpec = PROFILES[device.profile]
        self.outcome = SessionOutcome()
        self.quirks: Quirks = Quirks()
        self.session_id = f"{device.id}#{next(_session_ids)}"
        self._queue: asyncio.Queue[_Value | None] = asyncio.Queue()
        self._ucp_answers: asyncio.Queue[UserControlPoint] = asyncio.Queue()
        self._racp_answer: asyncio.Future[RecordAccessControlPoint] | None = None
        self._racp_active = False
        self._activity = asyncio.Event()
        self._lost = asyncio.Event()
        self._clock_before = ClockState.unknown()
        self._clock_after: ClockState | None = None
        self._clock_set_local: dt.datetime | None = None
        self._clock_set_at: dt.datetime | None = None
        self._clock_ready = asyncio.Event()
        self._committed_sequences: list[int] = []
        self._identity = state.identity or DeviceIdentity()
        self._assembler = Assembler(
            streams=frozenset(self.spec.streams), stream_interval=deps.stream_interval
        )
        self._characteristics: dict[int, BleakGATTCharacteristic] = {}

    async def run(self, ble_device: BLEDevice) -> SessionOutcome:
        """Connect, sync and hang up; raise a DeviceSessionError subclass if it went wrong.

        Whatever happens, every reading that arrived is committed (or counted as refused) and
        the device state updated before this returns or raises.
        """
        settings = self.deps.settings
        with structlog.contextvars.bound_contextvars(
            device_id=self.device.id, session_id=self.session_id
        ):
            client = await self._connect(ble_device)
            failure: DeviceSessionError | None = None
            try:
                async with asyncio.TaskGroup() as tasks:
                    consumer = tasks.create_task(self._consume(), name=f"consume-{self.device.id}")
                    deadline = asyncio.timeout(settings.session_timeout_s)
                    try:
                        async with deadline:
                            await self._sync(client)
                    except DeviceSessionError as exc:
                        failure = exc
                    except (BleakError, TimeoutError, OSError) as exc:
                        failure = self._link_failure(exc, session_over=deadline.expired())
                    finally:
                        self._clock_ready.set()
                        await _disconnect(client)
                        self._queue.put_nowait(None)
                        await consumer
            finally:
                self._finish_state()
            # Raised outside the task group, which would wrap it in an ExceptionGroup.
            if failure is not None:
                raise failure
        return self.outcome

    def _link_failure(self, exc: Exception, *, session_over: bool) -> DeviceSessionError | None:
        if session_over:
            if self.spec.streams:
                return None  # a stream runs until the session limit: a normal end
            return TransferError(
                self.device.id,
                f"the session ran past {self.deps.settings.session_timeout_s:.0f}s "
                "(ble.session_timeout_s); it resumes at the next connection",
            )
        if self._lost.is_set():
            return DeviceUnavailableError(
                self.device.id,
                "the device hung up before the hub had finished; what arrived is stored and "
                "the rest is read at the next connection",
            )
        return DeviceUnavailableError(
            self.device.id,
            f"the link failed ({type(exc).__name__}: {exc or 'no answer'}); what arrived is "
            "stored and the rest is read at the next connection",
        )

    # Steps.

    async def _connect(self, ble_device: BLEDevice) -> BleakClient:
        settings = self.deps.settings
        try:
            async with asyncio.timeout(settings.connect_timeout_s * 2):
                client = await establish_connection(
                    self.deps.client_class,
                    ble_device,
                    self.device.id,
                    disconnected_callback=lambda _: self._on_lost(),
                    max_attempts=2,
                    # Bond before reading: protected characteristics need an encrypted link.
                    pair=self.device.pairing is not PairingMethod.NONE,
                    timeout=settings.connect_timeout_s,
                )
        except (BleakNotFoundError, BleakError, TimeoutError, OSError) as exc:
            raise DeviceUnavailableError(
                self.device.id,
                f"could not connect ({type(exc).__name__}: {exc}); it is retried when it next "
                "advertises. If this persists: is it in range, switched on, and not connected "
                "to a phone app?",
            ) from exc
        self.state.last_connected = self.deps.now()
        _log.info("device_connected", profile=self.device.profile.value)
        return client

    async def _sync(self, client: BleakClient) -> None:
        self._characteristics = _characteristics(client)
        if full_uuid(self.spec.service) not in {str(s.uuid) for s in client.services}:
            raise DeviceProfileError(
                self.device.id,
                f"it does not serve the {self.device.profile.value} service "
                f"(0x{self.spec.service:04X}); check the profile provisioned for this address",
            )
        await self._read_identity(client)
        self.quirks = quirks_for(
            self._identity.manufacturer, self._identity.model, self._identity.firmware
        )
        if self.quirks != Quirks():
            _log.info("device_quirks_applied", quirks=_quirk_names(self.quirks))
        await self._read_battery(client)
        if self.quirks.set_clock_first:
            await self._clock_step(client)
        await self._subscribe(client)
        if not self.quirks.set_clock_first:
            await self._clock_step(client)
        await self._give_consent(client)
        await self._fetch_stored(client)
        await self._wait_until_quiet()

    async def _read_identity(self, client: BleakClient) -> None:
        if self.state.identity is not None:
            return
        values: dict[str, str] = {}
        for name, (uuid, field) in DEVICE_INFORMATION.items():
            if uuid not in self._characteristics:
                continue
            data = await self._read(client, uuid)
            try:
                decoded = device_profiles.decode(uuid, data)
            except device_profiles.DecodeError as exc:
                _log.warning("device_information_unreadable", field=name, error=str(exc))
                continue
            text = str(getattr(decoded, field)).strip()
            if text:
                values[name] = text
        self._identity = DeviceIdentity(**values)
        self.state.identity = self._identity

    async def _read_battery(self, client: BleakClient) -> None:
        if BATTERY_LEVEL not in self._characteristics:
            return
        try:
            level = device_profiles.decode(BATTERY_LEVEL, await self._read(client, BATTERY_LEVEL))
        except device_profiles.DecodeError as exc:
            _log.warning("battery_level_unreadable", error=str(exc))
            return
        self.state.battery_level = int(level.battery_level.mantissa)

    async def _subscribe(self, client: BleakClient) -> None:
        wanted = [*self.spec.measurements]
        if self.spec.racp:
            wanted.append(RACP)
        subscribed = 0
        for uuid in wanted:
            if uuid not in self._characteristics:
                continue
            async with asyncio.timeout(GATT_TIMEOUT_S):
                await client.start_notify(full_uuid(uuid), self._receiver(uuid))
            subscribed += uuid != RACP
        if not subscribed:
            raise DeviceProfileError(
                self.device.id,
                f"it serves none of the {self.device.profile.value} measurement "
                "characteristics; check the profile provisioned for this address",
            )

    async def _clock_step(self, client: BleakClient) -> None:
        # Values that arrive meanwhile wait in the queue: their clock state is decided here.
        try:
            await self._handle_clock(client)
        finally:
            self._clock_ready.set()

    async def _handle_clock(self, client: BleakClient) -> None:
        """Measure the device clock's offset, then set it when the hub's clock is trustworthy."""
        characteristic = self._characteristics.get(CURRENT_TIME)
        if characteristic is None:
            return
        zone = self.deps.zone
        properties = set(characteristic.properties)
        if "read" in properties:
            data = await self._read(client, CURRENT_TIME)
            hub_local = self.deps.now().astimezone(zone).replace(tzinfo=None)
            try:
                device_time = CurrentTime.decode(data).timestamp
            except device_profiles.DecodeError as exc:
                _log.warning("device_clock_unreadable", error=str(exc))
                device_time = None
            if device_time is not None:
                offset = (device_time - hub_local).total_seconds()
                self._clock_before = ClockState.measured_offset(offset)
                self.state.clock_offset_s = offset
                self.outcome.clock = "offset"
        writable = properties & {"write", "write-without-response"}
        if not writable:
            return
        if not self.deps.hub_clock_synchronised():
            _log.info("device_clock_not_set", reason="the hub clock is not synchronised")
            return
        now = self.deps.now()
        self._clock_set_at = now
        value = CurrentTime.from_datetime(
            now.astimezone(zone).replace(tzinfo=None), AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE
        )
        async with asyncio.timeout(GATT_TIMEOUT_S):
            await client.write_gatt_char(
                full_uuid(CURRENT_TIME), value.encode(), response="write" in properties
            )
        self._clock_after = ClockState.synced()
        self._clock_set_local = value.timestamp
        self.outcome.clock = "synced"
        _log.info("device_clock_set")

    async def _give_consent(self, client: BleakClient) -> None:
        codes = self.device.consent_codes
        if not (self.spec.users and codes) or USER_CONTROL_POINT not in self._characteristics:
            return
        async with asyncio.timeout(GATT_TIMEOUT_S):
            await client.start_notify(full_uuid(USER_CONTROL_POINT), self._on_ucp)
        for user_index, code in sorted(codes.items()):
            request = UserControlPoint.consent(user_index, code)
            async with asyncio.timeout(GATT_TIMEOUT_S):
                await client.write_gatt_char(
                    full_uuid(USER_CONTROL_POINT), request.encode(), response=True
                )
                answer = await self._ucp_answers.get()
            if not answer.is_success:
                _log.warning(
                    "user_consent_refused",
                    user_index=user_index,
                    response=str(answer.response_value),
                    advice="the scale no longer knows this user or the consent code changed: "
                    "register the user again when pairing",
                )
                continue
            _log.info("user_consent_given", user_index=user_index)
            # The scale now sends this user's stored readings; let them arrive before the next.
            await self._wait_until_quiet(CONSENT_SETTLE_S)

    async def _fetch_stored(self, client: BleakClient) -> None:
        if not self.spec.racp or RACP not in self._characteristics:
            return
        cursor = self.state.racp_cursor
        if self.spec.racp_sequence_filter and cursor is not None and cursor < _LAST_SEQUENCE:
            request = RecordAccessControlPoint.report_records_from(cursor + 1)
        else:
            request = RecordAccessControlPoint.report_all_records()
        answer = await self._racp(client, request)
        if answer.no_records_found:
            _log.info("stored_records_none")
            return
        if not answer.is_success:
            raise TransferError(
                self.device.id,
                f"the device answered the stored-record request with "
                f"{answer.response_code_value}; it is asked again at the next connection",
            )
        _log.info("stored_records_received", count=self.outcome.stored_records)
        if not self.spec.racp_sequence_filter and not self.outcome.refused:
            # Without a sequence filter the device would send its whole memory every time;
            # every record is committed now (the answer came after them), so it may forget them.
            await self._racp(client, RecordAccessControlPoint.delete_stored_records())

    async def _racp(
        self, client: BleakClient, request: RecordAccessControlPoint
    ) -> RecordAccessControlPoint:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[RecordAccessControlPoint] = loop.create_future()
        self._racp_answer = answer
        self._racp_active = True
        timeout_s = self.deps.settings.racp_timeout_s
        try:
            async with asyncio.timeout(GATT_TIMEOUT_S):
                await client.write_gatt_char(full_uuid(RACP), request.encode(), response=True)
            while not answer.done():
                self._activity.clear()
                lost = asyncio.ensure_future(self._lost.wait())
                active = asyncio.ensure_future(self._activity.wait())
                waits: set[asyncio.Future[Any]] = {answer, lost, active}
                done, _ = await asyncio.wait(
                    waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
                )
                lost.cancel()
                active.cancel()
                if answer in done:
                    break
                if lost in done:
                    raise TransferError(
                        self.device.id,
                        "the device disconnected during the stored-record transfer; what "
                        "arrived is stored and the rest is fetched at the next connection",
                    )
                if not done:
                    await self._abort(client)
                    raise TransferError(
                        self.device.id,
                        f"no stored record or answer for {timeout_s:.0f}s (ble.racp_timeout_s); "
                        "the transfer resumes at the next connection",
                    )
            return answer.result()
        finally:
            self._racp_active = False
            self._racp_answer = None

    async def _abort(self, client: BleakClient) -> None:
        try:
            async with asyncio.timeout(GATT_TIMEOUT_S):
                await client.write_gatt_char(
                    full_uuid(RACP),
                    RecordAccessControlPoint.abort_operation().encode(),
                    response=True,
                )
        except (BleakError, TimeoutError) as exc:
            _log.debug("racp_abort_failed", error=str(exc))

    async def _wait_until_quiet(self, quiet_s: float | None = None) -> None:
        quiet = self.deps.quiet_after_sync_s if quiet_s is None else quiet_s
        while not self._lost.is_set():
            self._activity.clear()
            lost = asyncio.ensure_future(self._lost.wait())
            active = asyncio.ensure_future(self._activity.wait())
            done, _ = await asyncio.wait(
                {lost, active}, timeout=quiet, return_when=asyncio.FIRST_COMPLETED
            )
            lost.cancel()
            active.cancel()
            if not done:
                return

    # Values in.

    def _receiver(self, uuid: int) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        def receive(_: BleakGATTCharacteristic, data: bytearray) -> None:
            self._queue.put_nowait(_Value(uuid, bytes(data), self.deps.now(), self._racp_active))
            self._activity.set()

        return receive

    def _on_ucp(self, _: BleakGATTCharacteristic, data: bytearray) -> None:
        try:
            self._ucp_answers.put_nowait(UserControlPoint.decode(bytes(data)))
        except device_profiles.DecodeError as exc:
            _log.warning("user_control_point_malformed", error=str(exc))

    def _on_lost(self) -> None:
        self._lost.set()
        self._activity.set()

    async def _consume(self) -> None:
        while (value := await self._queue.get()) is not None:
            if value.characteristic == RACP:
                self._on_racp(value.data)
                continue
            try:
                decoded = device_profiles.decode(value.characteristic, value.data)
            except device_profiles.DecodeError as exc:
                self.outcome.malformed += 1
                _log.warning(
                    "value_malformed",
                    characteristic=f"0x{value.characteristic:04X}",
                    field=exc.field,
                    offset=exc.offset,
                    kind=str(exc.kind),
                    advice="nothing is stored for this value; if every value of this device "
                    "is malformed, its firmware may not follow the profile: report the model",
                )
                continue
            decoded = apply_quirks(decoded, self.quirks)
            done, rejected = self._assembler.add(
                value.characteristic, decoded, value.data, value.received_at, stored=value.stored
            )
            self._report(rejected)
            await self._store(done)
        done, rejected = self._assembler.flush()
        self._report(rejected)
        await self._store(done)

    def _on_racp(self, data: bytes) -> None:
        try:
            answer = RecordAccessControlPoint.decode(data)
        except device_profiles.DecodeError as exc:
            _log.warning("racp_answer_malformed", error=str(exc))
            return
        if self._racp_answer is not None and not self._racp_answer.done():
            self._racp_answer.set_result(answer)

    def _report(self, rejected: list[Rejected]) -> None:
        for item in rejected:
            self.outcome.malformed += item.values
            _log.warning(
                "value_not_assembled",
                characteristic=f"0x{item.characteristic:04X}",
                count=item.values,
                reason=item.reason,
            )

    async def _store(self, done: list[Assembled]) -> None:
        if done:
            await self._clock_ready.wait()
        for item in done:
            clock = self._clock_for(item)
            try:
                reading = normalise(
                    item.measurement,
                    self._device_info(),
                    clock,
                    self.device.patient_map(),
                    hub_id=self.deps.hub_id,
                    hub_tz=self.deps.zone,
                    received_at=item.received_at,
                    raw=item.raw,
                    battery_level=self.state.battery_level,
                )
            except NormaliseError as exc:
                self.outcome.malformed += 1
                _log.warning("reading_not_normalised", error=str(exc))
                continue
            try:
                new = await self.deps.outbox.put(OutboxEntry.from_reading(reading))
            except OutboxFullError as exc:
                self.outcome.refused += 1
                _log.error(
                    "reading_refused",
                    kind=reading.kind.value,
                    stored_on_device=item.stored,
                    error=str(exc),
                )
                continue
            self.outcome.stored_records += item.stored
            if new:
                self.outcome.stored += 1
            else:
                self.outcome.duplicates += 1
            if item.sequence_number is not None and item.stored:
                self._committed_sequences.append(item.sequence_number)
            self.state.last_reading_at = self.deps.now()
            _log.info("reading_stored", kind=reading.kind.value, duplicate=not new)

    def _clock_for(self, item: Assembled) -> ClockState:
        """Pick the clock state a measurement's device time was stamped under.

        Stored records, and anything stamped before the hub set the clock, carry the old
        clock's time: the offset measured before the write corrects them. A measurement
        stamped after the write carries the hub's time. A device clock that was fast before
        the write makes a measurement taken in that last stretch look post-write; the error
        is bounded by the old offset and only affects the minutes before the session.
        """
        after, set_local, set_at = self._clock_after, self._clock_set_local, self._clock_set_at
        if after is None or set_local is None or set_at is None or item.stored:
            return self._clock_before
        if item.received_at < set_at:
            return self._clock_before
        device_time = _device_time(item.measurement)
        if device_time is None:
            return after
        # Device times have whole seconds: one in the second of the write counts as after it.
        return self._clock_before if device_time < set_local.replace(microsecond=0) else after

    def _device_info(self) -> DeviceInfo:
        identity = self._identity
        return DeviceInfo(
            id=self.device.id,
            address=self.device.address,
            manufacturer=identity.manufacturer,
            model=identity.model,
            serial=identity.serial,
            firmware=identity.firmware,
            profile=self.device.profile.value,
        )

    def _finish_state(self) -> None:
        state = self.state
        if self._committed_sequences:
            # Records arrive in sequence order; the cursor only ever moves forward.
            highest = max(self._committed_sequences)
            if state.racp_cursor is None or highest > state.racp_cursor:
                state.racp_cursor = highest
        state.readings += self.outcome.stored
        state.sessions += 1

    async def _read(self, client: BleakClient, uuid: int) -> bytes:
        async with asyncio.timeout(GATT_TIMEOUT_S):
            return bytes(await client.read_gatt_char(full_uuid(uuid)))


def _characteristics(client: BleakClient) -> dict[int, BleakGATTCharacteristic]:
    found: dict[int, BleakGATTCharacteristic] = {}
    for service in client.services:
        for characteristic in service.characteristics:
            text = str(characteristic.uuid)
            if text.startswith("0000") and text.endswith("-0000-1000-8000-00805f9b34fb"):
                found.setdefault(int(text[4:8], 16), characteristic)
    return found


def _device_time(measurement: object) -> dt.datetime | None:
    """Return the naive device-local time a measurement carries, if any."""
    if isinstance(measurement, GlucoseRecord):
        return None if measurement.measurement is None else measurement.measurement.measurement_time
    stamp = getattr(measurement, "timestamp", None)
    return stamp.timestamp if isinstance(stamp, DateTime) else None


def _quirk_names(quirks: Quirks) -> list[str]:
    names = [f.name for f in dataclasses.fields(quirks) if f.name != "source"]
    return [name for name in names if getattr(quirks, name)]


async def _disconnect(client: BleakClient) -> None:
    try:
        async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
            await client.disconnect()
    except (BleakError, TimeoutError, OSError) as exc:
        _log.debug("disconnect_failed", error=str(exc))
