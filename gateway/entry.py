"""The `vitalbridge` command's entry point: the daemon starts lean, every other command via typer.

`vitalbridge run` is what systemd keeps running for months on a small box, so it skips what
only a person at a terminal needs: typer and the CLI module, and `rich` (with `pygments`),
which structlog's console renderer imports whenever it is installed. Measured on the idle
daemon: about 6 MB of a 60 MB budget. Every other command, and `run --help`, goes to typer.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Final

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "main", "run_daemon_command"]

EXIT_CONFIG: Final = 78
"""The configuration is wrong (EX_CONFIG); the unit does not restart on it."""
EXIT_FAILED: Final = 1
_HELP: Final = frozenset({"--help", "-h"})


def run_daemon_command(config_path: Path) -> int:
    """Load the configuration, set up logging and run the daemon; return the exit code."""
    from gateway.config import load_config  # noqa: PLC0415 - after rich is ruled out
    from gateway.daemon import run_daemon  # noqa: PLC0415 - same reason
    from gateway.errors import ConfigError, OutboxError  # noqa: PLC0415 - same reason
    from gateway.loglines import LogBuffer  # noqa: PLC0415 - same reason
    from gateway.logs import configure_logging  # noqa: PLC0415 - same reason

    try:
        settings = load_config(config_path)
    except ConfigError as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        return EXIT_CONFIG
    # One buffer of recent redacted log lines, for the remote `logs` support command.
    ring = LogBuffer()
    configure_logging(settings.logging, hub_id=settings.hub_id, ring=ring)
    try:
        asyncio.run(run_daemon(settings, log_buffer=ring))
    except ConfigError as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        return EXIT_CONFIG
    except OutboxError as exc:
        sys.stderr.write(f"Storage error: {exc}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        pass
    return 0


def _run_options(args: list[str]) -> Path | None:
    """Return the --config of `run ARGS`, or None when typer must handle them (help, errors)."""
    from gateway.config import DEFAULT_CONFIG_PATH  # noqa: PLC0415 - see run_daemon_command

    path = Path(os.environ.get("VITALBRIDGE_CONFIG", str(DEFAULT_CONFIG_PATH)))
    rest = list(args)
    while rest:
        option = rest.pop(0)
        if option in {"--config", "-c"} and rest:
            path = Path(rest.pop(0))
        elif option.startswith("--config="):
            path = Path(option.partition("=")[2])
        else:
            return None
    return path


def main(argv: list[str] | None = None) -> int:
    """Run `vitalbridge` with `argv` (default: the command line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"] and not _HELP & set(args):
        # Before anything imports structlog: without rich it renders plain text (the daemon
        # logs JSON, or plain console lines on a terminal, either way).
        sys.modules.setdefault("rich", None)  # type: ignore[arg-type]  # None: "not importable"
        config_path = _run_options(args[1:])
        if config_path is not None:
            return run_daemon_command(config_path)
    from gateway.cli import app  # noqa: PLC0415 - only the commands for people need typer

    app(args=args, prog_name="vitalbridge")
    return 0


if __name__ == "__main__":
    sys.exit(main())
