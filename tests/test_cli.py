"""The `vitalbridge` command: help, config check, and the daemon queries against a fake daemon.

The fake daemon is the real control server (`serve_control`) with a handler returning documents
shaped like `Daemon.status()` and `Daemon.devices()`; the CLI runs in a worker thread, as a
separate process would, while the server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from gateway import cli
from gateway.cli import EXIT_CONFIG, app
from gateway.control import SOCKET_NAME, serve_control
from gateway.state import DeviceIdentity, DeviceState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from click.testing import Result

START_TIMEOUT_S = 5.0
PATIENTS = ("pt-7f3a9c21", "pt-b8e41d07")

CONFIG = """\
hub_id = "hub-0042"
state_dir = "{state_dir}"
timezone = "Europe/London"

[mqtt]
broker_url = "mqtts://broker.example.org:8883"
username = "hub-0042"
password_env = "VITALBRIDGE_TEST_UNUSED_PASSWORD"

[ble]
max_connections = 2

[[devices]]
id = "cuff-kitchen"
address = "C4:7C:8D:6A:12:34"
profile = "blood_pressure"
name = "kitchen cuff"
patient = "pt-7f3a9c21"
pairing = "just_works"

[[devices]]
id = "scale-bathroom"
address = "D0:2B:20:9E:56:78"
profile = "weight_scale"
patients = {{ 1 = "pt-7f3a9c21", 2 = "pt-b8e41d07" }}
consent_codes = {{ 1 = 4821, 2 = 1937 }}
pairing = "passkey"
"""

# (arguments, the function whose docstring the help must show)
COMMANDS: list[tuple[list[str], Callable[..., object]]] = [
    (["run"], cli.run),
    (["demo"], cli.demo),
    (["status"], cli.status),
    (["devices"], cli.devices),
    (["pairing", "open"], cli.pairing_open),
    (["pairing", "close"], cli.pairing_close),
    (["config", "check"], cli.config_check),
]
READS_CONFIG = [args for args, _ in COMMANDS if args != ["demo"]]


@pytest.fixture(autouse=True)
def no_environment_overrides(monkeypatch):
    """The settings under test come from the file; the developer's environment stays out."""
    for name in list(os.environ):
        if name.upper().startswith("VITALBRIDGE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Short, under /tmp: the control socket lives here and AF_UNIX paths are limited to 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="vbcli-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def config_file(tmp_path, state_dir) -> Path:
    file = tmp_path / "config.toml"
    file.write_text(CONFIG.format(state_dir=state_dir))
    return file


def invoke(*args: str) -> Result:
    """Run the CLI in this process and return its result (exit code, stdout, stderr)."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def plain(text: str) -> str:
    """Help text without the boxes the terminal renderer draws, on one line."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def fold(text: str) -> str:
    """A docstring on one line."""
    return " ".join(text.split())


# Help


def test_the_top_level_help_lists_every_command():
    result = invoke("--help")

    assert result.exit_code == 0
    text = plain(result.output)
    assert "Vitalbridge home hub" in text
    for name in ("run", "demo", "status", "devices", "config", "pairing"):
        assert re.search(rf"\b{name}\b", text), name


@pytest.mark.parametrize(("args", "function"), COMMANDS, ids=[" ".join(a) for a, _ in COMMANDS])
def test_each_command_explains_itself(args, function):
    result = invoke(*args, "--help")

    assert result.exit_code == 0
    text = plain(result.output)
    assert f"Usage: vitalbridge {' '.join(args)}" in text
    docstring = inspect.getdoc(function)
    assert docstring
    assert fold(docstring) in text


@pytest.mark.parametrize("args", READS_CONFIG, ids=[" ".join(a) for a in READS_CONFIG])
def test_each_command_that_reads_the_configuration_takes_config(args):
    text = plain(invoke(*args, "--help").output)

    assert "--config" in text
    assert "VITALBRIDGE_CONFIG" in text
    assert "/etc/vitalbridge/config.toml" in text


@pytest.mark.parametrize("group", ["config", "pairing"])
def test_each_group_explains_itself(group):
    result = invoke(group, "--help")

    assert result.exit_code == 0
    text = plain(result.output)
    assert f"Usage: vitalbridge {group}" in text
    assert {"config": "check", "pairing": "open"}[group] in text


@pytest.mark.parametrize("command", ["status", "devices"])
def test_the_queries_offer_json(command):
    assert "--json" in plain(invoke(command, "--help").output)


# config check


def test_config_check_of_a_good_file_says_ok_and_names_the_hub(config_file):
    result = invoke("config", "check", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"{config_file}: OK: hub hub-0042, 2 device(s), broker mqtts://broker.example.org:8883"
    )


def test_config_check_finds_the_file_through_the_environment(config_file, monkeypatch):
    monkeypatch.setenv("VITALBRIDGE_CONFIG", str(config_file))

    result = invoke("config", "check")

    assert result.exit_code == 0, result.output
    assert "OK: hub hub-0042" in result.stdout


def test_config_check_show_prints_the_configuration_without_patient_references(config_file):
    result = invoke("config", "check", "--config", str(config_file), "--show")

    assert result.exit_code == 0, result.output
    shown, _, last = result.stdout.rstrip("\n").rpartition("\n")
    assert "OK: hub hub-0042" in last
    document = json.loads(shown)
    assert document["hub_id"] == "hub-0042"
    assert [device["id"] for device in document["devices"]] == ["cuff-kitchen", "scale-bathroom"]
    assert document["devices"][1]["patients"] == {"count": 2, "user_indexes": [1, 2]}
    for patient in PATIENTS:
        assert patient not in result.output
    for code in ("4821", "1937"):
        assert code not in result.output


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (('hub_id = "hub-0042"', 'hub_id = "hub 0042"'), "hub_id"),
        (("max_connections = 2", 'max_connections = "two"'), "ble.max_connections"),
        (('profile = "weight_scale"', 'profile = "scales"'), "devices.1.profile"),
        (("[ble]", "[ble]\nmax_conections = 2"), "ble.max_conections"),
        (('timezone = "Europe/London"', 'timezone = "Europe/Londn"'), "timezone"),
    ],
    ids=["bad-hub-id", "not-a-number", "unknown-profile", "misspelt-setting", "unknown-zone"],
)
def test_config_check_of_a_bad_file_exits_78_and_names_the_field(config_file, change, field):
    old, new = change
    text = config_file.read_text()
    assert old in text
    config_file.write_text(text.replace(old, new, 1))

    result = invoke("config", "check", "--config", str(config_file))

    assert result.exit_code == EXIT_CONFIG == 78
    assert result.stdout == ""
    assert result.stderr.startswith("Configuration error:")
    assert re.search(rf"^\s+{re.escape(field)}:", result.stderr, re.MULTILINE), result.stderr
    for patient in PATIENTS:
        assert patient not in result.stderr


