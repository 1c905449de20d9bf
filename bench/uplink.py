"""How close the uplink (outbox and publisher) comes to the broker's own QoS 1 limit.

Four measurements, all in one run, against a mosquitto this script starts on a free loopback
port (never the system broker), with its own config, stopped by PID at the end:

- (a) limit: a bare aiomqtt client publishing QoS 1 with WINDOW publishes in flight (the
  publisher's default window), the same payloads (a real blood-pressure Reading JSON from
  `normalise`, its id varied) and the same MQTT 5 properties the publisher sends;
- (b) pipeline: PRODUCERS tasks (devices) each `put()` readings one at a time into a fresh
  SQLite outbox (durable when it returns), while the `Publisher` drains it: publish, PUBACK,
  ack (the acks of PUBACKs that arrive together in one outbox call, which also refills the
  window). Readings/s from the first put to the last ack, and the ratio to (a); target >= 0.5;
- (c) backlog: BACKLOG readings put with the broker reachable and the publisher stopped, then
  the publisher started and timed until the last ack; ratio to (a); target >= 0.8;
- (d) latency: one reading every 20 ms (50/s) put while the publisher runs; put-to-PUBACK
  p50/p99 (the PUBACK moment is when the publisher hands the reading's id to the outbox's
  ``ack_and_next_batch()``, which is no earlier than the PUBACK); target p99 <= 20 ms.

(a) and (b) run against a broker with ``set_tcp_nodelay true`` and again with it false, since
Nagle's algorithm holds back small PUBACKs and changes pipelined QoS 1 rates several-fold;
(c) and (d) use nodelay on. The outbox lives in the system temp directory (on this machine the
same disk as the project; fsync is real).

Run: .venv/bin/python bench/uplink.py [--quick] [--output PATH]; it writes
bench/results/uplink.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import getpass
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import device_profiles
from gateway.mqtt import Publisher, PublisherSettings, PublisherState
from gateway.normalise import normalise
from gateway.outbox import Outbox, OutboxEntry
from gateway.reading import DeviceInfo
from gateway.timebase import ClockState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator, Sequence

    from gateway.mqtt import OutboxRecord

RESULTS: Final = Path(__file__).resolve().parent / "results" / "uplink.json"
MOSQUITTO_CANDIDATES: Final = (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto"))
SYSTEM_BROKER_PORT: Final = 1883
BROKER_READY_S: Final = 10.0
BROKER_STOP_S: Final = 5.0
HUB: Final = "hub-bench"
WINDOW: Final = PublisherSettings.model_fields["window"].default
"""The publisher's default in-flight window; the raw client gets the same."""
PRODUCERS: Final = 8
"""Devices putting at once in (b): each waits for its put to be durable before the next."""
DEVICES: Final = ("cuff-1", "cuff-2", "cuff-3", "cuff-4", "cuff-5", "cuff-6", "cuff-7", "cuff-8")
LATENCY_RATE_HZ: Final = 50.0
TARGETS: Final = {"pipeline_ratio": 0.5, "backlog_ratio": 0.8, "latency_p99_ms": 20.0}
# BP_RAW of tests/test_reading.py: systolic 120, diastolic 80, MAP 165 mmHg... with a device
# time stamp, pulse rate 72, user 1 and a status word; a typical cuff's measurement.
BP_RAW: Final = (
    bytes.fromhex("1e78005000a5f3")
    + bytes([0xE8, 0x07, 3, 5, 7, 30, 15])
    + bytes.fromhex("4800 01 0400")
)


@dataclass(frozen=True, slots=True)
class Plan:
    """The counts and time limits of one run (full or quick)."""

    limit_count: int
    limit_count_nagle: int
    repeats: int
    backlog: int
    latency_s: float
    phase_limit_s: float
    """An outer bound on every timed phase, so a stuck broker cannot hang the run."""


