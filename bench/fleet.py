"""How the daemon copes with a fleet: N simulated devices synced through it to a real mosquitto.

Everything runs as it does in a home, each part in its own process: mosquitto (started here on a
free loopback port with `gateway.localbroker.local_broker`, stopped by PID at the end), the
simulated devices (`vitalbridge-sim run SCENARIO --expose unix-server:SOCK`, one process serving
the simulated radio) and the real daemon (`vitalbridge run --config FILE`, the simulated radio
as its BLE backend). A subscriber in this process plays the monitoring backend.

- sync: N devices (the six device types that keep readings, round-robin), each holding BACKLOG
  readings taken while no hub listened, advertising every 20 ms (the simulators' default). The
  daemon starts with all N provisioned and `ble.max_connections` at 5 (a realistic adapter) or
  3 (the default). Measured: the time from starting the daemon until the subscriber holds every
  expected reading (each a unique ``reading_id``), readings/s over that time, readings lost
  (expected minus received by the row's time limit: a reading still on its device then never
  reached the backend in time), duplicate deliveries, the daemon's peak RSS and mean CPU, and
  the simulators' CPU (they share the machine). The baseline, from the same run: the ideal time if
  sessions ran back to back in ``max_connections`` slots, i.e. the first connection's moment
  plus every device's session packed perfectly into the slots (total session time / slots, from
  the daemon's own log) less the last session's tail after its last reading; ``ideal/measured``
  near 1 means the slots and the session length, not the daemon, set the pace.
- idle, devices present: the same daemon for a further window after the sync, the N devices
  still advertising every 20 ms and each re-synced every 30 s (`RESYNC_AFTER_S`); RSS and CPU.
- idle, nothing advertising (the honest idle daemon): the daemon with the largest N provisioned
  and every device waiting for a button press that never comes, so the radio is silent; its RSS
  and CPU over the window after it has said ``online``.

CPU % is of one core (as top shows it): CPU seconds over wall seconds. RSS is sampled every
SAMPLE_S s with psutil; MB are 10^6 bytes. Targets: every reading of 50 devices arrives; idle
RSS <= 60 MB and idle CPU <= 0.5 % (judged on the nothing-advertising row).

Run: .venv/bin/python bench/fleet.py [--quick] [--output PATH] [--keep]; it writes
bench/results/fleet.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiomqtt
import psutil  # type: ignore[import-untyped]  # no stubs installed; bench/ is outside mypy's files

from gateway.localbroker import find_mosquitto, local_broker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from gateway.localbroker import LocalBroker

RESULTS: Final = Path(__file__).resolve().parent / "results" / "fleet.json"
BACKLOG: Final = 5
"""Readings each device took while no hub listened, to be fetched on the first connection."""
SAMPLE_S: Final = 0.5
START_LIMIT_S: Final = 60.0
STOP_LIMIT_S: Final = 30.0
SETTLE_S: Final = 2.0
"""After the last expected reading: how long to keep listening for duplicates before idling."""
TARGET_DEVICES: Final = 50
TARGET_IDLE_RSS_MB: Final = 60.0
TARGET_IDLE_CPU_PERCENT: Final = 0.5
CONSENT_CODE: Final = 4321
"""The UDS consent code the scales registered user 0 with, and the hub was provisioned with."""


@dataclass(frozen=True, slots=True)
class Kind:
    """A simulated device type, the daemon profile it is provisioned with, and its users."""

    sim_type: str
    profile: str
    multi_user: bool = False
    readings_per_measurement: int = 1
    """The body composition scale sends a Weight Measurement beside each Body Composition
    Measurement, and the hub publishes both (kinds body_composition and weight)."""


# The device types that keep readings for a hub (the continuous oximeter and the heart-rate
# strap only stream, so they have no backlog to sync).
KINDS: Final = (
    Kind("blood_pressure_cuff", "blood_pressure"),
    Kind("spot_check_oximeter", "pulse_oximeter"),
    Kind("weight_scale", "weight_scale", multi_user=True),
    Kind("thermometer", "health_thermometer"),
    Kind("glucose_meter", "glucose"),
    Kind("body_composition_scale", "body_composition", multi_user=True, readings_per_measurement=2),
)


@dataclass(frozen=True, slots=True)
class Plan:
    """The fleets, slot counts and windows of one run (full or quick)."""

    sync_rows: tuple[tuple[int, int], ...]
    """(devices, max_connections) per sync row."""
    idle_after_sync: tuple[int, ...]
    """max_connections values whose rows are followed by an idle window with devices present."""
    idle_window_s: float
    quiet_devices: int
    """Devices provisioned (none advertising) for the nothing-advertising idle row."""
    quiet_settle_s: float
    """After the daemon said online, before the nothing-advertising window opens."""


FULL: Final = Plan(
    sync_rows=((10, 5), (25, 5), (50, 5), (100, 5), (50, 3)),
    idle_after_sync=(5,),
    idle_window_s=60.0,
    quiet_devices=100,
    quiet_settle_s=5.0,
)
QUICK: Final = Plan(
    sync_rows=((len(KINDS), 3),),
    idle_after_sync=(3,),
    idle_window_s=3.0,
    quiet_devices=len(KINDS),
    quiet_settle_s=1.0,
)


def sync_limit_s(devices: int, max_connections: int) -> float:
    """Return how long a sync row may take before it is reported as incomplete."""
    return 30.0 + 8.0 * math.ceil(devices / max_connections)


def address(index: int) -> str:
    """Return device `index`'s random static address (index from 1: never all zero)."""
    return f"F0:00:00:0F:{index >> 8:02X}:{index & 0xFF:02X}"