def test_config_check_of_a_file_that_is_not_toml_exits_78(config_file):
    config_file.write_text("hub_id = \n")

    result = invoke("config", "check", "--config", str(config_file))

    assert result.exit_code == 78
    assert "not valid TOML" in result.stderr


def test_config_check_of_a_missing_file_exits_78_and_says_what_to_do(tmp_path):
    missing = tmp_path / "nowhere.toml"

    result = invoke("config", "check", "--config", str(missing))

    assert result.exit_code == 78
    assert str(missing) in result.stderr
    assert "does not exist" in result.stderr
    assert "--config" in result.stderr


@pytest.mark.parametrize("command", [["status"], ["devices"], ["pairing", "open"]])
def test_queries_of_a_missing_configuration_exit_78(tmp_path, command):
    result = invoke(*command, "--config", str(tmp_path / "nowhere.toml"))

    assert result.exit_code == 78


# No daemon


@pytest.mark.parametrize(
    "command",
    [["status"], ["status", "--json"], ["devices"], ["pairing", "open"], ["pairing", "close"]],
    ids=["status", "status-json", "devices", "pairing-open", "pairing-close"],
)
def test_queries_without_a_running_daemon_exit_1_and_say_how_to_start_it(config_file, command):
    result = invoke(*command, "--config", str(config_file))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "the daemon is not running" in result.stderr
    assert "systemctl start vitalbridge" in result.stderr


# Against a fake daemon

NOW = dt.datetime(2024, 3, 5, 9, 0, tzinfo=dt.UTC)


