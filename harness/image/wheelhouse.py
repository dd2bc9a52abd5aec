"""dist/wheelhouse: the locked runtime wheels the image installs, downloaded when they change.

It stays while its stamp (dist/wheelhouse.json) says this very command downloaded it from this
very lock and every file still has its digest then; else it is downloaded again from nothing."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.core import checksums
from harness.image.build import wheelhouse_command

STAMP_NAME, WHEELHOUSE_NAME = "wheelhouse.json", "wheelhouse"


def _stamp(lock: Path, wheelhouse: Path) -> dict[str, Any] | None:
    """What the stamp must say now; None when the wheelhouse holds anything but regular files
    (or is a link), or the lock is missing."""
    if wheelhouse.is_symlink() or not wheelhouse.is_dir() or not lock.is_file():
        return None
    files: dict[str, str] = {}
    for entry in wheelhouse.iterdir():
        if not stat.S_ISREG(entry.lstat().st_mode):
            return None
        files[entry.name] = checksums.sha256(entry)
    command = wheelhouse_command(lock, wheelhouse)
    return {"lock_sha256": checksums.sha256(lock), "command": command, "files": files}


def is_current(lock: Path, dist: Path) -> bool:
    """Whether dist/wheelhouse is what the download from ``lock`` left, file for file."""
    stamp_path = dist / STAMP_NAME
    try:
        recorded = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    now = _stamp(lock, dist / WHEELHOUSE_NAME)
    return bool(now and now["files"] and not stamp_path.is_symlink() and recorded == now)


def _remove(path: Path) -> None:
    """Remove ``path``: a link itself (never what it points to), a directory with its tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()


def clean_dist(dist: Path) -> None:
    """Empty dist/ but for the wheelhouse and its stamp; links are removed, not followed."""
    if dist.is_symlink():
        dist.unlink()
    for entry in dist.iterdir() if dist.is_dir() else ():
        if entry.name not in {WHEELHOUSE_NAME, STAMP_NAME} or entry.is_symlink():
            _remove(entry)


def refresh(lock: Path, dist: Path, run: Callable[[Sequence[str]], object]) -> str:
    """dist/wheelhouse for ``lock``: kept when current, else downloaded with ``run``; a summary."""
    wheelhouse = dist / WHEELHOUSE_NAME
    if is_current(lock, dist):
        return f"{wheelhouse} is up to date with {lock.name}: not downloaded again"
    _remove(dist / STAMP_NAME)
    _remove(wheelhouse)
    run(wheelhouse_command(lock, wheelhouse))
    stamp = _stamp(lock, wheelhouse) or {"files": {}}
    (dist / STAMP_NAME).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n", "utf-8")
    return f"downloaded {len(stamp['files'])} wheels into {wheelhouse}"
