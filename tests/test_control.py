"""The control socket: one JSON request and answer per connection, bad requests answered, not fatal.

Every test runs the real server on a real Unix socket. Socket paths are short directories under
/tmp because AF_UNIX paths are limited to 107 bytes, which pytest's tmp_path can exceed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import gateway.control
from gateway.control import SOCKET_NAME, ControlError, call, serve_control
from gateway.errors import DeviceSessionError, VitalbridgeError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

START_TIMEOUT_S = 5.0


@pytest.fixture
def socket_path() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="vbc-", dir="/tmp"))
    try:
        yield directory / SOCKET_NAME
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Recorder:
    """A handler that answers every command with what it was given, and remembers the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    async def __call__(self, command: str, args: dict[str, object]) -> object:
        self.calls.append((command, args))
        match command:
            case "status":
                return {"hub_id": "hub-0042", "uptime_s": 12, "args": args}
            case "refuse":
                raise ValueError("minutes must be a number from 1 to 60")
            case "device_failed":
                raise DeviceSessionError("cuff-kitchen", "not in range; it is retried later")
            case "type_error":
                raise TypeError("profile must be text")
            case "not_json":
                return {"when": object()}
            case "bug":
                raise KeyError("counters")
        raise ValueError(f"unknown command {command!r}")


