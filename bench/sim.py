"""How many simulated devices one process runs while a bleak client syncs them all.

Three measurements, all in this run, on this machine:

- fleet: N simulated devices (the eight device types round-robin, default behaviours, so each
  advertises every 20 ms) on one simulated radio, and a hub that uses bleak's own API with the
  Bumble backend (`BleakScanner`/`BleakClient`, `backend=BumbleScanner`/`BumbleClient`,
  in-process through `use_radio`, default `AdapterSettings`). Per N: the time to build and start
  the devices, the load they put on the event loop before the hub does anything (CPU share, how
  late a 10 ms timer fires), the time until the hub has discovered all of them, and the time to
  sync all of them (connect and discover services, read Device Information and Battery, subscribe,
  receive one measurement, decode it with `device_profiles.decode` and check it is what the
  device meant to send, disconnect), one device at a time and then CONCURRENCY at a time. Each
  sync phase has a time budget: devices not reached within it are counted as not attempted.
- throughput: one continuous pulse oximeter streaming notifications to a `BleakClient` notify
  callback, and the same notifications to a raw Bumble GATT client on the same radio (the
  baseline), so that the backend's overhead shows as a ratio. Two sources: the device's own
  `measure()` loop, and pre-encoded payloads pushed with Bumble's `notify_subscriber` (transport
  only). The sender sends BURST notifications at a time and waits for their delivery.
- memory: tracemalloc before and after building and starting N devices, per device, and by the
  package that allocated it; the fleet rows add the RSS growth per device.

Each scenario runs in a fresh worker process (this script with `--worker`), so its RSS starts
clean and a saturated scenario can be killed at its deadline without losing the others.

Run: .venv/bin/python bench/sim.py [--quick] [--output PATH]; it writes bench/results/sim.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bleak import BleakClient, BleakScanner
from bumble.device import Peer

import device_profiles
from simulators.bleak_backend import AdapterSettings, BumbleClient, BumbleScanner, use_radio
from simulators.devices import (
    DEVICE_TYPES,
    Behaviours,
    ContinuousOximeter,
    SimulatedDevice,
    SimulatorConfig,
)
from simulators.radio import Radio

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from bleak.backends.device import BLEDevice
    from bumble.device import Device

RESULTS: Final = Path(__file__).resolve().parent / "results" / "sim.json"
STDLIB: Final = sysconfig.get_paths()["stdlib"]
SEED: Final = 20240501
TARGET_DEVICES: Final = 100
CONCURRENCY: Final = 5
"""Syncs at a time in the concurrent phase: a hub adapter holds a few links at once."""
BURST: Final = 32
"""Notifications the throughput sender sends in one burst before it waits for their delivery."""

# The characteristic each device type delivers its measurement on (as in the e2e tests).
MEASUREMENT: Final = {
    "blood_pressure_cuff": 0x2A35,
    "spot_check_oximeter": 0x2A5E,
    "continuous_oximeter": 0x2A5F,
    "weight_scale": 0x2A9D,
    "body_composition_scale": 0x2A9D,
    "thermometer": 0x2A1C,
    "glucose_meter": 0x2A18,
    "heart_rate_strap": 0x2A37,
}
# Device Information (manufacturer, model, serial, firmware) and Battery Level.
READS: Final = (0x2A29, 0x2A24, 0x2A25, 0x2A26, 0x2A19)
RAW_HUB_ADDRESS: Final = "F0:F0:F0:F0:F0:00"
STREAM_ADDRESS: Final = "F0:00:00:00:AA:01"


@dataclass(frozen=True, slots=True)
class Plan:
    """The sizes, loop lengths and time limits of one run (full or quick)."""

    sizes: tuple[int, ...]
    extra_fleets: tuple[tuple[int, float], ...]
    """(N, advertising interval ms) rows beyond the default 20 ms ones: where the limit lies."""
    load_window_s: float
    start_limit_s: float
    discovery_limit_s: float
    sync_budget_s: float
    """Per sync phase: devices not reached by then are reported as not attempted."""
    device_limit_s: float
    """Per device sync, an outer safety bound over the backend's own 5 s connect timeout."""
    stream_count: int
    stream_repeats: int
    stream_limit_s: float


