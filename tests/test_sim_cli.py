"""The vitalbridge-sim CLI and its scenario files: listing, checking, running and exposing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml
from bleak import BleakClient, BleakScanner
from typer.testing import CliRunner

import device_profiles
from device_profiles.blood_pressure import BloodPressureMeasurement
from simulators.bleak_backend import AdapterSettings, BumbleClient, BumbleScanner, use_hci
from simulators.cli import app
from simulators.devices import (
    DEVICE_TYPES,
    PROFILES,
    Behaviours,
    ManualClock,
    PayloadFault,
    ScaleReading,
    WeightScale,
)
from simulators.household import build_household, run_device
from simulators.radio import Radio
from simulators.scenario import (
    BehavioursSpec,
    Scenario,
    ScenarioError,
    bundled_scenarios,
    load_scenario,
    parse_scenario,
)

BUNDLED = ["demo", "elderly_home", "faulty_devices", "multi_user_household", "single_cuff"]
SUBPROCESS_TIMEOUT_S = 60
T0 = dt.datetime(2024, 5, 1, 8, 0, 0)  # noqa: DTZ001 - device clocks keep naive local time
CUFF = "F0:00:00:00:00:01"
BPM_UUID = "00002a35-0000-1000-8000-00805f9b34fb"

runner = CliRunner()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "simulators.cli", *args]


def _minimal(**device: object) -> dict[str, object]:
    return {
        "household": "Test",
        "devices": [{"type": "blood_pressure_cuff", "address": CUFF, **device}],
    }


def _problem(data: dict[str, object]) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data, "test.toml")
    return caught.value


# -- listing and checking ----------------------------------------------------------------------


def test_devices_lists_every_type_with_its_services_users_and_racp():
    result = runner.invoke(app, ["devices"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    headers = {line.split()[0]: line for line in lines if not line.startswith(" ")}
    assert set(headers) == set(DEVICE_TYPES)
    assert "'VB Cuff', single user, no RACP" in headers["blood_pressure_cuff"]
    assert "multi-user (UDS), no RACP" in headers["body_composition_scale"]
    assert "single user, RACP" in headers["glucose_meter"]
    assert "      0x2A35  Blood Pressure Measurement (indicate)" in lines
    assert "      0x2A9C  Body Composition Measurement (indicate)" in lines
    assert "      0x2A52  Record Access Control Point (write, indicate)" in lines


def test_profiles_lists_every_patient_profile_with_its_key_values():
    result = runner.invoke(app, ["profiles"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(rows) == set(PROFILES)
    assert "156/96" in rows["hypertensive"]
    assert "90.5%" in rows["copd"]


def test_the_bundled_scenarios_are_listed_and_shipped_as_package_data():
    assert sorted(bundled_scenarios()) == BUNDLED
    result = runner.invoke(app, ["scenarios"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert listed == BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_scenario_passes_check(name):
    result = runner.invoke(app, ["check", name])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"ok: {bundled_scenarios()[name]}: ")


def test_check_takes_a_path_too(tmp_path):
    path = tmp_path / "cuff.yaml"
    path.write_text(yaml.safe_dump(_minimal()), encoding="utf-8")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"ok: {path}: 'Test', seed 0, 1 device: VB Cuff (blood_pressure_cuff)\n"
    )


def test_check_names_the_file_the_field_and_the_fix(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(
        """
household = "Broken"

[[devices]]
type = "blood_pressure_cuff"
address = "F0:00:00:00:00:01"

