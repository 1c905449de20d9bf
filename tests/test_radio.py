"""The simulated radio: Bumble hosts on SimControllers behave as on real controllers."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import sys
import tempfile
from pathlib import Path

import pytest
from bumble import core, hci, ll
from bumble.controller import AdvertisingSet, Controller, LegacyAdvertiser
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device
from bumble.transport import open_transport

from simulators.radio import (
    Radio,
    RadioConfigError,
    RssiModel,
    SimController,
)

CENTRAL = "C0:00:00:00:00:01"
OBSERVER = "C0:00:00:00:00:02"
PERIPHERAL = "D0:00:00:00:00:01"
ABSENT = "E0:00:00:00:00:01"
CHILD = Path(__file__).with_name("radio_child.py")

# A thermometer that names itself only in its scan response, as many health devices do:
# Flags (LE General Discoverable, BR/EDR not supported), 16-bit UUIDs (Health Thermometer 0x1809).
ADVERTISING_DATA = bytes.fromhex("02010603030918")
# Complete Local Name "Thermo".
SCAN_RESPONSE_DATA = bytes.fromhex("0709") + b"Thermo"

# Report event types, Core Vol 4, Part E, 7.7.65.13 (legacy PDUs) and 7.7.65.2.
EXTENDED_ADV_IND = 0x13
EXTENDED_SCAN_RSP_TO_ADV_IND = 0x1B
LEGACY_ADV_IND = 0x00
LEGACY_SCAN_RSP = 0x04

UNKNOWN_CONNECTION_IDENTIFIER = 0x02
CONNECTION_TIMEOUT = 0x08
CONNECTION_ALREADY_EXISTS = 0x0B
COMMAND_DISALLOWED = 0x0C

BOUND_S = 20


async def powered(radio: Radio, name: str, address: str, *, legacy: bool = False) -> Device:
    controller = radio.controller(name)
    if legacy:
        # A controller without extended advertising: the host falls back to legacy commands.
        controller.le_features &= ~hci.LeFeatureMask.LE_EXTENDED_ADVERTISING
    device = radio.attach(controller, name, address)
    await device.power_on()
    return device


async def advertise(device: Device, *, auto_restart: bool = False) -> None:
    await device.start_advertising(
        auto_restart=auto_restart,
        advertising_data=ADVERTISING_DATA,
        scan_response_data=SCAN_RESPONSE_DATA,
        advertising_interval_min=20,
        advertising_interval_max=20,
    )


def create_connection(address: str) -> hci.HCI_LE_Create_Connection_Command:
    peer = hci.Address(address)
    return hci.HCI_LE_Create_Connection_Command(
        le_scan_interval=96,
        le_scan_window=96,
        initiator_filter_policy=0,
        peer_address_type=peer.address_type,
        peer_address=peer,
        own_address_type=hci.OwnAddressType.RANDOM,
        connection_interval_min=24,
        connection_interval_max=40,
        max_latency=0,
        supervision_timeout=42,
        min_ce_length=0,
        max_ce_length=0,
    )


def reports_from(device: Device, address: str) -> asyncio.Queue[object]:
    """Queue every raw advertising report the device's host receives from one address."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    wanted = hci.Address(address)

    def on_report(report: object) -> None:
        if getattr(report, "address", None) == wanted:
            queue.put_nowait(report)

    device.host.on("advertising_report", on_report)
    return queue


async def advertisement_named(device: Device, address: str) -> Advertisement:
    """Scan until an advertisement from the address carries a name (from its scan response)."""
    found: asyncio.Future[Advertisement] = asyncio.get_running_loop().create_future()
    wanted = hci.Address(address)

    def on_advertisement(advertisement: Advertisement) -> None:
        named = advertisement.data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
        if advertisement.address == wanted and named and not found.done():
            found.set_result(advertisement)

    device.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
    try:
        return await found
    finally:
        device.remove_listener(Device.EVENT_ADVERTISEMENT, on_advertisement)


def next_connection(device: Device) -> asyncio.Future[Connection]:
    future: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
    device.once(Device.EVENT_CONNECTION, future.set_result)
    return future


def disconnection_of(connection: Connection) -> asyncio.Future[int]:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    connection.once(Connection.EVENT_DISCONNECTION, future.set_result)
    return future


# 1. LE Create Connection Cancel


