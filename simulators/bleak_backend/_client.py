"""`BumbleClient`: bleak's client backend over the Bumble adapter, with BlueZ's error semantics."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypedDict, TypeVar

from bleak import BleakScanner
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.device import BLEDevice
from bleak.exc import (
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from bumble import att, core, hci
from bumble.device import Connection, Peer
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    GATT_DEVICE_NAME_CHARACTERISTIC,
    Characteristic,
)

from simulators.bleak_backend._adapter import BumbleAdapter, get_adapter
from simulators.bleak_backend._scanner import BumbleScanner
from simulators.bleak_backend._services import build_services

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from bleak.args import SizedBuffer
    from bleak.backends.characteristic import BleakGATTCharacteristic
    from bleak.backends.descriptor import BleakGATTDescriptor
    from bumble.gatt_client import CharacteristicProxy
    from bumble.pairing import PairingDelegate

__all__ = ["BumbleClient", "BumbleClientArgs"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_DISCONNECT_TIMEOUT_S: Final = 10.0  # what bleak's BlueZ backend waits for a disconnection
_ABANDON_TIMEOUT_S: Final = 2.0
_ATT_HEADER: Final = 3
# The errors after which BlueZ raises the link's security and retries the request once.
_SECURITY_ERRORS: Final = frozenset(
    {
        BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
        BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
    }
)
_NOTIFY_OR_INDICATE: Final = Characteristic.Properties.NOTIFY | Characteristic.Properties.INDICATE


class BumbleClientArgs(TypedDict, total=False):
    """Bumble-only options, passed as `BleakClient(..., bumble={...})` like bleak's `bluez=`."""

    pairing_delegate: PairingDelegate
    """Pairing agent for this device only (e.g. a `PasskeyEntryDelegate`)."""


@dataclass(slots=True, eq=False)
class _Subscription:
    callback: NotifyCallback
    subscriber: Callable[[bytes], None] = field(init=False)
    active: bool = True


@dataclass(slots=True, eq=False)
class _Session:
    """One LE connection of a client; `disconnected` resolves, with the reason, when it drops."""

    connection: Connection
    peer: Peer
    disconnected: asyncio.Future[int]
    characteristics: dict[int, CharacteristicProxy[bytes]] = field(default_factory=dict)
    subscriptions: dict[int, _Subscription] = field(default_factory=dict)
    orphans: set[asyncio.Task[Any]] = field(default_factory=set)
    security_raised: bool = False
    disconnect_requested: bool = False
    abandoned: bool = False
    finished: bool = False


def _peer_address(device: BLEDevice) -> hci.Address | None:
    details = device.details
    if isinstance(details, dict) and details.get("source") == "bumble":
        address_type = hci.AddressType(int(details["address_type"]))
        return hci.Address(device.address, address_type)
    return None


def _consume_outcome(task: asyncio.Task[Any]) -> None:
    # An abandoned operation's own error is superseded by the disconnection already reported.
    if not task.cancelled():
        task.exception()


