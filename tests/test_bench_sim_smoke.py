"""The simulator benchmark still runs end to end (a smoke run: small N, short loops, temp file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "sim.py"


def test_sim_benchmark_runs_syncs_every_device_and_writes_json(tmp_path):
    output = tmp_path / "sim.json"
    completed = subprocess.run(  # noqa: S603 - our own script with a fixed interpreter
        [sys.executable, str(BENCH), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "throughput" in completed.stdout
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["quick"] is True

    fleet = report["fleet"]
    assert [row["devices"] for row in fleet] == [3, 10]
    for row in fleet:
        assert "error" not in row, row
        assert row["build_s"] > 0
        assert row["start_s"] > 0
        assert row["load"]["cpu_share"] > 0
        assert row["discovery"]["found"] == row["devices"]
        assert row["discovery"]["elapsed_s"] > 0
        assert [phase["concurrency"] for phase in row["sync"]] == [1, 5]
        for phase in row["sync"]:
            assert phase["all_synced"], phase["failures"]
            assert phase["synced"] == row["devices"]
            assert phase["failed"] == phase["not_attempted"] == 0
            assert phase["elapsed_s"] > 0
            assert phase["per_device_s"]["median"] > 0
            assert phase["step_ms_median"]["connect"] > 0
        assert row["device_task_errors"] == 0

    throughput = report["throughput"]
    assert "error" not in throughput, throughput
    assert throughput["all_delivered_and_equal"] is True
    for source in ("measure_loop", "notify_subscriber"):
        assert throughput[source]["bleak_per_s"] > 0
        assert throughput[source]["raw_bumble_per_s"] > 0
        assert throughput[source]["bleak_over_raw"] > 0

    memory = report["memory"]
    assert [row["devices"] for row in memory] == [3, 10]
    for row in memory:
        assert "error" not in row, row
        assert row["traced_kib_per_device"] > 0
        assert row["by_package_kib_per_device"]
