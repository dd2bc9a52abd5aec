"""A reused venv skips the install when nothing it was installed from has changed (tox's rule).

nox installs into a reused venv on every run. uv finds the pinned requirements satisfied
quickly, but it rebuilds the editable project each time (a poetry-core build) and compileall
walks site-packages again. The last step of an install that finished writes a stamp into the
venv: a digest of the install's commands and of what they read (pyproject.toml and the locks,
as read when the noxfile loaded; the venv's pyvenv.cfg). A later session whose digest matches,
while the files on disk are still those bytes, has nothing to install; any change installs
again. The files are read once, before the
sessions are made from them, and again after a session's install: when they changed in
between, the venv is not stamped (the next run installs again). Environment settings such as
``UV_*`` and ``PIP_*`` are not in the digest, and a hand-made change inside the venv is not
seen: ``nox --reuse-venv=no`` starts it afresh.

``python -m harness.core.installs STAMP DIGEST`` is that last step: it byte-compiles the
venv's site-packages (uv writes no bytecode, and where PYTHONDONTWRITEBYTECODE is set nothing
would later), then writes the stamp. nox skips it with the install under ``--no-install``
(``-R``), so a venv that was not installed is never stamped. Without a venv (``nox --no-venv``)
nothing is stamped or compiled, and nox refuses the install itself.
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
from typing import Protocol

STAMP_NAME = ".deathstar-install"
Steps = Sequence[Sequence[str]]  # the arguments of each `session.install`, in order


@dataclass(frozen=True)
class Inputs:
    """Files an install reads, as read once: each path with its bytes (None: missing)."""

    files: tuple[tuple[Path, bytes | None], ...]

    @classmethod
    def read(cls, *paths: Path) -> Inputs:
        return cls(tuple((path, read_or_none(path)) for path in paths))

    def read_again(self) -> Inputs:
        return Inputs.read(*(path for path, _ in self.files))

    def text(self, path: Path) -> str:
        """One input's text, as read (the noxfile parses pyproject.toml from these bytes)."""
        content = dict(self.files).get(path)
        if content is None:
            raise FileNotFoundError(f"{path} was not there when the noxfile loaded")
        return content.decode("utf-8")


def read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def digest(files: Iterable[tuple[Path, bytes | None]], steps: Steps) -> str:
    """sha256 over the steps and each file's path and bytes, every part tagged and delimited."""
    sha = hashlib.sha256()
    for step in steps:
        sha.update(b"step\0" + len(step).to_bytes(4, "big"))
        for arg in step:
            sha.update(arg.encode() + b"\0")
    for path, content in files:
        sha.update(b"file\0" + str(path).encode() + b"\0")
        if content is None:
            sha.update(b"missing\0")
        else:
            sha.update(len(content).to_bytes(8, "big") + content)
    return sha.hexdigest()


@dataclass(frozen=True)
class Stamp:
    """A venv's install stamp, and the digest an install of these steps would have."""

    path: Path
    expected: str

    @classmethod
    def of(cls, venv: Path, inputs: Inputs, steps: Steps) -> Stamp:
        config = venv / "pyvenv.cfg"  # the venv's interpreter, read now
        files = (*inputs.files, (config, read_or_none(config)))
        return cls(venv / STAMP_NAME, digest(files, steps))

    def is_current(self) -> bool:
        """Whether the venv's last finished install had exactly this digest."""
        try:
            return self.path.read_text(encoding="ascii").strip() == self.expected
        except (OSError, UnicodeDecodeError):
            return False

    def forget(self) -> None:
        """Drop the stamp before installing: an install cut short leaves no claim behind."""
        self.path.unlink(missing_ok=True)

    def finish_command(self, *, stamped: bool = True) -> tuple[str, ...]:
        """The install's last step, run by the venv's python: compile, then stamp."""
        stamp = (str(self.path), self.expected) if stamped else ()
        return ("python", "-m", "harness.core.installs", *stamp)


class Session(Protocol):
    """What ``install`` uses of a ``nox.Session``."""

    @property
    def virtualenv(self) -> object: ...

    def install(self, *args: str) -> None: ...

    def run_install(self, *args: str, silent: bool) -> object: ...

    def log(self, *args: object) -> None: ...

    def warn(self, *args: object) -> None: ...


FILE_FLAGS = ("-c", "--constraint", "-r", "--requirement")
EDITABLE_FLAGS = ("-e", "--editable")


def named_files(step: Sequence[str]) -> list[Path]:
    """The files one step's arguments name: constraints, requirements, an editable's pyproject."""
    named = []
    for index, arg in enumerate(step):
        flag, joined, value = arg.partition("=")
        if not joined:
            value = step[index + 1] if index + 1 < len(step) else ""
        if flag in FILE_FLAGS and value:
            named.append(Path(value))
        elif flag in EDITABLE_FLAGS and value:
            named.append(Path(value) / "pyproject.toml")
    return named


def unhashed_files(inputs: Inputs, steps: Steps) -> list[str]:
    """Files the steps name that ``inputs`` lacks: a stamp would not see them change."""
    read = {path.resolve() for path, _ in inputs.files}
    named = [path for step in steps for path in named_files(step)]
    return [str(path) for path in named if path.resolve() not in read]


def install(session: Session, inputs: Inputs, steps: Steps) -> None:
    """``session.install`` each step, unless the venv's stamp says they are installed already."""
    if unhashed := unhashed_files(inputs, steps):
        raise ValueError(f"the install reads {', '.join(unhashed)}, which its stamp would not hash")
    venv = getattr(session.virtualenv, "location", None)
    if not venv:  # nox --no-venv: nox itself refuses to install into its own Python
        for step in steps:
            session.install(*step)
        return
    stamp = Stamp.of(Path(venv), inputs, steps)
    # The stamp matches the bytes read when the noxfile loaded; a session after `nox -s lock`
    # or a `git pull` must install what is on disk now.
    if stamp.is_current() and inputs.read_again() == inputs:
        session.log("nothing to install: the venv was installed from these locks and pyproject")
        return
    stamp.forget()
    for step in steps:
        session.install(*step)
    if inputs.read_again() != inputs:  # the steps may have read other bytes than the digest
        session.warn(
            "pyproject.toml or a lock changed since the noxfile read them: the venv is not "
            "stamped, and the next run installs again"
        )
        session.run_install(*stamp.finish_command(stamped=False), silent=True)
        return
    # Byte-compiles site-packages (uv writes no bytecode), then stamps the venv as installed.
    session.run_install(*stamp.finish_command(), silent=True)
    if not stamp.is_current():  # nox skipped the install and this last step (-R)
        session.warn(
            "installs skipped: this venv was not installed from the current pyproject.toml and "
            "locks; run without -R (--no-install) to update it"
        )


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
