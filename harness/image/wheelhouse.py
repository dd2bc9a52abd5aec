"""dist/wheelhouse: the locked runtime wheels the image installs, downloaded when they change.

`nox -s build` empties dist/ of everything else on each run; the wheelhouse stays when its
stamp (dist/wheelhouse.json) says it was downloaded by this very command from this very lock
and every file in it still has the digest it had then. Anything else (a changed lock, a file
added, removed, altered or replaced by a link) and it is downloaded again from nothing. The
image's pip checks each wheel against the lock's hashes besides.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.image.build import wheelhouse_command

STAMP_NAME = "wheelhouse.json"
WHEELHOUSE_NAME = "wheelhouse"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _contents(wheelhouse: Path) -> dict[str, str] | None:
    """{file name: sha256}, or None when it holds anything but regular files (or is a link)."""
    if wheelhouse.is_symlink() or not wheelhouse.is_dir():
        return None
    found: dict[str, str] = {}
    for entry in wheelhouse.iterdir():
        if not stat.S_ISREG(entry.lstat().st_mode):
            return None
        found[entry.name] = _sha256(entry)
    return found


def _stamp(lock: Path, command: Sequence[str], files: dict[str, str]) -> dict[str, object]:
    return {"lock_sha256": _sha256(lock), "command": list(command), "files": files}


def is_current(lock: Path, dist: Path) -> bool:
    """Whether dist/wheelhouse is what the download from ``lock`` left, file for file."""
    wheelhouse, stamp_path = dist / WHEELHOUSE_NAME, dist / STAMP_NAME
    try:
        recorded = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    files = _contents(wheelhouse)
    if not files or stamp_path.is_symlink() or not lock.is_file():
        return False
    return bool(recorded == _stamp(lock, wheelhouse_command(lock, wheelhouse), files))


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
    if not dist.is_dir():
        return
    for entry in dist.iterdir():
        if entry.name not in {WHEELHOUSE_NAME, STAMP_NAME} or entry.is_symlink():
            _remove(entry)


def refresh(lock: Path, dist: Path, run: Callable[[Sequence[str]], object]) -> str:
    """dist/wheelhouse for ``lock``: kept when current, else downloaded with ``run``; a summary."""
    wheelhouse = dist / WHEELHOUSE_NAME
    if is_current(lock, dist):
        return f"{wheelhouse} is up to date with {lock.name}: not downloaded again"
    _remove(dist / STAMP_NAME)
    _remove(wheelhouse)
    command = wheelhouse_command(lock, wheelhouse)
    run(command)
    files = _contents(wheelhouse) or {}
    (dist / STAMP_NAME).write_text(
        json.dumps(_stamp(lock, command, files), indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    return f"downloaded {len(files)} wheels into {wheelhouse}"
