"""Where the Pythons of the test matrix are on this machine: PATH, pyenv, uv.

nox looks up ``python3.12`` on PATH. A machine may hold that interpreter where PATH does not
lead to it: in pyenv's ``versions/`` (whose ``shims/`` answer only for the versions pyenv
exposes), or among uv's managed Pythons. :func:`find_all` finds one interpreter per version,
:func:`expose` links each as ``pythonX.Y`` into one directory, and :func:`prepend_path` puts
that directory first on PATH: the sessions keep their names (``test-3.12``) and nothing but
``pythonX.Y`` is shadowed. A version found nowhere stays missing; nox skips it, or fails with
``--error-on-missing-interpreters``.
"""

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
    """``$PYENV_ROOT``, else ``~/.pyenv``."""
    root = environ.get("PYENV_ROOT")
    return Path(root) if root else Path(environ.get("HOME", "~")).expanduser() / ".pyenv"


def is_runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def on_path(version: str, environ: Mapping[str, str]) -> Iterator[Path]:
    """``pythonX.Y`` in each PATH directory, except pyenv's shims (a shim may not answer)."""
    shims = pyenv_root(environ) / "shims"
    for entry in environ.get("PATH", "").split(os.pathsep):
        if entry and Path(entry) != shims:
            yield Path(entry) / f"python{version}"


def in_pyenv(version: str, environ: Mapping[str, str]) -> Iterator[Path]:
    """``versions/X.Y.*/bin/pythonX.Y`` under pyenv's root, the newest patch release first."""
    versions = pyenv_root(environ) / "versions"
    releases: list[tuple[int, Path]] = []
    for child in versions.glob(f"{version}.*") if versions.is_dir() else ():
        match = _RELEASE.match(child.name)
        if match and f"{match[1]}.{match[2]}" == version:
            releases.append((int(match[3]), child / "bin" / f"python{version}"))
    for _, path in sorted(releases, reverse=True):
        yield path


def candidates(version: str, environ: Mapping[str, str]) -> Iterator[Path]:
    yield from on_path(version, environ)
    yield from in_pyenv(version, environ)


def uv_finder(uv: str | None) -> UvFind:
    """``uv python find --system X.Y`` (a system or uv-managed Python, never a venv's)."""

    def find(version: str) -> Path | None:
        if uv is None:
            return None
        try:
            done = subprocess.run(
                [uv, "python", "find", "--system", "--no-python-downloads", version],
                capture_output=True,
                text=True,
                timeout=UV_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        found = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
        return found if found is not None and is_runnable(found) else None

    return find


def default_uv() -> str | None:
    """The uv installed beside this Python (nox[uv] brings one), else the one on PATH."""
    return shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


def find(version: str, environ: Mapping[str, str], uv_find: UvFind | None = None) -> Path | None:
    """An interpreter for ``version`` (``"3.12"``): PATH, then pyenv, then uv; else None."""
    for path in candidates(version, environ):
        if is_runnable(path):
            # Resolved: a link that :func:`expose` made earlier must not end up pointing at itself.
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