FULL: Final = Plan(
    limit_count=20_000,
    limit_count_nagle=2_000,
    repeats=3,
    backlog=50_000,
    latency_s=20.0,
    phase_limit_s=300.0,
)
QUICK: Final = Plan(
    limit_count=1_000,
    limit_count_nagle=200,
    repeats=1,
    backlog=2_000,
    latency_s=1.5,
    phase_limit_s=60.0,
)


# -- the broker -----------------------------------------------------------------------------------


def _mosquitto() -> Path:
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    for candidate in MOSQUITTO_CANDIDATES:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    msg = "mosquitto is not installed: `apt-get install mosquitto` (or run `make test` once)"
    raise SystemExit(msg)


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != SYSTEM_BROKER_PORT:
            return port


def broker_config(port: int, *, nodelay: bool) -> list[str]:
    """Return the broker's config lines: loopback only, no persistence, nodelay as asked."""
    return [
        f"listener {port} 127.0.0.1",
        # As root, mosquitto would drop to the "mosquitto" user, who cannot read our temp dir.
        f"user {getpass.getuser()}",
        "allow_anonymous true",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        # The "listen socket on port" line, which says the broker is up, is at information.
        "log_type information",
        "connection_messages false",
        f"set_tcp_nodelay {'true' if nodelay else 'false'}",
    ]


@contextlib.contextmanager
def mosquitto(directory: Path, *, nodelay: bool) -> Iterator[tuple[int, list[str]]]:
    """Start a mosquitto of our own on a free loopback port; yield (port, config); stop by PID."""
    binary = _mosquitto()
    port = _free_port()
    config = broker_config(port, nodelay=nodelay)
    config_file = directory / f"mosquitto-{port}.conf"
    log_file = directory / f"mosquitto-{port}.log"
    config_file.write_text("\n".join(config) + "\n", encoding="utf-8")
    with log_file.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - the broker binary and our own config
            [str(binary), "-c", str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + BROKER_READY_S
        while True:
            if process.poll() is not None:
                msg = f"mosquitto exited at start:\n{log_file.read_text(errors='replace')}"
                raise RuntimeError(msg)
            # Its own log line first: a bare connect could reach whoever took the port.
            if f"listen socket on port {port}." in log_file.read_text(errors="replace"):
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
            if time.monotonic() > deadline:
                msg = f"mosquitto did not listen on {port} within {BROKER_READY_S}s"
                raise RuntimeError(msg)
            time.sleep(0.01)  # polling a process and a port: there is no event to wait on
        yield port, config
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=BROKER_STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=BROKER_STOP_S)


# -- readings -------------------------------------------------------------------------------------


def template_reading() -> tuple[str, bytes, OutboxEntry]:
    """Build a real Reading (a blood pressure, via `normalise`); return id, payload, entry."""
    device = DeviceInfo(
        id=DEVICES[0],
        address="C0:FF:EE:00:00:01",
        manufacturer="Acme Health",
        model="M-1",
        serial="SN0001",
        firmware="1.2.3",
        profile="blood_pressure",
    )
    reading = normalise(
        device_profiles.decode("2A35", BP_RAW),
        device,
        ClockState.synced(),
        {None: "patient-a", 1: "patient-a"},
        hub_id=HUB,
        hub_tz=ZoneInfo("Europe/London"),
        received_at=dt.datetime(2024, 3, 5, 7, 31, tzinfo=dt.UTC),
        raw=BP_RAW,
        battery_level=80,
    )
    entry = OutboxEntry.from_reading(reading)
    return entry.reading_id, entry.payload, entry