def status_document(
    *,
    alarms: list[str],
    window: int | None,
    connected: list[str] | None = None,
    last_publish_at: str | None = "2024-03-05T08:59:58+00:00",
    depth: int = 3,
    oldest_measured_at: str | None = "2024-03-05T08:41:00+00:00",
) -> dict[str, object]:
    """A hub status as `Daemon.status()` builds it."""
    return {
        "version": "0.1.0",
        "hub_id": "hub-0042",
        "started_at": (NOW - dt.timedelta(hours=1)).isoformat(),
        "uptime_s": 3600,
        "adapter": {"state": "scanning", "restarts": 0},
        "devices": {
            "provisioned": 2,
            "seen": 2,
            "connected": ["cuff-kitchen"] if connected is None else connected,
            "unprovisioned_seen": 1,
        },
        "pairing_window_s": window,
        "outbox": {
            "depth": depth,
            "bytes": 2048,
            "in_flight": 1,
            "oldest_measured_at": oldest_measured_at,
            "oldest_enqueued_at": "2024-03-05T08:42:10+00:00",
            "dropped": 0,
            "last_error": None,
        },
        "uplink": {
            "state": "connected",
            "last_publish_at": last_publish_at,
            "published": 117,
        },
        "counters": {"sessions": 14, "readings": 117},
        "alarms": alarms,
    }


def devices_document() -> list[dict[str, object]]:
    """Provisioned devices as `Daemon.devices()` builds them (state document plus config)."""
    cuff = DeviceState(
        device_id="cuff-kitchen",
        identity=DeviceIdentity(manufacturer="Acme Medical", model="BP-200"),
        battery_level=87,
        rssi=-64,
        last_seen=NOW - dt.timedelta(minutes=2),
        last_connected=NOW - dt.timedelta(minutes=2),
        last_reading_at=NOW - dt.timedelta(minutes=3),
        readings=40,
        sessions=12,
    ).as_document()
    cuff.update(
        name="kitchen cuff",
        address="C4:7C:8D:6A:12:34",
        profile="blood_pressure",
        configured=True,
        connected=True,
        users=None,
    )
    scale = DeviceState(
        device_id="scale-bathroom",
        failures=3,
        last_error="the device did not answer within 20 s",
    ).as_document()
    scale.update(
        name=None,
        address="D0:2B:20:9E:56:78",
        profile="weight_scale",
        configured=True,
        connected=False,
        users=[1, 2],
    )
    return [cuff, scale]


class FakeDaemon:
    """Answers control requests with canned documents, as `Daemon.handle` would."""

    def __init__(self, status: dict[str, object]) -> None:
        self.status = status
        self.calls: list[tuple[str, dict[str, object]]] = []

    async def handle(self, command: str, args: dict[str, object]) -> object:
        self.calls.append((command, args))
        match command:
            case "status":
                return self.status
            case "devices":
                return devices_document()
            case "pair":
                minutes = args.get("minutes")
                if not isinstance(minutes, int | float) or not 0 < minutes <= 60:
                    raise ValueError("minutes must be a number from 1 to 60")
                return {"pairing_window_s": round(float(minutes) * 60)}
            case "close_pairing":
                return {"pairing_window_s": None}
        raise ValueError(f"unknown command {command!r}")


@contextlib.asynccontextmanager
async def running(state_dir: Path, daemon: FakeDaemon) -> AsyncIterator[None]:
    """Serve the fake daemon on the state directory's control socket for the block."""
    path = state_dir / SOCKET_NAME
    task = asyncio.create_task(serve_control(path, daemon.handle), name="fake-daemon-control")
    try:
        # bind() and listen() happen in one step of the server task: a socket file at the path
        # means it accepts connections.
        async with asyncio.timeout(START_TIMEOUT_S):
            while not path.is_socket():
                assert not task.done(), task
                await asyncio.sleep(0)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def invoke_in_thread(*args: str) -> Result:
    """Run the CLI off the loop: its own asyncio.run talks to the server on this loop."""
    return await asyncio.to_thread(invoke, *args)


@pytest.mark.asyncio
async def test_status_prints_a_summary(config_file, state_dir):
    daemon = FakeDaemon(status_document(alarms=[], window=None))
    async with running(state_dir, daemon):
        result = await invoke_in_thread("status", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Hub hub-0042 (version 0.1.0), up 3600 s",
        "Uplink: connected, last publish 2024-03-05T08:59:58+00:00",
        "Outbox: 3 waiting, oldest 2024-03-05T08:41:00+00:00",
        "Devices: 2 provisioned, connected now: cuff-kitchen",
        "Alarms: none",
    ]
    assert daemon.calls == [("status", {})]


