"""SQLite storage for targets.

A ``TargetStore`` hands each call its own connection from a small pool, so the API can run
storage calls on worker threads: a call waiting for another process's write lock holds up
only its own thread. State changes are single conditional ``UPDATE`` statements, which SQLite
applies atomically, so two processes on one file cannot both fire the same target either.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from deathstar.models import Target

SCHEMA = """
CREATE TABLE IF NOT EXISTS targets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    system       TEXT    NOT NULL,
    shielded     INTEGER NOT NULL CHECK (shielded IN (0, 1)),
    status       TEXT    NOT NULL CHECK (status IN ('active', 'destroyed')),
    created_at   TEXT    NOT NULL,
    destroyed_at TEXT
)
"""
FIELDS = ("id", "name", "system", "shielded", "status", "created_at", "destroyed_at")
COLUMNS = ", ".join(FIELDS)
# Rows become models in one pydantic-core call per page, with no dataclass or dict copy between.
_TARGETS = TypeAdapter(list[Target])
# Below this much free space on its file system the store reports itself not ready.
MIN_FREE_BYTES = 1024 * 1024
# Readiness must answer quickly even while another process holds the write lock.
PROBE_BUSY_MS = 200
MEMORY = ":memory:"
MAX_CACHED_PAGES = 64


class StoreError(Exception):
    """Base class for storage outcomes the API turns into 4xx answers."""


class NotFoundError(StoreError):
    pass


class ConflictError(StoreError):
    pass


class StoreUnavailableError(StoreError):
    """The database cannot serve the call now: busy, full, read-only or gone."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


# SQLite's primary result codes (the low byte of an extended code) the API answers with 503.
_UNAVAILABLE = {
    sqlite3.SQLITE_BUSY: ("the database is busy, try again", True),
    sqlite3.SQLITE_LOCKED: ("the database is busy, try again", True),
    sqlite3.SQLITE_FULL: ("the disk holding the database is full", False),
    sqlite3.SQLITE_READONLY: ("the database is read-only", False),
    sqlite3.SQLITE_IOERR: ("the database file cannot be read or written", False),
    sqlite3.SQLITE_CANTOPEN: ("the database file cannot be opened", False),
}


def _unavailable(exc: sqlite3.Error) -> StoreUnavailableError:
    code = getattr(exc, "sqlite_errorcode", None)
    message, retry = _UNAVAILABLE.get((code or 0) & 0xFF, (f"the database failed: {exc}", False))
    return StoreUnavailableError(message, retry=retry)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _row_to_target(row: tuple[Any, ...]) -> Target:
    return Target.model_validate(dict(zip(FIELDS, row, strict=True)))


def _rows_to_targets(rows: list[tuple[Any, ...]]) -> list[Target]:
    return _TARGETS.validate_python([dict(zip(FIELDS, row, strict=True)) for row in rows])


