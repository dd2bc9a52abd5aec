"""A reused venv skips the install when nothing it was installed from has changed (tox's rule).

nox installs into a reused venv on every run. uv finds the pinned requirements satisfied
quickly, but it rebuilds the editable project each time (a poetry-core build) and compileall
walks site-packages again. The last step of an install that finished writes a stamp into the
venv: a digest of what the install read (pyproject.toml, the locks, the noxfile that says
what to install, the venv's own pyvenv.cfg) and what it was asked for. A later session whose
digest matches has nothing to install; any change to those files installs again. A hand-made
change inside the venv is not seen: ``nox --reuse-venv=no`` starts it afresh.

``python -m harness.core.installs STAMP DIGEST`` is that last step: it byte-compiles the
venv's site-packages (uv writes no bytecode, and where PYTHONDONTWRITEBYTECODE is set nothing
would later), then writes the stamp.
"""

from __future__ import annotations

import compileall
import hashlib
import os
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

STAMP_NAME = ".deathstar-install"


def digest(inputs: Iterable[Path], request: Sequence[str]) -> str:
    """sha256 over each input's path and bytes (a missing one counts as missing) and the request."""
    sha = hashlib.sha256()
    for part in request:
        sha.update(b"request\0" + part.encode() + b"\0")
    for path in inputs:
        sha.update(b"file\0" + str(path).encode() + b"\0")
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            sha.update(b"missing\0")
        else:
            sha.update(len(content).to_bytes(8, "big") + content)
    return sha.hexdigest()


@dataclass(frozen=True)
class Stamp:
    """A venv's install stamp, and the digest the next install of this session would have."""

    path: Path | None  # None: the session has no venv of its own (nox --no-venv)
    expected: str

    @classmethod
    def of(cls, venv: str | None, inputs: Iterable[Path], request: Sequence[str]) -> Stamp:
        if not venv:
            return cls(None, "")
        location = Path(venv)
        return cls(location / STAMP_NAME, digest((*inputs, location / "pyvenv.cfg"), request))

    def is_current(self) -> bool:
        """Whether the venv's last finished install had exactly this digest."""
        if self.path is None:
            return False
        try:
            return self.path.read_text(encoding="ascii").strip() == self.expected
        except (OSError, UnicodeDecodeError):
            return False

    def forget(self) -> None:
        """Drop the stamp before installing: an install cut short leaves no claim behind."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def finish_command(self) -> tuple[str, ...]:
        """The install's last step, run by the venv's python: compile, then stamp."""
        stamp = () if self.path is None else (str(self.path), self.expected)
        return ("python", "-m", "harness.core.installs", *stamp)


def record(stamp: Path, value: str) -> None:
    """Write the stamp atomically (a link in its place is replaced, never followed)."""
    handle, temporary = tempfile.mkstemp(prefix=f"{STAMP_NAME}.", dir=stamp.parent)
    try:
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.write(value + "\n")
        Path(temporary).replace(stamp)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str]) -> int:
    if len(argv) not in (0, 2):
        print("usage: python -m harness.core.installs [STAMP DIGEST]", file=sys.stderr)
        return 2
    if not compileall.compile_dir(sysconfig.get_path("purelib"), quiet=1, workers=0):
        print("compileall failed: the venv is not stamped", file=sys.stderr)
        return 1
    if argv:
        record(Path(argv[0]), argv[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
