"""The `vitalbridge` command: run the daemon, check its configuration, ask it how it is doing.

Every command that reads the configuration takes ``--config`` (default
/etc/vitalbridge/config.toml). `status`, `devices` and `pairing` ask the running daemon over its
control socket in the state directory. Exit codes: 0 success, 1 the request failed, 78 the
configuration is wrong (EX_CONFIG; systemd does not restart-loop on it).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from gateway.config import DEFAULT_CONFIG_PATH, HubConfig, dump_redacted, load_config
from gateway.control import SOCKET_NAME, ControlError, call
from gateway.errors import ConfigError
from gateway.pairing_cli import pair as pair_command
from gateway.support_cli import doctor_command, provision_command

if TYPE_CHECKING:
    from gateway.localbroker import BrokerPreference

__all__ = ["EXIT_CONFIG", "app"]

EXIT_CONFIG: Final = 78
EXIT_FAILED: Final = 1

app = typer.Typer(
    name="vitalbridge",
    help=(
        "Vitalbridge home hub: reads Bluetooth health devices and sends their readings to the "
        "monitoring service. Start with `vitalbridge config check`, then `vitalbridge status`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check the hub's configuration file.", no_args_is_help=True)
pairing_app = typer.Typer(
    help="Let the hub accept new health devices for a few minutes.", no_args_is_help=True
)
web_app = typer.Typer(help="The local pairing page for patients.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(pairing_app, name="pairing")
app.add_typer(web_app, name="web")

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="The configuration file.",
        envvar="VITALBRIDGE_CONFIG",
        show_default=True,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _load(path: Path) -> HubConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"Configuration error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc


@app.command()
def run(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Run the hub daemon in the foreground (systemd runs this; Ctrl-C or SIGTERM stops it)."""
    from gateway.entry import run_daemon_command  # noqa: PLC0415 - keeps the quick commands light

    code = run_daemon_command(config)
    if code:
        raise typer.Exit(code)


@app.command()
def demo(
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds at most.", min=10)
    ] = 120.0,
    broker: Annotated[
        str, typer.Option(help="auto (mosquitto if installed), mosquitto or embedded.")
    ] = "auto",
) -> None:
    """Run the whole chain on this machine: simulated devices, the daemon and a local broker."""
    from gateway.demo import DemoError, run_demo  # noqa: PLC0415 - pulls in the broker

    preference: BrokerPreference
    if broker == "auto":
        preference = "auto"
    elif broker == "mosquitto":
        preference = "mosquitto"
    elif broker == "embedded":
        preference = "embedded"
    else:
        typer.echo("--broker must be auto, mosquitto or embedded", err=True)
        raise typer.Exit(EXIT_FAILED)
    try:
        ok = asyncio.run(run_demo(duration_s=duration, broker=preference))
    except DemoError as exc:
        typer.echo(f"Demo failed: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from exc
    if not ok:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def status(config: ConfigOption = DEFAULT_CONFIG_PATH, as_json: JsonOption = False) -> None:
    """Show how the running hub is doing: uplink, outbox, adapter, devices, alarms."""
    result = _ask(config, "status")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if not isinstance(result, dict):
        raise typer.Exit(EXIT_FAILED)
    outbox = result.get("outbox", {})
    uplink = result.get("uplink", {})
    devices = result.get("devices", {})
    connected = ", ".join(devices.get("connected") or []) or "none"
    hub = f"Hub {result.get('hub_id')} (version {result.get('version')})"
    lines = [
        f"{hub}, up {result.get('uptime_s')} s",
        f"Uplink: {uplink.get('state')}, last publish {uplink.get('last_publish_at') or 'never'}",
        f"Outbox: {outbox.get('depth')} waiting, oldest {outbox.get('oldest_measured_at') or '-'}",
        f"Devices: {devices.get('provisioned')} provisioned, connected now: {connected}",
        f"Alarms: {', '.join(result.get('alarms') or []) or 'none'}",
    ]
    window = result.get("pairing_window_s")
    if window is not None:
        lines.append(f"Pairing window open for {window} more seconds")
    typer.echo("\n".join(lines))


@app.command()
def devices(config: ConfigOption = DEFAULT_CONFIG_PATH, as_json: JsonOption = False) -> None:
    """List the provisioned devices with battery, last contact and last reading."""
    result = _ask(config, "devices")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    rows = result if isinstance(result, list) else []
    header = f"{'DEVICE':<24} {'PROFILE':<20} {'BATTERY':>7}  {'LAST SEEN':<25} LAST READING"
    typer.echo(header)
    for row in rows:
        battery = row.get("battery_level")
        typer.echo(
            f"{row.get('device_id', ''):<24} {row.get('profile', ''):<20} "
            f"{'-' if battery is None else f'{battery}%':>7}  "
            f"{row.get('last_seen') or 'never':<25} {row.get('last_reading_at') or 'never'}"
        )
        if row.get("last_error"):
            typer.echo(f"{'':<24} last problem: {row['last_error']}")


@pairing_app.command("open")
def pairing_open(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    minutes: Annotated[float, typer.Option(help="How long to accept new devices.")] = 5.0,
    profile: Annotated[
        str | None, typer.Option(help="Accept only this profile, e.g. blood_pressure.")
    ] = None,
) -> None:
    """Accept new health devices for a few minutes; put the device in pairing mode now."""
    args: dict[str, object] = {"minutes": minutes}
    if profile is not None:
        args["profile"] = profile
    _ask(config, "pair", **args)
    typer.echo(
        f"The hub accepts new health devices for {minutes:g} minutes. Switch the device on or "
        "take a measurement so that it advertises; `vitalbridge devices` shows it once paired."
    )


@pairing_app.command("close")
def pairing_close(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Stop accepting new devices now."""
    _ask(config, "close_pairing")
    typer.echo("The hub no longer accepts new devices.")


@config_app.command("check")
def config_check(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    show: Annotated[
        bool, typer.Option("--show", help="Print the effective configuration (no secrets).")
    ] = False,
) -> None:
    """Validate the configuration file (and VITALBRIDGE_* overrides) without starting anything."""
    settings = _load(config)
    if show:
        typer.echo(json.dumps(dump_redacted(settings), indent=2, default=str))
    typer.echo(
        f"{config}: OK: hub {settings.hub_id}, {len(settings.devices)} device(s), "
        f"broker {settings.mqtt.endpoint}"
    )


@web_app.command("code")
def web_code(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Show a one-time code that opens the pairing page (valid once, for a few minutes)."""
    result = _ask(config, "web_code")
    if not isinstance(result, dict):
        raise typer.Exit(EXIT_FAILED)
    minutes = max(1, round(float(result.get("valid_s", 0)) / 60))
    typer.echo(
        f"Pairing page code: {result.get('code')}  (type it on the page; valid once, for "
        f"{minutes} minutes)"
    )


def _ask(config: Path, command: str, **args: object) -> object:
    settings = _load(config)
    try:
        return asyncio.run(call(settings.state_dir / SOCKET_NAME, command, **args))
    except ControlError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_FAILED) from exc


app.command("pair")(pair_command)
app.command("provision")(provision_command)
app.command("doctor")(doctor_command)


def main() -> None:
    """Run the CLI (``python -m gateway.cli``)."""
    app()


if __name__ == "__main__":
    main()
