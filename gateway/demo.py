"""`vitalbridge demo`: the whole chain on one machine, shown as the monitoring backend sees it.

A local broker (mosquitto, or an embedded one), the simulated "Demo home" household served over
a socket by `vitalbridge-sim` in its own process, and the real daemon (`vitalbridge run`, a
third process) with the simulated radio as its BLE backend. A subscriber prints each reading
as it arrives on the broker; once every device's stored readings are in, the daemon is stopped
with SIGTERM as systemd would, and the demo checks it said ``offline`` and exited cleanly.

The gateway never imports `simulators`: the simulators run as a command, and the daemon loads
their bleak backend by the module name in its configuration, as any backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import aiomqtt
import typer

from gateway.errors import VitalbridgeError
from gateway.localbroker import BrokerPreference, LocalBroker, local_broker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["DEMO_DEVICES", "DemoDevice", "DemoError", "format_reading", "run_demo"]

HUB_ID: Final = "demo-hub"
SCENARIO: Final = "demo"
START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 20.0
SETTLE_S: Final = 3.0
"""After the daemon stops, how long to wait for its ``offline`` status."""
STATES_S: Final = 10.0
"""After the last stored reading, how long to wait for every device's retained state (a
session publishes it when it hangs up, a few seconds after the device went quiet)."""


class DemoError(VitalbridgeError):
    """A part of the demo did not start or stop; the message says which and where its log is."""


@dataclass(frozen=True, slots=True)
class DemoDevice:
    """One simulated device of the demo household and how the hub is provisioned for it."""

    device_id: str
    address: str
    profile: str
    patient: str
    backlog: int
    """Readings it took before the hub connected (the scenario's backlog)."""
    consent_code: int | None = None


DEMO_DEVICES: Final = (
    DemoDevice("cuff-kitchen", "F0:00:00:00:0D:01", "blood_pressure", "patient-0001", 2),
    DemoDevice("oximeter-kitchen", "F0:00:00:00:0D:02", "pulse_oximeter", "patient-0001", 3),
    DemoDevice("scale-bathroom", "F0:00:00:00:0D:03", "weight_scale", "patient-0002", 2, 4321),
    DemoDevice("thermometer", "F0:00:00:00:0D:04", "health_thermometer", "patient-0001", 1),
    DemoDevice("glucose-meter", "F0:00:00:00:0D:05", "glucose", "patient-0003", 4),
)
"""Must match simulators/scenarios/demo.toml (addresses, backlogs, the scale's consent code)."""


@dataclass(slots=True)
class _Seen:
    readings: dict[str, int] = field(default_factory=dict)
    reading_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    statuses: list[str] = field(default_factory=list)
    device_states: set[str] = field(default_factory=set)

    def backlog_done(self) -> bool:
        return all(self.readings.get(d.device_id, 0) >= d.backlog for d in DEMO_DEVICES)


def format_reading(document: dict[str, object]) -> str:
    """Return a reading as one line: when, device, kind, patient, time source, values and units."""
    device = document.get("device")
    device_id = device.get("id") if isinstance(device, dict) else "?"
    parts: list[str] = []
    components = document.get("components")
    for component in components if isinstance(components, list) else []:
        if not isinstance(component, dict):
            continue
        name = str(component.get("field", "")).rsplit(".", 1)[-1]
        value = component.get("value")
        shown = component.get("special") if value is None else value
        parts.append(f"{name}={shown} {component.get('unit', '')}".rstrip())
    measured = str(document.get("measured_at", ""))[:19].replace("T", " ")
    return (
        f"{measured:<19}  {device_id!s:<16}  {document.get('kind')!s:<16}  "
        f"{document.get('patient')!s:<12}  {document.get('time_source')!s:<23}  "
        f"{', '.join(parts)}"
    )


def _header() -> str:
    return (
        f"{'MEASURED (UTC)':<19}  {'DEVICE':<16}  {'KIND':<16}  {'PATIENT':<12}  "
        f"{'TIME SOURCE':<23}  VALUES"
    )


def _config(work: Path, broker: LocalBroker, hci_spec: str) -> str:
    lines = [
        f'hub_id = "{HUB_ID}"',
        f'state_dir = "{work / "state"}"',
        'timezone = "Europe/London"',
        'hub_clock = "trusted"',
        "status_interval_s = 5",
        "",
        "[mqtt]",
        f'broker_url = "{broker.url}"',
        f'protocol = "{broker.protocol}"',
        "",
        "[ble]",
        'backend = "simulators.bleak_backend"',
        "max_connections = 3",
        "connect_timeout_s = 5",
        "backoff_base_s = 1",
        "backoff_cap_s = 10",
        "",
        "[ble.backend_options]",
        f'hci_spec = "{hci_spec}"',
        "",
        "[logging]",
        'level = "info"',
        'format = "json"',
    ]
    for device in DEMO_DEVICES:
        lines += [
            "",
            "[[devices]]",
            f'id = "{device.device_id}"',
            f'address = "{device.address}"',
            f'profile = "{device.profile}"',
        ]
        if device.consent_code is None:
            lines.append(f'patient = "{device.patient}"')
        else:
            lines.append(f'patients = {{ 0 = "{device.patient}" }}')
            lines.append(f"consent_codes = {{ 0 = {device.consent_code} }}")
    return "\n".join(lines) + "\n"


def _command(name: str, module: str) -> list[str]:
    # The console script beside this interpreter, else the module: both run this installation.
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", module]


@contextlib.asynccontextmanager
async def _process(
    argv: list[str], log_file: Path, *, stdout_pipe: bool = False
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(STOP_TIMEOUT_S):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _exposed_spec(process: asyncio.subprocess.Process, log_file: Path) -> str:
    stream = process.stdout
    if stream is None:
        raise DemoError("the simulators' output is not readable")
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while line := await stream.readline():
                with contextlib.suppress(json.JSONDecodeError):
                    event = json.loads(line)
                    if isinstance(event, dict) and event.get("event") == "exposed":
                        return str(event["client"])
    except TimeoutError:
        pass
    raise DemoError(f"the simulators did not start; see {log_file}")


async def _drain(stream: asyncio.StreamReader | None) -> None:
    # The simulators print every event; read them so that the pipe never fills and blocks them.
    if stream is None:
        return
    while await stream.readline():
        pass


async def run_demo(
    *, duration_s: float = 120.0, broker: BrokerPreference = "auto", keep: bool = False
) -> bool:
    """Run the demo; print readings as the backend receives them; return whether all arrived."""
    work = Path(tempfile.mkdtemp(prefix="vitalbridge-demo-"))
    ok = False
    try:
        ok = await _run(work, duration_s, broker)
    finally:
        if keep or not ok:
            typer.echo(f"Demo files (configuration, logs) kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return ok


async def _run(work: Path, duration_s: float, prefer: BrokerPreference) -> bool:
    socket_path = work / "radio.sock"
    async with local_broker(work / "broker", prefer=prefer) as broker:
        typer.echo(f"Broker: {broker.kind} (MQTT {broker.protocol}) at {broker.url}")
        sim_log = work / "simulators.log"
        sim_argv = [
            *_command("vitalbridge-sim", "simulators.cli"),
            "run",
            SCENARIO,
            "--json",
            "--expose",
            f"unix-server:{socket_path}",
        ]
        async with _process(sim_argv, sim_log, stdout_pipe=True) as simulators:
            hci_spec = await _exposed_spec(simulators, sim_log)
            drain = asyncio.create_task(_drain(simulators.stdout), name="simulator-output")
            typer.echo(f"Simulators: 5 devices of the 'Demo home' household on {hci_spec}")
            config_file = work / "config.toml"
            config_file.write_text(_config(work, broker, hci_spec))
            try:
                return await _with_daemon(work, broker, config_file, duration_s)
            finally:
                drain.cancel()


async def _with_daemon(
    work: Path, broker: LocalBroker, config_file: Path, duration_s: float
) -> bool:
    seen = _Seen()
    version = aiomqtt.ProtocolVersion.V5 if broker.protocol == "5" else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(
        broker.host, broker.port, identifier="demo-backend", protocol=version
    ) as backend:
        await backend.subscribe(f"hubs/{HUB_ID}/#", qos=1)
        daemon_log = work / "daemon.log"
        daemon_argv = [
            *_command("vitalbridge", "gateway.entry"),
            "run",
            "--config",
            str(config_file),
        ]
        typer.echo(f"Daemon: vitalbridge run --config {config_file} (log: {daemon_log})\n")
        typer.echo(_header())
        async with _process(daemon_argv, daemon_log) as daemon:
            try:
                async with asyncio.timeout(duration_s):
                    await _collect(backend, seen, until_backlog=True)
                    if len(seen.device_states) < len(DEMO_DEVICES):
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(STATES_S):
                                await _collect(backend, seen, until_states=True)
            except TimeoutError:
                typer.echo(f"\nStopped after {duration_s:.0f}s without every stored reading.")
            if daemon.returncode is not None:
                raise DemoError(f"the daemon exited with {daemon.returncode}; see {daemon_log}")
            daemon.send_signal(signal.SIGTERM)
            async with asyncio.timeout(STOP_TIMEOUT_S):
                code = await daemon.wait()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SETTLE_S):
                        await _collect(backend, seen, until_offline=True)
    return _summary(seen, code, daemon_log)


async def _collect(
    backend: aiomqtt.Client,
    seen: _Seen,
    *,
    until_backlog: bool = False,
    until_offline: bool = False,
    until_states: bool = False,
) -> None:
    readings = f"hubs/{HUB_ID}/readings/"
    async for message in backend.messages:
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            document = json.loads(payload)
        except json.JSONDecodeError:
            continue
        if not isinstance(document, dict):
            continue
        if topic.startswith(readings):
            reading_id = str(document.get("reading_id"))
            if reading_id in seen.reading_ids:
                seen.duplicates += 1
                continue
            seen.reading_ids.add(reading_id)
            device = document.get("device")
            device_id = str(device.get("id")) if isinstance(device, dict) else "?"
            seen.readings[device_id] = seen.readings.get(device_id, 0) + 1
            typer.echo(format_reading(document))
            if until_backlog and seen.backlog_done():
                return
        elif topic == f"hubs/{HUB_ID}/status":
            seen.statuses.append(str(document.get("state")))
            if until_offline and document.get("state") == "offline":
                return
        elif topic.startswith(f"hubs/{HUB_ID}/devices/"):
            seen.device_states.add(topic.rsplit("/", 1)[-1])
            if until_states and len(seen.device_states) >= len(DEMO_DEVICES):
                return


def _summary(seen: _Seen, exit_code: int, daemon_log: Path) -> bool:
    total = sum(seen.readings.values())
    typer.echo(
        f"\n{total} readings from {len(seen.readings)} devices received by the backend "
        f"({seen.duplicates} duplicate deliveries dropped by reading_id); "
        f"device state published for {len(seen.device_states)} devices."
    )
    for device in DEMO_DEVICES:
        got = seen.readings.get(device.device_id, 0)
        mark = "ok" if got >= device.backlog else "MISSING"
        stored = f"({device.backlog} stored beforehand)"
        typer.echo(f"  {device.device_id:<16} {got:>2} readings {stored} {mark}")
    offline = "offline" in seen.statuses
    typer.echo(
        f"Daemon stopped with SIGTERM: exit code {exit_code}, "
        f"status {'offline published' if offline else 'offline NOT seen'}."
    )
    ok = seen.backlog_done() and exit_code == 0 and offline
    if not ok:
        typer.echo(f"Something went wrong: see the daemon's log {daemon_log}", err=True)
    return ok