def device_id(index: int, kind: Kind) -> str:
    """Return the hub's id for device `index` (from 1)."""
    return f"{kind.profile.replace('_', '-')}-{index:03d}"


def fleet(count: int) -> list[tuple[int, Kind]]:
    """Return `count` devices: (index from 1, kind), the kinds round-robin."""
    return [(index, KINDS[(index - 1) % len(KINDS)]) for index in range(1, count + 1)]


# -- files the processes read ---------------------------------------------------------------------


def scenario_toml(count: int, *, backlog: int, advertising: bool) -> str:
    """Return a scenario of `count` devices holding `backlog` readings each and measuring no more.

    ``advertising`` false: every device waits for a button press that never comes (a silent
    radio); true: every device advertises continuously (every 20 ms, the default).
    """
    lines = ['household = "Fleet benchmark"', "seed = 7"]
    for index, kind in fleet(count):
        lines += [
            "",
            "[[devices]]",
            f'type = "{kind.sim_type}"',
            f'address = "{address(index)}"',
            f'name = "Fleet {index:03d}"',
        ]
        if kind.multi_user:
            lines.append(f"registered_users = [{CONSENT_CODE}]")
        if not advertising:
            lines += ["", "[devices.behaviours]", "advertise_on_button_press = true"]
        lines += ["", "[devices.schedule]", f"backlog = {backlog}", "count = 0"]
        if kind.multi_user:
            lines.append("users = [0]")
    return "\n".join(lines) + "\n"


def daemon_toml(
    *,
    hub_id: str,
    work: Path,
    broker: LocalBroker,
    hci_spec: str | None,
    count: int,
    max_conn: int,
) -> str:
    """Return the daemon's configuration: defaults but for the backend, slots and devices.

    `hci_spec` None gives the production backend (bleak on BlueZ) instead of the simulated radio.
    """
    lines = [
        f'hub_id = "{hub_id}"',
        f'state_dir = "{work / "state"}"',
        'timezone = "UTC"',
        'hub_clock = "trusted"',
        "",
        "[mqtt]",
        f'broker_url = "{broker.url}"',
        f'protocol = "{broker.protocol}"',
        "",
        "[ble]",
        f"max_connections = {max_conn}",
        *(
            ['backend = "bleak"']
            if hci_spec is None
            else [
                'backend = "simulators.bleak_backend"',
                "",
                "[ble.backend_options]",
                f'hci_spec = "{hci_spec}"',
            ]
        ),
        "",
        "[logging]",
        'level = "info"',
        'format = "json"',
    ]
    for index, kind in fleet(count):
        lines += [
            "",
            "[[devices]]",
            f'id = "{device_id(index, kind)}"',
            f'address = "{address(index)}"',
            f'profile = "{kind.profile}"',
        ]
        patient = f"patient-{index:04d}"
        if kind.multi_user:
            lines.append(f'patients = {{ 0 = "{patient}" }}')
            lines.append(f"consent_codes = {{ 0 = {CONSENT_CODE} }}")
        else:
            lines.append(f'patient = "{patient}"')
    return "\n".join(lines) + "\n"


# -- processes ----------------------------------------------------------------------------------


def _command(name: str, module: str) -> list[str]:
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


@contextlib.asynccontextmanager
async def child(
    argv: list[str], log_file: Path, *, stdout_pipe: bool = False
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a child process for the block; SIGTERM it on the way out (SIGKILL if it lingers)."""
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            yield process
        finally:
            await stop(process)


async def stop(process: asyncio.subprocess.Process) -> int:
    """SIGTERM the process, as systemd would, and return its exit code (SIGKILL after a limit)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_LIMIT_S):
                return await process.wait()
        except TimeoutError:
            process.kill()
    return await process.wait()


@dataclass(slots=True)
class Simulators:
    """What the simulators' JSON lines said: where the radio is, and how many devices started."""

    expected_started: int
    hci_spec: asyncio.Future[str]
    all_started: asyncio.Event = field(default_factory=asyncio.Event)
    started: int = 0
    stored: int = 0

    async def follow(self, stream: asyncio.StreamReader | None) -> None:
        """Read every line (so the pipe never fills and blocks them) and note the events."""
        if stream is None:
            return
        while line := await stream.readline():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            match event.get("event"):
                case "exposed" if not self.hci_spec.done():
                    self.hci_spec.set_result(str(event["client"]))
                case "started":
                    self.started += 1
                    if self.started >= self.expected_started:
                        self.all_started.set()
                case "stored":
                    self.stored += 1


