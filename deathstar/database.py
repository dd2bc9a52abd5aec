"""A SQLite file shared by threads and processes: a small connection pool, and the file's health.

Each call gets a connection of its own from the pool, so calls can run on worker threads: a call
waiting for another process's write lock holds up only its own thread. SQLite errors that mean
"not now" or "not here" (busy, full, read-only, gone) become one readable
``StoreUnavailableError``, which the API answers with 503.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MEMORY = ":memory:"


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


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


class Database:
    """The connections to one SQLite file, its data version, and the file it opened."""

    def __init__(self, path: Path | str, schema: str, *, busy_timeout: float = 5.0) -> None:
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
            first.execute(schema)
            # The file the store opened: a later stat of the path tells if it was replaced.
            self._identity = None if self._memory else _identity(Path(self._path).stat())
        except BaseException:
            first.close()
            raise
        self._idle.append(first)
        # The version connection never writes, so every commit (ours too, made on other
        # connections) changes its data_version. It never waits: busy timeout 0.
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
