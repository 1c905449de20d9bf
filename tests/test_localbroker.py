"""The demo's local broker: mosquitto or the embedded amqtt, checked with a real aiomqtt client."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import sys
import textwrap
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from gateway import localbroker
from gateway.localbroker import (
    SYSTEM_BROKER_PORT,
    BrokerStartError,
    LocalBroker,
    MosquittoNotFoundError,
    find_mosquitto,
    local_broker,
)

if TYPE_CHECKING:
    from pathlib import Path

RECEIVE_TIMEOUT_S = 10.0
KINDS = ["mosquitto", "embedded"]


@pytest.fixture
def mosquitto_binary() -> Path:
    """The installed mosquitto; `make test` installs it, as for the conftest fixture."""
    found = find_mosquitto()
    if found is None:
        pytest.fail("mosquitto is not installed: run `make test`, which installs it", pytrace=False)
    return found


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, mosquitto_binary: Path) -> str:
    del mosquitto_binary  # only for its check that mosquitto is there
    return str(request.param)


def client(broker: LocalBroker, identifier: str) -> aiomqtt.Client:
    protocol = {"5": aiomqtt.ProtocolVersion.V5, "3.1.1": aiomqtt.ProtocolVersion.V311}
    return aiomqtt.Client(
        broker.host, broker.port, identifier=identifier, protocol=protocol[broker.protocol]
    )


def port_is_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def fake_mosquitto(path: Path, body: str) -> Path:
    """Write an executable standing in for mosquitto, for what the real one cannot be made to do."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- both kinds -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_qos1_publish_reaches_a_subscriber(tmp_path: Path, kind: str) -> None:
    async with local_broker(tmp_path, prefer=kind) as broker:
        assert broker.kind == kind
        assert broker.protocol == ("5" if kind == "mosquitto" else "3.1.1")
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        assert broker.port != SYSTEM_BROKER_PORT

        async with client(broker, "sub") as subscriber, client(broker, "pub") as publisher:
            await subscriber.subscribe("demo/#", qos=1)
            await publisher.publish("demo/readings", b'{"sys": 120}', qos=1)
            async with asyncio.timeout(RECEIVE_TIMEOUT_S):
                message = await anext(aiter(subscriber.messages))
        assert message.topic.value == "demo/readings"
        assert message.payload == b'{"sys": 120}'
        assert message.qos == 1


@pytest.mark.asyncio
async def test_a_retained_message_reaches_a_later_subscriber(tmp_path: Path, kind: str) -> None:
    async with local_broker(tmp_path, prefer=kind) as broker:
        async with client(broker, "pub") as publisher:
            await publisher.publish("hubs/hub-1/status", b"online", qos=1, retain=True)
        async with client(broker, "late") as subscriber:
            await subscriber.subscribe("hubs/+/status", qos=1)
            async with asyncio.timeout(RECEIVE_TIMEOUT_S):
                message = await anext(aiter(subscriber.messages))
        assert message.topic.value == "hubs/hub-1/status"
        assert message.payload == b"online"
        assert message.retain


@pytest.mark.asyncio
async def test_the_broker_is_gone_after_the_block(tmp_path: Path, kind: str) -> None:
    async with local_broker(tmp_path, prefer=kind) as broker:
        assert broker.kind == kind
        # An MQTT session, not a bare TCP probe: amqtt leaves a socket open that is closed on it
        # before CONNECT.
        async with client(broker, "probe") as probe:
            await probe.publish("demo/probe", b"", qos=1)
    assert port_is_closed(broker.port)
    if broker.pid is not None:
        # Reaped, not a zombie: a zombie would still take signal 0.
        with pytest.raises(ProcessLookupError):
            os.kill(broker.pid, 0)


@pytest.mark.asyncio
async def test_the_broker_is_stopped_when_the_block_fails(tmp_path: Path, kind: str) -> None:
    started: list[LocalBroker] = []

    async def demo() -> None:
        async with local_broker(tmp_path, prefer=kind) as broker:
            started.append(broker)
            msg = "demo failed"
            raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="demo failed"):
        await demo()
    assert port_is_closed(started[0].port)


@pytest.mark.asyncio
async def test_the_broker_is_stopped_when_the_task_is_cancelled(tmp_path: Path, kind: str) -> None:
    started: asyncio.Future[LocalBroker] = asyncio.get_running_loop().create_future()

    async def demo() -> None:
        async with local_broker(tmp_path, prefer=kind) as broker:
            started.set_result(broker)
            await asyncio.Event().wait()

    task = asyncio.create_task(demo(), name="demo")
    broker = await started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert port_is_closed(broker.port)