@dataclass(slots=True)
class Sample:
    """One psutil sample of a process: when, resident set size, CPU seconds so far."""

    at: float
    rss: int
    cpu_s: float


class Sampler:
    """Samples processes' RSS and CPU every SAMPLE_S s, for figures over any window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: dict[str, list[Sample]] = {name: [] for name in pids}

    def sample(self) -> float:
        """Take one sample of every process now; return the moment."""
        now = time.monotonic()
        for name, process in self._processes.items():
            with contextlib.suppress(psutil.Error):
                with process.oneshot():
                    times = process.cpu_times()
                    rss = process.memory_info().rss
                self.samples[name].append(Sample(now, rss, times.user + times.system))
        return now

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)

    def window(self, name: str, start: float, end: float) -> dict[str, float | None]:
        """Peak and last RSS (MB) and mean CPU % of one core between `start` and `end`."""
        inside = [s for s in self.samples[name] if start <= s.at <= end]
        if len(inside) < 2:
            return {"rss_peak_mb": None, "rss_end_mb": None, "cpu_percent": None}
        first, last = inside[0], inside[-1]
        return {
            "rss_peak_mb": round(max(s.rss for s in inside) / 1e6, 1),
            "rss_end_mb": round(last.rss / 1e6, 1),
            "cpu_percent": round(100 * (last.cpu_s - first.cpu_s) / (last.at - first.at), 2),
        }


@dataclass(slots=True)
class Backend:
    """The monitoring backend's view: unique readings per device, duplicates, hub status."""

    expected: dict[str, int]
    per_device: dict[str, int] = field(default_factory=dict)
    per_kind: dict[str, int] = field(default_factory=dict)
    reading_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    unexpected: int = 0
    first_at: float | None = None
    last_at: float | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    online: asyncio.Event = field(default_factory=asyncio.Event)
    _missing: int = 0

    def __post_init__(self) -> None:
        self._missing = sum(self.expected.values())
        if self._missing == 0:
            self.complete.set()

    @property
    def received(self) -> int:
        """Unique readings received."""
        return len(self.reading_ids)

    async def listen(self, client: aiomqtt.Client, hub_id: str) -> None:
        """Note every message on the hub's topics until cancelled."""
        readings = f"hubs/{hub_id}/readings/"
        status = f"hubs/{hub_id}/status"
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                document = json.loads(payload)
            except json.JSONDecodeError:
                continue
            if not isinstance(document, dict):
                continue
            if topic.startswith(readings):
                self._reading(document)
            elif topic == status and document.get("state") == "online":
                self.online.set()

    def _reading(self, document: dict[str, Any]) -> None:
        reading_id = str(document.get("reading_id"))
        if reading_id in self.reading_ids:
            self.duplicates += 1
            return
        now = time.monotonic()
        self.reading_ids.add(reading_id)
        self.first_at = self.first_at or now
        self.last_at = now
        kind = str(document.get("kind"))
        self.per_kind[kind] = self.per_kind.get(kind, 0) + 1
        device = document.get("device")
        source = str(device.get("id")) if isinstance(device, dict) else "?"
        got = self.per_device.get(source, 0) + 1
        self.per_device[source] = got
        if source not in self.expected:
            self.unexpected += 1
        elif got <= self.expected[source]:
            self._missing -= 1
            if self._missing == 0:
                self.complete.set()


@contextlib.asynccontextmanager
async def backend(
    broker: LocalBroker, hub_id: str, expected: dict[str, int]
) -> AsyncIterator[Backend]:
    """Subscribe to the hub's topics (QoS 1) before the daemon starts; yield what arrives."""
    version = aiomqtt.ProtocolVersion.V5 if broker.protocol == "5" else aiomqtt.ProtocolVersion.V311
    seen = Backend(expected)
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"{hub_id}-backend", protocol=version
    ) as client:
        await client.subscribe(f"hubs/{hub_id}/#", qos=1)
        listener = asyncio.create_task(seen.listen(client, hub_id), name="backend")
        try:
            yield seen
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


@contextlib.asynccontextmanager
async def simulators(
    work: Path, scenario: str, count: int
) -> AsyncIterator[tuple[Simulators, int]]:
    """Run the simulators on the scenario text until they all started; yield them and their PID."""
    scenario_file = work / "scenario.toml"
    scenario_file.write_text(scenario, encoding="utf-8")
    argv = [
        *_command("vitalbridge-sim", "simulators.cli"),
        "run",
        str(scenario_file),
        "--json",
        "--expose",
        f"unix-server:{work / 'radio.sock'}",
    ]
    sim_log = work / "simulators.log"
    async with child(argv, sim_log, stdout_pipe=True) as process:
        sims = Simulators(count, asyncio.get_running_loop().create_future())
        follower = asyncio.create_task(sims.follow(process.stdout), name="simulator-output")
        try:
            try:
                async with asyncio.timeout(START_LIMIT_S):
                    await sims.hci_spec
                    await sims.all_started.wait()
            except TimeoutError:
                msg = f"the simulators did not start {count} devices; see {sim_log}"
                raise RuntimeError(msg) from None
            yield sims, process.pid
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower


