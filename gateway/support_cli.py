"""Support commands: `vitalbridge provision BUNDLE` installs a hub, `vitalbridge doctor` checks one.

Exit codes: provision 0 done, 78 the bundle was refused (nothing changed), 1 it could not be
written; doctor 0 all good, 1 warnings only, 2 at least one failure, 78 no usable configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Final

import typer

from gateway.config import DEFAULT_CONFIG_PATH, load_config
from gateway.errors import ConfigError

# gateway.provision pulls in `cryptography` (about 8 MB): the daemon, which imports this
# module with the CLI, must not pay for it, so it is imported when a command runs.
DEFAULT_CONFIG_DIR: Final = Path("/etc/vitalbridge")

__all__ = ["EXIT_CONFIG", "app", "doctor_command", "provision_command"]

EXIT_CONFIG: Final = 78
EXIT_FAILED: Final = 1

app = typer.Typer(
    help="Install a provisioning bundle and check a hub's health.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("provision")
def provision_command(
    bundle: Annotated[
        Path,
        typer.Argument(help="The bundle: a directory, a .tar.gz or a .zip.", show_default=False),
    ],
    config_dir: Annotated[
        Path, typer.Option("--config-dir", help="Where the hub's configuration lives.")
    ] = DEFAULT_CONFIG_DIR,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the bundle (and the broker); write nothing.")
    ] = False,
    broker_check: Annotated[
        bool,
        typer.Option(
            "--broker-check/--no-broker-check",
            help="Connect to the broker with the bundle's identity before installing it.",
        ),
    ] = True,
) -> None:
    """Check a provisioning bundle and install it as this hub's configuration, all or nothing."""
    from gateway.provision import Part, ProvisionError, provision  # noqa: PLC0415

    try:
        result = provision(
            bundle, config_dir=config_dir, dry_run=dry_run, check_broker=broker_check
        )
    except ProvisionError as exc:
        typer.echo(f"Provisioning refused: {exc}", err=True)
        typer.echo(f"Nothing was changed in {config_dir}.", err=True)
        code = EXIT_FAILED if exc.part is Part.TARGET else EXIT_CONFIG
        raise typer.Exit(code) from exc
    verb = "Checked" if result.dry_run else "Provisioned"
    typer.echo(f"{verb} hub {result.hub_id} ({len(result.config.devices)} device(s)):")
    for action in result.actions:
        typer.echo(f"  - {action}")
    for warning in result.warnings:
        typer.echo(f"  ! warning: {warning}")
    if not result.dry_run:
        typer.echo("Next: `systemctl restart vitalbridge`, then `vitalbridge doctor`.")


@app.command("doctor")
def doctor_command(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="The configuration file.", envvar="VITALBRIDGE_CONFIG"),
    ] = DEFAULT_CONFIG_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Check the hub's Bluetooth, broker, clock, disk, outbox and devices; say how to fix each."""
    from gateway.doctor import run_doctor  # noqa: PLC0415 - provision need not load D-Bus code

    try:
        settings = load_config(config)
    except ConfigError as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "error": str(exc)}))
        else:
            typer.echo(f"Configuration error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    report = run_doctor(settings, config_path=config)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(report.render())
    raise typer.Exit(report.exit_code)
