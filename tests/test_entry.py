"""The `vitalbridge` entry point: `run` starts without typer and rich; the rest goes to typer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.entry import EXIT_CONFIG, _run_options, main

PROBE = """
import sys
from gateway.entry import main
code = main(["run", "--config", sys.argv[1]])
rich = sys.modules.get("rich")
print(code, "typer" in sys.modules, rich is not None, "pygments" in sys.modules)
"""


def test_run_loads_neither_typer_nor_rich(tmp_path: Path):
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", PROBE, str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == [str(EXIT_CONFIG), "False", "False", "False"]
    assert "missing.toml" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], Path("/etc/vitalbridge/config.toml")),
        (["--config", "/x/hub.toml"], Path("/x/hub.toml")),
        (["-c", "hub.toml"], Path("hub.toml")),
        (["--config=/y.toml"], Path("/y.toml")),
        (["--verbose"], None),  # not an option of run: typer answers with its usage error
        (["--config"], None),
    ],
)
def test_run_options(args: list[str], expected: Path | None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("VITALBRIDGE_CONFIG", raising=False)
    assert _run_options(args) == expected


def test_the_config_path_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VITALBRIDGE_CONFIG", "/etc/hub.toml")
    assert _run_options([]) == Path("/etc/hub.toml")


def test_other_commands_and_run_help_go_to_typer(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    assert "Run the hub daemon" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--verbose"])
    assert exit_info.value.code == 2  # typer's usage error