def _daemon_argv(config_file: Path, profile: Path | None) -> list[str]:
    if profile is None:
        return [*_command("vitalbridge", "gateway.cli"), "run", "--config", str(config_file)]
    return [
        *(sys.executable, "-m", "cProfile", "-o", str(profile)),
        *("-m", "gateway.cli", "run", "--config", str(config_file)),
    ]


# -- the daemon's log ---------------------------------------------------------------------------


def read_log(log_file: Path) -> list[dict[str, Any]]:
    """Return the daemon's JSON log lines as dicts (lines that are not JSON are skipped)."""
    events: list[dict[str, Any]] = []
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        start = line.find("{")
        if start < 0:
            continue
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(line[start:])
            if isinstance(event, dict):
                events.append(event)
    return events


def _seconds(stamp: object) -> float | None:
    if not isinstance(stamp, str):
        return None
    with contextlib.suppress(ValueError):
        return dt.datetime.fromisoformat(stamp).timestamp()
    return None


def log_summary(events: list[dict[str, Any]], spawned_at: float) -> dict[str, Any]:
    """Sessions, their lengths and warning/error events from the daemon's log.

    `spawned_at` is the wall-clock moment the daemon was started (the log's stamps are UTC).
    Lengths are of each device's first finished session (the one that fetched its backlog, not
    the re-syncs of the idle window); its transfer runs from connecting to its last reading.
    """
    open_sessions: dict[str, list[float | None]] = {}
    connections: dict[str, int] = {}
    lengths: dict[str, float] = {}
    transfers: dict[str, float] = {}
    first_connect: float | None = None
    started: float | None = None
    problems: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    finished = failed = stored = 0
    for event in events:
        name = event.get("event")
        at = _seconds(event.get("timestamp"))
        device = str(event.get("device_id"))
        if name == "daemon_started":
            started = at
        elif name == "device_connected" and at is not None:
            open_sessions[device] = [at, None]
            connections[device] = connections.get(device, 0) + 1
            first_connect = at if first_connect is None else min(first_connect, at)
        elif name == "reading_stored":
            stored += 1
            if device in open_sessions:
                open_sessions[device][1] = at
        elif name in {"session_finished", "session_failed"}:
            begin, last_reading = open_sessions.pop(device, [None, None])
            finished += name == "session_finished"
            failed += name == "session_failed"
            if name == "session_finished" and begin is not None and at is not None:
                lengths.setdefault(device, at - begin)
                if last_reading is not None:
                    transfers.setdefault(device, last_reading - begin)
        if event.get("level") in {"warning", "error", "critical"}:
            key = f"{event.get('level')}:{name}"
            problems[key] = problems.get(key, 0) + 1
            if len(examples) < 5:  # a few examples are enough to start from
                examples.append(event)
    return {
        "sessions_finished": finished,
        "sessions_failed": failed,
        "sessions_unfinished_at_stop": len(open_sessions),
        "devices_connected": len(connections),
        "most_connections_to_one_device": max(connections.values(), default=0),
        "readings_stored": stored,
        "session_s": _spread(list(lengths.values())),
        "session_total_s": round(sum(lengths.values()), 3),
        "transfer_s": _spread(list(transfers.values())),
        "started_after_spawn_s": None if started is None else round(started - spawned_at, 3),
        "first_connect_after_spawn_s": (
            None if first_connect is None else round(first_connect - spawned_at, 3)
        ),
        "warnings_and_errors": problems,
        "examples": examples,
    }


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


# -- rows ---------------------------------------------------------------------------------------