class Readings:
    """Distinct readings of the template's exact size: the id (and device) swapped in its JSON."""

    def __init__(self) -> None:
        """Build the template once; `make()` then costs a hash and a bytes replace."""
        self.template_id, self.template_payload, self.template = template_reading()
        self._serial = 0

    @property
    def size(self) -> int:
        """The payload size in bytes (every reading made here has it)."""
        return len(self.template_payload)

    def make(self, device: int = 0) -> OutboxEntry:
        """Make a reading with a fresh id of the same length, from device number `device`."""
        self._serial += 1
        new_id = hashlib.sha256(f"bench/{os.getpid()}/{self._serial}".encode()).hexdigest()
        new_id = new_id[: len(self.template_id)]
        device_id = DEVICES[device % len(DEVICES)]
        payload = self.template_payload.replace(self.template_id.encode(), new_id.encode())
        payload = payload.replace(f'"{DEVICES[0]}"'.encode(), f'"{device_id}"'.encode())
        return OutboxEntry(
            reading_id=new_id,
            device_id=device_id,
            kind=self.template.kind,
            # Measurement order per device follows creation order.
            measured_at=self.template.measured_at + dt.timedelta(microseconds=self._serial),
            payload=payload,
        )


def _properties() -> Properties:
    # The publisher's PUBLISH properties, so that (a) sends the same bytes per message as (b).
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.ContentType = "application/json"
    properties.UserProperty = [("schema_version", "1.0")]
    return properties


def _quiet_logger() -> logging.Logger:
    # aiomqtt warns "There are N pending publish calls" past 10 in flight: a full window is
    # what we ask for here, not a problem worth a line on stderr per publish.
    logger = logging.getLogger("bench.uplink.aiomqtt")
    logger.setLevel(logging.ERROR)
    return logger


# -- (a) the limit --------------------------------------------------------------------------------


async def raw_rate(port: int, payloads: Sequence[bytes], limit_s: float) -> float:
    """Publish `payloads` at QoS 1 with WINDOW in flight from a bare aiomqtt client; return /s."""
    topic = f"hubs/{HUB}/readings/blood_pressure"
    properties = _properties()
    queue = iter(payloads)
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"bench-raw-{os.getpid()}",
        protocol=aiomqtt.ProtocolVersion.V5,
        max_inflight_messages=WINDOW,
        timeout=10,
        logger=_quiet_logger(),
    ) as client:

        async def worker() -> None:
            # A worker per window slot: each waits for its PUBACK before its next publish.
            for payload in queue:
                await client.publish(topic, payload, qos=1, properties=properties)

        start = time.perf_counter()
        async with asyncio.timeout(limit_s), asyncio.TaskGroup() as tasks:
            for slot in range(WINDOW):
                tasks.create_task(worker(), name=f"raw-publish-{slot}")
        elapsed = time.perf_counter() - start
    return len(payloads) / elapsed


# -- the pipeline ---------------------------------------------------------------------------------


class TimedOutbox:
    """The publisher's view of an outbox that notes when each PUBACK arrived (ack is called)."""

    def __init__(self, outbox: Outbox, expected: int) -> None:
        """Count acks until `expected` have completed; `done` is set then."""
        self._outbox = outbox
        self.pubacked_at: dict[str, float] = {}
        self.acked = 0
        self.expected = expected
        self.done = asyncio.Event()

    async def next_batch(self, limit: int) -> Sequence[OutboxRecord]:
        """Delegate to the outbox."""
        return await self._outbox.next_batch(limit)

    async def ack(self, reading_id: str) -> object:
        """Note the PUBACK moment, then ack in the outbox."""
        self.pubacked_at[reading_id] = time.perf_counter()
        result = await self._outbox.ack(reading_id)
        self.acked += 1
        if self.acked >= self.expected:
            self.done.set()
        return result

    async def ack_many(self, reading_ids: Iterable[str]) -> object:
        """Note the PUBACK moment of each, then ack them in the outbox in one transaction."""
        ids = list(reading_ids)
        now = time.perf_counter()
        for reading_id in ids:
            self.pubacked_at[reading_id] = now
        result = await self._outbox.ack_many(ids)
        self.acked += len(ids)
        if self.acked >= self.expected:
            self.done.set()
        return result

    async def ack_and_next_batch(
        self, reading_ids: Iterable[str], limit: int
    ) -> tuple[int, Sequence[OutboxRecord]]:
        """Note the PUBACK moment of each, then ack them and hand out more in one outbox call."""
        ids = list(reading_ids)
        now = time.perf_counter()
        for reading_id in ids:
            self.pubacked_at[reading_id] = now
        result = await self._outbox.ack_and_next_batch(ids, limit)
        self.acked += len(ids)
        if self.acked >= self.expected:
            self.done.set()
        return result

    async def release(self, reading_id: str, error: str | None) -> object:
        """Delegate to the outbox."""
        return await self._outbox.release(reading_id, error)

    async def wait_for_pending(self) -> object:
        """Delegate to the outbox."""
        return await self._outbox.wait_for_pending()


