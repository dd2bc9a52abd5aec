"""``python -m harness.stage WHEEL DEST``: the project wheel laid out as the image's project layer.

pypa's installer writes every file the wheel installs (the package, its dist-info, the
``deathstar`` script with its /opt/venv shebang) under DEST at the path it will have in the
image, and the Dockerfile copies DEST to ``/`` as a layer of its own. A source change then needs
no build container: the host lays out a few kilobytes and the build only copies them.

What the host could vary is normalized: DEST is removed first (it must lie inside ``dist/`` of
the working directory, the project root, and its own symlink is never followed), and modes are
0644 for files, 0755 for directories and executables, whatever the umask. No bytecode, as
pip's ``--no-compile`` before: it would double the layer every source change ships.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.sources import WheelFile

from harness import HarnessError
from harness.image.build import IMAGE_PYTHON, IMAGE_VENV
from harness.image.records import DIST

FILE_MODE = 0o644
DIR_MODE = EXEC_MODE = 0o755
# The dist-info files an installer adds (PEP 376): who installed it, and that it was asked for.
METADATA = {"INSTALLER": b"installer\n", "REQUESTED": b""}


def image_scheme(distribution: str) -> dict[str, str]:
    """The install paths of the image's venv, for the image's Python (``IMAGE_PYTHON``)."""
    python = f"python{IMAGE_PYTHON}"
    site_packages = f"{IMAGE_VENV}/lib/{python}/site-packages"
    return {
        "purelib": site_packages,
        "platlib": site_packages,
        "headers": f"{IMAGE_VENV}/include/site/{python}/{distribution}",
        "scripts": f"{IMAGE_VENV}/bin",
        "data": IMAGE_VENV,
    }


def confined(dest: Path, within: Path) -> Path:
    """``dest`` with its parent resolved, refused unless strictly inside ``within`` (resolved).

    Only the parent is resolved: a ``dest`` that is itself a symlink names the link, which
    :func:`clear` removes without following it.
    """
    root = within.resolve()
    if dest.name in ("", ".", ".."):
        raise HarnessError(f"{dest} is not a directory name to stage into")
    target = dest.absolute().parent.resolve() / dest.name
    if target == root or not target.is_relative_to(root):
        raise HarnessError(f"{dest} is not inside {within}/ ({root}): refusing to replace it")
    return target


def clear(target: Path) -> None:
    """Remove ``target``: a symlink or file itself, a directory with its contents (no symlink
    inside it is followed)."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)


def normalize_modes(top: Path) -> list[Path]:
    """Modes independent of the umask: 0755 directories and executables, 0644 other files.

    Returns the files, sorted; anything else (a symlink, a device) is refused.
    """
    files = []
    top.chmod(DIR_MODE)
    for directory, dirs, names in os.walk(top):
        for name in dirs:
            path = Path(directory, name)
            if path.is_symlink():
                raise HarnessError(f"{path} is a symlink: not something a wheel installs")
            path.chmod(DIR_MODE)
        for name in names:
            path = Path(directory, name)
            mode = path.lstat().st_mode
            if not stat.S_ISREG(mode):
                raise HarnessError(f"{path} is not a regular file: not something a wheel installs")
            path.chmod(EXEC_MODE if mode & 0o111 else FILE_MODE)
            files.append(path)
    return sorted(files)


# Two trees under the destination, two image layers. A source change rewrites the package's
# files and RECORD (their hashes), nothing else: the rest (METADATA, which carries the README,
# the entry-point script, the other dist-info files) goes apart, so that change ships only code.
PROJECT, METADATA_TREE = "project", "metadata"
SITE = "site-packages"


def changes_with_the_code(path: PurePosixPath) -> bool:
    """A file of the import package, or the dist-info's RECORD; ``path`` is site-packages'."""
    top = path.parts[0]
    return not top.endswith(".dist-info") or path.name == "RECORD"


def stage(wheel: Path, dest: Path, *, within: Path = DIST) -> list[Path]:
    """Replace ``dest`` with ``wheel`` installed at its image paths; return the files.

    ``dest/project`` holds the import package and RECORD; the rest of the wheel goes to the same
    paths under ``dest/metadata``.
    """
    staging = confined(dest, within)
    clear(staging)
    target = staging / PROJECT
    target.mkdir(parents=True)
    try:
        with WheelFile.open(wheel) as source:
            source.validate_record()
            destination = SchemeDictionaryDestination(
                image_scheme(source.distribution),
                interpreter=f"{IMAGE_VENV}/bin/python",
                script_kind="posix",
                bytecode_optimization_levels=(),
                destdir=str(target),
            )
            install(source, destination, METADATA)
    except (InstallerError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise HarnessError(f"{wheel} could not be staged: {exc}") from None
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        relative = path.relative_to(target)
        parts = relative.parts
        in_site = len(parts) > 5 and parts[:3] == ("opt", "venv", "lib") and parts[4] == SITE
        if in_site and changes_with_the_code(PurePosixPath(*parts[5:])):
            continue
        moved = staging / METADATA_TREE / relative
        moved.parent.mkdir(parents=True, exist_ok=True)
        path.rename(moved)
    return normalize_modes(staging)


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
