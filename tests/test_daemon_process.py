"""`vitalbridge run` as systemd runs it: its own process, the notify protocol on a real datagram
socket, a simulated radio served over a Unix socket from the test, SIGTERM, exit codes.

systemd itself is not here: the test plays its part (NOTIFY_SOCKET, WATCHDOG_USEC, SIGTERM).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from simulators.devices import BloodPressureCuff, SimulatorConfig
from simulators.radio import Radio
from tests.hub_harness import HUB, hub_config, subscriber, to_toml

if TYPE_CHECKING:
    from collections.abc import Iterator

TIMEOUT_S = 60
STOP_WITHIN_S = 10
VITALBRIDGE = [sys.executable, "-m", "gateway.entry"]


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the place of systemd's notify socket (short path: AF_UNIX limit)."""
    directory = tempfile.mkdtemp(prefix="vb-notify-", dir="/tmp")
    path = str(Path(directory) / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)  # noqa: FBT003 - the socket API's own flag
    try:
        yield sock, path
    finally:
        sock.close()
        Path(path).unlink(missing_ok=True)
        Path(directory).rmdir()


async def next_datagrams(sock: socket.socket, want: str, seen: list[str]) -> None:
    """Read notify datagrams into `seen` until one holds the assignment `want`."""
    loop = asyncio.get_running_loop()
    while not any(want in message.split("\n") for message in seen):
        data = await loop.sock_recv(sock, 4096)
        seen.append(data.decode())


@pytest.mark.asyncio
async def test_the_daemon_process_notifies_systemd_pings_the_watchdog_and_stops_on_sigterm(
    mosquitto, tmp_path: Path, notify_socket: tuple[socket.socket, str]
):
    sock, notify_path = notify_socket
    broker = mosquitto()
    radio = Radio(seed=21)
    cuff = BloodPressureCuff.on_radio(radio, "F0:00:00:00:F1:01", SimulatorConfig(seed=1))
    await cuff.start()
    await cuff.measure()
    radio_dir = tempfile.mkdtemp(prefix="vb-radio-", dir="/tmp")
    seen: list[str] = []
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            radio.expose(f"unix-server:{radio_dir}/hci") as exposure,
            subscriber(broker.host, broker.port) as backend,
        ):
            config = hub_config(
                tmp_path / "state",
                broker.url,
                [
                    {
                        "id": "cuff",
                        "address": "F0:00:00:00:F1:01",
                        "profile": "blood_pressure",
                        "patient": "patient-s",
                    }
                ],
                ble={"backend_options": {"hci_spec": exposure.client_spec}},
                logging={"format": "json"},
            )
            config_file = tmp_path / "config.toml"
            config_file.write_text(to_toml(config))
            env = {
                **os.environ,
                "NOTIFY_SOCKET": notify_path,
                "WATCHDOG_USEC": "1000000",
            }
            env.pop("WATCHDOG_PID", None)
            log = (tmp_path / "daemon.log").open("wb")
            daemon = await asyncio.create_subprocess_exec(
                *VITALBRIDGE, "run", "--config", str(config_file), stdout=log, stderr=log, env=env
            )
            try:
                await next_datagrams(sock, "READY=1", seen)
                await next_datagrams(sock, "WATCHDOG=1", seen)
                await backend.wait_for(lambda b: bool(b.of("cuff")))
                await backend.wait_for(
                    lambda b: any(s.get("state") == "online" and "outbox" in s for s in b.statuses)
                )
                daemon.send_signal(signal.SIGTERM)
                async with asyncio.timeout(STOP_WITHIN_S):
                    code = await daemon.wait()
                    await next_datagrams(sock, "STOPPING=1", seen)
                    await backend.wait_for(lambda b: b.statuses[-1].get("state") == "offline")
            finally:
                if daemon.returncode is None:
                    daemon.kill()
                    await daemon.wait()
                log.close()
    finally:
        await cuff.stop()
        shutil.rmtree(radio_dir, ignore_errors=True)
    assert code == 0, (tmp_path / "daemon.log").read_text()[-3000:]
    online = next(s for s in backend.statuses if s.get("state") == "online" and "outbox" in s)
    assert online["hub_id"] == HUB
    for key in ("version", "uptime_s", "adapter", "devices", "outbox", "uplink", "counters"):
        assert key in online, key
    assert online["devices"]["provisioned"] == 1
    log_text = (tmp_path / "daemon.log").read_text()
    # JSON lines with the hub id on each; no patient reference and no value at info level.
    assert '"event": "daemon_started"' in log_text or '"event":"daemon_started"' in log_text
    assert "patient-s" not in log_text


def test_a_broken_configuration_exits_78_naming_the_field(tmp_path: Path):
    import subprocess  # noqa: PLC0415 - only this test runs a blocking process

    config_file = tmp_path / "config.toml"
    config_file.write_text(
        'hub_id = "hub-1"\n[mqtt]\nbroker_url = "mqtt://127.0.0.1:1"\n[ble]\nmax_conections = 2\n'
    )
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [*VITALBRIDGE, "run", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78
    assert str(config_file) in result.stderr
    assert "ble.max_conections" in result.stderr
