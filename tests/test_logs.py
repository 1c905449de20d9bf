"""Logging set-up: one format for structlog and stdlib lines, context on each, redaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import threading
from datetime import UTC, datetime

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from structlog.contextvars import bound_contextvars

from gateway.config import LoggingSettings
from gateway.logs import _QUIET, REDACTED, bind_device, configure_logging, redact_sensitive

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Made-up credential (the redaction must hide it whatever it is).
CREDENTIAL = "hunter2"


@pytest.fixture(autouse=True)
def _restore_logging():
    """Put structlog, the root logger and the quietened loggers back as they were."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    quiet = {name: logging.getLogger(name).level for name in _QUIET}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def _configure(level="info", fmt="json", **kwargs) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(LoggingSettings(level=level, format=fmt), stream=stream, **kwargs)
    return stream


def _json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _log_a_reading_from_both_origins() -> None:
    log = structlog.get_logger("gateway.session")
    log.info(
        "reading_stored",
        reading_id="r-1",
        patient="pt-7f3a9c21",
        patients={1: "pt-7f3a9c21"},
        value=132,
        values=[132, 85],
        components={"systolic": 132},
        payload=b'{"value": 132}',
        raw=b"\x1e\x84\x00",
        systolic_value=132,
        password=CREDENTIAL,
    )
    logging.getLogger("bleak.backends.bluezdbus.client").warning("disconnected from %s", "hci0")


def test_json_lines_carry_context_on_every_line_and_no_health_data():
    stream = _configure(fmt="json")

    with bound_contextvars(hub_id="hub-0042"), bind_device("cuff-kitchen"):
        _log_a_reading_from_both_origins()

    ours, theirs = _json_lines(stream)
    for line in (ours, theirs):
        assert line["hub_id"] == "hub-0042"
        assert line["device_id"] == "cuff-kitchen"
        stamp = datetime.fromisoformat(line["timestamp"])
        assert stamp.utcoffset() == UTC.utcoffset(None)
    assert ours["event"] == "reading_stored"
    assert ours["level"] == "info"
    assert ours["logger"] == "gateway.session"
    assert ours["reading_id"] == "r-1"
    for key in (
        "patient",
        "patients",
        "value",
        "values",
        "components",
        "payload",
        "raw",
        "systolic_value",
        "password",
    ):
        assert ours[key] == REDACTED, key
    assert "pt-7f3a9c21" not in stream.getvalue()
    assert "132" not in stream.getvalue()
    assert CREDENTIAL not in stream.getvalue()
    assert theirs == {
        "event": "disconnected from hci0",
        "level": "warning",
        "logger": "bleak.backends.bluezdbus.client",
        "timestamp": theirs["timestamp"],
        "hub_id": "hub-0042",
        "device_id": "cuff-kitchen",
    }


def test_hub_id_is_on_every_line_from_every_thread():
    stream = _configure(hub_id="hub-0042")

    def elsewhere() -> None:
        structlog.get_logger("gateway.outbox").info("from_a_thread")
        logging.getLogger("paho").warning("from a library thread")

    thread = threading.Thread(target=elsewhere, name="writer")
    thread.start()
    thread.join()
    structlog.get_logger("gateway.daemon").info("from_the_main_thread")

    lines = _json_lines(stream)
    assert len(lines) == 3
    assert all(line["hub_id"] == "hub-0042" for line in lines)


def test_debug_lines_keep_values_but_never_secrets():
    stream = _configure(level="debug", fmt="json")

    structlog.get_logger("gateway.session").debug(
        "notification", raw="1e8400", value=132, patient="pt-1", mqtt_password=CREDENTIAL
    )

    (line,) = _json_lines(stream)
    assert line["raw"] == "1e8400"
    assert line["value"] == 132
    assert line["patient"] == "pt-1"
    assert line["mqtt_password"] == REDACTED


def test_console_lines_without_a_terminal_have_no_colours_and_the_same_content():
    stream = _configure(fmt="console", is_tty=False)

    with bound_contextvars(hub_id="hub-0042"), bind_device("cuff-kitchen"):
        _log_a_reading_from_both_origins()

    text = stream.getvalue()
    assert not ANSI.search(text)
    ours, theirs = text.splitlines()
    assert "reading_stored" in ours
    assert "patient=[redacted]" in ours
    assert "value=[redacted]" in ours
    assert "pt-7f3a9c21" not in text
    assert "disconnected from hci0" in theirs
    assert "[warning" in theirs
    for line in (ours, theirs):
        assert "hub_id=hub-0042" in line
        assert "device_id=cuff-kitchen" in line
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ", line)


def test_console_on_a_terminal_has_colours():
    stream = _configure(fmt="console", is_tty=True)

    structlog.get_logger("gateway.session").info("started")

    assert ANSI.search(stream.getvalue())


@pytest.mark.parametrize(("tty", "is_json"), [(True, False), (False, True)])
def test_auto_is_console_on_a_terminal_and_json_otherwise(tty, is_json):
    stream = _configure(fmt="auto", is_tty=tty)

    structlog.get_logger("gateway.session").info("started", devices=2)

    line = stream.getvalue().strip()
    assert line.startswith("{") is is_json
    if is_json:
        assert json.loads(line)["devices"] == 2
    else:
        assert "devices=2" in ANSI.sub("", line)


def test_level_filters_structlog_and_stdlib_alike():
    stream = _configure(level="warning")

    log = structlog.get_logger("gateway.session")
    log.info("not_shown")
    logging.getLogger("bleak").info("not shown either")
    log.warning("shown")
    logging.getLogger("bleak").error("shown too")

    assert [line["event"] for line in _json_lines(stream)] == ["shown", "shown too"]


