"""The results store: one JSON file per key, written atomically, bounded, oldest evicted first.

An entry is data, never code. Anything that is not exactly an entry this code wrote for this key
(corrupt, truncated, another format, a symlink, too large) is a miss: never a crash, never a pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

FORMAT = 1
SWITCH = "DEATHSTAR_CACHE"  # `DEATHSTAR_CACHE=off nox`: no lookup, no record
DIR_VARIABLE = "DEATHSTAR_CACHE_DIR"
MAX_BYTES_VARIABLE = "DEATHSTAR_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
# Keys are sha256 hex digests: nothing else can name a file, so no key leaves the store.
KEY = re.compile(r"[0-9a-f]{64}")
SUFFIX = ".json"


def is_key(key: str) -> bool:
    return KEY.fullmatch(key) is not None


class Tier(Protocol):
    """A shared store behind this one (harness.results.remote)."""

    def pull(self, key: str, store: Store) -> dict[str, Any] | None: ...
    def push(self, key: str, document: bytes, entry: Mapping[str, Any]) -> None: ...


def document(key: str, entry: Mapping[str, Any]) -> bytes:
    """An entry as stored: the format, its key and the entry, as JSON."""
    data = {"format": FORMAT, "key": key, "entry": dict(entry)}
    return json.dumps(data, sort_keys=True, allow_nan=False).encode("utf-8")


def parse(raw: bytes, key: str) -> dict[str, Any] | None:
    """The entry in ``raw`` when it is a document of this format for ``key``, else None."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
        return None
    entry = data.get("entry")
    return entry if isinstance(entry, dict) else None


class Store:
    """Entries under ``root``; ``put`` keeps the total under ``max_bytes``."""

    def __init__(self, root: Path, max_bytes: int, remote: Tier | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.remote = remote

    def path(self, key: str) -> Path:
        if not is_key(key):
            raise ValueError(f"not a results key: {key!r}")
        return self.root / f"{key}{SUFFIX}"

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under ``key`` (else the shared tier's, when there is one), or None
        for a miss of any kind."""
        if not is_key(key):
            return None
        try:
            entry = parse(self._read(self.path(key)), key)
        except OSError:
            entry = None
        if entry is None:
            return self.remote.pull(key, self) if self.remote else None
        with contextlib.suppress(OSError):  # a hit counts as a use: evicted last
            os.utime(self.path(key))
        return entry

    def _read(self, path: Path) -> bytes:
        # O_NOFOLLOW: an entry that is a symlink (to anywhere) is refused, not followed.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > self.max_bytes:
                raise OSError(f"{path} is not an entry")
            return file.read(self.max_bytes + 1)

    def put(self, key: str, entry: Mapping[str, Any], *, pulled: bool = False) -> bool:
        """Store ``entry`` under ``key`` (atomically), then evict the oldest entries until the
        store fits ``max_bytes``, and offer it to the shared tier unless ``pulled`` from it.
        False when it could not be stored: a cache that cannot write costs a rerun, never a
        failed session."""
        data = document(key, entry)
        path = self.path(key)
        if len(data) > self.max_bytes:
            return False
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.root)
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                Path(temporary).replace(path)
            except BaseException:
                with contextlib.suppress(OSError):
                    Path(temporary).unlink()
                raise
            self.evict(keep=path)
        except OSError:
            return False
        if self.remote and not pulled:
            self.remote.push(key, data, entry)
        return True

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove the least recently written or used entries until the store fits; ``keep`` (the
        entry just written) goes last. Returns what was removed."""
        entries: list[tuple[int, str, Path, int]] = []
        with os.scandir(self.root) as scan:
            for item in scan:
                if not KEY.fullmatch(item.name.removesuffix(SUFFIX)) or item.name == SUFFIX:
                    continue  # not an entry of ours: a foreign file in the folder stays
                with contextlib.suppress(OSError):
                    info = item.stat(follow_symlinks=False)
                    entries.append((info.st_mtime_ns, item.name, Path(item.path), info.st_size))
        entries.sort(key=lambda e: (e[2] == keep, e[0], e[1]))
        total = sum(size for *_, size in entries)
        removed: list[Path] = []
        for _, _, path, size in entries:
            if total <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size
            removed.append(path)
        return removed


def store_root(environ: Mapping[str, str]) -> Path:
    """``$DEATHSTAR_CACHE_DIR``, else ``$XDG_CACHE_HOME/deathstar/results``, else
    ``~/.cache/deathstar/results``."""
    if environ.get(DIR_VARIABLE):
        return Path(environ[DIR_VARIABLE])
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")) / ".cache")
    return Path(cache).expanduser() / "deathstar" / "results"


def is_off(environ: Mapping[str, str]) -> bool:
    return environ.get(SWITCH, "").strip().lower() == "off"


def open_store(environ: Mapping[str, str]) -> Store | None:
    """The store this environment names, or None when ``DEATHSTAR_CACHE=off``."""
    if is_off(environ):
        return None
    try:
        max_bytes = int(environ.get(MAX_BYTES_VARIABLE) or DEFAULT_MAX_BYTES)
    except ValueError:
        max_bytes = DEFAULT_MAX_BYTES
    return Store(store_root(environ), max_bytes)