@pytest.mark.asyncio
async def test_cancel_fails_the_pending_connection_with_unknown_connection_identifier():
    async with asyncio.timeout(BOUND_S):
        radio = Radio(seed=1)
        central = await powered(radio, "hub", CENTRAL)
        failure: asyncio.Future[core.ConnectionError] = asyncio.get_running_loop().create_future()
        central.once(Device.EVENT_CONNECTION_FAILURE, failure.set_result)

        await central.send_async_command(create_connection(ABSENT))
        await central.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())

        error = await failure
        assert (error.error_code, error.transport, error.peer_address) == (
            UNKNOWN_CONNECTION_IDENTIFIER,
            core.PhysicalTransport.LE,
            hci.Address(ABSENT),
        )
        # Nothing is pending any more, so a second cancel is refused.
        with pytest.raises(hci.HCI_Error) as refused:
            await central.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
        assert refused.value.error_code == COMMAND_DISALLOWED


@pytest.mark.asyncio
async def test_connect_to_an_absent_device_times_out_and_the_next_connect_succeeds():
    async with asyncio.timeout(BOUND_S):
        radio = Radio(seed=1)
        peripheral = await powered(radio, "thermometer", PERIPHERAL)
        await advertise(peripheral)
        central = await powered(radio, "hub", CENTRAL)

        # Bumble's own timeout path: it cancels, then waits for the failed Connection Complete.
        with pytest.raises(core.TimeoutError):
            await central.connect(ABSENT, timeout=0.2)
        connection = await central.connect(PERIPHERAL, timeout=BOUND_S)

        assert connection.peer_address == hci.Address(PERIPHERAL)
        assert connection.role == hci.Role.CENTRAL


# 3. One pending LE connection per controller


@pytest.mark.asyncio
async def test_only_one_connection_may_be_pending_per_controller():
    async with asyncio.timeout(BOUND_S):
        radio = Radio(seed=1)
        peripheral = await powered(radio, "thermometer", PERIPHERAL)
        await advertise(peripheral)
        central = await powered(radio, "hub", CENTRAL)

        await central.send_async_command(create_connection(ABSENT))
        with pytest.raises(hci.HCI_Error) as second:
            await central.send_async_command(create_connection(PERIPHERAL))
        assert second.value.error_code == COMMAND_DISALLOWED

        await central.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
        await central.connect(PERIPHERAL, timeout=BOUND_S)
        # A connect to a peer already connected is refused instead of staying pending.
        with pytest.raises(hci.HCI_Error) as again:
            await central.send_async_command(create_connection(PERIPHERAL))
        assert again.value.error_code == CONNECTION_ALREADY_EXISTS


# 2. HCI_Reset drops links


@pytest.mark.asyncio
async def test_reset_after_a_host_crash_drops_the_link_and_the_device_advertises_again():
    async with asyncio.timeout(BOUND_S):
        radio = Radio(seed=1)
        peripheral = await powered(radio, "thermometer", PERIPHERAL)
        await advertise(peripheral, auto_restart=True)
        hub_controller = radio.controller("hub")
        hub = radio.attach(hub_controller, "hub", CENTRAL)
        await hub.power_on()
        accepted = next_connection(peripheral)
        await hub.connect(PERIPHERAL, timeout=BOUND_S)
        dropped = disconnection_of(await accepted)
        # A connect left pending by the crashed host must not block the restarted one.
        await hub.send_async_command(create_connection(ABSENT))

        # The hub's daemon crashes; the restarted one resets the same controller on power-on.
        restarted = radio.attach(hub_controller, "hub", CENTRAL)
        await restarted.power_on()

        assert await dropped == CONNECTION_TIMEOUT
        assert hub_controller.le_connections == {}
        await restarted.start_scanning(active=True)
        advertisement = await advertisement_named(restarted, PERIPHERAL)
        assert advertisement.data.get(AdvertisingData.COMPLETE_LOCAL_NAME) == "Thermo"
        await restarted.stop_scanning()
        connection = await restarted.connect(PERIPHERAL, timeout=BOUND_S)
        assert connection.peer_address == hci.Address(PERIPHERAL)


@pytest.mark.asyncio
async def test_reset_stops_the_controllers_own_advertising():
    async with asyncio.timeout(BOUND_S):
        radio = Radio(seed=1)
        peripheral_controller = radio.controller("thermometer")
        peripheral = radio.attach(peripheral_controller, "thermometer", PERIPHERAL)
        await peripheral.power_on()
        await advertise(peripheral)
        assert peripheral_controller.is_advertising

        await radio.attach(peripheral_controller, "thermometer", PERIPHERAL).power_on()

        assert not peripheral_controller.is_advertising
        assert peripheral_controller.advertising_sets == {}