class BumbleClient(BaseBleakClient):
    """Connect to a simulated device through the Bumble adapter, as bleak does through BlueZ."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        services: set[str] | None = None,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        bumble: BumbleClientArgs | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=disconnected_callback,
            timeout=timeout,
        )
        # bleak passes its per-platform options (bluez=, winrt=) to every backend, and
        # bleak-retry-connector adds _is_retry_client=True; none of them apply here.
        del kwargs
        self._peer: hci.Address | None = None
        self._advertised_name: str | None = None
        if isinstance(address_or_ble_device, BLEDevice):
            self._peer = _peer_address(address_or_ble_device)
            self._advertised_name = address_or_ble_device.name
        self._requested_services = services
        self._options: BumbleClientArgs = bumble or {}
        self._adapter: BumbleAdapter | None = None
        self._session: _Session | None = None
        self._device_name: str | None = None
        self._mtu = att.ATT_DEFAULT_MTU

    # Identity

    @property
    def name(self) -> str:
        """The GAP Device Name read on connect, else the advertised name, else the address."""
        if self._device_name:
            return self._device_name
        if self._adapter is not None and (named := self._adapter.advertised_name(self.address)):
            return named
        if self._advertised_name:
            return self._advertised_name
        return self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        """The ATT MTU negotiated on connect (or later, if the peer asked for a new one)."""
        if self._session is not None:
            self._mtu = self._session.connection.att_mtu
        return self._mtu

    @property
    def is_connected(self) -> bool:
        """Whether the LE link is up."""
        return self._session is not None and not self._session.disconnected.done()

    # Connection

    async def connect(
        self, pair: bool, dangerous_use_bleak_cache: bool = False, **kwargs: object
    ) -> None:
        """Connect, exchange MTU, discover services and, with `pair`, pair or encrypt.

        The whole connect runs within min(timeout, the adapter's `connect_timeout_s`) and
        raises `asyncio.TimeoutError` when that runs out, with the pending connection cancelled.
        """
        # Discovery always runs: a simulated GATT database is cheap to walk, so no cache.
        del dangerous_use_bleak_cache
        if self.is_connected:
            msg = "Client is already connected"
            raise BleakError(msg)
        adapter = await get_adapter()
        self._adapter = adapter
        timeout = self._connect_timeout(kwargs.get("timeout"), adapter)
        peer = await self._resolve_peer(adapter, timeout)
        logger.debug("connect_started address=%s timeout_s=%s", self.address, timeout)
        async with asyncio.timeout(timeout):
            try:
                connection = await adapter.connect(peer)
            except core.BaseBumbleError as exc:
                msg = (
                    f"Connecting to {self.address} failed: the controller refused ({exc}). "
                    "If another client is still connected to this device, disconnect it first; "
                    "otherwise retry."
                )
                raise BleakError(msg) from exc
            session = self._start_session(adapter, connection)
            try:
                await self._set_up(adapter, session, pair=pair)
            except BaseException:
                await self._abandon(adapter, session)
                raise
        logger.debug("connected address=%s mtu=%d", self.address, self._mtu)

    def _connect_timeout(self, requested: object, adapter: BumbleAdapter) -> float:
        timeout = self._timeout
        if isinstance(requested, int | float) and not isinstance(requested, bool):
            timeout = float(requested)
        return min(timeout, adapter.settings.connect_timeout_s)

    async def _resolve_peer(self, adapter: BumbleAdapter, scan_timeout_s: float) -> hci.Address:
        if self._peer is not None:
            return self._peer
        if (known := adapter.known_address(self.address)) is not None:
            return known
        # As on BlueZ: a device never seen must be found by scanning before connecting.
        device = await BleakScanner.find_device_by_address(
            self.address, timeout=scan_timeout_s, backend=BumbleScanner
        )
        peer = None if device is None else _peer_address(device)
        if peer is None:
            msg = (
                f"Device with address {self.address} was not found. Make sure it is "
                "advertising on the same radio, then scan or connect again."
            )
            raise BleakDeviceNotFoundError(self.address, msg)
        self._peer = peer
        return peer

    def _start_session(self, adapter: BumbleAdapter, connection: Connection) -> _Session:
        session = _Session(connection, Peer(connection), adapter.loop.create_future())
        connection.on(
            Connection.EVENT_DISCONNECTION,
            lambda reason: self._on_disconnection(session, reason),
        )
        if adapter.device.lookup_connection(connection.handle) is not connection:
            # It dropped before the listener was in place.
            session.disconnected.set_result(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)
        if (delegate := self._options.get("pairing_delegate")) is not None:
            adapter.set_pairing_delegate(connection, delegate)
        self._session = session
        return session

    async def _set_up(self, adapter: BumbleAdapter, session: _Session, *, pair: bool) -> None:
        if pair:
            await self._secure(adapter, session)
        try:
            self._mtu = await self._op(
                session,
                "MTU exchange",
                lambda: session.peer.request_mtu(adapter.settings.preferred_mtu),
            )
        except BleakGATTProtocolError as exc:
            # A server may refuse the exchange; the link then keeps the default MTU, as on BlueZ.
            logger.debug("mtu_exchange_refused address=%s error=%s", self.address, exc)
        await self._op(session, "service discovery", session.peer.discover_all)
        for service in session.peer.services:
            for characteristic in service.characteristics:
                session.characteristics[characteristic.handle] = characteristic
        self.services = build_services(
            session.peer.services,
            lambda: self.mtu_size - _ATT_HEADER,
            self._requested_services,
        )
        self._device_name = await self._read_device_name(session)

    async def _read_device_name(self, session: _Session) -> str | None:
        handle = next(
            (
                handle
                for handle, characteristic in session.characteristics.items()
                if characteristic.uuid == GATT_DEVICE_NAME_CHARACTERISTIC
            ),
            None,
        )
        if handle is None:
            return None
        try:
            value = await self._op(
                session, "Device Name read", lambda: session.peer.read_value(handle)
            )
        except BleakGATTProtocolError:
            # Devices may protect their name; BlueZ then keeps the advertised one.
            return None
        return value.decode("utf-8", errors="replace") or None

    def _on_disconnection(self, session: _Session, reason: int) -> None:
        # Bumble calls this while it handles the HCI event: resolve the future, defer the rest.
        if not session.disconnected.done():
            session.disconnected.set_result(reason)
        asyncio.get_running_loop().call_soon(self._finish, session)

    def _finish(self, session: _Session) -> None:
        if session.finished:
            return
        session.finished = True
        reason = session.disconnected.result() if session.disconnected.done() else None
        logger.debug("disconnected address=%s reason=%s", self.address, reason)
        if self._adapter is not None:
            self._adapter.release(session.connection)
        if self._session is session:
            self._session = None
            self.services = None
        # As on BlueZ: every disconnection of a link that connect() handed over is reported,
        # the ones we asked for included; a failed connect() reports nothing.
        if not session.abandoned and self._disconnected_callback is not None:
            try:
                self._disconnected_callback()
            except Exception:
                logger.exception("disconnected_callback_failed address=%s", self.address)

    async def _abandon(self, adapter: BumbleAdapter, session: _Session) -> None:
        session.abandoned = True
        if not session.disconnected.done():
            try:
                async with asyncio.timeout(_ABANDON_TIMEOUT_S):
                    await session.connection.disconnect()
            except (TimeoutError, core.BaseBumbleError) as exc:
                logger.debug("abandon_disconnect_failed address=%s error=%s", self.address, exc)
        adapter.release(session.connection)
        self._finish(session)

    async def disconnect(self) -> None:
        """Disconnect; a no-op when not connected. Raises `asyncio.TimeoutError` after 10 s."""
        session = self._session
        if session is None:
            return
        if not session.disconnected.done():
            async with asyncio.timeout(_DISCONNECT_TIMEOUT_S):
                if session.disconnect_requested:
                    # Another call is already disconnecting: wait for it, as BlueZ's bleak does.
                    await asyncio.shield(session.disconnected)
                else:
                    session.disconnect_requested = True
                    await self._request_disconnection(session)
        self._finish(session)

    async def _request_disconnection(self, session: _Session) -> None:
        try:
            await session.connection.disconnect()
        except core.BaseBumbleError as exc:
            if not session.disconnected.done():
                msg = f"Disconnecting from {self.address} failed: {exc}; the link may still be up"
                raise BleakError(msg) from exc
        await asyncio.shield(session.disconnected)

    # Security

    async def pair(self, *args: object, **kwargs: object) -> None:
        """Pair (Just Works or passkey, per the pairing delegate) and bond; no-op if bonded."""
        del args, kwargs
        session = self._require_session("pair")
        adapter = self._require_adapter()
        await self._secure(adapter, session)

    async def _secure(self, adapter: BumbleAdapter, session: _Session) -> None:
        session.security_raised = True
        connection = session.connection
        if await adapter.is_bonded(connection.peer_address):
            if connection.is_encrypted:
                return
            try:
                await self._op(session, "encryption", connection.encrypt)
            except BleakError as exc:
                # The device may have lost its keys; pairing again is what BlueZ's agent does.
                logger.debug("encryption_failed address=%s error=%s", self.address, exc)
            else:
                return
        try:
            await self._op(session, "pairing", connection.pair)
        except BleakError as exc:
            msg = (
                f"Pairing with {self.address} failed: {exc}. Check the passkey given to the "
                "pairing delegate and that the device is in pairing mode."
            )
            raise BleakError(msg) from exc
        logger.debug("paired address=%s", self.address)

    async def unpair(self) -> None:
        """Forget the device's bonding keys and disconnect, as BlueZ's RemoveDevice does."""
        adapter = self._adapter or await get_adapter()
        peer = self._peer or adapter.known_address(self.address)
        await self.disconnect()
        if peer is not None:
            await adapter.forget(peer)

    # GATT operations

    def _require_adapter(self) -> BumbleAdapter:
        if self._adapter is None:
            msg = "Not connected"
            raise BleakError(msg)
        return self._adapter

    def _require_session(self, what: str) -> _Session:
        session = self._session
        if session is None or session.disconnected.done():
            msg = f"Not connected: {what} needs a connection to {self.address}; call connect()"
            raise BleakError(msg)
        return session

    async def _op(
        self, session: _Session, what: str, operation: Callable[[], Coroutine[Any, Any, _T]]
    ) -> _T:
        """Run one Bumble operation; a disconnection ends it with a `BleakError`.

        Bumble cancels a pending ATT request when the link drops, which would surface as a
        `CancelledError` in the caller; only a cancellation of the caller itself may do that.
        """
        if session.disconnected.done():
            raise self._disconnected_error(what)
        # A task of its own, not a TaskGroup child: it races the disconnection and may have to
        # outlive a cancelled caller (see below).
        task = asyncio.create_task(operation(), name=f"bumble-{what}-{self.address}")
        task.add_done_callback(_consume_outcome)
        try:
            await asyncio.wait((task, session.disconnected), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # As on BlueZ, the request already handed to the stack still completes: ATT allows
            # one outstanding request, and aborting it would pair its late response with the
            # next request. Keep a reference until it ends.
            session.orphans.add(task)
            task.add_done_callback(session.orphans.discard)
            raise
        if not task.done():
            # Requests still queued behind the lost one would wait for the 30 s ATT timeout.
            task.cancel()
            raise self._disconnected_error(what)
        try:
            return task.result()
        except asyncio.CancelledError:
            raise self._disconnected_error(what) from None
        except att.ATT_Error as exc:
            error = BleakGATTProtocolError(int(exc.error_code))
            error.add_note(f"{what} on {self.address}")
            raise error from exc
        except core.BaseBumbleError as exc:
            msg = f"{what} on {self.address} failed: {exc}"
            raise BleakError(msg) from exc

    def _disconnected_error(self, what: str) -> BleakError:
        return BleakError(
            f"Disconnected from {self.address} during {what}; reconnect and try again"
        )

    async def _gatt(self, what: str, operation: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Run a GATT request; on an authentication or encryption error raise security once."""
        session = self._require_session(what)
        try:
            return await self._op(session, what, operation)
        except BleakGATTProtocolError as exc:
            if exc.code not in _SECURITY_ERRORS or session.security_raised:
                raise
            protocol_error = exc
        try:
            await self._secure(self._require_adapter(), session)
        except BleakError as exc:
            protocol_error.add_note(f"raising security failed: {exc}")
            raise protocol_error from exc
        return await self._op(session, what, operation)

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: object
    ) -> bytearray:
        """Read a characteristic value (long values with Read Blob)."""
        del kwargs
        handle = characteristic.handle
        session = self._require_session(f"read of {characteristic.uuid}")
        if use_cached and (cached := session.peer.gatt_client.cached_values.get(handle)):
            return bytearray(cached[1])
        value = await self._gatt(
            f"read of characteristic {characteristic.uuid} (handle {handle})",
            lambda: session.peer.read_value(handle),
        )
        return bytearray(value)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: object
    ) -> bytearray:
        """Read a descriptor value."""
        del kwargs
        handle = descriptor.handle
        session = self._require_session(f"read of {descriptor.uuid}")
        if use_cached and (cached := session.peer.gatt_client.cached_values.get(handle)):
            return bytearray(cached[1])
        value = await self._gatt(
            f"read of descriptor {descriptor.uuid} (handle {handle})",
            lambda: session.peer.read_value(handle),
        )
        return bytearray(value)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        """Write a characteristic value, as a Write Request or a Write Command."""
        handle = characteristic.handle
        session = self._require_session(f"write of {characteristic.uuid}")
        value = bytes(data)
        await self._gatt(
            f"write of characteristic {characteristic.uuid} (handle {handle})",
            lambda: session.peer.write_value(handle, value, with_response=response),
        )

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        """Write a descriptor value (always with response)."""
        handle = descriptor.handle
        session = self._require_session(f"write of {descriptor.uuid}")
        value = bytes(data)
        await self._gatt(
            f"write of descriptor {descriptor.uuid} (handle {handle})",
            lambda: session.peer.write_value(handle, value, with_response=True),
        )

    # Notifications

    async def start_notify(
        self,
        characteristic: BleakGATTCharacteristic,
        callback: NotifyCallback,
        **kwargs: object,
    ) -> None:
        """Subscribe, preferring notifications when the characteristic offers both."""
        del kwargs
        handle = characteristic.handle
        what = f"start_notify on {characteristic.uuid} (handle {handle})"
        session = self._require_session(what)
        proxy = session.characteristics.get(handle)
        if proxy is None or not proxy.properties & _NOTIFY_OR_INDICATE:
            msg = f"{what}: the characteristic can neither notify nor indicate"
            raise BleakError(msg)
        if proxy.get_descriptor(GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR) is None:
            msg = f"{what}: the characteristic has no Client Characteristic Configuration"
            raise BleakError(msg)
        if handle in session.subscriptions:
            msg = f"{what}: notifications are already started; call stop_notify first"
            raise BleakError(msg)
        subscription = _Subscription(callback)
        loop = asyncio.get_running_loop()

        def on_value(value: bytes) -> None:
            # Bumble confirms an indication after its subscribers return, so user code runs
            # later, on the loop: a slow or failing callback can never hold the confirmation.
            loop.call_soon(self._deliver, subscription, value)

        subscription.subscriber = on_value
        session.subscriptions[handle] = subscription
        try:
            await self._gatt(what, lambda: session.peer.subscribe(proxy, on_value))
        except BaseException:
            subscription.active = False
            session.subscriptions.pop(handle, None)
            raise

    def _deliver(self, subscription: _Subscription, value: bytes) -> None:
        if not subscription.active:
            return
        try:
            subscription.callback(bytearray(value))
        except Exception:
            # As on BlueZ: the failure is logged and the next value is still delivered.
            logger.exception("notify_callback_failed address=%s", self.address)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Unsubscribe; values already received but not yet delivered are dropped."""
        handle = characteristic.handle
        what = f"stop_notify on {characteristic.uuid} (handle {handle})"
        session = self._require_session(what)
        subscription = session.subscriptions.pop(handle, None)
        proxy = session.characteristics.get(handle)
        if subscription is None or proxy is None:
            return
        subscription.active = False
        await self._gatt(what, lambda: session.peer.unsubscribe(proxy, subscription.subscriber))
