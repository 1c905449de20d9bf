"""The common body of every simulated device: a Bumble GATT server with its link, clock and log.

A `SimulatedDevice` owns one Bumble `Device` (from `Radio.device`, or any Bumble device for
hardware in the loop) and gives it Device Information, Battery and, where real products have
it, Current Time. Subclasses add their profile's services in `_build_services` and take readings
in `measure`. Everything a device sends goes through `send`, which encodes a `device_profiles`
value, applies the configured payload fault, slows or drops notifications as the link behaviour
says, and records the result in `sent` for observers.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
import string
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

from bumble import att, core, gatt, hci

from device_profiles import DateTime, DecodeError, Number
from device_profiles.battery import BatteryLevel
from device_profiles.current_time import AdjustReason, CurrentTime
from simulators.devices._gatt import (
    Security,
    advertising_data,
    device_information_service,
    make_characteristic,
    pairing_config,
    scan_response_data,
)
from simulators.devices._link import Link, Transmitter
from simulators.devices._tasks import TaskSet
from simulators.devices.clock import Clock, DeviceClock, SystemClock
from simulators.devices.config import (
    LOW_BATTERY_PERCENT,
    QUIRK_BEHAVIOURS,
    DeviceIdentity,
    Pairing,
    PayloadFault,
    Sent,
    SimulatorConfig,
)
from simulators.devices.physiology import Physiology

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from bumble.device import Connection, Device
    from bumble.pairing import PairingConfig

    from device_profiles import Characteristic as Value
    from simulators.radio import Radio

__all__ = ["CTS_DATA_FIELD_IGNORED", "Link", "SimulatedDevice"]

logger = logging.getLogger(__name__)

_P = gatt.Characteristic.Properties
DISCONNECT_TIMEOUT_S: Final = 5.0
"""How long the device waits for its controller to confirm a disconnection."""
CTS_DATA_FIELD_IGNORED: Final = 0x80
"""Current Time Service ATT error "Data field ignored": a time write the device refuses."""
# What each vendor-quirk behaviour adds to the default model number, so that the quirk table
# (device_profiles.quirks) finds a quirky simulator by its Device Information.
_QUIRK_MODEL_TAGS: Final = {
    "requires_clock_set": "QCLOCK",
    "zero_fills_absent_fields": "QZERO",
    "consent_required_to_send": "QCONSENT",
}


class SimulatedDevice(abc.ABC):
    """A virtual health device: a GATT server with readings, behaviours and a log of sends."""

    KIND: ClassVar[str]
    """The device type's name in scenarios and the CLI (`blood_pressure_cuff`, ...)."""
    DEFAULT_NAME: ClassVar[str]
    MODEL: ClassVar[str]
    APPEARANCE: ClassVar[int]
    ADVERTISED_SERVICES: ClassVar[tuple[int, ...]]
    HAS_CURRENT_TIME: ClassVar[bool] = True
    MANUFACTURER: ClassVar[str] = "Vitalbridge Simulated Devices"
    QUIRKS_SIMULATED: ClassVar[frozenset[str]] = frozenset()
    """The vendor-quirk behaviours (config.QUIRK_BEHAVIOURS) this device type can show."""

    def __init__(
        self,
        device: Device,
        config: SimulatorConfig | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.device = device
        self.config = config or SimulatorConfig()
        self.behaviours = self.config.behaviours
        unsupported = self.behaviours.quirks - self.QUIRKS_SIMULATED
        if unsupported:
            raise ValueError(
                f"a {self.KIND} does not simulate {', '.join(sorted(unsupported))}; switch it "
                f"off, or use a device type that does"
            )
        self.clock: Clock = clock or SystemClock()
        seed = self.config.seed
        # Separate streams, so that link losses or pairing never shift the readings of a seed.
        self.rng = random.Random(seed)  # noqa: S311 - simulated readings, not security
        self._link_rng = random.Random(f"{seed}:link")  # noqa: S311 - simulated link losses
        self._passkey_rng = random.Random(f"{seed}:passkey")  # noqa: S311 - reproducible tests
        self.physiology = Physiology(self.config.patient, self.rng)
        self.device_clock = DeviceClock(
            self.clock,
            drift_ppm=self.behaviours.clock_drift_ppm,
            start=self.behaviours.clock_start,
        )
        self.battery_percent = self.behaviours.battery_percent
        self.identity = self.config.identity or self._default_identity()
        self._transmitter = Transmitter(device, self.clock, self.behaviours, self._link_rng)
        self._link: Link | None = None
        self._tasks = TaskSet(device.name)
        self._running = False
        self._advertising = asyncio.Event()
        self._passkeys: asyncio.Queue[int] = asyncio.Queue()
        self._measurements_taken = 0
        self._disconnect_timer: asyncio.Task[None] | None = None
        self._clock_written_on: Link | None = None
        if self.behaviours.pairing is not None:
            device.pairing_config_factory = self._pairing_config
        device.on(device.EVENT_CONNECTION, self._on_connection)
        self.battery_level_characteristic = self.characteristic(
            0x2A19, _P.READ | _P.NOTIFY, read=self._battery_level, protected=False
        )
        self.current_time_characteristic: gatt.Characteristic[bytes] | None = None
        services = [
            device_information_service(self.device, self.identity),
            self._battery_service(),
        ]
        if self.HAS_CURRENT_TIME:
            self.current_time_characteristic = self.characteristic(
                0x2A2B,
                _P.READ | _P.WRITE | _P.NOTIFY,
                read=self.current_time,
                write=self._write_current_time,
            )
            services.append(
                gatt.Service(gatt.GATT_CURRENT_TIME_SERVICE, [self.current_time_characteristic])
            )
        device.add_services([*self._build_services(), *services])

    @classmethod
    def on_radio(
        cls,
        radio: Radio,
        address: str,
        config: SimulatorConfig | None = None,
        *,
        clock: Clock | None = None,
    ) -> Self:
        """Make the device on a simulated radio, at `address`, named by the config or type."""
        config = config or SimulatorConfig()
        return cls(radio.device(config.name or cls.DEFAULT_NAME, address), config, clock=clock)

    # -- what subclasses provide -------------------------------------------------------------

    @abc.abstractmethod
    def _build_services(self) -> list[gatt.Service]:
        """Build the profile's services (called once, from __init__)."""

    @abc.abstractmethod
    async def measure(self) -> object:
        """Take a measurement now: send it to a listening hub, or store it for later."""

    @property
    @abc.abstractmethod
    def stored_records(self) -> tuple[object, ...]:
        """The measurements kept for a hub, oldest first."""

    async def stream(self, count: int, interval_s: float = 1.0) -> list[object]:
        """Measure `count` times, `interval_s` apart on the clock (continuous devices)."""
        readings: list[object] = []
        for index in range(count):
            if index:
                await self.clock.sleep(interval_s)
            readings.append(await self.measure())
        return readings

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Power on, and advertise unless the device waits for a button press."""
        if self._running:
            return
        self._running = True
        await self.device.power_on()
        if not self.behaviours.advertise_on_button_press:
            await self._advertise()
        logger.debug("device_started", extra={"device": self.device.name})

    async def stop(self) -> None:
        """Drop the link, stop advertising, cancel background work and power off."""
        if not self._running:
            return
        self._running = False
        await self._tasks.cancel_all()
        if self._link is not None:
            await self.disconnect()
        await self.device.stop_advertising()
        self._advertising.clear()
        await self.device.power_off()
        logger.debug("device_stopped", extra={"device": self.device.name})

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def press_button(self) -> None:
        """Wake up and advertise (a device in button-press mode advertises only after this)."""
        if not self._running:
            raise RuntimeError("start the device before pressing its button")
        if self._link is None and not self._advertising.is_set():
            await self._advertise()

    async def wait_until_advertising(self) -> None:
        """Return once the device is advertising (after start, a disconnection or a press)."""
        await self._advertising.wait()

    @property
    def is_advertising(self) -> bool:
        """Whether the device is advertising now."""
        return self._advertising.is_set()

    @property
    def low_battery(self) -> bool:
        """Whether the battery is low now (its profile's status flags say so where they can)."""
        return self.battery_percent <= LOW_BATTERY_PERCENT

    async def change_battery(self) -> None:
        """Replace the battery: the link drops, the level is full and the clock may reset."""
        if self._link is not None:
            await self.disconnect()
        self.battery_percent = 100
        if self.behaviours.battery_change_resets_clock:
            self.device_clock.reset()
        logger.debug("battery_changed", extra={"clock_set": self.device_clock.is_set})

    # -- the link -----------------------------------------------------------------------------

    @property
    def link(self) -> Link | None:
        """The hub connection, if a hub is connected."""
        return self._link

    @property
    def is_connected(self) -> bool:
        """Whether a hub is connected."""
        return self._link is not None

    async def disconnect(self, link: Link | None = None) -> None:
        """Drop the link to the hub (the device's side of a disconnection)."""
        link = link or self._link
        if link is None or link.lost.done():
            return
        with contextlib.suppress(
            hci.HCI_Error, hci.HCI_StatusError, core.InvalidStateError, TimeoutError
        ):
            async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                await link.connection.disconnect()
        if not link.lost.done():
            # The controller never confirmed (it may be gone): the link is over for the device.
            self._on_disconnection(link, hci.HCI_CONNECTION_TIMEOUT_ERROR)

    def _on_connection(self, connection: Connection) -> None:
        if connection.role != hci.Role.PERIPHERAL:
            return
        link = Link(connection, asyncio.get_running_loop().create_future())
        self._link = link
        self._advertising.clear()
        connection.on(
            connection.EVENT_DISCONNECTION, lambda reason: self._on_disconnection(link, reason)
        )
        logger.debug("hub_connected", extra={"peer": str(connection.peer_address)})

    def _on_disconnection(self, link: Link, reason: int) -> None:
        if not link.lost.done():
            link.lost.set_result(None)
        if self._link is link:
            self._link = None
        if self._clock_written_on is link:
            self._clock_written_on = None
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
            self._disconnect_timer = None
        logger.debug("hub_disconnected", extra={"reason": reason})
        self._on_link_down(link)
        if self._running and not self.behaviours.advertise_on_button_press:
            self.spawn(self._advertise(), "advertise")

    def _on_link_down(self, link: Link) -> None:  # noqa: B027 - an optional hook
        """Forget a hub's link that is gone: RACP transfers stop, consent ends (a hook)."""

    def _on_clock_written(self, link: Link) -> None:  # noqa: B027 - an optional hook
        """Send what was held back for the clock quirk, now that the hub set the clock (a hook)."""

    @property
    def clock_written(self) -> bool:
        """Whether the connected hub has written Current Time on this link."""
        return self._link is not None and self._clock_written_on is self._link

    @property
    def measurements_released(self) -> bool:
        """Whether the clock quirk lets the device send measurements on the link now."""
        return not self.behaviours.requires_clock_set or self.clock_written

    async def _advertise(self) -> None:
        name = self.device.name
        await self.device.start_advertising(
            advertising_data=advertising_data(name, self.ADVERTISED_SERVICES, self.APPEARANCE),
            scan_response_data=scan_response_data(name),
            auto_restart=False,
            advertising_interval_min=self.behaviours.advertising_interval_ms,
            advertising_interval_max=self.behaviours.advertising_interval_ms,
        )
        self._advertising.set()
        logger.debug("advertising_started", extra={"device": name})

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        del connection
        return pairing_config(
            passkey=self.behaviours.pairing is Pairing.PASSKEY,
            draw=self.next_passkey,
            show=self.show_passkey,
        )

    def next_passkey(self) -> int:
        """Draw the next six-digit passkey the device will show (seeded: tests can repeat it)."""
        return self._passkey_rng.randrange(1_000_000)

    def show_passkey(self, passkey: int) -> None:
        """Put a passkey on the device's display."""
        logger.debug("passkey_shown", extra={"device": self.device.name})
        self._passkeys.put_nowait(passkey)

    async def displayed_passkey(self) -> int:
        """Wait for the device to show a pairing passkey and return it (what a user reads)."""
        return await self._passkeys.get()

    # -- building the GATT server -------------------------------------------------------------

    def characteristic(
        self,
        uuid: int,
        properties: gatt.Characteristic.Properties,
        *,
        read: Callable[[], Value] | None = None,
        write: Callable[[Link, bytes], None] | None = None,
        protected: bool = True,
    ) -> gatt.Characteristic[bytes]:
        """Make a characteristic served from `device_profiles` values; protected: needs pairing."""
        security = Security.OPEN
        if protected and self.behaviours.pairing is Pairing.PASSKEY:
            security = Security.AUTHENTICATED
        elif protected and self.behaviours.pairing is Pairing.JUST_WORKS:
            security = Security.ENCRYPTED
        writer = (
            (lambda connection, data: write(self._link_of(connection), data))
            if write is not None
            else None
        )
        return make_characteristic(
            self.device, uuid, properties, read=read, write=writer, security=security
        )

    def _link_of(self, connection: Connection) -> Link:
        link = self._link
        if link is None or link.connection is not connection:
            raise att.ATT_Error(att.ErrorCode.UNLIKELY_ERROR)
        return link

    def _battery_service(self) -> gatt.Service:
        return gatt.Service(gatt.GATT_BATTERY_SERVICE, [self.battery_level_characteristic])

    def _default_identity(self) -> DeviceIdentity:
        address = "".join(c for c in str(self.device.random_address) if c in string.hexdigits)
        return DeviceIdentity(self.MANUFACTURER, self._model(), f"SIM-{address[-8:]}", "2.1.0")

    def _model(self) -> str:
        """Return the model number: MODEL, or a quirky device's family and quirks (VB-BP-QZERO)."""
        tags = [
            _QUIRK_MODEL_TAGS[name] for name in QUIRK_BEHAVIOURS if getattr(self.behaviours, name)
        ]
        if not tags:
            return self.MODEL
        # The family is the model without its number: VB-BP200 is a VB-BP.
        return "-".join([self.MODEL.rstrip(string.digits), *tags])

    def _battery_level(self) -> BatteryLevel:
        return BatteryLevel(Number(self.battery_percent, 0))

    def current_time(self, reason: AdjustReason = AdjustReason(0)) -> CurrentTime:  # noqa: B008 - an immutable flag value
        """Return the Current Time value of the device clock."""
        return CurrentTime.from_datetime(self.device_clock.now(), reason)

    def timestamp(self) -> DateTime:
        """Return the device clock as a measurement time stamp."""
        return DateTime.from_datetime(self.device_clock.now())

    def _write_current_time(self, link: Link, data: bytes) -> None:
        try:
            timestamp = CurrentTime.decode(data).timestamp
        except DecodeError as exc:
            raise att.ATT_Error(CTS_DATA_FIELD_IGNORED) from exc
        if timestamp is None:
            raise att.ATT_Error(CTS_DATA_FIELD_IGNORED)
        self.device_clock.set(timestamp)
        logger.debug("device_clock_set", extra={"device": self.device.name})
        first_on_link = self._clock_written_on is not link
        self._clock_written_on = link
        if first_on_link and self.behaviours.requires_clock_set:
            self._on_clock_written(link)

    # -- sending ------------------------------------------------------------------------------

    def subscribed(self, characteristic: gatt.Characteristic[bytes], *, indicate: bool) -> bool:
        """Whether the connected hub has enabled notifications (or indications) of it."""
        link = self._link
        return link is not None and self._transmitter.subscribed(
            link, characteristic, indicate=indicate
        )

    def special_values_due(self) -> bool:
        """Count a measurement; say whether it must carry special values (the payload fault)."""
        self._measurements_taken += 1
        return (
            self.behaviours.payload_fault is PayloadFault.SPECIAL_VALUES
            and self._measurements_taken % self.behaviours.payload_fault_every == 0
        )

    async def send(
        self,
        characteristic: gatt.Characteristic[bytes],
        value: Value,
        *,
        indicate: bool,
        measurement: bool = False,
    ) -> bool:
        """Send `value` to the subscribed hub; return whether it went out (and was confirmed).

        Measurement payloads carry the configured byte-level fault. Notifications are dropped
        at the lossy-link rate and followed by the slow-link pause; indications never drop.
        """
        link = self._link
        if link is None:
            return False
        return await self._transmitter.send(
            link, characteristic, value, indicate=indicate, measurement=measurement
        )

    @property
    def sent(self) -> list[Sent]:
        """Everything the device sent (or dropped on a lossy link), oldest first."""
        return self._transmitter.sent

    def add_sent_listener(self, listener: Callable[[Sent], object]) -> None:
        """Call `listener` with every value the device sends (e.g. a queue's put_nowait)."""
        self._transmitter.listeners.append(listener)

    async def deliver_stored(
        self, characteristic: gatt.Characteristic[bytes], memory: list[Any]
    ) -> None:
        """Indicate kept readings oldest first, forgetting each once the hub confirmed it."""
        while memory:
            record = memory[0]
            if not await self.send(characteristic, record, indicate=True, measurement=True):
                return
            # The same record may have gone already if a live reading raced the delivery.
            if memory and memory[0] is record:
                memory.pop(0)
        self.after_send()

    def after_send(self) -> None:
        """Arm the disconnect-after-send timer, if the behaviour asks for one."""
        delay = self.behaviours.disconnect_after_send_s
        link = self._link
        if delay is None or link is None:
            return
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
        self._disconnect_timer = self.spawn(self._disconnect_later(link, delay), "disconnect")

    async def _disconnect_later(self, link: Link, delay_s: float) -> None:
        await self.clock.sleep(delay_s)
        await self.disconnect(link)

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run background work owned by the device; stop() cancels it, failures are kept."""
        return self._tasks.spawn(coroutine, name)

    async def settle(self) -> None:
        """Wait for the device's background work (flushes, RACP transfers, timers) to finish."""
        await self._tasks.settle()

    @property
    def task_errors(self) -> list[BaseException]:
        """Exceptions of background tasks; a healthy run has none."""
        return self._tasks.errors