# 4. Scan response data


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("legacy", "adv_type", "scan_rsp_type"),
    [
        (False, EXTENDED_ADV_IND, EXTENDED_SCAN_RSP_TO_ADV_IND),
        (True, LEGACY_ADV_IND, LEGACY_SCAN_RSP),
    ],
    ids=["extended", "legacy"],
)
async def test_an_active_scanner_gets_the_advertisement_then_its_own_scan_response(
    legacy, adv_type, scan_rsp_type
):
    async with asyncio.timeout(BOUND_S):
        radio = Radio(seed=1)
        peripheral = await powered(radio, "thermometer", PERIPHERAL, legacy=legacy)
        await advertise(peripheral)
        scanner = await powered(radio, "hub", CENTRAL, legacy=legacy)
        reports = reports_from(scanner, PERIPHERAL)

        await scanner.start_scanning(active=True, legacy=legacy)
        first = await reports.get()
        second = await reports.get()
        advertisement = await advertisement_named(scanner, PERIPHERAL)

        assert (first.event_type, first.data) == (adv_type, ADVERTISING_DATA)
        assert (second.event_type, second.data) == (scan_rsp_type, SCAN_RESPONSE_DATA)
        assert advertisement.data.get(AdvertisingData.COMPLETE_LOCAL_NAME) == "Thermo"
        assert advertisement.data.get(AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS)
        assert advertisement.is_connectable
        assert advertisement.is_scannable


@pytest.mark.asyncio
async def test_a_passive_scanner_gets_the_advertisement_only():
    async with asyncio.timeout(BOUND_S):
        radio = Radio(seed=1)
        peripheral = await powered(radio, "thermometer", PERIPHERAL)
        await advertise(peripheral)
        scanner = await powered(radio, "hub", CENTRAL)
        reports = reports_from(scanner, PERIPHERAL)

        await scanner.start_scanning(active=False)
        # A scan response follows its advertisement at once, so three in a row show there is none.
        received = [await reports.get() for _ in range(3)]

        assert [(report.event_type, report.data) for report in received] == [
            (EXTENDED_ADV_IND, ADVERTISING_DATA)
        ] * 3


@pytest.mark.asyncio
async def test_a_device_without_scan_response_data_still_answers_an_active_scan_empty():
    async with asyncio.timeout(BOUND_S):
        radio = Radio(seed=1)
        peripheral = await powered(radio, "thermometer", PERIPHERAL)
        await peripheral.start_advertising(
            advertising_data=ADVERTISING_DATA,
            scan_response_data=b"",
            advertising_interval_min=20,
            advertising_interval_max=20,
        )
        scanner = await powered(radio, "hub", CENTRAL)
        reports = reports_from(scanner, PERIPHERAL)

        await scanner.start_scanning(active=True)
        received = [await reports.get() for _ in range(2)]

        assert [(report.event_type, report.data) for report in received] == [
            (EXTENDED_ADV_IND, ADVERTISING_DATA),
            (EXTENDED_SCAN_RSP_TO_ADV_IND, b""),
        ]


# 5. RSSI


def test_rssi_noise_is_the_same_for_the_same_seed_whatever_the_interleaving():
    ordered = RssiModel(seed=42)
    interleaved = RssiModel(seed=42)

    first = [ordered.sample(PERIPHERAL, CENTRAL) for _ in range(20)]
    second = [ordered.sample(ABSENT, CENTRAL) for _ in range(20)]
    mixed = [
        (interleaved.sample(PERIPHERAL, CENTRAL), interleaved.sample(ABSENT, CENTRAL))
        for _ in range(20)
    ]

    assert first == [pair[0] for pair in mixed]
    assert second == [pair[1] for pair in mixed]
    assert len(set(first)) > 1
    assert first != [RssiModel(seed=43).sample(PERIPHERAL, CENTRAL) for _ in range(20)]


def test_rssi_levels_by_device_by_link_and_by_distance():
    model = RssiModel(seed=1, noise_db=0)
    model.set_rssi(PERIPHERAL, -70)
    model.set_distance(PERIPHERAL, 10.0, observer=OBSERVER)
    model.set_rssi(ABSENT, -200)

    assert model.sample(PERIPHERAL, CENTRAL) == -70
    # 1 m at -59 dBm, free-space exponent 2: 20 dB less at 10 m.
    assert model.sample(PERIPHERAL, OBSERVER) == -79
    assert model.sample(CENTRAL, PERIPHERAL) == -50
    assert model.sample(ABSENT, CENTRAL) == -127