@pytest.mark.asyncio
async def test_status_shows_alarms_and_an_open_pairing_window(config_file, state_dir):
    document = status_document(
        alarms=["broker_unreachable", "outbox_full"],
        window=240,
        connected=[],
        last_publish_at=None,
        depth=0,
        oldest_measured_at=None,
    )
    async with running(state_dir, FakeDaemon(document)):
        result = await invoke_in_thread("status", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == "Uplink: connected, last publish never"
    assert lines[2] == "Outbox: 0 waiting, oldest -"
    assert lines[3] == "Devices: 2 provisioned, connected now: none"
    assert lines[4] == "Alarms: broker_unreachable, outbox_full"
    assert lines[5] == "Pairing window open for 240 more seconds"


@pytest.mark.asyncio
async def test_status_json_prints_the_daemons_document(config_file, state_dir):
    document = status_document(alarms=["broker_unreachable"], window=60)
    async with running(state_dir, FakeDaemon(document)):
        result = await invoke_in_thread("status", "--json", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == document


@pytest.mark.asyncio
async def test_devices_prints_a_table(config_file, state_dir):
    daemon = FakeDaemon(status_document(alarms=[], window=None))
    async with running(state_dir, daemon):
        result = await invoke_in_thread("devices", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["DEVICE", "PROFILE", "BATTERY", "LAST", "SEEN", "LAST", "READING"]
    assert lines[1].split() == [
        "cuff-kitchen",
        "blood_pressure",
        "87%",
        "2024-03-05T08:58:00Z",
        "2024-03-05T08:57:00Z",
    ]
    assert lines[2].split() == ["scale-bathroom", "weight_scale", "-", "never", "never"]
    assert lines[3].split() == [
        "last",
        "problem:",
        "the",
        "device",
        "did",
        "not",
        "answer",
        "within",
        "20",
        "s",
    ]
    assert len(lines) == 4
    # The columns line up under the header.
    assert lines[1].index("blood_pressure") == lines[0].index("PROFILE")
    assert daemon.calls == [("devices", {})]


@pytest.mark.asyncio
async def test_devices_json_prints_the_daemons_document(config_file, state_dir):
    async with running(state_dir, FakeDaemon(status_document(alarms=[], window=None))):
        result = await invoke_in_thread("devices", "--json", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == devices_document()
    for patient in PATIENTS:
        assert patient not in result.stdout


@pytest.mark.asyncio
async def test_pairing_open_asks_the_daemon_and_says_what_to_do(config_file, state_dir):
    daemon = FakeDaemon(status_document(alarms=[], window=None))
    async with running(state_dir, daemon):
        result = await invoke_in_thread(
            "pairing",
            "open",
            "--minutes",
            "2",
            "--profile",
            "weight_scale",
            "--config",
            str(config_file),
        )

    assert result.exit_code == 0, result.output
    assert daemon.calls == [("pair", {"minutes": 2.0, "profile": "weight_scale"})]
    assert "accepts new health devices for 2 minutes" in result.stdout
    assert "vitalbridge devices" in result.stdout


@pytest.mark.asyncio
async def test_pairing_open_defaults_to_five_minutes_for_any_profile(config_file, state_dir):
    daemon = FakeDaemon(status_document(alarms=[], window=None))
    async with running(state_dir, daemon):
        result = await invoke_in_thread("pairing", "open", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    assert daemon.calls == [("pair", {"minutes": 5.0})]
    assert "for 5 minutes" in result.stdout


@pytest.mark.asyncio
async def test_a_refused_pairing_exits_1_with_the_daemons_reason(config_file, state_dir):
    daemon = FakeDaemon(status_document(alarms=[], window=None))
    async with running(state_dir, daemon):
        result = await invoke_in_thread(
            "pairing", "open", "--minutes", "90", "--config", str(config_file)
        )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "the daemon refused 'pair': minutes must be a number from 1 to 60"
    )


@pytest.mark.asyncio
async def test_pairing_close_asks_the_daemon(config_file, state_dir):
    daemon = FakeDaemon(status_document(alarms=[], window=300))
    async with running(state_dir, daemon):
        result = await invoke_in_thread("pairing", "close", "--config", str(config_file))

    assert result.exit_code == 0, result.output
    assert daemon.calls == [("close_pairing", {})]
    assert result.stdout.strip() == "The hub no longer accepts new devices."
