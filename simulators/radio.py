"""The simulated radio: Bumble virtual controllers on one shared link, behaving as real ones do.

`Radio` hands out `SimController`s (a subclass of Bumble's virtual `Controller`) on one
`LocalLink`, and Bumble `Device`s (host + controller) built on them. `SimController` closes the
gaps between Bumble 0.0.236's virtual controller and a real one:

- LE Create Connection Cancel drops the pending connection and sends the host an LE Connection
  Complete event with status Unknown Connection Identifier (0x02), as Core Vol 4, Part E, 7.8.13
  requires; Bumble's `Device.connect(timeout=...)` then raises `bumble.core.TimeoutError` and the
  next connect works. With no connection pending the cancel fails with Command Disallowed (0x0C).
- HCI_Reset tears the controller down: its links are dropped and each peer sees a disconnection
  with reason Connection Timeout (0x08), as when a real supervision timeout runs out (at once
  here). Advertising, scanning and any pending connection stop, so a peripheral that restarts
  advertising on disconnection is discoverable again after a hub's host crashes and resets.
- One LE connection may be pending per controller: a second LE Create Connection fails with
  Command Disallowed (0x0C) (Bumble's own check, held by a test), and one to a peer already
  connected fails with Connection Already Exists (0x0B) instead of hanging.
- The scan response carries its own data (HCI LE Set [Extended] Scan Response Data, or
  `Device.start_advertising(scan_response_data=...)`): an active scanner receives the
  advertisement then the scan response, a passive one the advertisement only, with event types
  taken from the advertiser's properties.
- RSSI comes from `RssiModel`: a base level per advertiser or per (observer, advertiser), set in
  dBm or as a distance, plus Gaussian noise that is deterministic under `Radio(seed=...)`.

Cross-process
-------------
The process that owns the radio can serve one more controller over a socket HCI transport with
`Radio.expose(spec)`. The server strings (Bumble 0.0.236, `bumble/transport/__init__.py`) are
``unix-server:PATH`` (``unix-server:@NAME`` for a Linux abstract socket) and
``tcp-server:HOST:PORT`` (HOST ``_`` for every interface, PORT ``0`` for a free one). The client
process opens the string in `Exposure.client_spec` with `bumble.transport.open_transport`:
``unix:PATH`` (``unix-client:PATH`` is the same) or ``tcp-client:HOST:PORT``, and builds its host
on it, for example ``Device.with_hci(name, address, transport.source, transport.sink)``. One
client at a time; a client that goes away leaves its links up until the next client's host
resets the controller, as a USB dongle does when BlueZ restarts.

Hardware in the loop
--------------------
The virtual devices are ordinary Bumble `Device`s: only the HCI transport they are built on
decides where they transmit. To put one on the air through a real controller, open that
controller with Bumble's transport API instead of taking a controller from a `Radio`, and build
the same device on it::

    async with await open_transport("usb:0") as transport:
        device = Device.from_config_with_hci(config, transport.source, transport.sink)
        await device.power_on()

Other strings: ``usb:VID:PID`` (hexadecimal, e.g. ``usb:0b05:17cb``), ``serial:/dev/ttyACM0``
(``serial:/dev/ttyACM0,1000000,rtscts`` with a speed and flow control) for a UART controller such
as an nRF52 running the Zephyr HCI firmware, and ``hci-socket:0`` for a Linux adapter through the
kernel's user channel. The adapter must be free: bring it down in BlueZ (`btmgmt power off`) or
unbind btusb, and give the user access to the USB device. The real controller then does what
`SimController` emulates here. Not tested in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import math
import secrets
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Final

from bumble import hci, ll
from bumble.controller import Controller, LegacyAdvertiser
from bumble.core import InvalidArgumentError
from bumble.device import Device, DeviceConfiguration
from bumble.link import LocalLink
from bumble.transport import open_transport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from bumble.transport.common import Transport, TransportSink, TransportSource

__all__ = [
    "Exposure",
    "Radio",
    "RadioConfigError",
    "RadioError",
    "RssiModel",
    "SimController",
    "SimLink",
]

logger = logging.getLogger(__name__)

_PROPERTIES = hci.HCI_LE_Set_Extended_Advertising_Parameters_Command.AdvertisingProperties
_REPORT = hci.HCI_LE_Extended_Advertising_Report_Event
_EVENT = _REPORT.EventType
# A legacy ADV_IND, the only PDU Bumble's legacy advertiser sends: connectable and scannable.
_ADV_IND_PROPERTIES: Final = int(
    _PROPERTIES.CONNECTABLE_ADVERTISING
    | _PROPERTIES.SCANNABLE_ADVERTISING
    | _PROPERTIES.USE_LEGACY_ADVERTISING_PDUS
)
# Bits 0-2 (connectable, scannable, directed) mean the same in the advertising properties and
# in the report event type (Core Vol 4, Part E, 7.8.53 and 7.7.65.13).
_KIND_BITS: Final = 0x07
_SCANNABLE: Final = int(_PROPERTIES.SCANNABLE_ADVERTISING)
_LEGACY: Final = int(_PROPERTIES.USE_LEGACY_ADVERTISING_PDUS)
_LEGACY_TYPE_BITS: Final = 0x0F
_ACTIVE_SCANNING: Final = hci.HCI_LE_Set_Scan_Parameters_Command.ACTIVE_SCANNING
_PASSIVE_SCANNING: Final = hci.HCI_LE_Set_Scan_Parameters_Command.PASSIVE_SCANNING
# The RSSI field is a signed byte: -127..+20 dBm; 127 means "not available".
_RSSI_MIN: Final = -127
_RSSI_MAX: Final = 20
_NO_ADDRESS: Final = bytes(6)
_SERVER_ADVICE: Final = "use 'unix-server:PATH' or 'tcp-server:HOST:PORT'"


class RadioError(Exception):
    """The simulated radio could not do what was asked."""


class RadioConfigError(RadioError, ValueError):
    """A radio setting (address, level, distance, transport string) that cannot be used."""


def _address_key(address: str | hci.Address) -> str:
    """Normalise an address to the form the RSSI tables are keyed by (no type qualifier)."""
    if isinstance(address, hci.Address):
        return address.to_string(with_type_qualifier=False)
    try:
        return hci.Address(address).to_string(with_type_qualifier=False)
    except (InvalidArgumentError, ValueError) as exc:
        raise RadioConfigError(
            f"{address!r} is not a Bluetooth address; write it as 'AA:BB:CC:DD:EE:FF'"
        ) from exc


class RssiModel:
    """Received signal strength on the radio: a base level per link plus seeded Gaussian noise.

    The base level an observer measures for an advertiser is, most specific first: the one set
    for that (observer, advertiser) pair, the one set for the advertiser, or `default_dbm`. A
    distance converts to a level with the log-distance path-loss model. The noise of the n-th
    sample on a link depends only on the seed, the two addresses and n, so the values each
    observer sees are the same on every run with the same seed, whatever the interleaving.
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        default_dbm: float = -50.0,
        noise_db: float = 2.0,
        rssi_at_1m_dbm: float = -59.0,
        path_loss_exponent: float = 2.0,
    ) -> None:
        if not math.isfinite(noise_db) or noise_db < 0:
            raise RadioConfigError(f"RSSI noise must be a finite dB value >= 0, not {noise_db}")
        self.seed: Final = secrets.randbits(64) if seed is None else seed
        self.default_dbm = default_dbm
        self.noise_db: Final = noise_db
        self.rssi_at_1m_dbm = rssi_at_1m_dbm
        self.path_loss_exponent = path_loss_exponent
        self._noise = NormalDist(0.0, noise_db) if noise_db > 0 else None
        self._base: dict[tuple[str | None, str], float] = {}
        self._samples: dict[tuple[str, str], int] = {}

    def set_rssi(
        self,
        advertiser: str | hci.Address,
        dbm: float,
        *,
        observer: str | hci.Address | None = None,
    ) -> None:
        """Set the base RSSI of an advertiser, for every observer or for one."""
        if not math.isfinite(dbm):
            raise RadioConfigError(f"RSSI must be a finite dBm value, not {dbm}")
        key = None if observer is None else _address_key(observer)
        self._base[key, _address_key(advertiser)] = dbm

    def set_distance(
        self,
        advertiser: str | hci.Address,
        metres: float,
        *,
        observer: str | hci.Address | None = None,
    ) -> None:
        """Place an advertiser `metres` away, from every observer or from one."""
        if not math.isfinite(metres) or metres <= 0:
            raise RadioConfigError(f"distance must be a finite number of metres > 0, not {metres}")
        loss = 10.0 * self.path_loss_exponent * math.log10(metres)
        self.set_rssi(advertiser, self.rssi_at_1m_dbm - loss, observer=observer)

    def base_dbm(self, advertiser: str | hci.Address, observer: str | hci.Address) -> float:
        """Return the level an observer measures for an advertiser, before noise."""
        advertiser_key = _address_key(advertiser)
        for key in ((_address_key(observer), advertiser_key), (None, advertiser_key)):
            if (dbm := self._base.get(key)) is not None:
                return dbm
        return self.default_dbm

    def sample(self, advertiser: str | hci.Address, observer: str | hci.Address) -> int:
        """Draw the next RSSI an observer measures for an advertiser, in whole dBm."""
        link = (_address_key(observer), _address_key(advertiser))
        dbm = self.base_dbm(link[1], link[0])
        index = self._samples.get(link, 0)
        self._samples[link] = index + 1
        if self._noise is not None:
            digest = hashlib.blake2b(
                f"{self.seed}|{link[0]}|{link[1]}|{index}".encode(), digest_size=8
            ).digest()
            # The half step keeps the quantile strictly inside (0, 1), where inv_cdf is defined.
            quantile = (int.from_bytes(digest, "big") + 0.5) / 2**64
            dbm += self._noise.inv_cdf(quantile)
        return max(_RSSI_MIN, min(_RSSI_MAX, round(dbm)))


