"""SHA-256 of files, and dist/SHA256SUMS in ``sha256sum -c`` format."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO


def sha256_of(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return sha256_of(handle)


def sha256sums(files: Iterable[Path]) -> str:
    return "".join(f"{sha256(path)}  {path.name}\n" for path in sorted(files))


def write(dist: Path, files: Iterable[Path]) -> str:
    """Write ``dist/SHA256SUMS`` for ``files``; return its text."""
    text = sha256sums(files)
    (dist / "SHA256SUMS").write_text(text, encoding="utf-8")
    return text