class TargetStore:
    def __init__(self, path: Path | str, *, busy_timeout: float = 5.0) -> None:
        self._path = str(path)
        self._busy_ms = int(busy_timeout * 1000)
        self._memory = self._path == MEMORY
        if not self._memory:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._idle: list[sqlite3.Connection] = []  # list.pop and append are atomic
        self._lock = threading.Lock()  # for close, and to take turns on a memory store
        self._closed = False
        first = self._open()
        try:
            first.execute("PRAGMA journal_mode=WAL")
            first.execute(SCHEMA)
            # The file the store opened: a later stat of the path tells if it was replaced.
            self._identity = None if self._memory else _identity(Path(self._path).stat())
        except BaseException:
            first.close()
            raise
        self._idle.append(first)
        # Pages as list() last read them, each with the data_version it read them at. The
        # version connection never writes, so every commit (ours too, made on other
        # connections) changes its data_version. It never waits: busy timeout 0.
        self._pages: dict[tuple[int, int], tuple[int, list[Target], int]] = {}
        self._version_conn = None if self._memory else self._open(busy_ms=0)
        self._version_lock = threading.Lock()

    def _open(self, busy_ms: int | None = None) -> sqlite3.Connection:
        busy_ms = self._busy_ms if busy_ms is None else busy_ms
        # isolation_level=None: autocommit; each statement below is its own transaction.
        conn = sqlite3.connect(
            self._path, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={busy_ms}")
        return conn

    def _version(self) -> int | None:
        if self._version_conn is None or self._closed:
            return None
        try:
            with self._version_lock:
                (version,) = self._version_conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None
        return int(version)

    def cached_page(self, *, limit: int, offset: int) -> tuple[list[Target], int] | None:
        """The page list() returned last, if nothing was committed since; else None.

        Safe on the event loop: a counter read that never waits for a lock.
        """
        entry = self._pages.get((limit, offset))
        if entry is None or self._version() != entry[0]:
            return None
        return entry[1], entry[2]

    @contextmanager
    def _connection(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection of this thread's own for one call; SQLite errors become StoreErrors."""
        if write:
            self._check_file()
        if self._memory:  # one connection holds the whole database: take turns on it
            self._lock.acquire()
        try:
            conn = self._take()
            try:
                yield conn
            finally:
                self._give_back(conn)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        finally:
            if self._memory:
                self._lock.release()

    def _take(self) -> sqlite3.Connection:
        if self._closed:
            raise sqlite3.ProgrammingError("the store is closed")
        try:
            return self._idle.pop()
        except IndexError:
            return self._open()

    def _give_back(self, conn: sqlite3.Connection) -> None:
        if self._closed:
            conn.close()
        else:
            self._idle.append(conn)

    def _check_file(self) -> None:
        if self._identity is None:
            return
        try:
            now = _identity(Path(self._path).stat())
        except OSError:
            raise StoreUnavailableError("the database file is gone") from None
        if now != self._identity:
            raise StoreUnavailableError("the database file was replaced")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._idle.clear()
        with self._version_lock:
            if self._version_conn is not None:
                self._version_conn.close()

    def problem(self) -> str | None:
        """Why a write would fail now, or None: the readiness check."""
        try:
            with self._connection(write=True) as conn:
                conn.execute(f"PRAGMA busy_timeout={PROBE_BUSY_MS}")
                try:
                    conn.execute("SELECT count(*) FROM targets").fetchone()
                    # A real write, rolled back: needs the write lock, a writable file and
                    # room for new pages (the blob spills onto overflow pages).
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.execute(
                            "INSERT INTO targets (name, system, shielded, status, created_at) "
                            "VALUES (hex(randomblob(16)), zeroblob(16384), 0, 'active', '')"
                        )
                    finally:
                        if conn.in_transaction:  # SQLite rolls back by itself on SQLITE_FULL
                            conn.execute("ROLLBACK")
                finally:
                    conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        except StoreError as exc:
            return str(exc)
        except sqlite3.Error as exc:
            return f"the database failed: {exc}"
        if not self._memory:
            stat = os.statvfs(Path(self._path).parent)
            if stat.f_bavail * stat.f_frsize < MIN_FREE_BYTES:
                return "the disk holding the database is full"
        return None

    def ping(self) -> bool:
        return self.problem() is None

    def create(self, name: str, system: str, *, shielded: bool) -> Target:
        try:
            with self._connection(write=True) as conn:
                row = conn.execute(
                    f"INSERT INTO targets (name, system, shielded, status, created_at) "  # noqa: S608 - constant columns
                    f"VALUES (?, ?, ?, 'active', ?) RETURNING {COLUMNS}",
                    (name, system, int(shielded), _now()),
                ).fetchone()
        except sqlite3.IntegrityError:
            raise ConflictError(f"a target named {name!r} already exists") from None
        return _row_to_target(row)

    def get(self, target_id: int) -> Target:
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM targets WHERE id = ?",  # noqa: S608 - constant columns
                (target_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"target {target_id} does not exist")
        return _row_to_target(row)

    def list(self, *, limit: int, offset: int) -> tuple[list[Target], int]:
        # Read before the page: a commit in between makes the cached page newer than its
        # version says, which costs one more read later, never a stale answer.
        version = self._version()
        # One read transaction: the page and the total come from the same snapshot, even
        # while another process writes to the file.
        with self._connection() as conn:
            conn.execute("BEGIN")
            try:
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM targets ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608
                    (limit, offset),
                ).fetchall()
                (total,) = conn.execute("SELECT count(*) FROM targets").fetchone()
            finally:
                conn.execute("COMMIT")
        targets = _rows_to_targets(rows)
        if version is not None:
            if len(self._pages) >= MAX_CACHED_PAGES:
                self._pages.clear()
            self._pages[(limit, offset)] = (version, targets, total)
        return targets, total

    def delete(self, target_id: int) -> None:
        with self._connection(write=True) as conn:
            cursor = conn.execute("DELETE FROM targets WHERE id = ?", (target_id,))
        if cursor.rowcount == 0:
            raise NotFoundError(f"target {target_id} does not exist")

    def fire(self, target_id: int) -> Target:
        # One conditional UPDATE: of many concurrent shots at one target exactly one lands.
        with self._connection(write=True) as conn:
            row = conn.execute(
                f"UPDATE targets SET status = 'destroyed', destroyed_at = ? "  # noqa: S608
                f"WHERE id = ? AND status = 'active' AND shielded = 0 RETURNING {COLUMNS}",
                (_now(), target_id),
            ).fetchone()
        if row is not None:
            return _row_to_target(row)
        target = self.get(target_id)  # raises NotFoundError for an unknown id
        if target.shielded:
            raise ConflictError(f"target {target_id} is shielded")
        raise ConflictError(f"target {target_id} is already destroyed")
