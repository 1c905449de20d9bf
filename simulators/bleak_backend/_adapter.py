"""The hub's Bumble host, the "adapter": one per process, shared by every scanner and client.

A real hub has one HCI adapter that BlueZ shares between every scanner and connection; here one
central-side Bumble `Device` plays that part. It lives either in-process on a simulated `Radio`
(`use_radio`, for tests) or behind a Bumble HCI transport opened from a string such as
`unix:/run/vitalbridge/hci.sock` or `tcp-client:127.0.0.1:9000` (`use_hci`, `configure`, or the
`VITALBRIDGE_BUMBLE_HCI` environment variable, for a gateway in another process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from bumble import core, hci
from bumble.device import Connection, Device, DeviceConfiguration
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport

from simulators.bleak_backend._errors import AdapterInUseError, AdapterNotConfiguredError
from simulators.bleak_backend._pairing import pairing_config

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine

    from bumble.device import Advertisement

    from simulators.radio import Radio

__all__ = [
    "CONNECT_TIMEOUT_ENV_VAR",
    "HCI_ENV_VAR",
    "AdapterSettings",
    "AdvertisementSink",
    "BumbleAdapter",
    "address_key",
    "configure",
    "get_adapter",
    "reset_adapter",
    "use_hci",
    "use_radio",
]

logger = logging.getLogger(__name__)

HCI_ENV_VAR: Final = "VITALBRIDGE_BUMBLE_HCI"
"""Bumble HCI transport of the hub's controller, e.g. `unix:/run/vitalbridge/hci.sock`."""
CONNECT_TIMEOUT_ENV_VAR: Final = "VITALBRIDGE_BUMBLE_CONNECT_TIMEOUT_S"
"""Upper bound, in seconds, on one connection attempt (see `AdapterSettings.connect_timeout_s`)."""