def _settings(port: int) -> PublisherSettings:
    return PublisherSettings(
        broker_url=f"mqtt://127.0.0.1:{port}",
        hub_id=HUB,
        client_id=f"bench-pub-{os.getpid()}",
        window=WINDOW,
        backoff_base_s=0.05,
        backoff_cap_s=0.5,
    )


@contextlib.asynccontextmanager
async def running_publisher(
    port: int, outbox: TimedOutbox, limit_s: float
) -> AsyncIterator[Publisher]:
    """Run a Publisher on `outbox` for the body (connected first); cancel it after."""
    publisher = Publisher(_settings(port), outbox)
    task = asyncio.create_task(publisher.run(), name="publisher")
    try:
        async with asyncio.timeout(limit_s):
            await publisher.wait_for_status(lambda s: s.state is PublisherState.CONNECTED)
        yield publisher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def pipeline_rate(
    port: int, directory: Path, readings: Readings, count: int, limit_s: float
) -> dict[str, Any]:
    """(b): PRODUCERS devices put `count` readings while the publisher drains; readings/s."""
    per_producer = count // PRODUCERS
    total = per_producer * PRODUCERS
    entries = [[readings.make(p) for _ in range(per_producer)] for p in range(PRODUCERS)]
    path = directory / f"pipeline-{time.monotonic_ns()}.sqlite3"
    async with await Outbox.open(path) as outbox:
        timed = TimedOutbox(outbox, total)
        async with running_publisher(port, timed, limit_s) as publisher:

            async def produce(mine: list[OutboxEntry]) -> None:
                for entry in mine:
                    await outbox.put(entry)

            start = time.perf_counter()
            async with asyncio.timeout(limit_s):
                async with asyncio.TaskGroup() as tasks:
                    for number, mine in enumerate(entries):
                        tasks.create_task(produce(mine), name=f"producer-{number}")
                await timed.done.wait()
            elapsed = time.perf_counter() - start
            status = publisher.status
        depth = outbox.status().depth
    return {
        "count": total,
        "seconds": elapsed,
        "per_s": total / elapsed,
        "republished": status.republished,
        "left_in_outbox": depth,
    }