FULL: Final = Plan(
    sizes=(10, 50, 100),
    extra_fleets=((100, 100.0),),
    load_window_s=1.0,
    start_limit_s=60.0,
    discovery_limit_s=60.0,
    sync_budget_s=120.0,
    device_limit_s=20.0,
    stream_count=4000,
    stream_repeats=9,
    stream_limit_s=30.0,
)
QUICK: Final = Plan(
    sizes=(3, 10),
    extra_fleets=(),
    load_window_s=0.2,
    start_limit_s=20.0,
    discovery_limit_s=20.0,
    sync_budget_s=30.0,
    device_limit_s=10.0,
    stream_count=200,
    stream_repeats=1,
    stream_limit_s=10.0,
)


def _uuid(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


def _address(index: int) -> str:
    """Return a random static address (index from 1: the random part is never all zero)."""
    return f"F0:00:00:00:{index >> 8:02X}:{index & 0xFF:02X}"


def rss_kib() -> int | None:
    """Resident set size of this process in KiB, from /proc/self/status (Linux), else None."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def _summary(values: list[float]) -> dict[str, float] | None:
    """Median, 95th percentile and maximum, in the values' unit, rounded for the JSON."""
    if not values:
        return None
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median": round(statistics.median(ordered), 4),
        "p95": round(p95, 4),
        "max": round(ordered[-1], 4),
    }


# -- fleet --------------------------------------------------------------------------------------


def build_fleet(radio: Radio, count: int, advertising_interval_ms: float) -> list[SimulatedDevice]:
    """Make `count` devices on the radio, the device types round-robin, each with its own seed."""
    kinds = sorted(DEVICE_TYPES)
    behaviours = Behaviours(advertising_interval_ms=advertising_interval_ms)
    return [
        DEVICE_TYPES[kinds[index % len(kinds)]].on_radio(
            radio, _address(index + 1), SimulatorConfig(seed=index, behaviours=behaviours)
        )
        for index in range(count)
    ]


async def measure_load(window_s: float) -> dict[str, Any]:
    """Measure what running devices cost the loop: CPU share, how late a 10 ms timer fires."""
    tick_s = 0.01
    late_ms: list[float] = []
    cpu = time.process_time()
    start = time.perf_counter()
    while time.perf_counter() - start < window_s:
        before = time.perf_counter()
        await asyncio.sleep(tick_s)
        late_ms.append((time.perf_counter() - before - tick_s) * 1000)
    wall = time.perf_counter() - start
    return {
        "cpu_share": round((time.process_time() - cpu) / wall, 3),
        "timer_late_ms": _summary(late_ms),
    }


async def discover_all(addresses: set[str], limit_s: float) -> dict[str, Any]:
    """Scan with BleakScanner until every address is seen (or the limit runs out)."""
    found: dict[str, BLEDevice] = {}
    complete = asyncio.Event()

    def on_device(device: BLEDevice, _data: object) -> None:
        if device.address in addresses:
            found[device.address] = device
            if len(found) == len(addresses):
                complete.set()

    start = time.perf_counter()
    async with BleakScanner(on_device, backend=BumbleScanner):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit_s):
                await complete.wait()
    elapsed = time.perf_counter() - start
    return {
        "elapsed_s": round(elapsed, 4) if complete.is_set() else None,
        "waited_s": round(elapsed, 4),
        "found": len(found),
        "devices": found,
    }


class MismatchError(AssertionError):
    """The hub decoded something other than what the device meant to send."""