async def sync_row(
    work: Path, *, devices: int, max_conn: int, idle_s: float | None, profile: Path | None
) -> dict[str, Any]:
    """Sync `devices` devices through the daemon; then, if `idle_s`, let it idle with them."""
    hub_id = f"fleet-{devices}x{max_conn}"
    expected = {
        device_id(index, kind): BACKLOG * kind.readings_per_measurement
        for index, kind in fleet(devices)
    }
    row: dict[str, Any] = {"devices": devices, "max_connections": max_conn, "backlog": BACKLOG}
    async with (
        local_broker(work / "broker", prefer="mosquitto") as broker,
        simulators(work, scenario_toml(devices, backlog=BACKLOG, advertising=True), devices) as (
            sims,
            sim_pid,
        ),
        backend(broker, hub_id, expected) as seen,
    ):
        config_file = work / "config.toml"
        config_file.write_text(
            daemon_toml(
                hub_id=hub_id,
                work=work,
                broker=broker,
                hci_spec=await sims.hci_spec,
                count=devices,
                max_conn=max_conn,
            ),
            encoding="utf-8",
        )
        row["stored_by_simulators"] = sims.stored
        limit = sync_limit_s(devices, max_conn)
        async with child(_daemon_argv(config_file, profile), work / "daemon.log") as daemon:
            spawned_at = time.time()
            sampler = Sampler({"daemon": daemon.pid, "simulators": sim_pid})
            start = sampler.sample()
            sampling = asyncio.create_task(sampler.run(), name="sampler")
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(limit):
                        await seen.complete.wait()
                done = time.monotonic()
                complete = seen.complete.is_set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SETTLE_S):
                        await asyncio.Event().wait()  # listen on: duplicates come unasked
                sync_end = sampler.sample()
                received_sync = seen.received
                duplicates_sync = seen.duplicates
                per_device = dict(seen.per_device)
                per_kind = dict(seen.per_kind)
                idle: dict[str, Any] | None = None
                if idle_s is not None:
                    idle_start = sampler.sample()
                    await asyncio.sleep(idle_s)  # the measurement window itself
                    idle_end = sampler.sample()
                    idle = {
                        "window_s": idle_s,
                        "readings_during": seen.received - received_sync,
                        "duplicates_during": seen.duplicates - duplicates_sync,
                        "daemon": sampler.window("daemon", idle_start, idle_end),
                        "simulators": sampler.window("simulators", idle_start, idle_end),
                    }
            finally:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
            row["daemon_exit_code"] = await stop(daemon)
    total = sum(expected.values())
    last = seen.last_at if complete else done
    seconds = (last or done) - start
    summary = log_summary(read_log(work / "daemon.log"), spawned_at)
    ideal = _ideal_s(summary, max_conn)
    row.update(
        complete=complete,
        limit_s=limit,
        expected=total,
        received=received_sync,
        lost=sum(max(0, n - per_device.get(d, 0)) for d, n in expected.items()),
        duplicates=duplicates_sync,
        unexpected=seen.unexpected,
        short_devices=sorted(d for d, n in expected.items() if per_device.get(d, 0) < n),
        received_per_profile=_per_profile(per_device, devices),
        received_per_kind=per_kind,
        seconds=round(seconds, 3),
        first_reading_after_s=None if seen.first_at is None else round(seen.first_at - start, 3),
        readings_per_s=round(received_sync / seconds, 2) if seconds > 0 else None,
        ideal_s=ideal,
        ideal_over_measured=None if ideal is None else round(ideal / seconds, 3),
        daemon=sampler.window("daemon", start, sync_end),
        simulators=sampler.window("simulators", start, sync_end),
        idle=idle,
        log=summary,
    )
    return row


def _per_profile(per_device: dict[str, int], devices: int) -> dict[str, int]:
    totals: dict[str, int] = {}
    for index, kind in fleet(devices):
        got = per_device.get(device_id(index, kind))
        if got is not None:
            totals[kind.profile] = totals.get(kind.profile, 0) + got
    return totals


def _ideal_s(summary: dict[str, Any], max_conn: int) -> float | None:
    """Return the slots' pace, from this row's own log: sessions packed perfectly into the slots.

    The first connection, then every device's first session end to end across max_conn slots
    (total session time / slots; a session the stop cut short counts as a median one), less the
    tail of the last one after its last reading (a median session's quiet wait and hang-up).
    """
    session, transfer = summary["session_s"], summary["transfer_s"]
    first = summary["first_connect_after_spawn_s"]
    if session is None or transfer is None or first is None:
        return None
    median: float = session["median"]
    # Sessions cut short by the stop (the last round, 2 s after the last reading) count as median.
    total: float = summary["session_total_s"] + summary["sessions_unfinished_at_stop"] * median
    tail: float = median - transfer["median"]
    first_s: float = first
    return round(first_s + total / max_conn - tail, 3)


async def quiet_row(
    work: Path, *, devices: int, window_s: float, settle_s: float
) -> dict[str, Any]:
    """Measure the daemon with `devices` provisioned and nothing advertising (RSS and CPU)."""
    hub_id = f"fleet-quiet-{devices}"
    row: dict[str, Any] = {"devices": devices, "advertising": 0, "window_s": window_s}
    async with (
        local_broker(work / "broker", prefer="mosquitto") as broker,
        simulators(work, scenario_toml(devices, backlog=0, advertising=False), devices) as (
            sims,
            sim_pid,
        ),
        backend(broker, hub_id, {}) as seen,
    ):
        config_file = work / "config.toml"
        config_file.write_text(
            daemon_toml(
                hub_id=hub_id,
                work=work,
                broker=broker,
                hci_spec=await sims.hci_spec,
                count=devices,
                max_conn=5,
            ),
            encoding="utf-8",
        )
        spawned_at = time.time()
        windows = await idle_window(
            work,
            config_file,
            seen,
            others={"simulators": sim_pid},
            window_s=window_s,
            settle_s=settle_s,
        )
    row.update(
        windows,
        readings_during=seen.received,
        log=log_summary(read_log(work / "daemon.log"), spawned_at),
    )
    return row


