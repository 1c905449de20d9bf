"""`vitalbridge pair`: the guided pairing flow in the terminal, in large plain words.

The flow uses the Bluetooth adapter itself, so the hub service must be stopped while it runs:
the command checks the control socket first and says so if the service answers. Exit codes: 0
paired, 1 pairing failed (the message says what to do), 78 the configuration is wrong.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, Protocol

import typer

from gateway.config import (
    DEFAULT_CONFIG_PATH,
    DeviceProfile,
    HubConfig,
    LoggingSettings,
    load_config,
)
from gateway.control import SOCKET_NAME, ControlError, call
from gateway.errors import ConfigError
from gateway.logs import configure_logging
from gateway.pairing import PairingFlow, PairingOptions, PairingStep, StepKind, passkey_agent_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "ConfigOption",
    "StepSource",
    "make_flow",
    "pair",
    "render",
]

EXIT_CONFIG: Final = 78
EXIT_FAILED: Final = 1
_PASSKEY_ATTEMPTS: Final = 3
_SERVICE_RUNNING: Final = (
    "The hub service is running and is using the Bluetooth adapter, so pairing cannot start.\n"
    "What to do: stop it with `sudo systemctl stop vitalbridge`, run `vitalbridge pair` again, "
    "then start it with `sudo systemctl start vitalbridge`."
)


class StepSource(Protocol):
    """What the command drives: a `PairingFlow`, or a stand-in with the same two methods."""

    def steps(self) -> AsyncIterator[PairingStep]:
        """Yield the flow's steps."""
        ...

    def enter_passkey(self, passkey: int) -> None:
        """Answer a passkey request."""


def make_flow(settings: HubConfig, options: PairingOptions) -> StepSource:
    """Build the pairing flow on the configured Bluetooth backend."""
    from gateway.ble.backend import load_backend  # noqa: PLC0415 - keeps `--help` light
    from gateway.ble.registry import DeviceRegistry  # noqa: PLC0415 - same reason

    backend = load_backend(settings.ble)
    registry = DeviceRegistry.load(settings.devices, settings.state_dir)
    return PairingFlow(
        backend,
        registry,
        options,
        passkey_agent=passkey_agent_for(backend),
        hub_id=settings.hub_id,
    )


# A module-level alias: typer reads the annotations at run time, so Path must exist then.
ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="The configuration file.", envvar="VITALBRIDGE_CONFIG"),
]


def pair(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    profile: Annotated[
        DeviceProfile | None,
        typer.Option(help="The kind of device to pair (e.g. blood_pressure, weight_scale)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="How many seconds to look for the device.")
    ] = 60.0,
    patient: Annotated[
        str | None, typer.Option(help="The patient reference whose readings the device takes.")
    ] = None,
    user_index: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=254,
            help="A scale user who already exists on the device; omit to register a new one.",
        ),
    ] = None,
    test_timeout: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for a test reading (0: skip it).")
    ] = 90.0,
) -> None:
    """Pair a health device, step by step, and take a test reading."""
    try:
        settings = load_config(config)
    except ConfigError as exc:
        typer.echo(f"Configuration error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    if _service_running(settings):
        _say(_SERVICE_RUNNING, fg=typer.colors.RED)
        raise typer.Exit(EXIT_FAILED)
    # The steps are the output: log lines only when something goes wrong, and on stderr.
    configure_logging(
        LoggingSettings(level="warning", format=settings.logging.format),
        stream=sys.stderr,
        hub_id=settings.hub_id,
        cache=False,
    )
    options = PairingOptions(
        profile=profile,
        scan_timeout_s=timeout,
        patient=patient,
        user_index=user_index,
        test_reading_timeout_s=test_timeout,
    )
    try:
        flow = make_flow(settings, options)
    except ConfigError as exc:
        typer.echo(f"Configuration error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    last = asyncio.run(render(flow))
    if last is None or last.kind is not StepKind.DONE:
        raise typer.Exit(EXIT_FAILED)


def _service_running(settings: HubConfig) -> bool:
    try:
        asyncio.run(call(settings.state_dir / SOCKET_NAME, "status"))
    except (ControlError, OSError):
        # OSError: a socket path the system cannot use; no service can be listening there.
        return False
    return True


async def render(flow: StepSource) -> PairingStep | None:
    """Show each step of `flow` in the terminal; return the last one."""
    last: PairingStep | None = None
    async for step in flow.steps():
        last = step
        _show(step)
        if step.kind is StepKind.PASSKEY_REQUEST:
            flow.enter_passkey(await asyncio.to_thread(_ask_passkey))
    return last


def _show(step: PairingStep) -> None:
    percent = f"[{round(step.progress * 100):3d}%]"
    if step.kind is StepKind.FAILED:
        _say(f"{percent} {step.text}", fg=typer.colors.RED)
        if step.what_to_do:
            _say(f"What to do: {step.what_to_do}")
    elif step.kind in {StepKind.DONE, StepKind.PAIRED, StepKind.USER_REGISTERED}:
        _say(f"{percent} {step.text}", fg=typer.colors.GREEN)
    elif step.kind in {StepKind.INSTRUCTION, StepKind.MEASURE_NOW}:
        _say(f"{percent} >>> {step.text}", fg=typer.colors.BRIGHT_WHITE)
    else:
        _say(f"{percent} {step.text}")


def _say(text: str, fg: str | None = None) -> None:
    # Bold and spaced out: the person pairing may be reading from across the room.
    typer.echo("")
    typer.secho(text, bold=True, fg=fg)


def _ask_passkey() -> int:
    for _ in range(_PASSKEY_ATTEMPTS):
        text = str(typer.prompt("Passkey (the six digits on the device)")).strip()
        if len(text) == len("123456") and text.isdigit():
            return int(text)
        _say("That is not six digits. Type the six digits the device shows.")
    # The device then refuses the pairing, and the flow says what to do.
    return 0