@pytest.mark.asyncio
async def test_a_taken_port_is_left_for_another(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race between probing a free port and binding it cannot be timed from a test, so the
    # probe is made to hand out a port somebody already listens on, once.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        ports = iter([taken_port])
        real_free_port = localbroker._free_port
        monkeypatch.setattr(
            localbroker, "_free_port", lambda: next(ports, None) or real_free_port()
        )

        async with local_broker(tmp_path, prefer=kind) as broker:
            assert broker.port != taken_port
            async with client(broker, "pub") as publisher:
                await publisher.publish("demo/x", b"1", qos=1)


# --- each kind ------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.usefixtures("mosquitto_binary")
async def test_auto_prefers_mosquitto(tmp_path: Path) -> None:
    async with local_broker(tmp_path) as broker:
        assert broker.kind == "mosquitto"
        assert broker.pid is not None
        assert broker.log_file is not None
        assert broker.config_file is not None
        config = broker.config_file.read_text()
    assert f"listener {broker.port} 127.0.0.1\n" in config
    assert "allow_anonymous true\n" in config
    assert "persistence false\n" in config
    assert broker.config_file.parent == tmp_path
    assert f"listen socket on port {broker.port}." in broker.log_file.read_text()


@pytest.mark.asyncio
async def test_auto_without_mosquitto_runs_the_embedded_broker(tmp_path: Path) -> None:
    async with local_broker(tmp_path, mosquitto_path=tmp_path / "no-mosquitto") as broker:
        assert broker.kind == "embedded"
        assert broker.protocol == "3.1.1"
        assert broker.pid is None
        async with client(broker, "pub") as publisher:
            await publisher.publish("demo/x", b"1", qos=1)


@pytest.mark.asyncio
async def test_the_embedded_broker_refuses_mqtt5(tmp_path: Path) -> None:
    async with local_broker(tmp_path, prefer="embedded") as broker:
        v5 = aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5)
        with pytest.raises(aiomqtt.MqttCodeError, match="Unsupported protocol version"):
            async with v5:
                pass


@pytest.mark.asyncio
async def test_the_embedded_broker_leaves_the_app_logging_as_it_was(tmp_path: Path) -> None:
    amqtt_logger = logging.getLogger("amqtt")
    assert amqtt_logger.level == logging.NOTSET
    async with local_broker(tmp_path, prefer="embedded"):
        assert amqtt_logger.level == logging.WARNING
        async with local_broker(tmp_path, prefer="embedded"):
            pass
        assert amqtt_logger.level == logging.WARNING  # the outer one still runs
    assert amqtt_logger.level == logging.NOTSET


# --- mosquitto missing or misbehaving ---------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["no-mosquitto", "not-executable"])
async def test_asking_for_mosquitto_without_it_is_a_typed_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "not-executable":
        path.write_text("#!/bin/sh\n")
    with pytest.raises(MosquittoNotFoundError, match=str(path)):
        async with local_broker(tmp_path, prefer="mosquitto", mosquitto_path=path):
            pytest.fail("no broker should have started")


def test_find_mosquitto_searches_the_path_then_the_fallbacks(tmp_path: Path) -> None:
    assert find_mosquitto(search_path="", fallbacks=()) is None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fallback = fake_mosquitto(tmp_path / "sbin-mosquitto", "")
    assert find_mosquitto(search_path=str(bin_dir), fallbacks=[fallback]) == fallback
    on_path = fake_mosquitto(bin_dir / "mosquitto", "")
    assert find_mosquitto(search_path=str(bin_dir), fallbacks=[fallback]) == on_path
    not_executable = tmp_path / "plain"
    not_executable.write_text("")
    assert find_mosquitto(search_path="", fallbacks=[not_executable]) is None


@pytest.mark.asyncio
async def test_a_broker_that_never_listens_is_a_start_error_with_its_log(tmp_path: Path) -> None:
    # mosquitto cannot be made to hang before it listens; this stand-in logs a line and waits.
    fake = fake_mosquitto(
        tmp_path / "mosquitto",
        """
        import os, pathlib, sys, time
        pathlib.Path(sys.argv[0]).with_name("pid").write_text(str(os.getpid()))
        print("fake broker: loading plugins", flush=True)
        time.sleep(60)
        """,
    )
    with pytest.raises(BrokerStartError) as caught:
        async with local_broker(
            tmp_path / "work", prefer="mosquitto", mosquitto_path=fake, ready_timeout_s=0.5
        ):
            pytest.fail("the broker never listened")
    message = str(caught.value)
    assert "did not accept connections" in message
    assert "fake broker: loading plugins" in message
    assert str(tmp_path / "work" / "mosquitto.log") in message
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "pid").read_text()), 0)


@pytest.mark.asyncio
async def test_a_broker_that_exits_at_start_is_a_start_error_with_its_log(tmp_path: Path) -> None:
    fake = fake_mosquitto(
        tmp_path / "mosquitto",
        """
        import sys
        print("Error: Unable to open include_dir '/nowhere'.", file=sys.stderr, flush=True)
        sys.exit(3)
        """,
    )
    with pytest.raises(BrokerStartError) as caught:
        async with local_broker(tmp_path / "work", prefer="mosquitto", mosquitto_path=fake):
            pytest.fail("the broker exited")
    message = str(caught.value)
    assert "exited at start with status 3" in message
    assert "Unable to open include_dir" in message


@pytest.mark.asyncio
async def test_a_broker_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    # mosquitto always honours SIGTERM; the stand-in listens as it would, then ignores SIGTERM.
    fake = fake_mosquitto(
        tmp_path / "mosquitto",
        """
        import re, signal, socket, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        config = open(sys.argv[2]).read()
        port = int(re.search(r"^listener (\\d+) ", config, re.M).group(1))
        server = socket.create_server(("127.0.0.1", port))
        print(f"Opening ipv4 listen socket on port {port}.", flush=True)
        while True:
            server.accept()[0].close()
        """,
    )
    async with local_broker(
        tmp_path / "work", prefer="mosquitto", mosquitto_path=fake, stop_timeout_s=0.5
    ) as broker:
        assert broker.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(broker.pid, 0)
    assert port_is_closed(broker.port)
