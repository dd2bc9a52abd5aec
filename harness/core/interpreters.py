"""Where the test matrix's Pythons are on this machine: PATH, pyenv's versions/, uv's.

nox looks up ``pythonX.Y`` on PATH, and pyenv's shims answer only for the versions it exposes:
each version found is linked as ``pythonX.Y`` into one directory put first on PATH. A version
found nowhere stays missing (nox skips it, or fails with --error-on-missing-interpreters)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

UV_TIMEOUT = 10.0
# pyenv version directories of final releases only: 3.12.1, not 3.12-dev, 3.13.0t or 3.14.0rc1.
_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")

UvFind = Callable[[str], Path | None]


def pyenv_root(environ: Mapping[str, str]) -> Path:
    root = environ.get("PYENV_ROOT")
    return Path(root) if root else Path(environ.get("HOME", "~")).expanduser() / ".pyenv"


def is_runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def in_pyenv(version: str, environ: Mapping[str, str]) -> Iterator[Path]:
    """``versions/X.Y.*/bin/pythonX.Y`` under pyenv's root, the newest patch release first."""
    versions, releases = pyenv_root(environ) / "versions", []
    for child in versions.glob(f"{version}.*") if versions.is_dir() else ():
        match = _RELEASE.match(child.name)
        if match and f"{match[1]}.{match[2]}" == version:
            releases.append((int(match[3]), child / "bin" / f"python{version}"))
    yield from (path for _, path in sorted(releases, reverse=True))


def uv_finder(uv: str | None) -> UvFind:
    """``uv python find --system X.Y`` (a system or uv-managed Python, never a venv's)."""

    def find(version: str) -> Path | None:
        command = [uv or "", "python", "find", "--system", "--no-python-downloads", version]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=UV_TIMEOUT, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        found = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
        return found if found is not None and is_runnable(found) else None

    return find if uv is not None else lambda version: None


def default_uv() -> str | None:
    """The uv installed beside this Python (nox[uv] brings one), else the one on PATH."""
    return shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


def find(version: str, environ: Mapping[str, str], uv_find: UvFind | None = None) -> Path | None:
    """An interpreter for ``version`` (``"3.12"``): PATH (not pyenv's shims, which may not
    answer), then pyenv, then uv; resolved, so a link :func:`expose` made never points at itself."""
    shims = pyenv_root(environ) / "shims"
    entries = [e for e in environ.get("PATH", "").split(os.pathsep) if e and Path(e) != shims]
    for path in [*(Path(e) / f"python{version}" for e in entries), *in_pyenv(version, environ)]:
        if is_runnable(path):
            return path.resolve()
    found = uv_find(version) if uv_find is not None else None
    return found.resolve() if found is not None else None


def find_all(
    versions: Iterable[str], environ: Mapping[str, str], uv_find: UvFind | None = None
) -> dict[str, Path]:
    """The interpreters found, by version; the versions found nowhere are left out."""
    found = {v: find(v, environ, uv_find) for v in versions}
    return {v: path for v, path in found.items() if path is not None}


def expose(found: Mapping[str, Path], directory: Path) -> Path:
    """Link each interpreter as ``directory/pythonX.Y``; stale links there are replaced."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("python*"):
        if stale.is_symlink():
            stale.unlink()
    for version, path in found.items():
        (directory / f"python{version}").symlink_to(path.absolute())
    return directory


def prepend_path(path: str, directory: Path) -> str:
    """``directory`` first on the PATH ``path``, once."""
    rest = [p for p in path.split(os.pathsep) if p and Path(p) != directory]
    return os.pathsep.join([str(directory), *rest])


def expose_on_path(versions: Iterable[str], environ: Mapping[str, str], directory: Path) -> str:
    """PATH with every interpreter found (PATH, pyenv, uv) linked into ``directory``, first."""
    found = find_all(versions, environ, uv_finder(default_uv()))
    return prepend_path(environ.get("PATH", ""), expose(found, directory))
