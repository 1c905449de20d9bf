"""Guided pairing over the simulated radio: what a person sees for each outcome.

The hub side is the real flow (scanner, bleak-retry-connector, bleak's pair, UDS, normalise);
the devices are the simulated GATT servers. Only the radio is simulated. The passkey agent is
the one a backend module would expose: here a Bumble delegate that asks the flow.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socketserver
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import typer
from bumble.pairing import PairingConfig, PairingDelegate
from typer.testing import CliRunner

from gateway import pairing_cli
from gateway.ble.backend import BleBackend
from gateway.ble.registry import DeviceRegistry
from gateway.config import DeviceProfile
from gateway.control import SOCKET_NAME
from gateway.pairing import (
    DEVICE_TEXTS,
    Failure,
    PairingFlow,
    PairingOptions,
    PairingStep,
    StepKind,
    passkey_agent_for,
)
from gateway.pairing_cli import pair
from simulators.bleak_backend import (
    AdapterSettings,
    BumbleClient,
    BumbleScanner,
    passkey_agent,
    use_radio,
)
from simulators.devices import (
    Behaviours,
    BloodPressureCuff,
    Pairing,
    SimulatedDevice,
    SimulatorConfig,
    WeightScale,
)
from simulators.radio import Radio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from click.testing import Result

TIMEOUT_S = 60
ADDRESS = "F0:10:20:30:40:51"
PATIENT = "patient-0042"
FAST = AdapterSettings(connect_timeout_s=2.0)
BACKEND = BleBackend("simulators.bleak_backend", BumbleScanner, BumbleClient)


class _BondedElsewhere(PairingDelegate):
    """A device still bonded to another hub: it refuses a new pairing, as such devices do."""

    async def accept(self) -> bool:
        return False


def _flow(tmp_path: Path, **options: Any) -> PairingFlow:
    options.setdefault("scan_timeout_s", 5.0)
    options.setdefault("test_reading_timeout_s", 10.0)
    return PairingFlow(
        BACKEND,
        DeviceRegistry.load([], tmp_path),
        PairingOptions(**options),
        # The backend module's own agent, as `passkey_agent_for` finds it for the CLI.
        passkey_agent=passkey_agent_for(BACKEND),
    )


async def _drive(
    flow: PairingFlow, device: SimulatedDevice | None = None, *, measure: bool = True, **kw: Any
) -> list[PairingStep]:
    steps = []
    async for step in flow.steps():
        steps.append(step)
        if step.kind is StepKind.PASSKEY_REQUEST and device is not None:
            flow.enter_passkey(kw.get("passkey_offset", 0) + await device.displayed_passkey())
        if step.kind is StepKind.MEASURE_NOW and device is not None and measure:
            await device.measure(**kw.get("measure_args", {}))
    return steps


def _kinds(steps: list[PairingStep]) -> list[StepKind]:
    return [s.kind for s in steps]


def _cuff(radio: Radio, pairing: Pairing | None = Pairing.JUST_WORKS) -> BloodPressureCuff:
    config = SimulatorConfig(seed=3, behaviours=Behaviours(pairing=pairing))
    return BloodPressureCuff.on_radio(radio, ADDRESS, config)


@pytest.mark.asyncio
async def test_just_works_cuff_pairs_is_provisioned_and_gives_a_test_reading(tmp_path):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=1, rssi_noise_db=0)
        cuff = _cuff(radio)
        await cuff.start()
        flow = _flow(tmp_path, profile=DeviceProfile.BLOOD_PRESSURE, patient=PATIENT)
        async with use_radio(radio, FAST):
            steps = await _drive(flow, cuff)
        assert StepKind.PASSKEY_REQUEST not in _kinds(steps)
        assert steps[0].text == DEVICE_TEXTS[DeviceProfile.BLOOD_PRESSURE].wake
        assert _kinds(steps)[-1] is StepKind.DONE, steps[-1]
        reading = next(s.reading for s in steps if s.kind is StepKind.TEST_READING)
        assert reading is not None
        assert reading.assigned
        assert reading.kind == "blood_pressure"
        assert "systolic" in reading.summary
        registry = DeviceRegistry.load([], tmp_path)
        (device,) = registry.paired_devices()
        assert device.address == ADDRESS
        assert device.patient == PATIENT
        assert device.id == steps[-1].device_id


@pytest.mark.asyncio
async def test_passkey_cuff_pairs_with_the_passkey_it_shows(tmp_path):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=1, rssi_noise_db=0)
        cuff = _cuff(radio, Pairing.PASSKEY)
        await cuff.start()
        flow = _flow(tmp_path, profile=DeviceProfile.BLOOD_PRESSURE, test_reading_timeout_s=0)
        async with use_radio(radio, FAST):
            steps = await _drive(flow, cuff)
        kinds = _kinds(steps)
        assert kinds.index(StepKind.PASSKEY_REQUEST) < kinds.index(StepKind.PAIRED)
        assert kinds[-1] is StepKind.DONE


@pytest.mark.asyncio
async def test_a_wrong_passkey_says_so_and_what_to_do(tmp_path):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=1, rssi_noise_db=0)
        cuff = _cuff(radio, Pairing.PASSKEY)
        await cuff.start()
        flow = _flow(tmp_path, profile=DeviceProfile.BLOOD_PRESSURE)
        async with use_radio(radio, FAST):
            steps = await _drive(flow, cuff, passkey_offset=1)
        last = steps[-1]
        assert last.kind is StepKind.FAILED
        assert last.failure is Failure.PASSKEY_WRONG
        assert last.what_to_do is not None
        assert "six digits" in last.what_to_do
        assert DeviceRegistry.load([], tmp_path).paired_devices() == ()


@pytest.mark.asyncio
async def test_nothing_advertising_is_not_found(tmp_path):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=1, rssi_noise_db=0)
        flow = _flow(tmp_path, profile=DeviceProfile.BLOOD_PRESSURE, scan_timeout_s=1.0)
        async with use_radio(radio, FAST):
            steps = await _drive(flow)
        last = steps[-1]
        assert last.failure is Failure.NOT_FOUND
        assert last.what_to_do is not None
        assert "switched on" in last.what_to_do
        assert "metre" in last.what_to_do


@pytest.mark.asyncio
async def test_a_scale_when_a_cuff_was_asked_for_is_the_wrong_device_type(tmp_path):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=1, rssi_noise_db=0)
        scale = WeightScale.on_radio(radio, ADDRESS, SimulatorConfig(seed=3))
        await scale.start()
        flow = _flow(tmp_path, profile=DeviceProfile.BLOOD_PRESSURE, scan_timeout_s=2.0)
        async with use_radio(radio, FAST):
            steps = await _drive(flow)
        last = steps[-1]
        assert last.failure is Failure.WRONG_DEVICE_TYPE
        assert "found a scale, not a blood pressure cuff" in last.text


@pytest.mark.asyncio
async def test_a_weak_signal_is_too_far_away(tmp_path):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=1, rssi_noise_db=0)
        radio.rssi.set_rssi(ADDRESS, -95)
        cuff = _cuff(radio)
        await cuff.start()
        flow = _flow(tmp_path, profile=DeviceProfile.BLOOD_PRESSURE, scan_timeout_s=2.0)
        async with use_radio(radio, FAST):
            steps = await _drive(flow)
        last = steps[-1]
        assert last.failure is Failure.TOO_FAR_AWAY
        assert last.what_to_do is not None
        assert "metre" in last.what_to_do


@pytest.mark.asyncio
async def test_a_device_that_refuses_to_pair_may_be_paired_elsewhere(tmp_path):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=1, rssi_noise_db=0)
        cuff = _cuff(radio)
        # The simulated devices have no "bonded to another hub" behaviour; such a device
        # refuses pairing with Pairing Not Supported, which is what this delegate makes it do.
        cuff.device.pairing_config_factory = lambda _: PairingConfig(delegate=_BondedElsewhere())
        await cuff.start()
        flow = _flow(tmp_path, profile=DeviceProfile.BLOOD_PRESSURE)
        async with use_radio(radio, FAST):
            steps = await _drive(flow, cuff)
        last = steps[-1]
        assert last.failure is Failure.ALREADY_PAIRED_ELSEWHERE
        assert last.what_to_do is not None
        assert "another hub or a phone" in last.what_to_do


@pytest.mark.asyncio
async def test_a_multi_user_scale_registers_a_user_for_the_patient(tmp_path):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=1, rssi_noise_db=0)
        scale = WeightScale.on_radio(radio, ADDRESS, SimulatorConfig(seed=3))
        await scale.start()
        flow = _flow(tmp_path, profile=DeviceProfile.WEIGHT_SCALE, patient=PATIENT)
        async with use_radio(radio, FAST):
            steps = await _drive(flow, scale)
        assert _kinds(steps)[-1] is StepKind.DONE, steps[-1]
        registered = next(s for s in steps if s.kind is StepKind.USER_REGISTERED)
        user_index = registered.user_index
        assert user_index is not None
        assert user_index in scale.users.consent_codes
        reading = next(s.reading for s in steps if s.kind is StepKind.TEST_READING)
        assert reading is not None
        assert reading.user_index == user_index
        assert reading.assigned
        (device,) = DeviceRegistry.load([], tmp_path).paired_devices()
        assert device.patients == {user_index: PATIENT}
        # The consent code is kept: every later session gives consent with it.
        assert device.consent_codes == {user_index: scale.users.consent_codes[user_index]}


@pytest.mark.asyncio
async def test_a_reading_from_an_unmapped_user_index_stays_unassigned(tmp_path):
    async with asyncio.timeout(TIMEOUT_S):
        radio = Radio(seed=1, rssi_noise_db=0)
        scale = WeightScale.on_radio(radio, ADDRESS, SimulatorConfig(seed=3))
        await scale.start()
        flow = _flow(tmp_path, profile=DeviceProfile.WEIGHT_SCALE, patient=PATIENT, user_index=1)
        async with use_radio(radio, FAST):
            steps = await _drive(flow, scale, measure_args={"user_index": 2})
        assert _kinds(steps)[-1] is StepKind.DONE
        assert StepKind.USER_REGISTERED in _kinds(steps)
        reading = next(s.reading for s in steps if s.kind is StepKind.TEST_READING)
        assert reading is not None
        assert reading.user_index == 2
        assert not reading.assigned
        test_step = next(s for s in steps if s.kind is StepKind.TEST_READING)
        assert "unassigned" in test_step.text


def test_every_profile_has_plain_language_texts():
    assert set(DEVICE_TEXTS) == set(DeviceProfile)
    for texts in DEVICE_TEXTS.values():
        assert texts.wake.endswith(".")
        assert texts.measure.endswith(".")


def test_a_passkey_has_six_digits(tmp_path):
    flow = _flow(tmp_path)
    with pytest.raises(ValueError, match="six digits"):
        flow.enter_passkey(1_000_000)


# The command. The flow is a stand-in here (its steps are scripted), because CliRunner runs the
# command's own event loop, apart from the simulated radio; the flow itself is tested above.


CLI_CONFIG = """\
hub_id = "hub-0042"
state_dir = "{state_dir}"