@dataclasses.dataclass(frozen=True, slots=True)
class _Advert:
    """What the advertiser's controller knows of a PDU it sends: kind bits and scan response."""

    properties: int
    scan_response: bytes


# Bumble's own reports call every advertisement connectable and never scannable.
_UNKNOWN_ADVERT: Final = _Advert(int(_PROPERTIES.CONNECTABLE_ADVERTISING), b"")


@dataclasses.dataclass
class _SimAdvInd(ll.AdvInd):
    """A legacy advertisement that carries its advertiser's scan response."""

    advert: _Advert = dataclasses.field(kw_only=True)


@dataclasses.dataclass
class _SimAdvExtInd(ll.AdvExtInd):
    """An extended advertisement that carries its advertising set's properties and scan response."""

    advert: _Advert = dataclasses.field(kw_only=True)


def _tagged(pdu: ll.AdvInd | ll.AdvExtInd, advert: _Advert) -> ll.AdvInd | ll.AdvExtInd:
    """Copy an advertising PDU, adding what a scanner's SCAN_REQ would get back."""
    fields = {field.name: getattr(pdu, field.name) for field in dataclasses.fields(pdu)}
    if isinstance(pdu, ll.AdvExtInd):
        return _SimAdvExtInd(**fields, advert=advert)
    return _SimAdvInd(**fields, advert=advert)


