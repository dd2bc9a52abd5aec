"""``python -m harness.stage WHEEL DEST``: the wheel laid out at its image paths (pypa's installer)
in two layers: ``project`` (what a source change touches) and ``metadata``; no bytecode."""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.sources import WheelFile

from harness import HarnessError
from harness.image.build import IMAGE_PYTHON, IMAGE_VENV
from harness.image.records import DIST

PROJECT, METADATA_TREE = "project", "metadata"
SITE_PACKAGES = f"{IMAGE_VENV}/lib/python{IMAGE_PYTHON}/site-packages"
# The dist-info files an installer adds (PEP 376): who installed it, and that it was asked for.
METADATA = {"INSTALLER": b"installer\n", "REQUESTED": b""}


def confined(dest: Path, within: Path) -> Path:
    """``dest`` with its parent resolved (not itself: a symlink is removed, never followed),
    refused unless strictly inside ``within``."""
    root = within.resolve()
    if dest.name in ("", ".", ".."):
        raise HarnessError(f"{dest} is not a directory name to stage into")
    target = dest.absolute().parent.resolve() / dest.name
    if target == root or not target.is_relative_to(root):
        raise HarnessError(f"{dest} is not inside {within}/ ({root}): refusing to replace it")
    return target


def stage(wheel: Path, dest: Path, *, within: Path = DIST) -> list[Path]:
    """Replace ``dest`` with ``wheel`` installed at its image paths; return the files."""
    staging = confined(dest, within)
    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        staging.unlink()
    elif staging.exists():
        shutil.rmtree(staging)
    target = staging / PROJECT
    umask = os.umask(0o022)  # modes 0644 and 0755 (installer's, ours), whatever the caller's
    try:
        target.mkdir(parents=True)
        with WheelFile.open(wheel) as source:
            source.validate_record()
            headers = f"{IMAGE_VENV}/include/site/python{IMAGE_PYTHON}/{source.distribution}"
            scheme = {"purelib": SITE_PACKAGES, "platlib": SITE_PACKAGES, "headers": headers,
                      "scripts": f"{IMAGE_VENV}/bin", "data": IMAGE_VENV}  # fmt: skip
            destination = SchemeDictionaryDestination(
                scheme, interpreter=f"{IMAGE_VENV}/bin/python", script_kind="posix",
                bytecode_optimization_levels=(), destdir=str(target),
            )  # fmt: skip
            install(source, destination, METADATA)
        site = target / SITE_PACKAGES.lstrip("/")
        for path in sorted(p for p in target.rglob("*") if p.is_file()):
            # A source change rewrites the package's files and RECORD only: the rest goes apart.
            in_site = path.is_relative_to(site)
            top = path.relative_to(site).parts[0] if in_site else ""
            if in_site and (not top.endswith(".dist-info") or path.name == "RECORD"):
                continue
            moved = staging / METADATA_TREE / path.relative_to(target)
            moved.parent.mkdir(parents=True, exist_ok=True)
            path.rename(moved)
    except (InstallerError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise HarnessError(f"{wheel} could not be staged: {exc}") from None
    finally:
        os.umask(umask)
    return sorted(p for p in staging.rglob("*") if p.is_file())


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m harness.stage WHEEL DEST (DEST inside dist/)", file=sys.stderr)
        return 2
    wheel, dest = Path(argv[0]), Path(argv[1])
    try:
        files = stage(wheel, dest)
    except HarnessError as exc:
        print(f"stage: {exc}", file=sys.stderr)
        return 1
    print(f"staged {wheel.name} under {dest}: {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