def check_decoded(device: SimulatedDevice, uuid: int, data: bytes) -> None:
    """Decode what the hub received; raise unless it is what the device meant to send."""
    value = device_profiles.decode(uuid, data)
    intended = [sent for sent in device.sent if sent.uuid == uuid][-1]
    if value != intended.value or data != intended.data:
        raise MismatchError(f"0x{uuid:04X} decoded {value!r}, sent {intended.value!r}")


@dataclass(slots=True)
class SyncOutcome:
    """One device's sync: the time of each step, and the step and error where it failed."""

    steps_s: dict[str, float]
    total_s: float
    failure: str | None = None
    detail: str | None = None


async def sync_device(device: SimulatedDevice, ble: BLEDevice, limit_s: float) -> SyncOutcome:
    """Sync one device through bleak: connect, read DIS and battery, one measurement, disconnect."""
    uuid = MEASUREMENT[device.KIND]
    received: asyncio.Queue[bytes] = asyncio.Queue()
    client = BleakClient(ble, backend=BumbleClient)
    steps: dict[str, float] = {}
    step = "connect"
    start = mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        steps[name] = now - mark
        mark = now

    try:
        async with asyncio.timeout(limit_s):
            await client.connect()  # includes MTU exchange and service discovery, as on BlueZ
            lap(step)
            step = "read"
            for short in READS:
                device_profiles.decode(short, await client.read_gatt_char(_uuid(short)))
            lap(step)
            step = "subscribe"
            await client.start_notify(_uuid(uuid), lambda _c, data: received.put_nowait(data))
            lap(step)
            step = "measure"
            await device.measure()  # the patient takes a reading; the device sends it
            data = bytes(await received.get())
            lap(step)
            step = "decode"
            check_decoded(device, uuid, data)
            lap(step)
            step = "disconnect"
            await client.disconnect()
            lap(step)
    except Exception as exc:
        return SyncOutcome(
            steps,
            time.perf_counter() - start,
            f"{step}: {type(exc).__name__}",
            str(exc)[:160] or None,
        )
    finally:
        if client.is_connected:
            # A failed sync must not leave the link up for the next one.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await client.disconnect()
    return SyncOutcome(steps, time.perf_counter() - start)