@contextlib.asynccontextmanager
async def serving(path: Path, handler: Recorder) -> AsyncIterator[asyncio.Task[None]]:
    """Run serve_control until the block ends; yield once the socket accepts connections."""
    task = asyncio.create_task(serve_control(path, handler), name="control-server")
    try:
        # bind() and listen() run in one step of the server task, so a socket file at the
        # path means it accepts connections; each sleep(0) lets that task run a step.
        async with asyncio.timeout(START_TIMEOUT_S):
            while not path.is_socket():  # noqa: ASYNC240 - one stat, no blocking I/O
                assert not task.done(), task
                await asyncio.sleep(0)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def raw_answer(path: Path, request: bytes) -> dict[str, object]:
    """Send raw bytes as one client; return the answer, one JSON object on the only line."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        # The server may answer and hang up before it has read an over-long request: the
        # rest of the write then fails, and the kernel resets the connection after the answer.
        with contextlib.suppress(ConnectionError):
            writer.write(request)
            await writer.drain()
        async with asyncio.timeout(START_TIMEOUT_S):
            line = await reader.readline()
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert line.endswith(b"\n")
    answer = json.loads(line)
    assert isinstance(answer, dict)
    return answer


@pytest.mark.asyncio
async def test_a_request_gets_its_result(socket_path):
    handler = Recorder()
    async with serving(socket_path, handler):
        result = await call(socket_path, "status", verbose=True, minutes=2.5)

    assert result == {
        "hub_id": "hub-0042",
        "uptime_s": 12,
        "args": {"verbose": True, "minutes": 2.5},
    }
    assert handler.calls == [("status", {"verbose": True, "minutes": 2.5})]


@pytest.mark.asyncio
async def test_the_wire_format_is_one_json_object_per_line(socket_path):
    async with serving(socket_path, Recorder()):
        answer = await raw_answer(socket_path, b'{"command": "status", "args": {"a": 1}}\n')

    assert answer == {
        "ok": True,
        "result": {"hub_id": "hub-0042", "uptime_s": 12, "args": {"a": 1}},
    }


@pytest.mark.asyncio
async def test_args_may_be_left_out(socket_path):
    handler = Recorder()
    async with serving(socket_path, handler):
        answer = await raw_answer(socket_path, b'{"command": "status"}\n')

    assert answer["ok"] is True
    assert handler.calls == [("status", {})]


@pytest.mark.asyncio
async def test_a_result_json_cannot_hold_is_sent_as_text(socket_path):
    async with serving(socket_path, Recorder()):
        result = await call(socket_path, "not_json")

    assert isinstance(result, dict)
    assert str(result["when"]).startswith("<object object")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("refuse", "minutes must be a number from 1 to 60"),
        ("device_failed", "device cuff-kitchen: not in range; it is retried later"),
        ("type_error", "profile must be text"),
    ],
)
async def test_a_refused_request_is_an_error_answer_and_a_control_error(
    socket_path, command, message
):
    async with serving(socket_path, Recorder()):
        answer = await raw_answer(socket_path, json.dumps({"command": command}).encode() + b"\n")
        with pytest.raises(ControlError) as info:
            await call(socket_path, command)

    assert answer == {"ok": False, "error": message}
    assert str(info.value) == f"the daemon refused {command!r}: {message}"
    assert isinstance(info.value, VitalbridgeError)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (b"status\n", "the request is not one JSON object on one line"),
        (b'{"command": "status"\n', "the request is not one JSON object on one line"),
        (b"\xff\xfe\n", "the request is not one JSON object on one line"),
        (b"\n", "the request is not one JSON object on one line"),
        (b'["status"]\n', 'the request needs {"command": NAME, "args": {...}}'),
        (b'"status"\n', 'the request needs {"command": NAME, "args": {...}}'),
        (b'{"args": {}}\n', 'the request needs {"command": NAME, "args": {...}}'),
        (b'{"command": 7}\n', 'the request needs {"command": NAME, "args": {...}}'),
        (b'{"command": "status", "args": [1]}\n', "args must be an object"),
        (b'{"command": "status", "args": "x"}\n', "args must be an object"),
        (b'{"command": "status", "args": null}\n', "args must be an object"),
        (b"x" * (64 * 1024 + 1) + b"\n", "request longer than 65536 bytes"),
        (b"{" * (200 * 1024), "request longer than 65536 bytes"),
    ],
    ids=[
        "not-json",
        "unfinished-json",
        "not-utf8",
        "empty-line",
        "array",
        "string",
        "no-command",
        "command-not-text",
        "args-array",
        "args-string",
        "args-null",
        "line-over-64k",
        "no-newline-over-64k",
    ],
)
async def test_a_malformed_request_gets_a_clear_error_and_the_server_keeps_serving(
    socket_path, request_bytes, error
):
    handler = Recorder()
    async with serving(socket_path, handler) as server:
        answer = await raw_answer(socket_path, request_bytes)
        after = await call(socket_path, "status")

        assert not server.done()
    assert answer == {"ok": False, "error": error}
    assert handler.calls == [("status", {})]
    assert isinstance(after, dict)


@pytest.mark.asyncio
async def test_a_client_that_hangs_up_at_once_does_not_stop_the_server(socket_path):
    async with serving(socket_path, Recorder()) as server:
        _, writer = await asyncio.open_unix_connection(str(socket_path))
        writer.close()
        await writer.wait_closed()
        result = await call(socket_path, "status")

        assert not server.done()
    assert isinstance(result, dict)


@pytest.mark.asyncio
async def test_a_silent_client_is_dropped_after_the_request_timeout(socket_path, monkeypatch):
    """The 10 s limit is shortened so that the test does not wait for it."""
    monkeypatch.setattr(gateway.control, "REQUEST_TIMEOUT_S", 0.05)
    async with serving(socket_path, Recorder()) as server:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                dropped = await reader.read()
        finally:
            writer.close()
        result = await call(socket_path, "status")

        assert not server.done()
    assert dropped == b""
    assert isinstance(result, dict)


@pytest.mark.asyncio
async def test_a_handler_bug_does_not_stop_the_server(socket_path):
    async with serving(socket_path, Recorder()) as server:
        with pytest.raises(ControlError):
            await call(socket_path, "bug")
        result = await call(socket_path, "status")

        assert not server.done()
    assert isinstance(result, dict)


@pytest.mark.asyncio
async def test_a_handler_bug_is_answered_as_an_internal_error(socket_path):
    async with serving(socket_path, Recorder()):
        with pytest.raises(ControlError) as info:
            await call(socket_path, "bug")

    assert "same version" not in str(info.value)
    assert "'bug'" in str(info.value)


@pytest.mark.asyncio
async def test_call_without_a_daemon_says_how_to_start_it(socket_path):
    with pytest.raises(ControlError) as info:
        await call(socket_path, "status")

    message = str(info.value)
    assert "the daemon is not running" in message
    assert str(socket_path) in message
    assert "systemctl start vitalbridge" in message
    assert "vitalbridge run" in message


@pytest.mark.asyncio
async def test_call_to_a_socket_left_by_a_dead_daemon_says_it_is_not_running(socket_path):
    # A bound socket nobody listens on any more: what a killed daemon leaves behind.
    import socket  # noqa: PLC0415 - only this test makes a raw socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(socket_path))
    assert socket_path.is_socket()

    with pytest.raises(ControlError, match="the daemon is not running"):
        await call(socket_path, "status")


@pytest.mark.asyncio
async def test_the_server_replaces_a_stale_socket_file(socket_path):
    socket_path.write_text("left over")
    async with serving(socket_path, Recorder()):
        result = await call(socket_path, "status")

    assert isinstance(result, dict)


@pytest.mark.asyncio
async def test_the_socket_is_group_accessible_only(socket_path):
    async with serving(socket_path, Recorder()):
        # One answered request means the server task has run past its chmod.
        await call(socket_path, "status")
        mode = stat.S_IMODE(socket_path.stat().st_mode)

    assert mode == 0o660


@pytest.mark.asyncio
async def test_the_socket_is_removed_when_the_server_is_cancelled(socket_path):
    async with serving(socket_path, Recorder()) as server:
        await call(socket_path, "status")
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server

        assert server.cancelled()
        assert not socket_path.exists()
    with pytest.raises(ControlError, match="not running"):
        await call(socket_path, "status")


@pytest.mark.asyncio
async def test_the_server_creates_its_directory(socket_path):
    nested = socket_path.parent / "run" / SOCKET_NAME
    async with serving(nested, Recorder()):
        result = await call(nested, "status")

    assert isinstance(result, dict)


@pytest.mark.asyncio
async def test_concurrent_clients_each_get_their_own_answer(socket_path):
    handler = Recorder()
    async with serving(socket_path, handler), asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(call(socket_path, "status", n=n), name=f"client-{n}")
            for n in range(8)
        ]

    answers = [task.result() for task in tasks]
    assert all(isinstance(answer, dict) for answer in answers)
    assert [answer["args"] for answer in answers if isinstance(answer, dict)] == [
        {"n": n} for n in range(8)
    ]
    assert len(handler.calls) == 8