[mqtt]
broker_url = "mqtt://localhost:1883"

[ble]
backend = "simulators.bleak_backend"
"""


class _ScriptedFlow:
    """Yields the given steps; records the passkeys the command enters."""

    def __init__(self, steps: list[PairingStep]) -> None:
        self._steps = steps
        self.passkeys: list[int] = []

    async def steps(self) -> AsyncIterator[PairingStep]:
        for step in self._steps:
            yield step

    def enter_passkey(self, passkey: int) -> None:
        self.passkeys.append(passkey)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A Unix socket path must stay under 108 bytes; pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="vb-pair-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def cli_config(short_dir: Path) -> Path:
    path = short_dir / "config.toml"
    path.write_text(CLI_CONFIG.format(state_dir=short_dir / "state"))
    return path


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(pair)
    return app


def _invoke(
    monkeypatch: pytest.MonkeyPatch, flow: _ScriptedFlow, *args: str, stdin: str = ""
) -> Result:
    monkeypatch.setattr(pairing_cli, "make_flow", lambda *_: flow)
    return CliRunner().invoke(_cli(), list(args), input=stdin, catch_exceptions=False)


def test_the_command_asks_for_the_passkey_and_says_when_it_is_done(monkeypatch, cli_config):
    flow = _ScriptedFlow(
        [
            PairingStep(StepKind.INSTRUCTION, "Press and hold the Bluetooth button.", 0.0),
            PairingStep(StepKind.PASSKEY_REQUEST, "The cuff shows six digits.", 0.5),
            PairingStep(StepKind.PAIRED, "The cuff is paired with this hub.", 0.6),
            PairingStep(StepKind.DONE, "All done.", 1.0),
        ]
    )
    result = _invoke(monkeypatch, flow, "--config", str(cli_config), stdin="12345\n012345\n")
    assert result.exit_code == 0, result.output
    assert flow.passkeys == [12345]
    assert "That is not six digits" in result.output
    assert "Press and hold the Bluetooth button." in result.output
    assert "[100%] All done." in result.output


def test_a_failure_shows_what_to_do_and_exits_1(monkeypatch, cli_config):
    flow = _ScriptedFlow(
        [
            PairingStep(
                StepKind.FAILED,
                "The hub did not find your blood pressure cuff.",
                1.0,
                failure=Failure.NOT_FOUND,
                what_to_do="Check that the cuff is switched on.",
            )
        ]
    )
    result = _invoke(monkeypatch, flow, "--config", str(cli_config), "--profile", "blood_pressure")
    assert result.exit_code == pairing_cli.EXIT_FAILED
    assert "did not find your blood pressure cuff" in result.output
    assert "What to do: Check that the cuff is switched on." in result.output


def test_the_options_reach_the_flow(monkeypatch, cli_config):
    seen: list[PairingOptions] = []
    flow = _ScriptedFlow([PairingStep(StepKind.DONE, "All done.", 1.0)])

    def make(_settings: object, options: PairingOptions) -> _ScriptedFlow:
        seen.append(options)
        return flow

    monkeypatch.setattr(pairing_cli, "make_flow", make)
    args = ["--config", str(cli_config), "--profile", "weight_scale", "--timeout", "12"]
    args += ["--patient", PATIENT, "--user-index", "3", "--test-timeout", "0"]
    result = CliRunner().invoke(_cli(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [
        PairingOptions(
            profile=DeviceProfile.WEIGHT_SCALE,
            scan_timeout_s=12.0,
            patient=PATIENT,
            user_index=3,
            test_reading_timeout_s=0.0,
        )
    ]


def test_the_command_refuses_while_the_hub_service_holds_the_adapter(
    monkeypatch, cli_config, short_dir
):
    state = short_dir / "state"
    state.mkdir()

    class _Status(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            self.wfile.write(json.dumps({"ok": True, "result": {}}).encode() + b"\n")

    server = socketserver.UnixStreamServer(str(state / SOCKET_NAME), _Status)
    thread = threading.Thread(target=server.serve_forever, name="fake-daemon", daemon=True)
    thread.start()
    try:
        flow = _ScriptedFlow([PairingStep(StepKind.DONE, "All done.", 1.0)])
        result = _invoke(monkeypatch, flow, "--config", str(cli_config))
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == pairing_cli.EXIT_FAILED
    assert "systemctl stop vitalbridge" in result.output
    assert "All done" not in result.output


def test_a_wrong_configuration_exits_78(monkeypatch, short_dir):
    path = short_dir / "bad.toml"
    path.write_text("hub_id = \n")
    result = _invoke(monkeypatch, _ScriptedFlow([]), "--config", str(path))
    assert result.exit_code == pairing_cli.EXIT_CONFIG


def test_the_simulated_backend_offers_a_passkey_agent_and_bluez_none():
    assert passkey_agent_for(BACKEND) is passkey_agent
    bluez = BleBackend("bleak", None, None)
    assert passkey_agent_for(bluez) is None