# A random static address (two top bits set), so it never collides with a public one.
DEFAULT_ADDRESS: Final = "C0:FF:EE:00:00:01"
DEFAULT_CONNECT_TIMEOUT_S: Final = 5.0
# BlueZ asks for the largest ATT MTU; the peer answers with what it can do.
DEFAULT_PREFERRED_MTU: Final = 517
_MIN_MTU: Final = 23
_MAX_MTU: Final = 517
# How long a cancelled connection attempt waits for the controller to report its end.
_CANCEL_ANSWER_TIMEOUT_S: Final = 1.0
_CLOSE_DISCONNECT_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    """How the hub's adapter presents itself and how long it tries to connect."""

    name: str = "vitalbridge-hub"
    address: str = DEFAULT_ADDRESS
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    """Cap on each connection attempt, like the kernel's LE connection timeout.

    bleak-retry-connector asks for 20 s per attempt and tries four times; a simulated device
    answers within one advertising interval, so an absent one should fail in seconds.
    """
    preferred_mtu: int = DEFAULT_PREFERRED_MTU
    pairing_delegate: PairingDelegate | None = None
    """The hub's pairing agent; `None` pairs Just Works. A client can override it per device."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.connect_timeout_s) and self.connect_timeout_s > 0):
            msg = f"connect_timeout_s must be positive seconds, got {self.connect_timeout_s}"
            raise ValueError(msg)
        if not _MIN_MTU <= self.preferred_mtu <= _MAX_MTU:
            msg = f"preferred_mtu must be within {_MIN_MTU}..{_MAX_MTU}, got {self.preferred_mtu}"
            raise ValueError(msg)


class AdvertisementSink(Protocol):
    """A scanner registered with the adapter: it receives every advertising report."""

    @property
    def active(self) -> bool:
        """Whether this scanner wants scan responses (active scanning)."""
        ...

    def handle_advertisement(self, advertisement: Advertisement) -> None:
        """Take one report; called from the event loop, never from inside Bumble."""
        ...


def address_key(address: hci.Address) -> str:
    """Return the address as bleak shows it on BlueZ: upper case, colons, no type suffix."""
    return address.to_string(with_type_qualifier=False)


class BumbleAdapter:
    """The central-side Bumble device that every `BumbleScanner` and `BumbleClient` shares."""

    def __init__(
        self,
        device: Device,
        settings: AdapterSettings,
        *,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.device = device
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self._listening = False
        self._on_close = on_close
        # One pending LE connection at a time, as on a real controller.
        self._connect_lock = asyncio.Lock()
        self._scan_lock = asyncio.Lock()
        self._sinks: list[AdvertisementSink] = []
        self._scanning_active: bool | None = None
        self._known_addresses: dict[str, hci.Address] = {}
        self._advertised_names: dict[str, str] = {}
        self._pairing_delegates: dict[int, PairingDelegate] = {}
        self._claimed: set[int] = set()
        # The lazy (environment) adapter has no enclosing scope for a TaskGroup, so the few
        # clean-up tasks live here and close() cancels and awaits them.
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Power the host on and start listening for advertisements and connections."""
        self.device.pairing_config_factory = self._pairing_config
        self.device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        self._listening = True
        await self.device.power_on()
        logger.debug("adapter_opened address=%s", self.settings.address)

    async def close(self) -> None:
        """Stop scanning, drop every connection and power the host off; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._sinks.clear()
        if self._scanning_active is not None:
            self._scanning_active = None
            with contextlib.suppress(core.BaseBumbleError, TimeoutError):
                await self.device.stop_scanning()
        for connection in list(self.device.connections.values()):
            await self._disconnect_quietly(connection)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listening:
            self.device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            self.device.remove_listener(Device.EVENT_CONNECTION, self._on_connection)
        await self.device.power_off()
        if self._on_close is not None:
            await self._on_close()
        logger.debug("adapter_closed address=%s", self.settings.address)

    # Scanning

    async def start_scanning(self, sink: AdvertisementSink) -> None:
        """Register a scanner; the controller scans while any scanner is registered."""
        async with self._scan_lock:
            if sink not in self._sinks:
                self._sinks.append(sink)
            await self._apply_scan_mode()

    async def stop_scanning(self, sink: AdvertisementSink) -> None:
        """Unregister a scanner; the controller stops scanning after the last one."""
        async with self._scan_lock:
            if sink in self._sinks:
                self._sinks.remove(sink)
            if not self.closed:
                await self._apply_scan_mode()

    async def _apply_scan_mode(self) -> None:
        wanted = any(sink.active for sink in self._sinks) if self._sinks else None
        if wanted == self._scanning_active:
            return
        if self._scanning_active is not None:
            await self.device.stop_scanning()
            self._scanning_active = None
        if wanted is not None:
            await self.device.start_scanning(active=wanted, filter_duplicates=False)
            self._scanning_active = wanted
        logger.debug("scan_mode_changed active=%s", wanted)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        # Bumble calls this while it handles an HCI event: hand over, do nothing else here.
        self.loop.call_soon(self._dispatch_advertisement, advertisement)

    def _dispatch_advertisement(self, advertisement: Advertisement) -> None:
        key = address_key(advertisement.address)
        self._known_addresses[key] = advertisement.address
        for ad_type, data in advertisement.data.ad_structures:
            if ad_type == core.AdvertisingData.Type.COMPLETE_LOCAL_NAME:
                self._advertised_names[key] = data.decode("utf-8", errors="replace")
        for sink in list(self._sinks):
            sink.handle_advertisement(advertisement)

    def known_address(self, address: str) -> hci.Address | None:
        """Return the typed address last seen advertising under `address`, if any."""
        return self._known_addresses.get(address.upper())

    def advertised_name(self, address: str) -> str | None:
        """Return the complete local name last advertised by `address`, if any."""
        return self._advertised_names.get(address.upper())

    # Connections

    async def connect(self, peer: hci.Address) -> Connection:
        """Create an LE connection, one pending at a time; cancel it if the caller gives up."""
        async with self._connect_lock:
            try:
                connection = await self.device.connect(
                    peer, transport=core.PhysicalTransport.LE, timeout=None
                )
            except asyncio.CancelledError:
                # Timed out or cancelled: a real host tells the controller to stop initiating,
                # or the next connect is refused with "Command Disallowed".
                await self._cancel_pending_connection(peer)
                raise
            self._claimed.add(connection.handle)
            return connection

    async def _cancel_pending_connection(self, peer: hci.Address) -> None:
        outcome: asyncio.Future[Connection | None] = self.loop.create_future()

        def on_connection(connection: Connection) -> None:
            if connection.peer_address == peer and not outcome.done():
                outcome.set_result(connection)

        def on_failure(_error: core.ConnectionError) -> None:
            if not outcome.done():
                outcome.set_result(None)

        self.device.on(Device.EVENT_CONNECTION, on_connection)
        self.device.on(Device.EVENT_CONNECTION_FAILURE, on_failure)
        try:
            await self.device.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
            async with asyncio.timeout(_CANCEL_ANSWER_TIMEOUT_S):
                await outcome
        except TimeoutError:
            logger.debug(
                "connection_cancel_unanswered peer=%s: the controller may still be initiating",
                peer,
            )
        except core.BaseBumbleError as exc:
            logger.debug("connection_cancel_failed peer=%s error=%s", peer, exc)
        finally:
            self.device.remove_listener(Device.EVENT_CONNECTION, on_connection)
            self.device.remove_listener(Device.EVENT_CONNECTION_FAILURE, on_failure)
        # The link may have come up just as we gave up; nobody owns it, so drop it.
        orphan = self.device.find_connection_by_bd_addr(peer, core.PhysicalTransport.LE)
        if orphan is not None and orphan.handle not in self._claimed:
            self._spawn(self._disconnect_quietly(orphan), f"drop-orphan-{peer}")

    def _on_connection(self, connection: Connection) -> None:
        # A central link that arrives while no connect is pending was cancelled too late.
        if connection.role == hci.Role.CENTRAL and not self._connect_lock.locked():
            self._spawn(self._disconnect_quietly(connection), f"drop-late-{connection.handle}")

    def release(self, connection: Connection) -> None:
        """Forget per-connection state once a client is done with the connection."""
        self._claimed.discard(connection.handle)
        self._pairing_delegates.pop(connection.handle, None)

    def set_pairing_delegate(self, connection: Connection, delegate: PairingDelegate) -> None:
        """Use `delegate` instead of the adapter's for pairing on this connection."""
        self._pairing_delegates[connection.handle] = delegate

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        delegate = (
            self._pairing_delegates.get(connection.handle)
            or self.settings.pairing_delegate
            or PairingDelegate()
        )
        return pairing_config(delegate)

    async def is_bonded(self, peer: hci.Address) -> bool:
        """Whether the key store holds keys for `peer` (it was paired with bonding)."""
        keystore = self.device.keystore
        return keystore is not None and await keystore.get(str(peer)) is not None

    async def forget(self, peer: hci.Address) -> None:
        """Delete the bonding keys of `peer`, as BlueZ's RemoveDevice does."""
        if self.device.keystore is not None:
            await self.device.keystore.delete(str(peer))

    async def _disconnect_quietly(self, connection: Connection) -> None:
        try:
            async with asyncio.timeout(_CLOSE_DISCONNECT_TIMEOUT_S):
                await connection.disconnect()
        except (TimeoutError, core.BaseBumbleError) as exc:
            logger.debug("disconnect_failed handle=%s error=%s", connection.handle, exc)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = self.loop.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# The registry: at most one adapter, bound to the event loop it was opened on.