[[devices]]
type = "spot_check_oximeter"
address = "F0:00:00:00:00:02"
patient = "hypertense"
""",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"{path}: devices[1].patient: 'hypertense' is not a profile; did you mean "
        "'hypertensive'? use one of: normal, hypertensive, copd, diabetic, "
        "elderly_atrial_fibrillation, athlete\n"
    )


def test_check_of_an_unknown_scenario_lists_the_bundled_ones():
    result = runner.invoke(app, ["check", "no_such_household"])
    assert result.exit_code == 1
    assert result.stderr == (
        "no_such_household: no such scenario; give a path to a .toml or .yaml file, or a "
        f"bundled scenario: {', '.join(BUNDLED)}\n"
    )


def test_check_reports_a_toml_syntax_error_without_a_traceback(tmp_path):
    path = tmp_path / "syntax.toml"
    path.write_text('household = "x"\n[[devices]\n', encoding="utf-8")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}: not valid TOML (")
    assert "line 2" in result.stderr
    assert "Traceback" not in result.output


# -- the scenario model ------------------------------------------------------------------------


def test_a_minimal_scenario_gets_well_behaved_defaults():
    scenario = parse_scenario(_minimal(), "test.toml")
    [device] = scenario.devices
    assert scenario.seed == 0
    assert device.display_name == "VB Cuff"
    assert device.patient == "normal"
    assert device.behaviours.build() == Behaviours()
    assert device.schedule.measurements == 1
    assert device.schedule.first_after_s == 0
    assert not device.presses_button
    config = device.config(scenario.device_seed(0))
    assert config.patient is PROFILES["normal"]
    assert config.household == ()
    assert config.identity is None


def test_the_behaviours_table_mirrors_the_behaviours_dataclass():
    fields = {field.name: field.default for field in dataclasses.fields(Behaviours)}
    assert set(BehavioursSpec.model_fields) == set(fields)
    assert {name: f.default for name, f in BehavioursSpec.model_fields.items()} == fields


def test_device_seeds_follow_the_scenario_seed_unless_given():
    data = _minimal()
    data["seed"] = 100
    data["devices"] = [
        {"type": "blood_pressure_cuff", "address": "F0:00:00:00:00:01"},
        {"type": "thermometer", "address": "F0:00:00:00:00:02", "seed": 5},
        {"type": "weight_scale", "address": "F0:00:00:00:00:03"},
    ]
    scenario = parse_scenario(data, "test.toml")
    assert [scenario.device_seed(i) for i in range(3)] == [100, 5, 102]
    reseeded = scenario.with_seed(7)
    assert [reseeded.device_seed(i) for i in range(3)] == [7, 5, 9]
    assert scenario.seed == 100


def test_behaviours_and_schedule_reach_the_device():
    data = _minimal(
        name="Cuff",
        behaviours={
            "advertise_on_button_press": True,
            "disconnect_after_send_s": 5,
            "payload_fault": "truncated",
            "pairing": "passkey",
            "clock_start": dt.datetime(1970, 1, 1),  # noqa: DTZ001 - naive local time
        },
        schedule={"every_s": 30, "forever": True},
    )
    [device] = parse_scenario(data, "test.toml").devices
    behaviours = device.behaviours.build()
    assert behaviours.advertise_on_button_press
    assert behaviours.disconnect_after_send_s == 5.0
    assert behaviours.payload_fault is PayloadFault.TRUNCATED
    assert behaviours.clock_start == dt.datetime(1970, 1, 1)  # noqa: DTZ001
    assert device.presses_button
    assert device.schedule.measurements is None


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"patient": "hypertense"}, "devices[0].patient", "'hypertense' is not a profile;"),
        ({"type": "toaster"}, "devices[0].type", "'toaster' is not a device type; use one of"),
        (
            {"type": "blood_pressure"},
            "devices[0].type",
            "did you mean 'blood_pressure_cuff'?",
        ),
        ({"address": "F0:00:00:00:01"}, "devices[0].address", "e.g. 'F0:00:00:00:00:01'"),
        ({"name": "A" * 30}, "devices[0].name", "must be 1 to 29 bytes"),
        (
            {"behaviours": {"batery_percent": 5}},
            "devices[0].behaviours.batery_percent",
            "not a field here; did you mean 'battery_percent'?",
        ),
        (
            {"behaviours": {"battery_percent": 150}},
            "devices[0].behaviours",
            "battery_percent 150 is outside 0..100",
        ),
        (
            {"behaviours": {"payload_fault": "garbled"}},
            "devices[0].behaviours.payload_fault",
            "'truncated', 'malformed', 'reserved_bits' or 'special_values'",
        ),
        (
            {"behaviours": {"clock_start": "1970-01-01T00:00:00"}},
            "devices[0].behaviours.clock_start",
            "write the date and time unquoted",
        ),
        (
            {"behaviours": {"clock_start": dt.datetime(1970, 1, 1, tzinfo=dt.UTC)}},
            "devices[0].behaviours.clock_start",
            "has a UTC offset; device clocks show local time",
        ),
        (
            {"schedule": {"every_s": "5"}},
            "devices[0].schedule.every_s",
            "write the number without quotes",
        ),
        (
            {"schedule": {"forever": "true"}},
            "devices[0].schedule.forever",
            "write true or false without quotes",
        ),
        (
            {"schedule": {"count": 3, "forever": True}},
            "devices[0].schedule",
            "give either count or forever = true, not both",
        ),
        ({"schedule": {"every_s": 0}}, "devices[0].schedule.every_s", "greater than 0"),
        ({"household": ["copd"]}, "devices[0].household", "has a single user;"),
        ({"registered_users": [1234]}, "devices[0].registered_users", "has a single user;"),
        (
            {"schedule": {"button": True}},
            "devices[0].schedule.button",
            "set behaviours.advertise_on_button_press = true",
        ),
        (
            {"type": "heart_rate_strap", "schedule": {"backlog": 3}},
            "devices[0].schedule.backlog",
            "keeps no readings",
        ),
        (
            {"type": "weight_scale", "household": ["copd", "athelete"]},
            "devices[0].household[1]",
            "'athelete' is not a profile; did you mean 'athlete'?",
        ),
        (
            {"type": "weight_scale", "household": ["copd"], "schedule": {"users": [0, 2]}},
            "devices[0].schedule.users[1]",
            "user 2 is not in the household",
        ),
        (
            {"type": "weight_scale", "registered_users": [1, 2, 3, 4, 5]},
            "devices[0].registered_users",
            "at most 4",
        ),
        ({"address": None}, "devices[0].address", "input should be a valid string"),
    ],
)
def test_validation_errors_name_the_field_path_and_the_fix(change, field, message):
    data = _minimal(**change)
    error = _problem(data)
    assert error.fields[0] == field
    assert message in str(error.problems[0])
    assert str(error).startswith(f"test.toml: {field}: ")


def test_a_missing_field_says_what_to_add():
    error = _problem({"devices": [{"type": "thermometer"}]})
    assert str(error) == (
        'test.toml: household: missing; add household = "Our flat" (a name for the scenario)\n'
        'test.toml: devices[0].address: missing; add address = "F0:00:00:00:00:01"'
    )


def test_devices_written_as_a_single_table_are_refused_with_the_toml_syntax_to_use():
    error = _problem({"household": "x", "devices": {"type": "thermometer"}})
    assert error.fields == ("devices",)
    assert "write each device as a [[devices]] table" in str(error)


def test_duplicate_addresses_and_names_are_errors():
    error = _problem(
        {
            "household": "Twins",
            "devices": [
                {"type": "blood_pressure_cuff", "address": "F0:00:00:00:00:01"},
                {"type": "thermometer", "address": "f0:00:00:00:00:01"},
                {"type": "blood_pressure_cuff", "address": "F0:00:00:00:00:03"},
            ],
        }
    )
    assert [str(problem) for problem in error.problems] == [
        (
            "devices[1].address: 'F0:00:00:00:00:01' is already the address of devices[0]; "
            "give each device its own address"
        ),
        (
            "devices[2].name: 'VB Cuff' is already the name of devices[0]; give each device "
            "its own name"
        ),
    ]


def test_file_level_problems_name_the_file(tmp_path):
    with pytest.raises(ScenarioError, match=r"unknown file type; name it \*\.toml"):
        load_scenario(tmp_path / "household.json")
    with pytest.raises(ScenarioError, match="cannot read it"):
        load_scenario(tmp_path / "absent.toml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- household: x\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="must hold a table with household"):
        load_scenario(listed)
    broken = tmp_path / "broken.yml"
    broken.write_text("household: x\ndevices: [\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken\.yml: not valid YAML at line 3, column 1"):
        load_scenario(broken)


@pytest.mark.parametrize("name", BUNDLED)
def test_a_yaml_scenario_means_the_same_as_its_toml(name, tmp_path):
    toml_path = bundled_scenarios()[name]
    yaml_path = tmp_path / f"{name}.yaml"
    data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert load_scenario(yaml_path) == load_scenario(toml_path)


def test_handwritten_yaml_and_toml_agree(tmp_path):
    (tmp_path / "meter.yaml").write_text(
        """
