"""The fleet benchmark still runs end to end (a smoke run: one small fleet, short windows)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.localbroker import find_mosquitto

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fleet.py"

pytestmark = pytest.mark.skipif(
    find_mosquitto() is None, reason="mosquitto is not installed: `apt-get install mosquitto`"
)


def test_fleet_benchmark_syncs_every_reading_and_writes_json(tmp_path):
    output = tmp_path / "fleet.json"
    completed = subprocess.run(  # noqa: S603 - our own script with a fixed interpreter
        [sys.executable, str(BENCH), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr
    assert "readings/s" in completed.stdout
    assert "none (the idle daemon)" in completed.stdout
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["quick"] is True
    assert report["processor_count"] >= 1
    assert report["versions"]["mosquitto"]

    [row] = report["sync"]
    assert "error" not in row, row
    # One device of each type that keeps readings; the body composition scale's readings
    # come with a weight reading each.
    assert row["devices"] == len(report["device_types"]) == 6
    assert row["expected"] == 7 * report["backlog"]
    assert row["complete"] is True, row["short_devices"]
    assert row["received"] == row["expected"]
    assert row["lost"] == 0
    assert row["duplicates"] == 0
    assert row["unexpected"] == 0
    assert row["short_devices"] == []
    assert row["daemon_exit_code"] == 0
    assert row["log"]["sessions_failed"] == 0
    assert row["log"]["readings_stored"] == row["expected"]
    assert row["seconds"] > 0
    assert row["readings_per_s"] > 0
    assert row["daemon"]["rss_peak_mb"] > 0
    assert row["daemon"]["cpu_percent"] > 0
    assert row["idle"]["window_s"] > 0
    assert row["idle"]["readings_during"] == 0
    assert row["idle"]["daemon"]["rss_peak_mb"] > 0

    quiet = report["idle_quiet"]
    assert "error" not in quiet, quiet
    assert quiet["advertising"] == 0
    assert quiet["readings_during"] == 0
    assert quiet["daemon_exit_code"] == 0
    assert quiet["daemon"]["rss_peak_mb"] > 0
    assert quiet["daemon"]["cpu_percent"] >= 0

    bluez = report["idle_bluez"]
    assert "error" not in bluez, bluez
    assert bluez["daemon_exit_code"] == 0
    assert bluez["daemon"]["rss_peak_mb"] > 0

    targets = report["targets"]
    assert set(targets) == {
        "nothing_lost_at_50",
        "idle_rss_mb",
        "idle_cpu_percent",
        "idle_rss_mb_bluez",
        "idle_cpu_percent_bluez",
    }
    # The quick run has no 50-device fleet: the target is reported as not measured, not as met.
    assert targets["nothing_lost_at_50"]["met"] is None
    assert targets["idle_rss_mb"]["value"] == quiet["daemon"]["rss_peak_mb"]
    assert targets["idle_rss_mb_bluez"]["value"] == bluez["daemon"]["rss_peak_mb"]
    assert all(value for value in report["import_rss_mb"].values())
