"""``python -m harness.checksums DIST FILE...``: write DIST/SHA256SUMS (``sha256sum -c`` format)."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable
from pathlib import Path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256sums(files: Iterable[Path]) -> str:
    return "".join(f"{sha256(path)}  {path.name}\n" for path in sorted(files))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m harness.checksums DIST FILE...", file=sys.stderr)
        return 2
    dist, files = Path(argv[0]), [Path(name) for name in argv[1:]]
    text = sha256sums(files)
    (dist / "SHA256SUMS").write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