async def idle_window(
    work: Path,
    config_file: Path,
    seen: Backend,
    *,
    others: dict[str, int],
    window_s: float,
    settle_s: float,
) -> dict[str, Any]:
    """Sample the daemon (and `others`) over one window once it is online and settled.

    Returns each process's figures over the window and the daemon's exit code after the stop.
    """
    async with child(_daemon_argv(config_file, None), work / "daemon.log") as daemon:
        sampler = Sampler({"daemon": daemon.pid, **others})
        sampling = asyncio.create_task(sampler.run(), name="sampler")
        try:
            async with asyncio.timeout(START_LIMIT_S):
                await seen.online.wait()
            await asyncio.sleep(settle_s)  # past start-up work (imports, first status)
            start = sampler.sample()
            await asyncio.sleep(window_s)  # the measurement window itself
            end = sampler.sample()
        finally:
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
        exit_code = await stop(daemon)
    figures = {name: sampler.window(name, start, end) for name in ("daemon", *others)}
    return {**figures, "daemon_exit_code": exit_code}


async def bluez_quiet_row(
    work: Path, *, devices: int, window_s: float, settle_s: float
) -> dict[str, Any]:
    """Measure the idle daemon as a hub runs it: the BlueZ backend, nothing simulated loaded.

    This machine has no bluetoothd: the scanner's start fails and is retried with backoff, so
    the row lacks what a live D-Bus connection to BlueZ would add (a few MB at most).
    """
    hub_id = f"fleet-bluez-{devices}"
    row: dict[str, Any] = {"devices": devices, "advertising": 0, "window_s": window_s}
    async with (
        local_broker(work / "broker", prefer="mosquitto") as broker,
        backend(broker, hub_id, {}) as seen,
    ):
        config_file = work / "config.toml"
        config_file.write_text(
            daemon_toml(
                hub_id=hub_id, work=work, broker=broker, hci_spec=None, count=devices, max_conn=5
            ),
            encoding="utf-8",
        )
        row.update(
            await idle_window(
                work, config_file, seen, others={}, window_s=window_s, settle_s=settle_s
            )
        )
    return row


