"""Per-device state files: every field kept across restarts, atomic replace, corrupt files aside."""

from __future__ import annotations

import datetime as dt
import json
import stat
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

import gateway.state
from gateway.state import DeviceIdentity, DeviceState, DeviceStateStore, write_atomically

if TYPE_CHECKING:
    from pathlib import Path

SEEN = dt.datetime(2024, 3, 5, 8, 30, 15, 250000, tzinfo=dt.UTC)


def full_state(device_id: str = "cuff-kitchen") -> DeviceState:
    """A state with every field set to a value different from its default."""
    return DeviceState(
        device_id=device_id,
        racp_cursor=4711,
        identity=DeviceIdentity(
            manufacturer="Acme Medical",
            model="BP-200",
            serial="SN-0042",
            firmware="1.2.3",
            hardware="rev B",
        ),
        battery_level=87,
        rssi=-71,
        last_seen=SEEN,
        last_connected=SEEN - dt.timedelta(minutes=5),
        last_reading_at=SEEN - dt.timedelta(minutes=4, seconds=30),
        readings=12,
        sessions=9,
        failures=2,
        last_error="the device did not answer the RACP request within 30 s",
        clock_offset_s=-93.5,
    )


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    """Names in `directory` other than `keep` (a temporary file left behind shows up here)."""
    return sorted(entry.name for entry in directory.iterdir() if entry.name not in keep)


def test_every_field_differs_from_its_default_in_the_fixture():
    """The round trip below only proves something if no field is at its default."""
    state = full_state()
    defaults = DeviceState(device_id=state.device_id)
    for name in DeviceState.model_fields:
        if name != "device_id":
            assert getattr(state, name) != getattr(defaults, name), name
    identity = state.identity
    assert identity is not None
    for name in DeviceIdentity.model_fields:
        assert getattr(identity, name) is not None, name


def test_every_field_survives_a_new_store_instance(tmp_path):
    state = full_state()
    DeviceStateStore(tmp_path).save(state)

    again = DeviceStateStore(tmp_path).get(state.device_id)

    assert again == state
    assert again.last_seen == SEEN
    assert again.last_seen is not None
    assert again.last_seen.tzinfo is not None


def test_the_file_is_json_with_a_format_number(tmp_path):
    state = full_state()
    DeviceStateStore(tmp_path).save(state)

    document = json.loads((tmp_path / "devices" / "cuff-kitchen.json").read_text())

    assert document.pop("format") == 1
    assert document == state.as_document()


def test_an_unknown_device_gets_a_fresh_state_without_a_file(tmp_path):
    store = DeviceStateStore(tmp_path)

    state = store.get("scale-bathroom")

    assert state == DeviceState(device_id="scale-bathroom")
    assert not (tmp_path / "devices").exists()


def test_get_returns_the_remembered_object_and_all_lists_what_was_read_or_saved(tmp_path):
    store = DeviceStateStore(tmp_path)
    first = store.get("cuff-kitchen")
    store.save(full_state("scale-bathroom"))

    assert store.get("cuff-kitchen") is first
    assert sorted(s.device_id for s in store.all()) == ["cuff-kitchen", "scale-bathroom"]


def test_a_save_replaces_the_previous_state(tmp_path):
    store = DeviceStateStore(tmp_path)
    state = full_state()
    store.save(state)
    store.save(state.model_copy(update={"racp_cursor": 4712, "failures": 0}))

    again = DeviceStateStore(tmp_path).get(state.device_id)

    assert (again.racp_cursor, again.failures) == (4712, 0)
    assert leftovers(tmp_path / "devices", {"cuff-kitchen.json"}) == []


def test_state_files_are_readable_by_the_service_user_only(tmp_path):
    DeviceStateStore(tmp_path).save(full_state())

    mode = stat.S_IMODE((tmp_path / "devices" / "cuff-kitchen.json").stat().st_mode)

    assert mode == 0o600


def test_unknown_keys_in_a_newer_file_are_ignored(tmp_path):
    """A downgrade must not lose the device: fields a newer version added are skipped."""
    directory = tmp_path / "devices"
    directory.mkdir()
    document = {"format": 2, "device_id": "cuff-kitchen", "racp_cursor": 7, "new_field": [1]}
    (directory / "cuff-kitchen.json").write_text(json.dumps(document))

    state = DeviceStateStore(tmp_path).get("cuff-kitchen")

    assert state == DeviceState(device_id="cuff-kitchen", racp_cursor=7)