@pytest.mark.parametrize(
    "call",
    [
        lambda model: model.set_distance(PERIPHERAL, 0),
        lambda model: model.set_distance(PERIPHERAL, float("nan")),
        lambda model: model.set_rssi(PERIPHERAL, float("inf")),
        lambda model: model.set_rssi("not an address", -60),
        lambda _: RssiModel(noise_db=-1),
    ],
    ids=["zero-distance", "nan-distance", "infinite-rssi", "bad-address", "negative-noise"],
)
def test_rssi_settings_that_make_no_sense_are_refused(call):
    with pytest.raises(RadioConfigError):
        call(RssiModel(seed=1))


async def rssi_seen(radio: Radio, count: int) -> list[int]:
    peripheral = await powered(radio, "thermometer", PERIPHERAL)
    await advertise(peripheral)
    scanner = await powered(radio, "hub", CENTRAL)
    reports = reports_from(scanner, PERIPHERAL)
    await scanner.start_scanning(active=False)
    return [(await reports.get()).rssi for _ in range(count)]


@pytest.mark.asyncio
async def test_scanners_see_the_configured_rssi_with_seeded_noise():
    async with asyncio.timeout(BOUND_S):
        quiet = Radio(seed=5, rssi_noise_db=0)
        quiet.rssi.set_rssi(PERIPHERAL, -72)
        noisy = Radio(seed=5)
        noisy.rssi.set_rssi(PERIPHERAL, -72)
        replay = Radio(seed=5)
        replay.rssi.set_rssi(PERIPHERAL, -72)

        assert await rssi_seen(quiet, 3) == [-72, -72, -72]
        heard = await rssi_seen(noisy, 10)
        assert heard == await rssi_seen(replay, 10)
        assert len(set(heard)) > 1
        # The scanner's values are the model's draws for (scanner, advertiser), in order.
        model = RssiModel(seed=5)
        model.set_rssi(PERIPHERAL, -72)
        assert heard == [model.sample(PERIPHERAL, CENTRAL) for _ in range(10)]


# Cross-process


@pytest.mark.asyncio
async def test_a_central_in_another_process_scans_and_connects_over_an_exposed_controller():
    async with asyncio.timeout(BOUND_S * 2):
        radio = Radio(seed=1, rssi_noise_db=0)
        radio.rssi.set_rssi(PERIPHERAL, -61)
        peripheral = await powered(radio, "Thermo", PERIPHERAL)
        await advertise(peripheral)
        accepted = next_connection(peripheral)

        with tempfile.TemporaryDirectory(prefix="vb-radio-") as directory:
            spec = f"unix-server:{directory}/hci.sock"
            async with radio.expose(spec) as exposure:
                assert exposure.client_spec == f"unix:{directory}/hci.sock"
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(CHILD),
                    exposure.client_spec,
                    PERIPHERAL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                try:
                    out, err = await child.communicate()
                finally:
                    if child.returncode is None:
                        child.kill()
                        await child.wait()
                connection = await accepted
            assert not await asyncio.to_thread(Path(directory, "hci.sock").exists)

        assert child.returncode == 0, err.decode()
        assert json.loads(out) == {"scanned_name": "Thermo", "gatt_name": "Thermo", "rssi": -61}
        assert connection.peer_address == hci.Address("C0:00:00:00:0C:01")


@pytest.mark.asyncio
async def test_a_tcp_exposure_serves_a_host_and_takes_its_links_down_on_exit():
    async with asyncio.timeout(BOUND_S):
        radio = Radio(seed=1)
        peripheral = await powered(radio, "thermometer", PERIPHERAL)
        await advertise(peripheral)
        accepted = next_connection(peripheral)

        async with radio.expose("tcp-server:127.0.0.1:0") as exposure:
            assert exposure.client_spec.startswith("tcp-client:127.0.0.1:")
            assert not exposure.client_spec.endswith(":0")
            async with await open_transport(exposure.client_spec) as transport:
                hub = Device.with_hci("hub", hci.Address(CENTRAL), transport.source, transport.sink)
                await hub.power_on()
                await hub.connect(PERIPHERAL, timeout=BOUND_S)
                dropped = disconnection_of(await accepted)

        assert await dropped == CONNECTION_TIMEOUT
        assert exposure.controller not in radio.link.controllers


