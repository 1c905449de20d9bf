"""The decode benchmark still runs end to end (a smoke run: short loops, output to a temp file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "decode.py"


def test_decode_benchmark_runs_and_writes_json(tmp_path):
    output = tmp_path / "decode.json"
    completed = subprocess.run(  # noqa: S603 - our own script with a fixed interpreter
        [sys.executable, str(BENCH), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "representation" in completed.stdout
    report = json.loads(output.read_text(encoding="utf-8"))
    assert {case["uuid"] for case in report["cases"]} >= {"0x2A35", "0x2A37", "0x2A1C"}
    for case in report["cases"]:
        assert case["ours_us"] > 0
        assert case["ours_correct"] in (True, None)
