"""`vitalbridge-sim`: list the simulated devices and patients, check and run scenario households.

Run ``vitalbridge-sim --help``; each command documents itself. A household runs on a simulated
radio in this process; ``run --expose`` serves that radio to a gateway in another process, and
``attach`` puts one device on a real HCI controller for hardware-in-the-loop testing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any, Final, cast

import typer
from bumble import gatt, hci
from bumble.device import Device, DeviceConfiguration
from bumble.transport import open_transport

from device_profiles import CHARACTERISTICS, DecodeError, as_dict, decode
from simulators.bleak_backend import HCI_ENV_VAR
from simulators.devices import DEVICE_TYPES, PROFILES, SimulatorConfig
from simulators.household import build_device, build_household, run_device
from simulators.radio import Radio, RadioConfigError
from simulators.scenario import (
    MULTI_USER_TYPES,
    RACP_TYPES,
    Scenario,
    ScenarioError,
    bundled_scenarios,
    find_scenario,
    load_scenario,
    parse_device_spec,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator, Sequence

    from bumble.device import Connection

    from device_profiles import Characteristic
    from simulators.devices import Sent
    from simulators.household import Activity, ScenarioDevice
    from simulators.scenario import DeviceSpec

__all__ = ["CliError", "app"]

POWER_ON_TIMEOUT_S: Final = 15.0
"""How long a real controller gets to answer the reset and setup commands of a power-on."""
OPEN_TIMEOUT_S: Final = 15.0
"""How long opening an HCI transport may take before the controller counts as absent."""
_COMMON_SERVICES: Final = frozenset({0x1800, 0x1801, 0x180A, 0x180F, 0x1805})
_GENERIC_SERVICES: Final = frozenset({0x1800, 0x1801})
_HARDWARE_ADVICE: Final = (
    "check that the controller is plugged in, that no other stack uses it (btmgmt power off, "
    "or unbind btusb) and that you may open it, or give another transport "
    "(usb:0, usb:VID:PID, serial:/dev/ttyACM0,1000000, hci-socket:0)"
)

app = typer.Typer(
    name="vitalbridge-sim",
    help="Simulated Bluetooth LE health devices: list them, check and run scenario households.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class CliError(Exception):
    """Something the user can fix (a transport, a socket path): one sentence saying what."""


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=1)


def _status(message: str) -> None:
    typer.echo(message, err=True)


def _load(name_or_path: str) -> Scenario:
    try:
        return load_scenario(find_scenario(name_or_path))
    except ScenarioError as exc:
        raise _fail(str(exc)) from None


# -- devices, profiles, scenarios, check -------------------------------------------------------


def _uuid16(uuid: object) -> int | None:
    text = str(getattr(uuid, "to_hex_str", lambda: "")())
    return int(text, 16) if len(text) == 4 else None  # noqa: PLR2004 - a 16-bit UUID's hex digits


def _service_name(service: gatt.Service) -> str:
    short = _uuid16(service.uuid)
    return f"{service.uuid.name or service.uuid} (0x{short:04X})" if short else str(service.uuid)


def _characteristic_line(characteristic: gatt.Characteristic[Any]) -> str:
    short = _uuid16(characteristic.uuid)
    codec = CHARACTERISTICS.get(short) if short is not None else None
    name = codec.NAME if codec is not None else str(characteristic.uuid)
    properties = str(characteristic.properties).lower().replace("|", ", ")
    return f"      0x{short or 0:04X}  {name} ({properties})"


async def _describe_device_types() -> list[str]:
    radio = Radio(seed=0)
    lines: list[str] = []
    for index, (kind, cls) in enumerate(DEVICE_TYPES.items()):
        # A device that is never powered on: only its GATT database is read.
        device = cls.on_radio(radio, f"F0:00:00:00:FF:{index:02X}", SimulatorConfig())
        users = "multi-user (UDS)" if kind in MULTI_USER_TYPES else "single user"
        racp = "RACP" if kind in RACP_TYPES else "no RACP"
        lines.append(f"{kind}  (default name {cls.DEFAULT_NAME!r}, {users}, {racp})")
        common: list[str] = []
        current: gatt.Service | None = None
        for attribute in device.device.gatt_server.attributes:
            if isinstance(attribute, gatt.Service):
                short = _uuid16(attribute.uuid) or 0
                if short in _GENERIC_SERVICES:
                    current = None
                elif short in _COMMON_SERVICES:
                    common.append(str(attribute.uuid.name))
                    current = None
                else:
                    current = attribute
                    lines.append(f"    {_service_name(attribute)}")
            elif isinstance(attribute, gatt.Characteristic) and current is not None:
                lines.append(_characteristic_line(attribute))
        lines.append(f"    also: {', '.join(common)}")
    return lines


@app.command()
def devices() -> None:
    """List the device types: default name, the services they serve, multi-user and RACP."""
    for line in asyncio.run(_describe_device_types()):
        typer.echo(line)


@app.command()
def profiles() -> None:
    """List the patient profiles and their typical values."""
    typer.echo(
        f"{'profile':<28} {'age':>3} {'sex':<6} {'height':>6} {'weight':>7} {'fat':>4} "
        f"{'BP mmHg':>8} {'pulse':>5} {'SpO2':>5} {'temp':>6} {'glucose':>10} {'irregular':>9}"
    )
    for name, p in PROFILES.items():
        typer.echo(
            f"{name:<28} {p.age_years:>3} {p.sex:<6} {p.height_m:>4.2f} m {p.weight_kg:>4.1f} kg "
            f"{p.body_fat_percent:>3.0f}% {f'{p.systolic_mmhg:.0f}/{p.diastolic_mmhg:.0f}':>8} "
            f"{p.heart_rate_bpm:>5.0f} {p.spo2_percent:>4.1f}% {p.temperature_c:>4.1f} C "
            f"{p.glucose_fasting_mg_dl:>4.0f} mg/dL {p.irregular_pulse_rate:>8.0%}"
        )


@app.command()
def scenarios() -> None:
    """List the bundled scenarios (run them by name: vitalbridge-sim run NAME)."""
    for name, path in bundled_scenarios().items():
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            typer.echo(f"{name:<22} invalid: {exc}")
            continue
        kinds = ", ".join(device.type for device in scenario.devices)
        typer.echo(f"{name:<22} {scenario.household}: {scenario.description}")
        typer.echo(f"{'':<22} {len(scenario.devices)} device(s): {kinds}")


@app.command()
def check(
    scenario: Annotated[
        str,
        typer.Argument(
            metavar="SCENARIO", help="A scenario file (.toml, .yaml) or a bundled scenario's name."
        ),
    ],
) -> None:
    """Validate a scenario file; exit code 1 and what to fix on stderr if it is wrong."""
    loaded = _load(scenario)
    count = len(loaded.devices)
    typer.echo(
        f"ok: {find_scenario(scenario)}: {loaded.household!r}, seed {loaded.seed}, "
        f"{count} device{'s' if count != 1 else ''}: "
        + ", ".join(f"{d.display_name} ({d.type})" for d in loaded.devices)
    )


# -- printing what devices do ------------------------------------------------------------------


def _characteristic_values(reading: object) -> list[Characteristic]:
    """Return the characteristic values in a reading: itself, or those a record holds."""
    if hasattr(type(reading), "UUID"):
        return [cast("Characteristic", reading)]
    if dataclasses.is_dataclass(reading) and not isinstance(reading, type):
        values = (getattr(reading, field.name) for field in dataclasses.fields(reading))
        return [cast("Characteristic", v) for v in values if hasattr(type(v), "UUID")]
    return []


def _flat(value: object, prefix: str = "") -> Iterator[str]:
    """Human key=value pairs of an `as_dict` result, leaving out what is empty."""
    if isinstance(value, dict):
        if "iso" in value and "year" in value:
            iso = value["iso"]
            yield f"{prefix}={iso if iso is not None else 'unknown'}"
            return
        for key, item in value.items():
            yield from _flat(item, f"{prefix}.{key}" if prefix else str(key))
    elif value is None or value in ([], ""):
        return
    elif isinstance(value, list):
        yield f"{prefix}={','.join(str(item) for item in value)}"
    else:
        yield f"{prefix}={str(value).lower() if isinstance(value, bool) else value}"


def _reason(code: int) -> str:
    try:
        return hci.HCI_ErrorCode(code).name.removesuffix("_ERROR").lower().replace("_", " ")
    except ValueError:
        return f"reason 0x{code:02X}"


@dataclasses.dataclass
class _Printer:
    """Prints what each device does, one line per event: human form or JSON lines."""

    json_lines: bool
    name_width: int = 12
    dated: bool = False
    """Show dates too: some readings are from the backlog, hours or days old."""
    counts: Counter[str] = dataclasses.field(default_factory=Counter)

    def watch(self, member: ScenarioDevice) -> None:
        """Print every send of `member`, and its hub connecting and going."""
        member.device.add_sent_listener(lambda sent: self._sent(member, sent))
        member.device.device.on(
            Device.EVENT_CONNECTION, lambda connection: self._connection(member, connection)
        )

    def exposed(self, server_spec: str, client_spec: str) -> None:
        """Say what the gateway must open to reach the exposed radio."""
        if self.json_lines:
            self._emit({"event": "exposed", "server": server_spec, "client": client_spec})
            return
        typer.echo(f"Radio exposed on {server_spec}. Point the gateway's bleak backend at it:")
        typer.echo(f"  {HCI_ENV_VAR}={client_spec}")

    def activity(self, member: ScenarioDevice, activity: Activity) -> None:
        """Print a button press, or a reading that stayed on the device (sends print apart)."""
        if activity.kind == "sent":
            return  # the Sent listener prints each value as it goes out
        if activity.kind in {"started", "button"}:
            detail = "pressed: advertising" if activity.kind == "button" else "powered on"
            if activity.kind == "started":
                waits = member.spec.behaviours.advertise_on_button_press
                detail += ", waiting for a button press" if waits else ", advertising"
            self._line(member, activity.at, activity.kind, {"detail": detail}, detail)
            return
        for value in _characteristic_values(activity.reading):
            fields: dict[str, object] = {
                "characteristic": value.NAME,
                "uuid": f"0x{value.UUID:04X}",
                "data": value.encode().hex(),
                "value": as_dict(value),
            }
            if activity.backlog:
                fields["backlog"] = True
            text = f"{value.NAME}: {' '.join(_flat(as_dict(value)))}"
            self._line(member, activity.at, activity.kind, fields, text)

    def _sent(self, member: ScenarioDevice, sent: Sent) -> None:
        codec = CHARACTERISTICS.get(sent.uuid)
        name = codec.NAME if codec is not None else f"0x{sent.uuid:04X}"
        fields: dict[str, object] = {
            "characteristic": name,
            "uuid": f"0x{sent.uuid:04X}",
            "method": sent.method,
            "data": sent.data.hex(),
        }
        if sent.fault is not None:
            fields["fault"] = sent.fault.value
        try:
            decoded = as_dict(decode(sent.uuid, sent.data))
        except DecodeError as exc:
            fields["error"] = str(exc)
            text = f"{name}: cannot decode ({exc}); data {sent.data.hex()}"
        else:
            fields["value"] = decoded
            text = f"{name}: {' '.join(_flat(decoded))}"
        if sent.fault is not None:
            text = f"[{sent.fault.value}] {text}"
        event = "dropped" if sent.dropped else "sent"
        self._line(member, sent.at, event, fields, f"{sent.method:<8} {text}")

    def _connection(self, member: ScenarioDevice, connection: Connection) -> None:
        if connection.role != hci.Role.PERIPHERAL:
            return
        peer = connection.peer_address.to_string(with_type_qualifier=False)
        now = member.clock.now()
        self._line(member, now, "connected", {"hub": peer}, f"hub {peer}")

        def on_disconnection(reason: int) -> None:
            text = f"hub {peer} ({_reason(reason)})"
            fields = {"hub": peer, "reason": reason}
            self._line(member, member.clock.now(), "disconnected", fields, text)

        connection.on(connection.EVENT_DISCONNECTION, on_disconnection)

    def _line(
        self,
        member: ScenarioDevice,
        at: dt.datetime,
        event: str,
        fields: dict[str, object],
        text: str,
    ) -> None:
        self.counts[event] += 1
        if self.json_lines:
            self._emit(
                {
                    "time": at.isoformat(timespec="milliseconds"),
                    "device": member.spec.display_name,
                    "type": member.spec.type,
                    "address": member.spec.address,
                    "event": event,
                    **fields,
                }
            )
            return
        when = f"{at:%H:%M:%S}.{at.microsecond // 1000:03d}"
        if self.dated:
            when = f"{at:%Y-%m-%d} {when}"
        name = member.spec.display_name
        typer.echo(f"{when}  {name:<{self.name_width}}  {event:<12} {text}")

    def _emit(self, record: dict[str, object]) -> None:
        typer.echo(json.dumps(record, ensure_ascii=False))

    def summary(self) -> str:
        """One line counting what was printed, by event."""
        counted = ", ".join(f"{count} {event}" for event, count in sorted(self.counts.items()))
        return counted or "nothing happened"


# -- running -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set `stop` on Ctrl-C or SIGTERM; a second signal acts at once, as Python's default."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal() -> None:
        stop.set()
        for number in installed:
            loop.remove_signal_handler(number)

    for number in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows, nor outside the main thread: there Ctrl-C still ends the run.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(number, on_signal)
            installed.append(number)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


async def _serve(
    members: Sequence[ScenarioDevice], printer: _Printer, duration_s: float | None
) -> None:
    """Run every device's schedule until Ctrl-C, SIGTERM or the duration; then stop them all."""
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        try:
            async with asyncio.TaskGroup() as group:
                schedules = [
                    group.create_task(
                        run_device(member, printer.activity),
                        name=f"schedule:{member.spec.display_name}",
                    )
                    for member in members
                ]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(duration_s):
                        await stop.wait()
                for schedule in schedules:
                    schedule.cancel()
        finally:
            for member in reversed(members):
                await member.device.stop()
                for error in member.device.task_errors:
                    _status(f"{member.spec.display_name}: background task failed: {error!r}")