async def run_row(
    name: str, measure: Callable[[Path], Awaitable[dict[str, Any]]], *, keep: bool
) -> dict[str, Any]:
    """Run one row in a fresh work directory; an error becomes the row's "error" entry."""
    work = Path(tempfile.mkdtemp(prefix=f"vitalbridge-fleet-{name}-"))
    failed = False
    try:
        row: dict[str, Any] = await measure(work)
    except Exception as exc:
        failed = True
        row = {"error": f"{type(exc).__name__}: {exc}"}
    bad = failed or row.get("lost") or row.get("daemon_exit_code")
    if keep or bad:
        row["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return row


# -- the report ---------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _met(ok: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[ok]


def verdicts(
    sync: list[dict[str, Any]], quiet: dict[str, Any], bluez: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return the targets, each met, missed or not measured, with the figure judged.

    The idle targets are judged on the simulated backend's idle daemon (`idle_rss_mb`,
    `idle_cpu_percent`) and, separately, on the production backend's (`*_bluez`).
    """
    target_rows = [r for r in sync if r.get("devices") == TARGET_DEVICES and "error" not in r]
    nothing_lost: bool | None = (
        all(r["complete"] and r["lost"] == 0 for r in target_rows) if target_rows else None
    )
    daemon = quiet.get("daemon") or {}
    rss, cpu = daemon.get("rss_peak_mb"), daemon.get("cpu_percent")
    bluez_daemon = (bluez or {}).get("daemon") or {}
    bluez_rss, bluez_cpu = bluez_daemon.get("rss_peak_mb"), bluez_daemon.get("cpu_percent")
    return {
        "nothing_lost_at_50": {
            "met": nothing_lost,
            "rows": [
                {"max_connections": r["max_connections"], "lost": r["lost"]} for r in target_rows
            ],
        },
        "idle_rss_mb": {
            "met": None if rss is None else rss <= TARGET_IDLE_RSS_MB,
            "value": rss,
            "limit": TARGET_IDLE_RSS_MB,
        },
        "idle_cpu_percent": {
            "met": None if cpu is None else cpu <= TARGET_IDLE_CPU_PERCENT,
            "value": cpu,
            "limit": TARGET_IDLE_CPU_PERCENT,
        },
        "idle_rss_mb_bluez": {
            "met": None if bluez_rss is None else bluez_rss <= TARGET_IDLE_RSS_MB,
            "value": bluez_rss,
            "limit": TARGET_IDLE_RSS_MB,
        },
        "idle_cpu_percent_bluez": {
            "met": None if bluez_cpu is None else bluez_cpu <= TARGET_IDLE_CPU_PERCENT,
            "value": bluez_cpu,
            "limit": TARGET_IDLE_CPU_PERCENT,
        },
    }


def print_report(
    sync: list[dict[str, Any]],
    quiet: dict[str, Any],
    targets: dict[str, Any],
    bluez: dict[str, Any] | None = None,
) -> None:
    """Print the sync table, the idle rows and the targets."""
    print(
        f"sync: each device holds {BACKLOG} stored readings and advertises every 20 ms; "
        "seconds from daemon start to the last expected reading"
    )
    print(
        f"{'devices':>7} {'max_conn':>8} {'expected':>8} {'received':>8} {'lost':>5} {'dup':>4} "
        f"{'seconds':>8} {'readings/s':>10} {'ideal s':>8} {'ideal/meas':>10} "
        f"{'daemon RSS MB':>13} {'daemon CPU %':>12} {'sims CPU %':>10}"
    )
    for row in sync:
        if "error" in row:
            print(f"{row.get('devices', '?'):>7}  error: {row['error']}")
            continue
        daemon, sims = row["daemon"], row["simulators"]
        print(
            f"{row['devices']:>7} {row['max_connections']:>8} {row['expected']:>8} "
            f"{row['received']:>8} {row['lost']:>5} {row['duplicates']:>4} "
            f"{row['seconds']:>8.1f} {_fmt(row['readings_per_s']):>10} "
            f"{_fmt(row['ideal_s']):>8} {_fmt(row['ideal_over_measured'], '.2f'):>10} "
            f"{_fmt(daemon['rss_peak_mb']):>13} {_fmt(daemon['cpu_percent']):>12} "
            f"{_fmt(sims['cpu_percent']):>10}"
        )
    for row in sync:
        if "error" in row:
            continue
        log = row["log"]
        notes = []
        if not row["complete"]:
            short = row["short_devices"]
            notes.append(
                f"INCOMPLETE after {row['limit_s']:.0f} s: {len(short)} devices short "
                f"({', '.join(short[:5])}{', ...' if len(short) > 5 else ''}); "
                f"{log['devices_connected']}/{row['devices']} devices ever connected, one of them "
                f"{log['most_connections_to_one_device']} times"
            )
        if log["sessions_failed"] or log["warnings_and_errors"]:
            notes.append(
                f"{log['sessions_failed']} failed sessions; log {log['warnings_and_errors']}"
            )
        if row["daemon_exit_code"]:
            notes.append(f"daemon exit code {row['daemon_exit_code']}")
        session = log["session_s"] or {}
        print(
            f"  N={row['devices']} x{row['max_connections']}: {log['sessions_finished']} sessions, "
            f"median {_fmt(session.get('median'), '.2f')} s (min {_fmt(session.get('min'), '.2f')},"
            f" max {_fmt(session.get('max'), '.2f')}); first reading after "
            f"{_fmt(row['first_reading_after_s'], '.2f')} s"
            + ("; " + "; ".join(notes) if notes else "")
        )
    print(
        "\nidle (CPU % of one core over the window; RSS peak):\n"
        f"{'devices':>7} {'advertising':>24} {'window s':>8} {'daemon RSS MB':>13} "
        f"{'daemon CPU %':>12} {'sims CPU %':>10} {'readings':>8}"
    )
    idle_rows = [
        (row["devices"], "all, every 20 ms (resync 30 s)", row["idle"])
        for row in sync
        if "error" not in row and row.get("idle")
    ]
    if "error" in quiet:
        print(f"  nothing advertising: error: {quiet['error']}")
    else:
        idle_rows.append((quiet["devices"], "none (the idle daemon)", quiet))
    for devices, label, idle in idle_rows:
        daemon, sims = idle["daemon"], idle["simulators"]
        readings = idle.get("readings_during", 0)
        print(
            f"{devices:>7} {label:>24} {idle['window_s']:>8.0f} {_fmt(daemon['rss_peak_mb']):>13} "
            f"{_fmt(daemon['cpu_percent'], '.2f'):>12} {_fmt(sims['cpu_percent']):>10} "
            f"{readings:>8}"
        )
    if bluez is not None and "error" in bluez:
        print(f"  BlueZ backend: error: {bluez['error']}")
    elif bluez is not None:
        daemon = bluez["daemon"]
        print(
            f"{bluez['devices']:>7} {'none, BlueZ backend (*)':>24} {bluez['window_s']:>8.0f} "
            f"{_fmt(daemon['rss_peak_mb']):>13} {_fmt(daemon['cpu_percent'], '.2f'):>12} "
            f"{'-':>10} {0:>8}"
        )
        print("  (*) no bluetoothd here: the scanner's start fails and is retried with backoff")
    lost = targets["nothing_lost_at_50"]
    print(f"\ntargets: {TARGET_DEVICES} devices, nothing lost: {_met(lost['met'])} {lost['rows']}")
    for key, label in (("", "simulated backend"), ("_bluez", "BlueZ backend")):
        rss, cpu = targets[f"idle_rss_mb{key}"], targets[f"idle_cpu_percent{key}"]
        print(
            f"  idle daemon, {label}: RSS <= {TARGET_IDLE_RSS_MB:.0f} MB: {_met(rss['met'])} "
            f"({_fmt(rss['value'])}); CPU <= {TARGET_IDLE_CPU_PERCENT} %: {_met(cpu['met'])} "
            f"({_fmt(cpu['value'], '.2f')})"
        )


IMPORT_BASELINES: Final = {
    "python": (),
    "daemon modules, BlueZ backend": (
        "gateway.entry",
        "gateway.daemon",
        "bleak.backends.bluezdbus.scanner",
        "bleak.backends.bluezdbus.client",
    ),
    "daemon modules, simulated backend": (
        "gateway.entry",
        "gateway.daemon",
        "simulators.bleak_backend",
    ),
}
"""What the daemon's RSS starts from: a fresh interpreter's RSS after importing these modules
(as `vitalbridge run` imports them: without rich, see gateway/entry.py)."""
_RSS_PROBE: Final = """
import importlib, sys
sys.modules.setdefault("rich", None)
for name in sys.argv[1:]:
    importlib.import_module(name)
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        print(int(line.split()[1]) * 1024)
"""


def import_baselines() -> dict[str, float | None]:
    """RSS (MB) of a fresh interpreter after each IMPORT_BASELINES entry, measured now."""
    result: dict[str, float | None] = {}
    for label, modules in IMPORT_BASELINES.items():
        completed = subprocess.run(  # noqa: S603 - this interpreter and a fixed probe
            [sys.executable, "-c", _RSS_PROBE, *modules],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        text = completed.stdout.strip()
        result[label] = round(int(text) / 1e6, 1) if text.isdigit() else None
    return result


def _mosquitto_version() -> str | None:
    binary = find_mosquitto()
    if binary is None:
        return None
    # `mosquitto -h` prints its version on the first line and exits non-zero.
    completed = subprocess.run(  # noqa: S603 - the broker binary, fixed arguments
        [str(binary), "-h"], capture_output=True, text=True, check=False, timeout=10
    )
    first = (completed.stdout or completed.stderr).splitlines()
    return first[0] if first else None


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"mosquitto": _mosquitto_version()}
    for package in ("vitalbridge", "bleak", "bumble", "aiomqtt", "paho-mqtt", "psutil"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


async def run(plan: Plan, *, keep: bool, profile_dir: Path | None) -> dict[str, Any]:
    """Run every row of the plan, one after the other; return the report."""
    sync: list[dict[str, Any]] = []
    for devices, max_conn in plan.sync_rows:
        idle_s = plan.idle_window_s if max_conn in plan.idle_after_sync else None
        profile = None if profile_dir is None else profile_dir / f"daemon-{devices}x{max_conn}.prof"

        measure = functools.partial(
            sync_row, devices=devices, max_conn=max_conn, idle_s=idle_s, profile=profile
        )
        row = await run_row(f"{devices}x{max_conn}", measure, keep=keep)
        row.setdefault("devices", devices)
        row.setdefault("max_connections", max_conn)
        sync.append(row)

    measure_quiet = functools.partial(
        quiet_row,
        devices=plan.quiet_devices,
        window_s=plan.idle_window_s,
        settle_s=plan.quiet_settle_s,
    )
    quiet = await run_row("quiet", measure_quiet, keep=keep)
    quiet.setdefault("devices", plan.quiet_devices)
    quiet.setdefault("window_s", plan.idle_window_s)
    measure_bluez = functools.partial(
        bluez_quiet_row,
        devices=plan.quiet_devices,
        window_s=plan.idle_window_s,
        settle_s=plan.quiet_settle_s,
    )
    bluez = await run_row("bluez", measure_bluez, keep=keep)
    bluez.setdefault("devices", plan.quiet_devices)
    bluez.setdefault("window_s", plan.idle_window_s)
    return {"sync": sync, "idle_quiet": quiet, "idle_bluez": bluez}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small fleet, short windows")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--keep", action="store_true", help="keep every row's work directory")
    parser.add_argument(
        "--rows",
        help="only these sync rows, e.g. 50x5,100x3 (devices x max_connections)",
    )
    parser.add_argument(
        "--profile-dir", type=Path, help="run the daemon of each sync row under cProfile, here"
    )
    options = parser.parse_args(argv)
    quick: bool = options.quick
    plan = QUICK if quick else FULL
    if options.rows:
        rows = tuple(
            (int(devices), int(slots))
            for devices, slots in (item.split("x") for item in options.rows.split(","))
        )
        plan = dataclasses.replace(plan, sync_rows=rows)
    if options.profile_dir is not None:
        options.profile_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    results = asyncio.run(run(plan, keep=options.keep, profile_dir=options.profile_dir))
    results["import_rss_mb"] = import_baselines()
    targets = verdicts(results["sync"], results["idle_quiet"], results["idle_bluez"])
    print_report(results["sync"], results["idle_quiet"], targets, results["idle_bluez"])
    print(
        "baseline, RSS MB of a fresh interpreter after imports only: "
        + "; ".join(f"{k} {_fmt(v)}" for k, v in results["import_rss_mb"].items())
    )

    report = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "platform": platform.platform(),
        "processor_count": os.cpu_count(),
        "memory_total_mb": round(psutil.virtual_memory().total / 1e6),
        "versions": _versions(),
        "quick": quick,
        "plan": asdict(plan),
        "backlog": BACKLOG,
        "device_types": [asdict(kind) for kind in KINDS],
        "advertising_interval_ms": 20.0,
        "sample_s": SAMPLE_S,
        "cpu_percent_of": "one core",
        "mb": "10^6 bytes",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "elapsed_s": round(time.monotonic() - started, 1),
        **results,
        "targets": targets,
    }
    output: Path = options.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