async def sync_all(
    devices: list[SimulatedDevice],
    found: dict[str, BLEDevice],
    concurrency: int,
    plan: Plan,
) -> dict[str, Any]:
    """Sync every device, `concurrency` at a time, within the plan's phase budget."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + plan.sync_budget_s
    gate = asyncio.Semaphore(concurrency)
    outcomes: list[SyncOutcome] = []
    skipped = 0

    async def one(device: SimulatedDevice, address: str) -> None:
        nonlocal skipped
        async with gate:
            ble = found.get(address)
            if ble is None or loop.time() > deadline:
                skipped += 1
                return
            outcomes.append(await sync_device(device, ble, plan.device_limit_s))

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index, device in enumerate(devices):
            group.create_task(one(device, _address(index + 1)), name=f"sync-{index + 1}")
    elapsed = time.perf_counter() - start
    synced = [outcome for outcome in outcomes if outcome.failure is None]
    failures: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        if outcome.failure is not None:
            entry = failures.setdefault(outcome.failure, {"count": 0, "example": outcome.detail})
            entry["count"] += 1
    step_names = ("connect", "read", "subscribe", "measure", "decode", "disconnect")
    return {
        "concurrency": concurrency,
        "elapsed_s": round(elapsed, 3),
        "all_synced": len(synced) == len(devices),
        "synced": len(synced),
        "failed": len(outcomes) - len(synced),
        "not_attempted": skipped,
        "failures": failures,
        "syncs_per_s": round(len(synced) / elapsed, 2) if elapsed > 0 else None,
        "per_device_s": _summary([outcome.total_s for outcome in synced]),
        "step_ms_median": {
            name: round(statistics.median(values) * 1000, 2)
            for name in step_names
            if (values := [o.steps_s[name] for o in synced if name in o.steps_s])
        },
    }


async def _bounded(coroutine: Coroutine[Any, Any, Any], limit_s: float) -> bool:
    """Run `coroutine` within `limit_s`; say whether it finished in time."""
    try:
        async with asyncio.timeout(limit_s):
            await coroutine
    except TimeoutError:
        return False
    return True


async def run_fleet(count: int, advertising_interval_ms: float, plan: Plan) -> dict[str, Any]:
    """Start `count` devices, discover them with BleakScanner and sync them all twice."""
    radio = Radio(seed=SEED)
    gc.collect()
    rss_before = rss_kib()
    start = time.perf_counter()
    devices = build_fleet(radio, count, advertising_interval_ms)
    built = time.perf_counter()
    started_in_time = await _bounded(
        asyncio.gather(*(device.start() for device in devices)), plan.start_limit_s
    )
    started = time.perf_counter()
    rss_after = rss_kib()
    result: dict[str, Any] = {
        "devices": count,
        "device_mix": "round-robin over " + ", ".join(sorted(DEVICE_TYPES)),
        "advertising_interval_ms": advertising_interval_ms,
        "build_s": round(built - start, 4),
        "start_s": round(started - built, 4) if started_in_time else None,
        "rss_kib": {
            "before": rss_before,
            "after_start": rss_after,
            "per_device": round((rss_after - rss_before) / count, 1)
            if rss_before is not None and rss_after is not None
            else None,
        },
    }
    result["load"] = await measure_load(plan.load_window_s)
    addresses = {_address(index + 1) for index in range(count)}
    async with use_radio(radio):
        discovery = await discover_all(addresses, plan.discovery_limit_s)
        found = discovery.pop("devices")
        result["discovery"] = discovery
        syncs = [await sync_all(devices, found, 1, plan)]
        # Synced devices advertise again once the hub has gone; start the next phase from there.
        result["readvertised_in_time"] = await _bounded(
            asyncio.gather(*(device.wait_until_advertising() for device in devices)),
            plan.discovery_limit_s,
        )
        syncs.append(await sync_all(devices, found, CONCURRENCY, plan))
        result["sync"] = syncs
    result["stopped_in_time"] = await _bounded(
        asyncio.gather(*(device.stop() for device in devices)), plan.start_limit_s
    )
    result["device_task_errors"] = sum(len(device.task_errors) for device in devices)
    return result


# -- throughput ---------------------------------------------------------------------------------


class _Tally:
    """Counts delivered notifications and wakes the sender; the callback only counts."""

    def __init__(self) -> None:
        self.count = 0
        self.last = b""
        self.changed = asyncio.Event()
        self.cpu_us = 0.0

    def hit(self, data: bytes | bytearray) -> None:
        self.count += 1
        self.last = bytes(data)
        self.changed.set()

    async def wait_below(self, level: int) -> None:
        while self.count < level:
            self.changed.clear()
            await self.changed.wait()


async def _pump(
    device: ContinuousOximeter, tally: _Tally, count: int, payload: bytes | None
) -> float:
    """Send `count` notifications, BURST at a time; return delivered per second.

    Each burst is sent, then drained before the next: a sliding window would refill one
    notification at a time behind a receiver that delivers one by one (the raw client) and in
    batches behind one that defers (the backend), which measures the window, not the path.
    """
    link = device.link
    if link is None:
        raise RuntimeError("the oximeter lost its hub before the stream")
    start = time.perf_counter()
    cpu = time.process_time()
    sent = 0
    while sent < count:
        for _ in range(min(BURST, count - sent)):
            if payload is None:
                await device.measure()
            else:
                await device.device.notify_subscriber(
                    link.connection, device.measurement_characteristic, payload
                )
            sent += 1
        await tally.wait_below(sent)
    tally.cpu_us = (time.process_time() - cpu) / count * 1e6
    return count / (time.perf_counter() - start)


async def _stream_bleak(
    device: ContinuousOximeter, ble: BLEDevice, count: int, payload: bytes | None
) -> tuple[float, _Tally]:
    tally = _Tally()
    async with BleakClient(ble, backend=BumbleClient) as client:
        await client.start_notify(_uuid(0x2A5F), lambda _c, data: tally.hit(data))
        rate = await _pump(device, tally, count, payload)
    return rate, tally


async def _stream_raw(
    device: ContinuousOximeter, hub: Device, count: int, payload: bytes | None
) -> tuple[float, _Tally]:
    tally = _Tally()
    connection = await hub.connect(STREAM_ADDRESS)
    try:
        peer = Peer(connection)
        await peer.discover_services()
        for service in peer.services:
            await service.discover_characteristics()
        (characteristic,) = peer.get_characteristics_by_uuid(device.measurement_characteristic.uuid)
        await characteristic.discover_descriptors()
        await characteristic.subscribe(tally.hit)
        rate = await _pump(device, tally, count, payload)
    finally:
        await connection.disconnect()
    return rate, tally


async def run_throughput(plan: Plan) -> dict[str, Any]:
    """Notifications per second to a BleakClient callback and to a raw Bumble GATT client."""
    radio = Radio(seed=SEED)
    device = ContinuousOximeter.on_radio(radio, STREAM_ADDRESS, SimulatorConfig(seed=1))
    await device.start()
    hub = radio.device("raw-hub", RAW_HUB_ADDRESS)
    await hub.power_on()
    # A real reading's bytes for the transport-only source (nobody listens yet: none is sent).
    payload = (await device.measure()).encode()
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        "measure_loop": {"bleak": [], "raw_bumble": []},
        "notify_subscriber": {"bleak": [], "raw_bumble": []},
    }
    checks: list[bool] = []
    async with use_radio(radio):
        ble = await BleakScanner.find_device_by_address(
            STREAM_ADDRESS, timeout=plan.discovery_limit_s, backend=BumbleScanner
        )
        if ble is None:
            raise RuntimeError("the streaming oximeter was not discovered")

        async def one(receiver: str, source: str, count: int) -> tuple[float, float]:
            source_payload = None if source == "measure_loop" else payload
            async with asyncio.timeout(plan.stream_limit_s):
                await device.wait_until_advertising()
                if receiver == "bleak":
                    rate, tally = await _stream_bleak(device, ble, count, source_payload)
                else:
                    rate, tally = await _stream_raw(device, hub, count, source_payload)
            expected = device.sent[-1].data if source_payload is None else source_payload
            checks.append(tally.count == count and tally.last == expected)
            device_profiles.decode(0x2A5F, tally.last)
            return rate, tally.cpu_us

        # One short warm-up of each path (imports, first-use caches), not recorded.
        for receiver in ("bleak", "raw_bumble"):
            await one(receiver, "measure_loop", min(100, plan.stream_count))
        for repeat in range(plan.stream_repeats):
            for source, by_receiver in samples.items():
                # Alternate which receiver goes first, so drift does not favour one of them.
                order = list(by_receiver) if repeat % 2 == 0 else list(reversed(by_receiver))
                for receiver in order:
                    by_receiver[receiver].append(await one(receiver, source, plan.stream_count))
    await device.stop()
    await hub.power_off()
    result: dict[str, Any] = {
        "device": "continuous_oximeter (0x2A5F notifications)",
        "count": plan.stream_count,
        "repeats": plan.stream_repeats,
        "burst": BURST,
        "all_delivered_and_equal": all(checks),
    }
    for source, by_receiver in samples.items():
        bleak, raw = by_receiver["bleak"], by_receiver["raw_bumble"]
        # This machine's speed drifts by tens of percent between samples; the two samples of a
        # repeat ran back to back, so their ratio is steadier than a ratio of medians.
        ratios = [ours[0] / theirs[0] for ours, theirs in zip(bleak, raw, strict=True)]
        result[source] = {
            "bleak_per_s": round(statistics.median(rate for rate, _ in bleak), 1),
            "raw_bumble_per_s": round(statistics.median(rate for rate, _ in raw), 1),
            "bleak_over_raw": round(statistics.median(ratios), 3),
            "bleak_over_raw_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "bleak_cpu_us": round(statistics.median(cpu for _, cpu in bleak), 1),
            "raw_bumble_cpu_us": round(statistics.median(cpu for _, cpu in raw), 1),
            "bleak_samples_per_s": [round(rate, 1) for rate, _ in bleak],
            "raw_bumble_samples_per_s": [round(rate, 1) for rate, _ in raw],
        }
    return result


# -- memory -------------------------------------------------------------------------------------


def _package(filename: str) -> str:
    """Name what an allocation site belongs to: an installed package, ours, or the stdlib."""
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    for name in ("simulators", "device_profiles", "asyncio"):
        if name in parts:
            return name
    return "stdlib" if filename.startswith(STDLIB) else "other"


async def run_memory(count: int, plan: Plan) -> dict[str, Any]:
    """Traced memory per device after building and starting `count` devices."""
    radio = Radio(seed=SEED)
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.take_snapshot()
    base = tracemalloc.get_traced_memory()[0]
    devices = build_fleet(radio, count, Behaviours().advertising_interval_ms)
    built = tracemalloc.get_traced_memory()[0]
    await _bounded(asyncio.gather(*(device.start() for device in devices)), plan.start_limit_s)
    # Let them advertise for a while: the PDUs in flight on the radio are part of the cost.
    await asyncio.sleep(plan.load_window_s)
    gc.collect()
    after = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    by_package: dict[str, int] = {}
    for stat in after.compare_to(before, "filename"):
        name = _package(stat.traceback[0].filename)
        by_package[name] = by_package.get(name, 0) + stat.size_diff
    await _bounded(asyncio.gather(*(device.stop() for device in devices)), plan.start_limit_s)
    return {
        "devices": count,
        "traced_kib_per_device": round((current - base) / 1024 / count, 1),
        "built_kib_per_device": round((built - base) / 1024 / count, 1),
        "peak_kib_per_device": round((peak - base) / 1024 / count, 1),
        "by_package_kib_per_device": {
            name: round(size / 1024 / count, 1)
            for name, size in sorted(by_package.items(), key=lambda item: -item[1])
        },
    }


# -- the driver ---------------------------------------------------------------------------------


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario in this process and return its result."""
    plan = QUICK if spec["quick"] else FULL
    kind = spec["kind"]
    if kind == "fleet":
        coroutine = run_fleet(spec["devices"], spec["advertising_interval_ms"], plan)
    elif kind == "throughput":
        coroutine = run_throughput(plan)
    elif kind == "memory":
        coroutine = run_memory(spec["devices"], plan)
    else:
        raise ValueError(f"unknown scenario {kind!r}")
    return asyncio.run(coroutine)