async def _run(
    scenario: Scenario, expose: str | None, duration_s: float | None, printer: _Printer
) -> None:
    radio = Radio(seed=scenario.seed)
    async with contextlib.AsyncExitStack() as stack:
        if expose is not None:
            try:
                exposure = await stack.enter_async_context(radio.expose(expose, name="hub"))
            except OSError as exc:
                msg = (
                    f"Cannot serve the radio on {expose!r} ({exc.strerror or exc}); choose a "
                    "socket path in a writable directory that no other simulator uses, or "
                    "tcp-server:127.0.0.1:0 for a free port."
                )
                raise CliError(msg) from exc
            printer.exposed(exposure.server_spec, exposure.client_spec)
        household = build_household(scenario, radio)
        for member in household:
            printer.watch(member)
        await _serve(household, printer, duration_s)


@app.command()
def run(
    scenario: Annotated[
        str,
        typer.Argument(
            metavar="SCENARIO", help="A scenario file (.toml, .yaml) or a bundled scenario's name."
        ),
    ],
    expose: Annotated[
        str | None,
        typer.Option(
            metavar="SPEC",
            help="Serve the radio to a gateway in another process: unix-server:PATH or "
            "tcp-server:HOST:PORT (port 0: a free one). Prints the value of "
            f"{HCI_ENV_VAR} for the gateway.",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(metavar="S", min=0.0, help="Stop after S seconds (default: Ctrl-C)."),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of human-readable lines.")
    ] = False,
    seed: Annotated[
        int | None, typer.Option(metavar="N", help="Override the scenario's seed.")
    ] = None,
) -> None:
    """Run a household: start its devices, follow their schedules, print what they send.

    Each line is one event: a value sent (decoded with device_profiles), a reading stored on the
    device while no hub listens, a button press, a hub connecting or leaving. Stops on Ctrl-C,
    SIGTERM or after --duration.
    """
    loaded = _load(scenario)
    if seed is not None:
        loaded = loaded.with_seed(seed)
    width = max(len(device.display_name) for device in loaded.devices)
    dated = any(device.schedule.backlog for device in loaded.devices)
    printer = _Printer(json_lines=json_lines, name_width=width, dated=dated)
    names = ", ".join(device.display_name for device in loaded.devices)
    _status(f"{loaded.household} (seed {loaded.seed}): {names}. Ctrl-C to stop.")
    try:
        asyncio.run(_run(loaded, expose, duration, printer))
    except (CliError, RadioConfigError) as exc:
        raise _fail(str(exc)) from None
    _status(f"Stopped: {printer.summary()}.")


# -- hardware in the loop ----------------------------------------------------------------------

# Where an attach option's validation problem comes from, for the error message.
_OPTION_OF: Final = {
    "type": "TYPE",
    "address": "--address",
    "name": "--name",
    "patient": "--patient",
    "seed": "--seed",
    "schedule.every_s": "--every",
    "schedule.count": "--count",
}


def _device_spec(data: dict[str, object]) -> DeviceSpec:
    try:
        return parse_device_spec(data)
    except ScenarioError as exc:
        problem = exc.problems[0]
        option = _OPTION_OF.get(problem.field, problem.field)
        raise _fail(f"{option}: {problem.message}") from None


async def _attach(
    spec: DeviceSpec, seed: int, transport_spec: str, duration_s: float | None, printer: _Printer
) -> None:
    try:
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            transport = await open_transport(transport_spec)
    # Broad on purpose: each Bumble driver raises its own types (usb1, pyserial, bare Exception).
    except Exception as exc:
        msg = f"Cannot open the HCI transport {transport_spec!r} ({exc}); {_HARDWARE_ADVICE}."
        raise CliError(msg) from exc
    async with transport:
        config = DeviceConfiguration(name=spec.display_name, address=hci.Address(spec.address))
        host = Device.from_config_with_hci(config, transport.source, transport.sink)
        member = build_device(spec, seed, host)
        printer.watch(member)
        try:
            async with asyncio.timeout(POWER_ON_TIMEOUT_S):
                await member.device.start()
        except TimeoutError as exc:
            msg = (
                f"The controller on {transport_spec!r} did not answer within "
                f"{POWER_ON_TIMEOUT_S:.0f} s; check that it runs HCI firmware (and the serial "
                "speed and flow control), or unplug it and plug it in again."
            )
            raise CliError(msg) from exc
        _status(f"{spec.display_name} ({spec.type}) on {transport_spec}. Ctrl-C to stop.")
        await _serve([member], printer, duration_s)


@app.command()
def attach(
    device_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="A device type (vitalbridge-sim devices).")
    ],
    transport: Annotated[
        str,
        typer.Option(
            "--transport",
            "-t",
            metavar="SPEC",
            help="The controller's Bumble HCI transport: usb:0, usb:VID:PID, "
            "serial:/dev/ttyACM0,1000000,rtscts, hci-socket:0.",
        ),
    ],
    address: Annotated[
        str, typer.Option(help="The device's random static address (first byte C0..FF).")
    ] = "F0:00:00:00:00:01",
    name: Annotated[str | None, typer.Option(help="The advertised name.")] = None,
    patient: Annotated[
        str, typer.Option(help="Whom it measures (vitalbridge-sim profiles).")
    ] = "normal",
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the readings.")] = 0,
    every: Annotated[float, typer.Option(metavar="S", help="Seconds between measurements.")] = 30.0,
    count: Annotated[
        int | None, typer.Option(metavar="N", help="Measure N times (default: until stopped).")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(metavar="S", min=0.0, help="Stop after S seconds (default: Ctrl-C)."),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of human-readable lines.")
    ] = False,
) -> None:
    """Run one virtual device on a real HCI controller, for hardware-in-the-loop testing.

    The device is the same GATT server as on the simulated radio, but it transmits through a
    real controller that Bumble opens: a USB dongle (usb:0, or usb:VID:PID such as
    usb:0b05:17cb), a UART controller such as an nRF52 running Zephyr's HCI firmware
    (serial:/dev/ttyACM0,1000000,rtscts), or a Linux adapter through the kernel's user channel
    (hci-socket:0). The controller must be free: power it off in BlueZ (btmgmt --index 0 power
    off) or unbind btusb, and give your user access to the USB or serial device. A phone or a
    gateway on another machine then finds the device over the air. Not tested in CI.

    Example: vitalbridge-sim attach blood_pressure_cuff --transport usb:0 --patient hypertensive
    """
    schedule: dict[str, object] = {"every_s": every}
    if count is None:
        schedule["forever"] = True
    else:
        schedule["count"] = count
    data: dict[str, object] = {
        "type": device_type,
        "address": address,
        "patient": patient,
        "seed": seed,
        "schedule": schedule,
    }
    if name is not None:
        data["name"] = name
    spec = _device_spec(data)
    printer = _Printer(json_lines=json_lines, name_width=len(spec.display_name))
    try:
        asyncio.run(_attach(spec, seed, transport, duration, printer))
    except CliError as exc:
        raise _fail(str(exc)) from None
    _status(f"Stopped: {printer.summary()}.")


if __name__ == "__main__":
    app()