async def backlog_rate(
    port: int, directory: Path, readings: Readings, count: int, limit_s: float
) -> dict[str, Any]:
    """(c): put `count` readings with the publisher stopped, then time its drain; readings/s."""
    path = directory / f"backlog-{time.monotonic_ns()}.sqlite3"
    async with await Outbox.open(path) as outbox:
        fill_start = time.perf_counter()
        chunk = 1000
        for first in range(0, count, chunk):
            size = min(chunk, count - first)
            await outbox.put_many(readings.make(first + i) for i in range(size))
        fill_s = time.perf_counter() - fill_start
        timed = TimedOutbox(outbox, count)
        # Timed from the publisher's start: its connect (a millisecond on loopback) included.
        start = time.perf_counter()
        async with running_publisher(port, timed, limit_s) as publisher:
            async with asyncio.timeout(limit_s):
                await timed.done.wait()
            elapsed = time.perf_counter() - start
            status = publisher.status
        depth = outbox.status().depth
    return {
        "count": count,
        "fill_seconds": fill_s,
        "seconds": elapsed,
        "per_s": count / elapsed,
        "republished": status.republished,
        "left_in_outbox": depth,
    }


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def latency(
    port: int, directory: Path, readings: Readings, duration_s: float, limit_s: float
) -> dict[str, Any]:
    """(d): one put every 1/LATENCY_RATE_HZ s for `duration_s`; put-to-PUBACK percentiles."""
    count = max(1, int(duration_s * LATENCY_RATE_HZ))
    period_s = 1.0 / LATENCY_RATE_HZ
    path = directory / f"latency-{time.monotonic_ns()}.sqlite3"
    put_started: dict[str, float] = {}
    put_done: dict[str, float] = {}
    async with await Outbox.open(path) as outbox:
        timed = TimedOutbox(outbox, count)
        async with running_publisher(port, timed, limit_s):

            async def put_one(entry: OutboxEntry) -> None:
                put_started[entry.reading_id] = time.perf_counter()
                await outbox.put(entry)
                put_done[entry.reading_id] = time.perf_counter()

            loop = asyncio.get_running_loop()
            begin = loop.time()
            async with asyncio.timeout(duration_s + limit_s):
                async with asyncio.TaskGroup() as tasks:
                    for index in range(count):
                        entry = readings.make(index % 4)
                        # An absolute schedule: a late tick does not shift the ones after it.
                        await asyncio.sleep(max(0.0, begin + index * period_s - loop.time()))
                        tasks.create_task(put_one(entry), name="latency-put")
                await timed.done.wait()
    to_puback = [(timed.pubacked_at[r] - put_started[r]) * 1000 for r in put_started]
    durable = [(put_done[r] - put_started[r]) * 1000 for r in put_started]
    return {
        "count": count,
        "rate_hz": LATENCY_RATE_HZ,
        "p50_ms": statistics.median(to_puback),
        "p99_ms": _percentile(to_puback, 0.99),
        "max_ms": max(to_puback),
        "put_p50_ms": statistics.median(durable),
        "put_p99_ms": _percentile(durable, 0.99),
    }


# -- the run --------------------------------------------------------------------------------------