household: Grandpa's flat
seed: 3
devices:
  - type: glucose_meter
    address: f0:00:00:00:00:09
    patient: diabetic
    behaviours:
      clock_start: 1970-01-01 00:00:00
      battery_percent: 5
    schedule:
      every_s: 30
      forever: true
""",
        encoding="utf-8",
    )
    (tmp_path / "meter.toml").write_text(
        """
household = "Grandpa's flat"
seed = 3

[[devices]]
type = "glucose_meter"
address = "F0:00:00:00:00:09"
patient = "diabetic"
behaviours = { clock_start = 1970-01-01T00:00:00, battery_percent = 5 }
schedule = { every_s = 30, forever = true }
""",
        encoding="utf-8",
    )
    from_yaml = load_scenario(tmp_path / "meter.yaml")
    assert from_yaml == load_scenario(tmp_path / "meter.toml")
    assert from_yaml.devices[0].behaviours.build().low_battery


# -- building and running a household ----------------------------------------------------------


async def _run_on_a_manual_clock(scenario: Scenario) -> list[tuple[str, object]]:
    """Run every device's schedule on a clock that only moves when they sleep."""
    clock = ManualClock(T0)
    household = build_household(scenario, Radio(seed=scenario.seed), clock=clock)
    seen: list[tuple[str, object]] = []
    try:
        for member in household:
            await run_device(
                member, lambda m, a: seen.append((m.spec.display_name, (a.kind, a.at, a.reading)))
            )
    finally:
        for member in household:
            await member.device.stop()
    return seen


