"""The outbox's SQLite file: connection settings, schema versions and the migrations between them.

The schema version lives in ``PRAGMA user_version``. A new file goes through every migration in
turn, so each migration runs in every test that opens an outbox, not only in upgrade tests.

- Version 1, the first layout: table ``outbox`` with times as ISO 8601 text.
- Version 2: table ``readings`` with times as integer epoch microseconds (exact ordering, cheap
  indexes), payload size, delivery bookkeeping (``attempts``, ``last_error``), an index per
  device in measurement order, and a ``counters`` table for the persisted drop count. SQLite
  cannot change a column's type in place, so the table is rebuilt.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from gateway.errors import OutboxError
from gateway.outbox._models import OutboxCorruptError, OutboxDiskFullError, to_epoch_us

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["SCHEMA_VERSION", "V1_SCHEMA", "connect", "is_disk_full", "storage_error"]

V1_SCHEMA: Final = """
CREATE TABLE outbox (
    reading_id  TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    measured_at TEXT NOT NULL,
    payload     BLOB NOT NULL,
    enqueued_at TEXT NOT NULL
)
"""

_V2_SCHEMA: Final = (
    # seq is the rowid: enqueue order, the tie-break for equal measurement times, and a cheap
    # key for "longest waiting". The payload comes last so scans that skip it stay on the row's
    # first page.
    """
    CREATE TABLE readings (
        seq            INTEGER PRIMARY KEY,
        reading_id     TEXT NOT NULL UNIQUE,
        device_id      TEXT NOT NULL,
        kind           TEXT NOT NULL,
        measured_at_us INTEGER NOT NULL,
        enqueued_at_us INTEGER NOT NULL,
        size           INTEGER NOT NULL,
        attempts       INTEGER NOT NULL DEFAULT 0,
        last_error     TEXT,
        payload        BLOB NOT NULL
    )
    """,
    "CREATE INDEX readings_by_device ON readings (device_id, measured_at_us)",
    "CREATE INDEX readings_by_age ON readings (measured_at_us)",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO counters (name, value) VALUES ('dropped', 0)",
)


def _iso_to_epoch_us(text: str) -> int:
    moment = datetime.fromisoformat(text)
    # Version 1 wrote UTC; a time without an offset is read as UTC rather than local time.
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return to_epoch_us(moment)


def _create_v1(connection: sqlite3.Connection, _path: Path) -> None:
    connection.execute(V1_SCHEMA)


def _v1_to_v2(connection: sqlite3.Connection, _path: Path) -> None:
    connection.create_function("vb_iso_to_epoch_us", 1, _iso_to_epoch_us, deterministic=True)
    for statement in _V2_SCHEMA:
        connection.execute(statement)
    # Version 1 had no enqueue counter: its rows keep their enqueue-time order.
    connection.execute(
        """
        INSERT INTO readings (reading_id, device_id, kind, measured_at_us, enqueued_at_us,
                              size, payload)
        SELECT reading_id, device_id, kind, vb_iso_to_epoch_us(measured_at),
               vb_iso_to_epoch_us(enqueued_at), length(payload), payload
        FROM outbox ORDER BY enqueued_at, reading_id
        """
    )
    connection.execute("DROP TABLE outbox")


_WAL_CHECKPOINT_PAGES: Final = 4000

_MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection, Path], None], ...]] = (
    _create_v1,  # 0 -> 1
    _v1_to_v2,  # 1 -> 2
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)


def _primary_code(error: sqlite3.Error) -> int | None:
    code: int | None = getattr(error, "sqlite_errorcode", None)
    # Extended result codes keep the primary code in their low byte.
    return None if code is None else code & 0xFF


def is_disk_full(error: sqlite3.Error) -> bool:
    """Whether an SQLite error means the disk or the page limit is full."""
    return _primary_code(error) == sqlite3.SQLITE_FULL


def storage_error(path: Path, error: sqlite3.Error, action: str) -> OutboxError:
    """Translate an SQLite error into the outbox error a caller can act on."""
    code = _primary_code(error)
    if code == sqlite3.SQLITE_FULL:
        return OutboxDiskFullError(path)
    if code in {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}:
        return OutboxCorruptError(path, str(error))
    name = getattr(error, "sqlite_errorname", type(error).__name__)
    return OutboxError(
        f"outbox database {path}: {action} failed ({name}: {error}). Check that the disk is "
        "healthy and the file and its directory are writable by the daemon."
    )


def _identify(connection: sqlite3.Connection, path: Path) -> int:
    """Return the file's schema version; refuse files that are not ours to change."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise OutboxError(
            f"outbox database {path} has schema version {version}, newer than this Vitalbridge "
            f"understands ({SCHEMA_VERSION}). Upgrade Vitalbridge; do not delete the file, it "
            "holds undelivered readings."
        )
    tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    if version == 0 and tables:
        raise OutboxError(
            f"{path} is an SQLite database but not a Vitalbridge outbox (it has tables "
            f"{sorted(name for (name,) in tables)} and no outbox schema version). Point the "
            "outbox at another path; this file was left untouched."
        )
    return int(version)


def _migrate(connection: sqlite3.Connection, path: Path, version: int) -> None:
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # One transaction per step: a crash mid-upgrade leaves a file at a consistent version.
        connection.execute("BEGIN IMMEDIATE")
        try:
            _MIGRATIONS[target - 1](connection, path)
            connection.execute(f"PRAGMA user_version = {target:d}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


def _configure(connection: sqlite3.Connection, path: Path) -> None:
    # Runs after _identify: a file that is not ours is refused before anything is written.
    (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise OutboxError(
            f"outbox database {path} cannot use write-ahead logging (journal mode {mode}). "
            "Put the outbox on a local filesystem (not NFS or a FUSE mount)."
        )
    # FULL: the WAL is fsynced at every commit, so a put that returned survives power loss.
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA busy_timeout = 5000")
    # Checkpoint at 4000 WAL pages (16 MiB) rather than SQLite's 1000: a drain deletes at the
    # front of the indexes over and over, and a longer WAL writes each such page back once for
    # many commits. It lifted the writer's ack-and-hand-out rate by about 40 %; the WAL file
    # stays at most that size. Durability is the same: every put's commit is fsynced either way.
    connection.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES:d}")
    problems = [row for (row,) in connection.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        raise OutboxCorruptError(path, "; ".join(str(p) for p in problems[:3]))


def connect(path: Path) -> tuple[sqlite3.Connection, int]:
    """Open, check and migrate the outbox file; return the connection and the version found."""
    try:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), so a
        # group commit is exactly one transaction and DDL in migrations is transactional.
        connection = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as error:
        raise storage_error(path, error, "opening") from error
    try:
        found = _identify(connection, path)
        _configure(connection, path)
        _migrate(connection, path, found)
    except sqlite3.Error as error:
        connection.close()
        raise storage_error(path, error, "opening") from error
    except BaseException:
        connection.close()
        raise
    return connection, found