def test_noisy_libraries_stay_quiet_at_debug():
    stream = _configure(level="debug")

    logging.getLogger("bumble.hci").info("HCI packet")
    logging.getLogger("mqtt").debug("Sending PUBLISH")
    logging.getLogger("bumble.hci").warning("controller reset")
    logging.getLogger("bleak").debug("scanning")

    events = [line["event"] for line in _json_lines(stream)]
    assert events == ["controller reset", "scanning"]


def test_exceptions_are_rendered_without_local_variables():
    for fmt in ("json", "console"):
        stream = _configure(fmt=fmt, is_tty=False)

        def decode() -> None:
            systolic = 987654  # a local that must not reach the log
            raise ValueError(f"bad record of {len(str(systolic))} digits")

        try:
            decode()
        except ValueError:
            structlog.get_logger("gateway.session").exception("decode_failed")
        try:
            decode()
        except ValueError:
            logging.getLogger("bleak").exception("callback failed")

        text = stream.getvalue()
        assert "987654" not in text, fmt
        assert text.count("ValueError: bad record of 6 digits") == 2, fmt
        if fmt == "json":
            lines = _json_lines(stream)
            assert [line["level"] for line in lines] == ["error", "error"]
            assert all("Traceback" in line["exception"] for line in lines)


def test_configuring_again_replaces_the_handler_instead_of_adding_one():
    _configure()
    stream = _configure()

    logging.getLogger("bleak").warning("once")

    assert len(_json_lines(stream)) == 1
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "vitalbridge"]
    assert len(ours) == 1


def test_journal_lines_start_with_their_syslog_priority():
    stream = _configure(journal=True)

    log = structlog.get_logger("gateway.session")
    log.info("a")
    log.warning("b")
    log.error("c")
    logging.getLogger("bleak").critical("d")

    prefixes = [line[: line.index("{")] for line in stream.getvalue().splitlines()]
    assert prefixes == ["<6>", "<4>", "<3>", "<2>"]


def test_journal_is_detected_from_journal_stream(tmp_path, monkeypatch):
    path = tmp_path / "journal"
    with path.open("w", encoding="utf-8") as journal, path.open("a", encoding="utf-8") as other:
        stat = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        configure_logging(LoggingSettings(format="json"), stream=journal)
        structlog.get_logger("gateway.session").info("to_the_journal")
        structlog.reset_defaults()

        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino + 1}")
        configure_logging(LoggingSettings(format="json"), stream=other)
        structlog.get_logger("gateway.session").info("elsewhere")

    first, second = path.read_text(encoding="utf-8").splitlines()
    assert first.startswith('<6>{"event": "to_the_journal"')
    assert second.startswith('{"event": "elsewhere"')


@pytest.mark.asyncio
async def test_concurrent_sessions_each_log_their_own_device():
    stream = _configure()
    log = structlog.get_logger("gateway.session")
    both_bound = asyncio.Barrier(2)

    async def session(device_id: str) -> None:
        with bind_device(device_id):
            # Both devices are bound at once before either logs.
            await both_bound.wait()
            log.info("session_started")
        log.info("session_ended")

    with bound_contextvars(hub_id="hub-0042"):
        async with asyncio.TaskGroup() as group:
            group.create_task(session("cuff-kitchen"), name="session-cuff")
            group.create_task(session("scale-bathroom"), name="session-scale")

    lines = _json_lines(stream)
    started = sorted(line["device_id"] for line in lines if line["event"] == "session_started")
    assert started == ["cuff-kitchen", "scale-bathroom"]
    ended = [line for line in lines if line["event"] == "session_ended"]
    assert len(ended) == 2
    assert all("device_id" not in line and line["hub_id"] == "hub-0042" for line in ended)


def test_redaction_through_structlog_testing():
    with structlog.testing.capture_logs(processors=[redact_sensitive]) as logs:
        structlog.get_logger().info("reading", patient="pt-1", nested={"raw": "1e"}, count=1)

    assert logs == [
        {
            "event": "reading",
            "patient": REDACTED,
            "nested": {"raw": REDACTED},
            "count": 1,
            "log_level": "info",
        }
    ]


health_key = st.sampled_from(
    ["patient", "patients", "value", "values", "components", "payload", "raw", "Patient"]
) | st.from_regex(r"\A[a-z]{1,10}_value\Z")


@given(
    key=health_key,
    value=st.one_of(st.integers(), st.text(), st.binary(), st.lists(st.floats())),
    level=st.sampled_from(["info", "warning", "error", "critical"]),
    depth=st.integers(min_value=0, max_value=1),
)
def test_health_keys_are_redacted_at_info_and_above_at_any_depth(key, value, level, depth):
    nested: object = {key: value}
    for _ in range(depth):
        nested = {"reading": [nested]}

    out = redact_sensitive(None, level, {"event": "e", "level": level, "wrapper": nested})

    inner = out["wrapper"]
    for _ in range(depth):
        inner = inner["reading"][0]
    assert inner == {key: REDACTED}


@given(key=health_key, value=st.integers())
def test_health_keys_pass_at_debug(key, value):
    out = redact_sensitive(None, "debug", {"event": "e", "level": "debug", key: value})

    assert out[key] == value


def test_values_nested_too_deep_are_replaced_whole():
    deep = {"a": {"b": {"c": {"d": {"e": 1}}}}}

    out = redact_sensitive(None, "info", {"event": "e", "level": "info", "deep": deep})

    assert out["deep"] == {"a": {"b": {"c": {"d": REDACTED}}}}