@pytest.mark.asyncio
async def test_backlog_readings_are_dated_in_the_past_and_a_seed_repeats_the_run():
    schedule = {"backlog": 3, "backlog_every_s": 3600, "count": 2, "every_s": 60}
    data = {
        "household": "Two cuffs",
        "devices": [
            {"type": "blood_pressure_cuff", "address": CUFF, "schedule": schedule},
            {
                "type": "blood_pressure_cuff",
                "address": "F0:00:00:00:00:02",
                "name": "Other",
                "schedule": schedule,
            },
        ],
    }
    scenario = parse_scenario(data, "test.toml")
    async with asyncio.timeout(30):
        first = await _run_on_a_manual_clock(scenario)
        again = await _run_on_a_manual_clock(scenario)
    assert first == again
    cuff = [event for name, event in first if name == "VB Cuff"]
    assert [kind for kind, _, _ in cuff] == ["stored"] * 3 + ["started"] + ["stored"] * 2
    hour = dt.timedelta(hours=1)
    times = [at for kind, at, _ in cuff if kind == "stored"]
    assert times == [T0 - 3 * hour, T0 - 2 * hour, T0 - hour, T0, T0 + dt.timedelta(seconds=60)]
    readings = [reading for kind, _, reading in cuff if kind == "stored"]
    assert all(isinstance(reading, BloodPressureMeasurement) for reading in readings)
    assert [reading.timestamp.timestamp for reading in readings] == times
    other = [reading for name, (kind, _, reading) in first if name == "Other" and kind == "stored"]
    # Seeded with the scenario seed plus its index, the second cuff measures another day.
    assert [r.systolic for r in other] != [r.systolic for r in readings]


@pytest.mark.asyncio
async def test_a_scale_weighs_its_users_in_turn_and_knows_their_consent_codes():
    scenario = load_scenario(bundled_scenarios()["multi_user_household"])
    scale = scenario.devices[0]
    # The bundled schedule has no end: run four of its measurements after the backlog.
    bounded = scale.schedule.model_copy(update={"forever": False, "count": 4})
    scale_only = scenario.model_copy(
        update={"devices": [scale.model_copy(update={"schedule": bounded})]}
    )
    readings: list[ScaleReading] = []
    async with asyncio.timeout(30):
        [member] = build_household(scale_only, Radio(seed=1), clock=ManualClock(T0))
        assert isinstance(member.device, WeightScale)
        assert member.device.users.consent_codes == {0: 1111, 1: 2222, 2: 3333}
        try:
            await run_device(
                member,
                lambda _, activity: (
                    readings.append(activity.reading) if activity.kind == "stored" else None
                ),
            )
        finally:
            await member.device.stop()
    # Three users from yesterday's backlog, then the turn goes on: a guest, then the family.
    assert [reading.user_id for reading in readings] == [0, 1, 2, 255, 0, 1, 2]
    assert readings[0].body_composition is not None
    assert readings[3].weight.bmi is None


# -- run and attach ----------------------------------------------------------------------------