@pytest.mark.parametrize(
    "spec", ["usb:0", "unix:/tmp/x.sock", "tcp-server:9000", "tcp-server:_:port", "unix-server:"]
)
@pytest.mark.asyncio
async def test_exposing_on_anything_but_a_socket_server_is_refused(spec):
    with pytest.raises(RadioConfigError, match="unix-server:PATH"):
        async with Radio().expose(spec):
            pass


# Canaries: the Bumble internals SimController leans on. A failure here means Bumble changed
# under the pin; re-read bumble/controller.py before touching anything else.


def field_names(cls: type) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def test_bumble_still_dispatches_the_command_handlers_simcontroller_overrides():
    for command in (
        hci.HCI_Reset_Command,
        hci.HCI_LE_Create_Connection_Command,
        hci.HCI_LE_Create_Connection_Cancel_Command,
        hci.HCI_LE_Set_Extended_Scan_Parameters_Command,
    ):
        handler = f"on_{command.name.lower()}"
        assert callable(getattr(Controller, handler, None)), handler
        assert handler in vars(SimController), handler
    assert "getattr(self, handler_name" in inspect.getsource(Controller.on_hci_command_packet)


def test_bumble_controller_methods_and_state_simcontroller_uses_are_still_there():
    for method in (
        "on_advertising_pdu",
        "send_advertising_pdu",
        "send_hci_packet",
        "_send_hci_command_status",
    ):
        assert callable(getattr(Controller, method, None)), method
    # The report suppression in SimController.on_advertising_pdu relies on this check.
    assert "if self.le_scan_enable:" in inspect.getsource(Controller.on_advertising_pdu)
    parameters = list(inspect.signature(Controller.__init__).parameters)
    assert parameters == ["self", "name", "host_source", "host_sink", "link", "public_address"]
    assert {"parameters", "scan_response_data", "enabled"} <= field_names(AdvertisingSet)
    assert isinstance(AdvertisingSet.address, property)
    assert "scan_response_data" in field_names(LegacyAdvertiser)
    assert callable(LegacyAdvertiser.stop)
    assert {"advertiser_address", "data"} <= field_names(ll.AdvInd)
    assert {"advertiser_address", "data", "sid", "target_address"} <= field_names(ll.AdvExtInd)


@pytest.mark.asyncio
async def test_bumble_controller_state_simcontroller_resets_is_still_there():
    controller = Controller("canary")
    for attribute in (
        "pending_le_connection",
        "le_scan_enable",
        "le_scan_type",
        "le_legacy_advertiser",
        "advertising_sets",
        "le_connections",
        "classic_connections",
        "sco_links",
        "central_cis_links",
        "peripheral_cis_links",
        "pending_periodic_advertising_syncs",
        "established_periodic_advertising_syncs",
    ):
        assert hasattr(controller, attribute), attribute


@pytest.mark.asyncio
async def test_bumble_socket_server_transports_still_expose_their_server_and_client():
    with tempfile.TemporaryDirectory(prefix="vb-radio-") as directory:
        transport = await open_transport(f"unix-server:{directory}/canary.sock")
        try:
            assert isinstance(transport.server, asyncio.Server)
            assert hasattr(transport.sink, "transport")
        finally:
            transport.server.close()
            await transport.close()


@pytest.mark.asyncio
async def test_advertisements_reach_only_listening_controllers():
    """The link skips controllers that neither scan nor connect (a cost, not a behaviour)."""
    async with asyncio.timeout(20):
        radio = Radio(seed=1)
        advertiser = radio.device("adv", "F0:00:00:00:00:A1")
        idle = radio.controller("idle")
        listener = radio.device("scanner", "F0:00:00:00:00:A2")
        delivered = {"idle": 0}
        original = idle.on_ll_advertising_pdu

        def counting(packet):
            delivered["idle"] += 1
            original(packet)

        idle.on_ll_advertising_pdu = counting  # type: ignore[method-assign]
        await advertiser.power_on()
        await listener.power_on()
        seen = asyncio.Event()
        listener.on("advertisement", lambda _: seen.set())
        await advertiser.start_advertising(auto_restart=True)
        await listener.start_scanning()
        await seen.wait()
        assert delivered["idle"] == 0
        await listener.stop_scanning()
        await advertiser.stop_advertising()