class SimController(Controller):
    """Bumble's virtual controller with cancel, reset, scan responses and RSSI as on hardware."""

    def __init__(
        self,
        name: str,
        host_source: TransportSource | None = None,
        host_sink: TransportSink | None = None,
        link: LocalLink | None = None,
        public_address: bytes | str | hci.Address | None = None,
        *,
        rssi_model: RssiModel | None = None,
    ) -> None:
        super().__init__(name, host_source, host_sink, link, public_address)
        self.rssi_model = rssi_model if rssi_model is not None else RssiModel()

    @property
    def radio_address(self) -> hci.Address:
        """The address this controller transmits from: its random address once set, else public."""
        if self.random_address.address_bytes != _NO_ADDRESS:
            return self.random_address
        return self.public_address

    def power_off(self) -> None:
        """Take the controller off the air: its peers see their links time out."""
        self._drop_links(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)
        self._stop_air_activity()
        if self in self.link.controllers:
            self.link.remove_controller(self)
        logger.debug("controller_powered_off name=%s", self.name)

    # HCI command handlers: Bumble dispatches on `on_<command name>`, see the canary tests.

    def on_hci_reset_command(
        self, command: hci.HCI_Reset_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Reset as a real controller does: links dropped, no advertising, scan or connect."""
        self._drop_links(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)
        self._stop_air_activity()
        return super().on_hci_reset_command(command)

    def on_hci_le_create_connection_command(
        self, command: hci.HCI_LE_Create_Connection_Command
    ) -> None:
        """Refuse a connection to a peer already connected, which Bumble would leave pending."""
        if command.peer_address in self.le_connections:
            self._send_hci_command_status(
                hci.HCI_ErrorCode.CONNECTION_ALREADY_EXISTS_ERROR, command.op_code
            )
            return
        super().on_hci_le_create_connection_command(command)

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Drop the pending connection; it completes with Unknown Connection Identifier."""
        del command  # the command has no parameters
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        failed = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # Core 7.8.13: the cancel's Command Complete comes first. Bumble sends it when this
        # handler returns, so this event is queued one loop turn later, behind it.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, failed)
        logger.debug("connection_cancelled controller=%s peer=%s", self.name, pending.peer_address)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def on_hci_le_set_extended_scan_parameters_command(
        self, command: hci.HCI_LE_Set_Extended_Scan_Parameters_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Also keep the scan type, which Bumble drops, so that active scans get scan responses."""
        result = super().on_hci_le_set_extended_scan_parameters_command(command)
        if result.status == hci.HCI_ErrorCode.SUCCESS:
            self.le_scan_type = command.scan_types[0] if command.scan_types else _PASSIVE_SCANNING
        return result

    # Advertising: the sender tags its PDUs, each receiver reports them.

    def send_advertising_pdu(self, packet: ll.AdvertisingPdu) -> None:
        """Send a PDU on the link; advertisements carry what a scan request would get back."""
        if isinstance(packet, ll.AdvExtInd):
            if (advert := self._extended_advert(packet)) is not None:
                packet = _tagged(packet, advert)
        elif isinstance(packet, ll.AdvInd):
            scan_response = bytes(self.le_legacy_advertiser.scan_response_data)
            packet = _tagged(packet, _Advert(_ADV_IND_PROPERTIES, scan_response))
        super().send_advertising_pdu(packet)

    def on_advertising_pdu(self, pdu: ll.AdvInd | ll.AdvExtInd) -> None:
        """Report an advertisement (and its scan response when scanning actively)."""
        if not self.le_scan_enable:
            super().on_advertising_pdu(pdu)
            return
        self._report(pdu)
        # Bumble's handler also reports, with a fixed RSSI and the advertising data repeated as
        # the scan response; with scanning off for the call it only does the rest (periodic
        # sync, pending connection).
        self.le_scan_enable = False
        try:
            super().on_advertising_pdu(pdu)
        finally:
            self.le_scan_enable = True

    def _extended_advert(self, pdu: ll.AdvExtInd) -> _Advert | None:
        """Find the enabled advertising set that sent a PDU."""
        for advertising_set in self.advertising_sets.values():
            parameters = advertising_set.parameters
            if (
                advertising_set.enabled
                and parameters is not None
                and parameters.advertising_sid == pdu.sid
                and advertising_set.address == pdu.advertiser_address
            ):
                return _Advert(
                    int(parameters.advertising_event_properties),
                    bytes(advertising_set.scan_response_data),
                )
        return None

    def _report(self, pdu: ll.AdvInd | ll.AdvExtInd) -> None:
        """Send the host the reports a real scanner produces for one advertising event."""
        advert = pdu.advert if isinstance(pdu, _SimAdvInd | _SimAdvExtInd) else _UNKNOWN_ADVERT
        legacy_bit = advert.properties & _LEGACY
        self._send_report(pdu, advert.properties & _KIND_BITS | legacy_bit, pdu.data)
        if self.le_scan_type == _ACTIVE_SCANNING and advert.properties & _SCANNABLE:
            scan_response_type = advert.properties & 0x03 | _EVENT.SCAN_RESPONSE | legacy_bit
            self._send_report(pdu, scan_response_type, advert.scan_response)

    def _send_report(self, pdu: ll.AdvInd | ll.AdvExtInd, event_type: int, data: bytes) -> None:
        """Send one advertising report, in the form Bumble picks from the LE features."""
        address = pdu.advertiser_address
        rssi = self.rssi_model.sample(address, self.radio_address)
        if self.le_features & hci.LeFeatureMask.LE_EXTENDED_ADVERTISING:
            direct = pdu.target_address if isinstance(pdu, ll.AdvExtInd) else None
            legacy = bool(event_type & _LEGACY)
            report = _REPORT.Report(
                event_type=event_type,
                address_type=address.address_type,
                address=address,
                primary_phy=hci.Phy.LE_1M,
                secondary_phy=hci.Phy.LE_1M,
                advertising_sid=_REPORT.NO_ADI_FIELD_PROVIDED
                if legacy or not isinstance(pdu, ll.AdvExtInd)
                else pdu.sid,
                tx_power=_REPORT.TX_POWER_INFORMATION_NOT_AVAILABLE,
                rssi=rssi,
                periodic_advertising_interval=0,
                direct_address_type=direct.address_type if direct else 0,
                direct_address=direct or hci.Address.ANY,
                data=data,
            )
            self.send_hci_packet(_REPORT([report]))
            return
        # A legacy scanner cannot receive extended advertising PDUs.
        kind = _REPORT.LEGACY_PDU_TYPE_MAP.get(event_type & _LEGACY_TYPE_BITS)
        if event_type & _LEGACY and kind is not None:
            legacy_report = hci.HCI_LE_Advertising_Report_Event.Report(
                event_type=kind,
                address_type=address.address_type,
                address=address,
                data=data,
                rssi=rssi,
            )
            self.send_hci_packet(hci.HCI_LE_Advertising_Report_Event([legacy_report]))

    # Teardown shared by reset and power-off.

    def _drop_links(self, reason: int) -> None:
        """End every link at once, telling each LE peer it ended for `reason`."""
        for connection in list(self.le_connections.values()):
            try:
                connection.send_ll_control_pdu(ll.TerminateInd(reason))
            except InvalidArgumentError:
                # The peer left the link already; there is nobody to tell.
                logger.debug("link_peer_gone controller=%s", self.name)
            logger.debug(
                "link_dropped controller=%s peer=%s reason=%d",
                self.name,
                connection.peer_address,
                reason,
            )
        self.le_connections.clear()
        self.classic_connections.clear()
        self.sco_links.clear()
        self.central_cis_links.clear()
        self.peripheral_cis_links.clear()

    def _stop_air_activity(self) -> None:
        """Stop advertising, scanning, connecting and periodic syncs; forget their settings."""
        self.le_legacy_advertiser.stop()
        self.le_legacy_advertiser = LegacyAdvertiser(self)
        for advertising_set in self.advertising_sets.values():
            advertising_set.stop()
        self.advertising_sets.clear()
        self.le_scan_enable = False
        self.le_scan_type = _PASSIVE_SCANNING
        self.pending_le_connection = None
        self.pending_periodic_advertising_syncs.clear()
        self.established_periodic_advertising_syncs.clear()


@dataclasses.dataclass(frozen=True, slots=True)
class Exposure:
    """A controller served over a socket HCI transport, and the string a client opens."""

    controller: SimController
    server_spec: str
    """The transport the radio serves, e.g. ``unix-server:/tmp/radio.sock``."""
    client_spec: str
    """What a client passes to `open_transport`, e.g. ``unix:/tmp/radio.sock``."""


def _inner(transport: Transport) -> Transport:
    """Unwrap a snooping transport (BUMBLE_SNOOPER set); return any other as it is."""
    inner = getattr(transport, "transport", transport)
    return inner if inner is not None else transport


def _server(transport: Transport) -> asyncio.Server:
    """Return the asyncio server behind a Bumble socket server transport."""
    server = getattr(_inner(transport), "server", None)
    if not isinstance(server, asyncio.Server):
        raise RadioError(
            "Bumble's socket server transport no longer exposes its asyncio server; "
            "check that the installed Bumble is the version pinned in pyproject.toml"
        )
    return server


def _client_spec(server_spec: str, server: asyncio.Server) -> str:
    """Return the transport string a client opens to reach a server transport."""
    scheme, _, rest = server_spec.partition(":")
    if scheme == "unix-server":
        return f"unix:{rest}"
    host, _, _ = rest.rpartition(":")
    # The bound port, which differs from the requested one when that was 0.
    port = server.sockets[0].getsockname()[1]
    return f"tcp-client:{'127.0.0.1' if host == '_' else host}:{port}"


def _check_server_spec(spec: str) -> None:
    """Refuse a transport string that is not a socket server this radio can serve on."""
    scheme, _, rest = spec.partition(":")
    if scheme == "unix-server" and rest:
        return
    if scheme == "tcp-server":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            return
    raise RadioConfigError(f"cannot serve the radio on {spec!r}; {_SERVER_ADVICE}")


async def _close_server(transport: Transport, server: asyncio.Server) -> None:
    """Close a server transport: its client connection, its listening socket, its sink."""
    client = getattr(_inner(transport).sink, "transport", None)
    if isinstance(client, asyncio.BaseTransport):
        client.close()
    server.close()
    await server.wait_closed()
    await transport.close()


def _listens_for_adverts(controller: Controller) -> bool:
    """Whether a controller would do anything with an advertisement right now."""
    return bool(
        controller.le_scan_enable
        or controller.pending_le_connection
        or controller.pending_periodic_advertising_syncs
        or controller.established_periodic_advertising_syncs
    )


class SimLink(LocalLink):
    """Bumble's link, delivering advertisements only to controllers that are listening.

    Bumble hands every advertising PDU to every other controller, one event-loop callback each,
    whether or not it scans: with a hundred devices advertising every 20 ms that is about half a
    million callbacks a second, the whole core, before any hub work (bench/sim.py measured it).
    A controller that neither scans, connects nor follows a periodic train drops the PDU anyway,
    so skipping it changes nothing but the cost, which now grows with devices x listeners.
    """

    def send_advertising_pdu(
        self, sender_controller: Controller, packet: ll.AdvertisingPdu
    ) -> None:
        """Deliver an advertisement to the listening controllers, anything else to all."""
        if not isinstance(packet, ll.AdvInd | ll.AdvExtInd):
            super().send_advertising_pdu(sender_controller, packet)
            return
        loop = asyncio.get_running_loop()
        for controller in self.controllers:
            if controller is not sender_controller and _listens_for_adverts(controller):
                loop.call_soon(controller.on_ll_advertising_pdu, packet)


class Radio:
    """One simulated radio: every device and host made from it can hear the others."""

    def __init__(self, seed: int | None = None, *, rssi_noise_db: float = 2.0) -> None:
        self.link = SimLink()  # type: ignore[no-untyped-call]  # Bumble leaves __init__ unannotated
        self.rssi = RssiModel(seed, noise_db=rssi_noise_db)
        """Signal levels on this radio; set a device's with `set_rssi` or `set_distance`."""

    def controller(self, name: str) -> SimController:
        """Create a virtual controller attached to this radio."""
        return SimController(name, link=self.link, rssi_model=self.rssi)

    def attach(self, controller: Controller, name: str, address: str) -> Device:
        """Build a Bumble device (a new host) on an existing controller; the caller powers it on.

        A second device on the same controller is how a host crash is simulated: its power-on
        resets the controller, as a restarted daemon does.
        """
        config = DeviceConfiguration(name=name, address=hci.Address(address))
        return Device.from_config_with_hci(config, controller, controller)

    def device(self, name: str, address: str) -> Device:
        """Create a Bumble device (host + controller) on this radio; the caller powers it on."""
        return self.attach(self.controller(name), name, address)

    @contextlib.asynccontextmanager
    async def expose(self, spec: str, name: str = "exposed") -> AsyncIterator[Exposure]:
        """Serve one more controller on this radio over a socket HCI transport.

        `spec` is ``unix-server:PATH`` or ``tcp-server:HOST:PORT``; the yielded `Exposure`
        names the ``unix:PATH`` or ``tcp-client:HOST:PORT`` string for the client. On exit the
        controller goes off the air (its peers see their links time out) and the socket closes.
        """
        _check_server_spec(spec)
        transport = await open_transport(spec)
        server = _server(transport)
        controller = SimController(
            name,
            host_source=transport.source,
            host_sink=transport.sink,
            link=self.link,
            rssi_model=self.rssi,
        )
        exposure = Exposure(controller, spec, _client_spec(spec, server))
        logger.debug("radio_exposed server=%s client=%s", spec, exposure.client_spec)
        try:
            yield exposure
        finally:
            controller.power_off()
            await _close_server(transport, server)
            path = spec.partition(":")[2]
            if spec.startswith("unix-server:") and not path.startswith("@"):
                # asyncio before 3.13 leaves the socket file behind.
                await asyncio.to_thread(Path(path).unlink, missing_ok=True)
            logger.debug("radio_unexposed server=%s", spec)