@dataclass(slots=True)
class _Registry:
    adapter: BumbleAdapter | None = None
    hci_spec: str | None = None
    settings: AdapterSettings | None = None


_registry = _Registry()
_open_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def configure(hci_spec: str | None = None, settings: AdapterSettings | None = None) -> None:
    """Set what `get_adapter` opens lazily; this overrides the environment variables."""
    _registry.hci_spec = hci_spec
    _registry.settings = settings


def _current(loop: asyncio.AbstractEventLoop) -> BumbleAdapter | None:
    adapter = _registry.adapter
    if adapter is None or adapter.closed:
        return None
    if adapter.loop is not loop:
        # Bumble objects belong to the loop they were made on; that loop is gone or elsewhere.
        logger.debug("adapter_dropped reason=other_event_loop")
        _registry.adapter = None
        return None
    return adapter


def _settings_from_environment() -> AdapterSettings:
    raw = os.environ.get(CONNECT_TIMEOUT_ENV_VAR)
    if raw is None:
        return AdapterSettings()
    try:
        return AdapterSettings(connect_timeout_s=float(raw))
    except ValueError as exc:
        msg = f"{CONNECT_TIMEOUT_ENV_VAR}={raw!r} is not a positive number of seconds; set e.g. 5"
        raise AdapterNotConfiguredError(msg) from exc


