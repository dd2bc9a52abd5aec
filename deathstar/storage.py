"""SQLite storage for targets.

One connection per ``TargetStore``. The API runs its handlers on the event loop thread, and the
store also holds a lock, so a store shared between threads never interleaves two statements.
State changes are single conditional ``UPDATE`` statements, which SQLite applies atomically,
so two processes on one file cannot both fire the same target either.
"""

from __future__ import annotations

import sqlite3
import threading
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


class StoreError(Exception):
    """Base class for storage outcomes the API turns into 4xx answers."""


class NotFoundError(StoreError):
    pass


class ConflictError(StoreError):
    pass


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _row_to_target(row: tuple[Any, ...]) -> Target:
    return Target.model_validate(dict(zip(FIELDS, row, strict=True)))


def _rows_to_targets(rows: list[tuple[Any, ...]]) -> list[Target]:
    return _TARGETS.validate_python([dict(zip(FIELDS, row, strict=True)) for row in rows])


class TargetStore:
    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; each statement below is its own transaction.
        self._conn = sqlite3.connect(
            self._path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def ping(self) -> bool:
        try:
            with self._lock:
                self._conn.execute("SELECT count(*) FROM targets").fetchone()
        except sqlite3.Error:
            return False
        return True

    def create(self, name: str, system: str, *, shielded: bool) -> Target:
        try:
            with self._lock:
                row = self._conn.execute(
                    f"INSERT INTO targets (name, system, shielded, status, created_at) "  # noqa: S608 - constant columns
                    f"VALUES (?, ?, ?, 'active', ?) RETURNING {COLUMNS}",
                    (name, system, int(shielded), _now()),
                ).fetchone()
        except sqlite3.IntegrityError:
            raise ConflictError(f"a target named {name!r} already exists") from None
        return _row_to_target(row)

    def get(self, target_id: int) -> Target:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {COLUMNS} FROM targets WHERE id = ?",  # noqa: S608 - constant columns
                (target_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"target {target_id} does not exist")
        return _row_to_target(row)

    def list(self, *, limit: int, offset: int) -> tuple[list[Target], int]:
        # One read transaction: the page and the total come from the same snapshot, even
        # while another process writes to the file.
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                rows = self._conn.execute(
                    f"SELECT {COLUMNS} FROM targets ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608
                    (limit, offset),
                ).fetchall()
                (total,) = self._conn.execute("SELECT count(*) FROM targets").fetchone()
            finally:
                self._conn.execute("COMMIT")
        return _rows_to_targets(rows), total

    def delete(self, target_id: int) -> None:
        with self._lock:
            cursor = self._conn.execute("DELETE FROM targets WHERE id = ?", (target_id,))
        if cursor.rowcount == 0:
            raise NotFoundError(f"target {target_id} does not exist")

    def fire(self, target_id: int) -> Target:
        # One conditional UPDATE: of many concurrent shots at one target exactly one lands.
        with self._lock:
            row = self._conn.execute(
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