async def measure_pair(
    directory: Path, readings: Readings, plan: Plan, *, nodelay: bool
) -> dict[str, Any]:
    """Measure (a) and (b) against one broker configuration (nodelay on or off)."""
    count = plan.limit_count if nodelay else plan.limit_count_nagle
    with mosquitto(directory, nodelay=nodelay) as (port, config):
        limits: list[float] = []
        pipelines: list[dict[str, Any]] = []
        # Interleaved repeats, so that a slow spell of the machine hits both alike.
        for _ in range(plan.repeats):
            payloads = [readings.make(i).payload for i in range(count)]
            limits.append(await raw_rate(port, payloads, plan.phase_limit_s))
            pipelines.append(
                await pipeline_rate(port, directory, readings, count, plan.phase_limit_s)
            )
    limit = statistics.median(limits)
    pipeline = sorted(pipelines, key=lambda p: p["per_s"])[len(pipelines) // 2]
    return {
        "set_tcp_nodelay": nodelay,
        "broker_config": config,
        "count": count,
        "limit_per_s": limit,
        "limit_runs_per_s": limits,
        "pipeline": pipeline,
        "pipeline_runs_per_s": [p["per_s"] for p in pipelines],
        "pipeline_ratio": pipeline["per_s"] / limit,
    }


async def run(plan: Plan, directory: Path) -> dict[str, Any]:
    """All four measurements; nodelay on first (the reference), then off for (a) and (b)."""
    readings = Readings()
    on = await measure_pair(directory, readings, plan, nodelay=True)
    with mosquitto(directory, nodelay=True) as (port, _config):
        backlog = await backlog_rate(port, directory, readings, plan.backlog, plan.phase_limit_s)
        delays = await latency(port, directory, readings, plan.latency_s, plan.phase_limit_s)
    off = await measure_pair(directory, readings, plan, nodelay=False)
    backlog["ratio"] = backlog["per_s"] / on["limit_per_s"]
    return {
        "payload_bytes": readings.size,
        "window": WINDOW,
        "producers": PRODUCERS,
        "limit": {"nodelay_on": on["limit_per_s"], "nodelay_off": off["limit_per_s"]},
        "pipeline": {"nodelay_on": on, "nodelay_off": off},
        "backlog": backlog,
        "latency": delays,
    }


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_table(result: dict[str, Any]) -> None:
    """Print the figures, each with its target."""
    on = result["pipeline"]["nodelay_on"]
    off = result["pipeline"]["nodelay_off"]
    backlog = result["backlog"]
    delays = result["latency"]
    print(
        f"payload {result['payload_bytes']} B (blood pressure Reading JSON), window "
        f"{result['window']}, MQTT 5 QoS 1, loopback mosquitto {result['mosquitto']}"
    )
    print(f"broker config: {'; '.join(on['broker_config'][2:])}")
    print(f"\n{'measurement':46} {'figure':>16} {'ratio':>7} {'target':>9} {'':>6}")
    ratio_b = on["pipeline_ratio"]
    rows = [
        ("(a) limit: raw aiomqtt, nodelay on", f"{on['limit_per_s']:,.0f} /s", "", "", ""),
        (
            f"(b) pipeline, {result['producers']} producers, nodelay on",
            f"{on['pipeline']['per_s']:,.0f} /s",
            f"{ratio_b:.2f}",
            ">= 0.5",
            _verdict(ratio_b >= TARGETS["pipeline_ratio"]),
        ),
        ("(a) limit: raw aiomqtt, nodelay off", f"{off['limit_per_s']:,.0f} /s", "", "", ""),
        (
            "(b) pipeline, nodelay off",
            f"{off['pipeline']['per_s']:,.0f} /s",
            f"{off['pipeline_ratio']:.2f}",
            "",
            "",
        ),
        (
            f"(c) drain {backlog['count']:,} backlog, nodelay on",
            f"{backlog['per_s']:,.0f} /s",
            f"{backlog['ratio']:.2f}",
            ">= 0.8",
            _verdict(backlog["ratio"] >= TARGETS["backlog_ratio"]),
        ),
        (
            f"(d) put-to-PUBACK p50 at {delays['rate_hz']:.0f}/s",
            f"{delays['p50_ms']:.2f} ms",
            "",
            "",
            "",
        ),
        (
            f"(d) put-to-PUBACK p99 ({delays['count']} readings)",
            f"{delays['p99_ms']:.2f} ms",
            "",
            "<= 20 ms",
            _verdict(delays["p99_ms"] <= TARGETS["latency_p99_ms"]),
        ),
        ("    of which put() durable, p50 / p99", "", "", "", ""),
    ]
    rows[-1] = (
        rows[-1][0],
        f"{delays['put_p50_ms']:.2f}/{delays['put_p99_ms']:.2f} ms",
        "",
        "",
        "",
    )
    for name, figure, ratio, target, verdict in rows:
        print(f"{name:46} {figure:>16} {ratio:>7} {target:>9} {verdict:>6}")
    print(
        f"\nbacklog fill (put_many, 1000 per call): {backlog['fill_seconds']:.1f} s; "
        f"republished: {on['pipeline']['republished'] + backlog['republished']}; left in "
        f"outboxes: {on['pipeline']['left_in_outbox'] + backlog['left_in_outbox']}"
    )


def _mosquitto_version() -> str:
    try:
        completed = subprocess.run(  # noqa: S603 - the broker binary, asked for its version
            [str(_mosquitto()), "-h"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (completed.stdout or completed.stderr).splitlines()
    return first[0].removeprefix("mosquitto version ").strip() if first else "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    options = parser.parse_args(argv)
    plan = QUICK if options.quick else FULL
    # The publisher's info lines (connected, stopped) would interleave with the table.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="vitalbridge-uplink-") as scratch:
        result = asyncio.run(run(plan, Path(scratch)))
    result = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "processor_count": os.cpu_count(),
        "mosquitto": _mosquitto_version(),
        "aiomqtt": importlib.metadata.version("aiomqtt"),
        "paho_mqtt": importlib.metadata.version("paho-mqtt"),
        "quick": options.quick,
        "targets": TARGETS,
        **result,
    }
    print_table(result)
    output: Path = options.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
