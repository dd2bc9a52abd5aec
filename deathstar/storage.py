"""SQLite storage for targets.

State changes are single conditional ``UPDATE`` statements, which SQLite applies atomically,
so two processes on one file cannot both fire the same target either. The connection pool and
the file's health live in ``deathstar.database``.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from deathstar.database import (
    MEMORY,
    ConflictError,
    Database,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from deathstar.models import Target

__all__ = [
    "MEMORY", "ConflictError", "NotFoundError", "StoreError", "StoreUnavailableError",
    "TargetStore",
]  # fmt: skip

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
MAX_CACHED_PAGES = 64


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _row_to_target(row: tuple[Any, ...]) -> Target:
    return Target.model_validate(dict(zip(FIELDS, row, strict=True)))


def _rows_to_targets(rows: list[tuple[Any, ...]]) -> list[Target]:
    return _TARGETS.validate_python([dict(zip(FIELDS, row, strict=True)) for row in rows])


class TargetStore(Database):
    """Targets in a SQLite file: create, read, list a page at a time, delete, fire."""

    def __init__(self, path: Path | str, *, busy_timeout: float = 5.0) -> None:
        super().__init__(path, SCHEMA, busy_timeout=busy_timeout)
        # Pages as list() last read them, each with the data_version it read them at.
        self._pages: dict[tuple[int, int], tuple[int, list[Target], int]] = {}

    def cached_page(self, *, limit: int, offset: int) -> tuple[list[Target], int] | None:
        """The page list() returned last, if nothing was committed since; else None.

        Safe on the event loop: a counter read that never waits for a lock.
        """
        entry = self._pages.get((limit, offset))
        if entry is None or self._version() != entry[0]:
            return None
        return entry[1], entry[2]

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