async def get_adapter() -> BumbleAdapter:
    """Return the adapter of the running event loop, opening the configured transport if needed."""
    loop = asyncio.get_running_loop()
    if (adapter := _current(loop)) is not None:
        return adapter
    lock = _open_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        if (adapter := _current(loop)) is not None:
            return adapter
        spec = _registry.hci_spec or os.environ.get(HCI_ENV_VAR)
        if not spec:
            msg = (
                "No Bumble adapter is configured. In tests, wrap the code in "
                "`async with use_radio(radio):`; for a gateway, set "
                f"{HCI_ENV_VAR}=unix:/path/to/hci.sock (or tcp-client:HOST:PORT) to the "
                "simulator's HCI socket, or call configure(hci_spec=...)."
            )
            raise AdapterNotConfiguredError(msg)
        settings = _registry.settings or _settings_from_environment()
        adapter = await _hci_adapter(spec, settings)
        await _open_or_discard(adapter)
        _registry.adapter = adapter
        return adapter


async def reset_adapter() -> None:
    """Close the current adapter and forget it and any `configure` call (between tests)."""
    adapter = _registry.adapter
    _registry.adapter = None
    _registry.hci_spec = None
    _registry.settings = None
    if adapter is not None and adapter.loop is asyncio.get_running_loop():
        await adapter.close()


async def _hci_adapter(spec: str, settings: AdapterSettings) -> BumbleAdapter:
    try:
        transport = await open_transport(spec)
    except (OSError, core.BaseBumbleError, ValueError) as exc:
        msg = (
            f"Could not open the Bumble HCI transport {spec!r}: {exc}. Start the simulator "
            f"that serves it, or fix {HCI_ENV_VAR}."
        )
        raise AdapterNotConfiguredError(msg) from exc
    config = DeviceConfiguration(name=settings.name, address=hci.Address(settings.address))
    device = Device.from_config_with_hci(config, transport.source, transport.sink)
    return BumbleAdapter(device, settings, on_close=transport.close)


async def _open_or_discard(adapter: BumbleAdapter) -> None:
    try:
        await adapter.open()
    except BaseException:
        await adapter.close()
        raise


@contextlib.asynccontextmanager
async def _registered(adapter: BumbleAdapter) -> AsyncIterator[BumbleAdapter]:
    if _current(adapter.loop) is not None:
        await adapter.close()
        msg = (
            "A Bumble adapter is already registered in this process; leave the other "
            "use_radio()/use_hci() block or call reset_adapter() first."
        )
        raise AdapterInUseError(msg)
    await _open_or_discard(adapter)
    _registry.adapter = adapter
    try:
        yield adapter
    finally:
        if _registry.adapter is adapter:
            _registry.adapter = None
        await adapter.close()


@contextlib.asynccontextmanager
async def use_radio(
    radio: Radio, settings: AdapterSettings | None = None
) -> AsyncIterator[BumbleAdapter]:
    """Register an in-process adapter on `radio` for the backend while the block runs."""
    settings = settings or AdapterSettings()
    controller = radio.controller(settings.name)
    config = DeviceConfiguration(name=settings.name, address=hci.Address(settings.address))
    device = Device.from_config_with_hci(config, controller, controller)

    async def detach() -> None:
        # Off the air and off the link, so a later adapter may reuse the address on the radio.
        controller.power_off()

    async with _registered(BumbleAdapter(device, settings, on_close=detach)) as adapter:
        yield adapter


@contextlib.asynccontextmanager
async def use_hci(
    hci_spec: str, settings: AdapterSettings | None = None
) -> AsyncIterator[BumbleAdapter]:
    """Register an adapter on the Bumble HCI transport `hci_spec` while the block runs."""
    adapter = await _hci_adapter(hci_spec, settings or AdapterSettings())
    async with _registered(adapter) as registered:
        yield registered
