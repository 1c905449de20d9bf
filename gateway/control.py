"""The local control socket: how `vitalbridge status`, `devices`, `pair` reach a running daemon.

A Unix stream socket in the state directory (only the service user and root can reach it: the
directory is 0700). One JSON object per line each way: ``{"command": "status", "args": {}}`` in,
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "..."}`` out. Requests are small
and bounded; a malformed one gets an error answer, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import TYPE_CHECKING, Final

import structlog

from gateway.errors import VitalbridgeError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

__all__ = ["SOCKET_NAME", "ControlError", "call", "serve_control"]

_log = structlog.get_logger("gateway.control")

SOCKET_NAME: Final = "control.sock"
MAX_REQUEST_BYTES: Final = 64 * 1024
REQUEST_TIMEOUT_S: Final = 10.0


class ControlError(VitalbridgeError):
    """The daemon could not be asked (not running, no permission) or refused the request."""


async def serve_control(
    path: Path, handler: Callable[[str, dict[str, object]], Awaitable[object]]
) -> None:
    """Answer requests on the socket at `path` until cancelled; removes the socket at the end."""
    _prepare(path)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await _answer(reader, handler)
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, TimeoutError) as exc:
            _log.debug("control_client_lost", error=str(exc))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_unix_server(serve, path=str(path), limit=MAX_REQUEST_BYTES)
    os.chmod(path, 0o660)  # noqa: PTH101 - the socket path is a str for the server too
    try:
        async with server:
            await server.serve_forever()
    finally:
        _remove(path)


def _prepare(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _answer(
    reader: asyncio.StreamReader,
    handler: Callable[[str, dict[str, object]], Awaitable[object]],
) -> dict[str, object]:
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            line = await reader.readline()
    except ValueError:
        return {"ok": False, "error": f"request longer than {MAX_REQUEST_BYTES} bytes"}
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"ok": False, "error": "the request is not one JSON object on one line"}
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        return {"ok": False, "error": 'the request needs {"command": NAME, "args": {...}}'}
    args = request.get("args", {})
    if not isinstance(args, dict):
        return {"ok": False, "error": "args must be an object"}
    try:
        result = await handler(request["command"], args)
    except (VitalbridgeError, ValueError, TypeError) as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a daemon bug must get an answer, not a hang-up
        _log.exception("control_handler_failed", command=request["command"], error=repr(exc))
        return {
            "ok": False,
            "error": f"the daemon failed to answer {request['command']!r} (internal error); "
            "see `journalctl -u vitalbridge`",
        }
    return {"ok": True, "result": result}


async def call(path: Path, command: str, **args: object) -> object:
    """Send one request to the daemon at `path` and return its result; raise ControlError."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(
                str(path), limit=16 * MAX_REQUEST_BYTES
            )
            try:
                writer.write(json.dumps({"command": command, "args": args}).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        msg = (
            f"the daemon is not running (no socket at {path}); start it with "
            "`systemctl start vitalbridge` or `vitalbridge run`"
        )
        raise ControlError(msg) from exc
    except PermissionError as exc:
        msg = f"no permission to reach the daemon at {path}: run as root or the vitalbridge user"
        raise ControlError(msg) from exc
    except TimeoutError as exc:
        msg = (
            f"the daemon did not answer within {REQUEST_TIMEOUT_S:.0f}s; check its log: "
            "`journalctl -u vitalbridge -n 50`"
        )
        raise ControlError(msg) from exc
    try:
        answer = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ControlError("the daemon's answer was not JSON; is it the same version?") from exc
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ControlError(f"the daemon refused {command!r}: {error}")
    return answer.get("result")