@pytest.mark.parametrize(
    "content",
    [
        b'{"device_id": "cuff-kitchen", "racp_cursor": 7',  # cut short by a power cut
        b"\x00\x00\x00\x00",  # a block of zeros after a file system repair
        b'{"device_id": "cuff-kitchen", "racp_cursor": "seven"}',  # wrong type
        b"[]",  # valid JSON, not an object
        b"\xff\xfe not utf-8",
    ],
    ids=["truncated", "zeros", "wrong-type", "not-an-object", "not-utf8"],
)
def test_a_corrupt_file_is_moved_aside_with_a_warning_and_a_fresh_state_returned(tmp_path, content):
    directory = tmp_path / "devices"
    directory.mkdir()
    file = directory / "cuff-kitchen.json"
    file.write_bytes(content)

    with capture_logs() as logs:
        state = DeviceStateStore(tmp_path).get("cuff-kitchen")

    assert state == DeviceState(device_id="cuff-kitchen")
    assert not file.exists()
    aside = directory / "cuff-kitchen.corrupt"
    assert aside.read_bytes() == content
    events = [entry for entry in logs if entry["event"] == "device_state_unreadable"]
    assert len(events) == 1
    event = events[0]
    assert event["log_level"] == "warning"
    assert event["device_id"] == "cuff-kitchen"
    assert event["moved_to"] == str(aside)
    assert event["error"]
    assert "\n" not in event["error"]
    assert "advice" in event


def test_after_a_corrupt_file_the_next_save_writes_a_good_one(tmp_path):
    directory = tmp_path / "devices"
    directory.mkdir()
    (directory / "cuff-kitchen.json").write_bytes(b"{not json")
    store = DeviceStateStore(tmp_path)
    with capture_logs():
        state = store.get("cuff-kitchen")

    store.save(state.model_copy(update={"racp_cursor": 3}))

    assert DeviceStateStore(tmp_path).get("cuff-kitchen").racp_cursor == 3
    assert leftovers(directory, {"cuff-kitchen.json", "cuff-kitchen.corrupt"}) == []


def test_a_file_naming_another_device_is_not_taken_for_this_one(tmp_path):
    directory = tmp_path / "devices"
    directory.mkdir()
    other = full_state("scale-bathroom")
    (directory / "cuff-kitchen.json").write_text(json.dumps(other.as_document()))

    with capture_logs():
        state = DeviceStateStore(tmp_path).get("cuff-kitchen")

    assert state.device_id == "cuff-kitchen"


def test_write_atomically_creates_the_directory_and_sets_the_mode(tmp_path):
    target = tmp_path / "a" / "b" / "file.json"

    write_atomically(target, b"{}", mode=0o640)

    assert target.read_bytes() == b"{}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(target.parent, {"file.json"}) == []


def test_write_atomically_keeps_the_old_file_when_the_data_cannot_be_written(tmp_path):
    target = tmp_path / "file.json"
    write_atomically(target, b"old")

    # Not bytes: the write itself raises after the temporary file exists.
    with pytest.raises(TypeError):
        write_atomically(target, object())

    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, {"file.json"}) == []


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_write_atomically_keeps_the_old_file_when_fsync_fails(tmp_path, monkeypatch, error):
    """A failing disk cannot be made here, so os.fsync is patched to fail as EIO would.

    The new data is written to the temporary file first; fsync fails before the rename, so the
    old file must still be whole and the temporary file gone (an interrupt included).
    """
    target = tmp_path / "file.json"
    write_atomically(target, b"old")

    def failing_fsync(fd: int) -> None:
        del fd
        raise error

    monkeypatch.setattr(gateway.state.os, "fsync", failing_fsync)
    with pytest.raises(type(error)):
        write_atomically(target, b"new and longer")
    monkeypatch.undo()

    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, {"file.json"}) == []


def test_a_failed_save_keeps_the_previous_state_on_disk_and_in_memory(tmp_path, monkeypatch):
    """Same patched fsync as above: the remembered state must not run ahead of the disk."""
    store = DeviceStateStore(tmp_path)
    state = full_state()
    store.save(state)

    def failing_fsync(fd: int) -> None:
        del fd
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gateway.state.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        store.save(state.model_copy(update={"racp_cursor": 9999}))
    monkeypatch.undo()

    assert store.get(state.device_id).racp_cursor == 4711
    assert DeviceStateStore(tmp_path).get(state.device_id) == state
    assert leftovers(tmp_path / "devices", {"cuff-kitchen.json"}) == []