def test_run_single_cuff_prints_json_lines_of_what_the_cuff_does():
    completed = subprocess.run(  # noqa: S603 - our own CLI with a fixed interpreter
        _cli("run", "single_cuff", "--duration", "2", "--json", "--seed", "11"),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Single cuff (seed 11): VB Cuff" in completed.stderr
    assert "Traceback" not in completed.stderr
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    assert events[0]["event"] == "started"
    stored = [event for event in events if event["event"] == "stored"]
    assert stored, completed.stdout
    for event in stored:
        assert event["device"] == "VB Cuff"
        assert event["address"] == CUFF
        assert event["characteristic"] == "Blood Pressure Measurement"
        assert event["uuid"] == "0x2A35"
        decoded = device_profiles.decode(0x2A35, bytes.fromhex(event["data"]))
        assert isinstance(decoded, BloodPressureMeasurement)
        assert device_profiles.as_dict(decoded) == event["value"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("unix-client:/tmp/x.sock", "cannot serve the radio on 'unix-client:/tmp/x.sock'"),
        ("unix-server:/nonexistent-vitalbridge/x.sock", "Cannot serve the radio on"),
    ],
)
def test_run_with_a_socket_it_cannot_serve_says_so(spec, message):
    result = runner.invoke(app, ["run", "single_cuff", "--expose", spec, "--duration", "0"])
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_run_of_a_broken_scenario_exits_1_with_the_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('household = "x"\ndevices = []\n', encoding="utf-8")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}: devices: list should have at least 1 item")
    assert "write each device as a [[devices]] table" in result.stderr


@pytest.mark.parametrize(
    "transport",
    ["serial:{tmp}/no-such-tty", "unix:{tmp}/nobody.sock", "bogus:0"],
)
def test_attach_to_a_transport_that_cannot_be_opened_says_what_to_check(transport, tmp_path):
    spec = transport.format(tmp=tmp_path)
    result = runner.invoke(app, ["attach", "blood_pressure_cuff", "--transport", spec])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Cannot open the HCI transport {spec!r} (")
    assert "check that the controller is plugged in" in result.stderr
    assert "Traceback" not in result.output


def test_attach_an_unknown_device_type_lists_the_types():
    result = runner.invoke(app, ["attach", "toaster", "--transport", "usb:0"])
    assert result.exit_code == 1
    assert result.stderr.startswith("TYPE: 'toaster' is not a device type; use one of: ")


async def _line_with(stream: asyncio.StreamReader, *needles: str) -> str:
    """Read lines until one holds every needle (the caller bounds the wait)."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"the simulator's output ended before a line with {needles}")
        if all(needle in line for needle in needles):
            return line


@pytest.mark.asyncio
async def test_run_expose_serves_the_cuff_to_a_bleak_hub_in_another_process():
    with tempfile.TemporaryDirectory(prefix="vb-sim-") as directory:
        socket_path = f"{directory}/hci.sock"
        process = await asyncio.create_subprocess_exec(
            *_cli("run", "single_cuff", "--expose", f"unix-server:{socket_path}"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(SUBPROCESS_TIMEOUT_S):
                assert process.stdout is not None
                line = await _line_with(process.stdout, "VITALBRIDGE_BUMBLE_HCI=")
                client_spec = line.strip().partition("=")[2]
                assert client_spec == f"unix:{socket_path}"
                async with use_hci(client_spec, AdapterSettings(connect_timeout_s=5.0)):
                    found = await BleakScanner.find_device_by_address(
                        CUFF, timeout=10, backend=BumbleScanner
                    )
                    assert found is not None
                    assert found.name == "VB Cuff"
                    received: asyncio.Queue[bytes] = asyncio.Queue()
                    async with BleakClient(found, backend=BumbleClient) as client:
                        await client.start_notify(
                            BPM_UUID, lambda _, data: received.put_nowait(bytes(data))
                        )
                        data = await received.get()
                # The hub decodes what the cuff sent; the CLI printed the same indication.
                reading = device_profiles.decode(0x2A35, data)
                assert isinstance(reading, BloodPressureMeasurement)
                await _line_with(process.stdout, "sent", "indicate Blood Pressure Measurement")
                process.terminate()
                _, err = await process.communicate()
            assert process.returncode == 0, err.decode()
            assert "Stopped:" in err.decode()
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        # The simulator removed its socket file on the way out.
        assert not await asyncio.to_thread(Path(socket_path).exists)
