"""`vitalbridge demo` (what `make demo` runs) end to end, with mosquitto and the embedded broker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.demo import DEMO_DEVICES, format_reading

EXPECTED = sum(device.backlog for device in DEMO_DEVICES)


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_the_demo_shows_every_stored_reading_and_stops_the_daemon_cleanly(broker: str):
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "gateway.entry", "demo", "--broker", broker, "--duration", "90"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    expected_protocol = "MQTT 5" if broker == "mosquitto" else "MQTT 3.1.1"
    assert f"Broker: {broker} ({expected_protocol})" in out
    assert f"{EXPECTED} readings from {len(DEMO_DEVICES)} devices received by the backend" in out
    assert "(0 duplicate deliveries dropped by reading_id)" in out
    for device in DEMO_DEVICES:
        assert f"{device.device_id:<16} {device.backlog:>2} readings" in out
    assert "MISSING" not in out
    assert "Daemon stopped with SIGTERM: exit code 0, status offline published." in out


def test_a_reading_is_one_line_with_values_units_and_time_source():
    line = format_reading(
        {
            "measured_at": "2026-11-22T15:32:36+00:00",
            "device": {"id": "cuff-kitchen"},
            "kind": "blood_pressure",
            "patient": "patient-0001",
            "time_source": "device_clock_offset",
            "components": [
                {"field": "systolic", "value": "152", "unit": "mm[Hg]"},
                {"field": "pulse_rate", "value": None, "special": "nan", "unit": "/min"},
            ],
        }
    )
    assert line.startswith("2026-11-22 15:32:36  cuff-kitchen")
    assert "device_clock_offset" in line
    assert line.endswith("systolic=152 mm[Hg], pulse_rate=nan /min")