def _fleet_limit_s(plan: Plan) -> float:
    """Return the hard limit on a fleet worker: every phase's own limit, plus start-up."""
    sync = 2 * (plan.sync_budget_s + plan.device_limit_s + 5.0)
    return 3 * plan.start_limit_s + 2 * plan.discovery_limit_s + plan.load_window_s + sync + 30.0


def run_scenario(spec: dict[str, Any], limit_s: float) -> dict[str, Any]:
    """Run a scenario in a fresh worker process, killed if it overruns `limit_s`."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    started = time.perf_counter()
    try:
        completed = subprocess.run(  # noqa: S603 - this script, with this interpreter
            command, capture_output=True, text=True, check=False, timeout=limit_s
        )
    except subprocess.TimeoutExpired:
        return {"error": f"worker killed after {limit_s:.0f} s", **spec}
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = completed.stderr.strip().splitlines()[-3:]
        return {"error": f"worker exited {completed.returncode}: {' | '.join(tail)}", **spec}
    result: dict[str, Any] = json.loads(lines[-1])
    result["worker_s"] = round(time.perf_counter() - started, 2)
    return result


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _print_fleet(rows: list[dict[str, Any]]) -> None:
    print(
        "fleet: mixed device types round-robin, one process; hub = BleakScanner/BleakClient "
        f"over the Bumble backend; sync = 1 at a time, then {CONCURRENCY} at a time"
    )
    print(
        f"{'N':>4} {'adv ms':>6} {'start s':>8} {'idle CPU':>8} {'late ms':>8} "
        f"{'disc s':>7} {'seq s':>8} {'seq ok':>8} {f'x{CONCURRENCY} s':>8} "
        f"{f'x{CONCURRENCY} ok':>8} {'RSS/dev KiB':>11}"
    )
    for row in rows:
        if "error" in row:
            print(f"{row['devices']:>4} {row['advertising_interval_ms']:>6.0f}  {row['error']}")
            continue
        sequential, concurrent = row["sync"]
        start = None if row["start_s"] is None else row["build_s"] + row["start_s"]
        print(
            f"{row['devices']:>4} {row['advertising_interval_ms']:>6.0f} {_fmt(start):>8} "
            f"{row['load']['cpu_share']:>8.0%} "
            f"{_fmt((row['load']['timer_late_ms'] or {}).get('median'), '.1f'):>8} "
            f"{_fmt(row['discovery']['elapsed_s']):>7} "
            f"{sequential['elapsed_s']:>8.2f} {_ok(sequential, row['devices']):>8} "
            f"{concurrent['elapsed_s']:>8.2f} {_ok(concurrent, row['devices']):>8} "
            f"{_fmt(row['rss_kib']['per_device'], '.0f'):>11}"
        )
    for row in rows:
        for phase in row.get("sync", []):
            for reason, entry in phase["failures"].items():
                print(
                    f"  N={row['devices']} x{phase['concurrency']}: {entry['count']} failed at "
                    f"{reason} ({entry['example'] or 'no message'})"
                )
            if phase["not_attempted"]:
                print(
                    f"  N={row['devices']} x{phase['concurrency']}: {phase['not_attempted']} not "
                    "attempted: the phase budget ran out"
                )
    print("  per-step median ms (connect includes service discovery), sequential phase:")
    for row in rows:
        if "sync" in row:
            steps = row["sync"][0]["step_ms_median"]
            print(
                f"  N={row['devices']:<3} adv {row['advertising_interval_ms']:.0f} ms: "
                + ", ".join(f"{name} {ms:.1f}" for name, ms in steps.items())
            )


def _ok(phase: dict[str, Any], count: int) -> str:
    return f"{phase['synced']}/{count}"


def _print_throughput(result: dict[str, Any]) -> None:
    print(
        f"\nthroughput: {result.get('device', '-')}, {result.get('count', '-')} notifications, "
        f"median of {result.get('repeats', '-')}, bursts of {BURST}"
    )
    if "error" in result:
        print(f"  {result['error']}")
        return
    print(
        f"  {'source':20} {'bleak /s':>10} {'raw Bumble /s':>14} {'bleak/raw':>10} "
        f"{'(range)':>13} {'CPU us bleak':>12} {'raw':>6}"
    )
    for source in ("measure_loop", "notify_subscriber"):
        entry = result[source]
        low, high = entry["bleak_over_raw_range"]
        print(
            f"  {source:20} {entry['bleak_per_s']:>10.0f} {entry['raw_bumble_per_s']:>14.0f} "
            f"{entry['bleak_over_raw']:>10.2f} {f'({low:.2f}-{high:.2f})':>13} "
            f"{entry['bleak_cpu_us']:>12.0f} {entry['raw_bumble_cpu_us']:>6.0f}"
        )
    print(f"  every notification delivered and equal: {result['all_delivered_and_equal']}")


def _print_memory(rows: list[dict[str, Any]]) -> None:
    print("\nmemory (tracemalloc, after build + start + advertising):")
    print(f"  {'N':>4} {'KiB/device':>10} {'built':>7} {'peak':>7}  by package (KiB/device)")
    for row in rows:
        if "error" in row:
            print(f"  {row['devices']:>4}  {row['error']}")
            continue
        packages = ", ".join(
            f"{name} {size:.0f}"
            for name, size in row["by_package_kib_per_device"].items()
            if abs(size) >= 1
        )
        print(
            f"  {row['devices']:>4} {row['traced_kib_per_device']:>10.0f} "
            f"{row['built_kib_per_device']:>7.0f} {row['peak_kib_per_device']:>7.0f}  {packages}"
        )


def _verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the default-configuration fleet of TARGET_DEVICES synced completely."""
    row = next(
        (
            row
            for row in rows
            if row.get("devices") == TARGET_DEVICES
            and row.get("advertising_interval_ms") == Behaviours().advertising_interval_ms
        ),
        None,
    )
    if row is None:
        return {"devices": TARGET_DEVICES, "met": None, "note": "not measured in this run"}
    if "error" in row:
        return {"devices": TARGET_DEVICES, "met": False, "note": row["error"]}
    sequential, concurrent = row["sync"]
    met = bool(sequential["all_synced"] and concurrent["all_synced"])
    note = (
        f"sequential {sequential['synced']}/{TARGET_DEVICES} in {sequential['elapsed_s']:.1f} s, "
        f"x{CONCURRENCY} {concurrent['synced']}/{TARGET_DEVICES} in "
        f"{concurrent['elapsed_s']:.1f} s; idle CPU share {row['load']['cpu_share']:.0%}"
    )
    return {"devices": TARGET_DEVICES, "met": met, "note": note}


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print the tables and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, short loops (smoke run)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        print(json.dumps(_worker(json.loads(options.worker))))
        return 0
    quick: bool = options.quick
    plan = QUICK if quick else FULL
    # Other work on the machine shows up in every figure; record how busy it was.
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    fleet_specs = [(count, Behaviours().advertising_interval_ms) for count in plan.sizes]
    fleet = [
        run_scenario(
            {"kind": "fleet", "quick": quick, "devices": count, "advertising_interval_ms": ms},
            _fleet_limit_s(plan),
        )
        for count, ms in [*fleet_specs, *plan.extra_fleets]
    ]
    stream_limit = plan.stream_limit_s * (4 * plan.stream_repeats + 2) + 60.0
    throughput = run_scenario({"kind": "throughput", "quick": quick}, stream_limit)
    memory = [
        run_scenario(
            {"kind": "memory", "quick": quick, "devices": count},
            2 * plan.start_limit_s + plan.load_window_s + 60.0,
        )
        for count in plan.sizes
    ]
    verdict = _verdict(fleet)

    _print_fleet(fleet)
    _print_throughput(throughput)
    _print_memory(memory)
    met = {True: "met", False: "NOT met", None: "not measured"}[verdict["met"]]
    print(f"\ntarget: {TARGET_DEVICES} devices synced in one process: {met} ({verdict['note']})")

    output: Path = options.output
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "processor_count": os.cpu_count(),
        "bleak": importlib.metadata.version("bleak"),
        "bumble": importlib.metadata.version("bumble"),
        "quick": quick,
        "plan": asdict(plan),
        "concurrency": CONCURRENCY,
        "adapter_connect_timeout_s": AdapterSettings().connect_timeout_s,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "fleet": fleet,
        "throughput": throughput,
        "memory": memory,
        "target": verdict,
    }
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
