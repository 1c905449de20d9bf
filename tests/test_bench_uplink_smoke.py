"""The uplink benchmark still runs end to end (a smoke run: small counts, output to a temp file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "uplink.py"


def test_uplink_benchmark_runs_and_writes_json(tmp_path):
    output = tmp_path / "uplink.json"
    completed = subprocess.run(  # noqa: S603 - our own script with a fixed interpreter
        [sys.executable, str(BENCH), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "set_tcp_nodelay true" in completed.stdout
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["quick"] is True
    for nodelay in ("nodelay_on", "nodelay_off"):
        assert report["limit"][nodelay] > 0
        pair = report["pipeline"][nodelay]
        assert pair["pipeline"]["per_s"] > 0
        assert pair["pipeline_ratio"] > 0
        assert pair["pipeline"]["left_in_outbox"] == 0
    assert report["pipeline"]["nodelay_on"]["set_tcp_nodelay"] is True
    assert report["pipeline"]["nodelay_off"]["set_tcp_nodelay"] is False
    assert report["backlog"]["per_s"] > 0
    assert report["backlog"]["ratio"] > 0
    assert report["backlog"]["left_in_outbox"] == 0
    assert 0 < report["latency"]["p50_ms"] <= report["latency"]["p99_ms"]
