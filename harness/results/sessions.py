"""The noxfile's side of the cache: look a session up before it installs anything, record its
pass after, replay its summary on a hit.

A hit needs the entry and the outputs it recorded, byte for byte. Sessions that run with the
cache keep one rule in both modes: secret-named variables never reach their tools (keys.withheld).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from xml.etree import ElementTree

from harness import HarnessError
from harness.core import git
from harness.core.docker import Docker
from harness.image.build import NOT_SHIPPED
from harness.image.records import DIST
from harness.results import keys, remote
from harness.results.store import Store

# In every key: what runs every session (the noxfile, the harness) and what installs its tools.
COMMON_FILES = ("noxfile.py", "pyproject.toml", "uv.lock", "harness")


@dataclass(frozen=True)
class FileSet:
    """The files a session reads, as git pathspecs: what it lists but not what it excludes."""

    include: tuple[str, ...] = (".",)
    exclude: tuple[str, ...] = ()


EVERY_FILE = FileSet()  # lint: every hook runs on every file
PIPELINE_FILES = FileSet(exclude=NOT_SHIPPED)  # build, image, integration: not the unit tests


class Session(Protocol):
    """What the cache uses of a nox session (tests pass a stand-in)."""

    @property
    def name(self) -> str: ...
    @property
    def posargs(self) -> list[str]: ...
    @property
    def python(self) -> object: ...
    @property
    def env(self) -> dict[str, str | None]: ...
    def log(self, *args: object, **kwargs: object) -> None: ...
    def warn(self, *args: object, **kwargs: object) -> None: ...


def withhold_secrets(session: Session, environ: Mapping[str, str]) -> None:
    """Secret-named variables do not reach a cached session's tools (and are in no key)."""
    for name in keys.withheld(environ):
        session.env[name] = None


def output_digests(root: Path, paths: Iterable[str]) -> dict[str, str]:
    """sha256 of every file under ``paths`` (relative to ``root``; a directory counts with all
    its files, so an added file changes the answer); a missing path maps to ``"absent"``."""
    digests: dict[str, str] = {}
    for relative in paths:
        base = confined(root, relative)
        if base is None:
            raise ValueError(f"an output outside {root}: {relative!r}")
        # A link counts as its target's name, and a link to a directory is not followed.
        listed = sorted(p for p in base.rglob("*") if p.is_symlink() or not p.is_dir())
        found = listed if base.is_dir() and not base.is_symlink() else [base]
        if not base.exists() and not base.is_symlink():
            digests[relative] = "absent"
            continue
        for path in found:
            name = path.relative_to(root).as_posix()
            if path.is_symlink() or not path.is_file():
                digests[name] = f"link:{path.readlink()}" if path.is_symlink() else "special"
                continue
            with path.open("rb") as file:
                digests[name] = hashlib.file_digest(file, "sha256").hexdigest()
    return digests


def confined(root: Path, relative: str) -> Path | None:
    """``root / relative`` when that is a plain relative path inside ``root``, else None."""
    path = Path(relative)
    if not relative or path.is_absolute() or ".." in path.parts:
        return None
    return root / path


@dataclass
class Cached:
    """One session's lookup: ``hit`` or not; ``record`` after it passed."""

    session: Session
    root: Path
    store: Store | None
    key: str = ""
    entry: dict[str, Any] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rekey: Callable[[], str] = str  # the key again, from the inputs as they are now
    withdrawn: str = ""  # why this run's pass may not be recorded (e.g. installs skipped)

    @property
    def hit(self) -> bool:
        return self.entry is not None

    def record(self, summary: str = "", outputs: Sequence[Path] = (), **facts: str) -> None:
        """Store this pass: its summary, facts to replay, and the digests of its outputs. A hit
        is not recorded again: its entry keeps the time of the pass it replays."""
        if self.store is None or not self.key or self.hit:
            return
        why = self.withdrawn or (
            "an input changed while it ran" if self.rekey() != self.key else ""
        )
        if why:
            self.session.warn(f"results cache: {self.session.name} is not recorded: {why}")
            return
        paths = sorted(path.relative_to(self.root).as_posix() for path in outputs)
        entry = {
            "session": self.session.name,
            "recorded_at": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "origin": remote.origin(os.environ),
            "summary": summary,
            "facts": facts,
            "output_paths": paths,
            "outputs": output_digests(self.root, paths),
        }
        if not self.store.put(self.key, entry):
            self.session.warn(f"results cache: could not record {self.session.name} in "
                              f"{self.store.root}")  # fmt: skip

    @property
    def facts(self) -> dict[str, str]:
        """What the recorded pass noted to replay (e.g. its image ID); {} on a miss."""
        facts = (self.entry or {}).get("facts")
        if not isinstance(facts, dict):
            return {}
        return {name: value for name, value in facts.items() if isinstance(value, str)}


def python_of(session: Session) -> str:
    """The session's interpreter: its venv's (nox makes the venv before the session's body
    runs, from the Python uv chose, which need not be ``pythonX.Y`` on PATH), else that."""
    try:
        bin_dir = getattr(session, "bin", None)
    except ValueError:  # nox: a session without a venv has no bin
        bin_dir = None
    if isinstance(bin_dir, str) and bin_dir and (Path(bin_dir) / "python").exists():
        return str(Path(bin_dir) / "python")
    python = session.python
    return f"python{python}" if isinstance(python, str) else sys.executable


def tool_versions(run: Callable[[Sequence[str]], str]) -> dict[str, str]:
    """uv installs every session's tools: its version is an input like the lock."""
    try:
        return {"uv": run(["uv", "--version"]).strip()}
    except (OSError, subprocess.CalledProcessError):
        return {"uv": "missing"}


def _output(args: Sequence[str]) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True).stdout


def venv_matches_lock(root: Path, venv: str, selection: Sequence[str]) -> bool:
    """uv's own answer: ``venv`` holds exactly what uv.lock gives ``selection`` (False after
    ``nox -R``, which skips installs, when the venv has drifted)."""
    command = ["uv", "sync", "--locked", "--check", "--quiet", *selection]
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": venv, "UV_PYTHON": venv}  # as nox sets them
    try:
        checked = subprocess.run(
            command, cwd=root, env=env, capture_output=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return checked.returncode == 0


def key_parts(
    session: Session,
    root: Path,
    *,
    files: FileSet,
    environ: Mapping[str, str],
    inputs: Mapping[str, Any],
    run: Callable[[Sequence[str]], str] = _output,
) -> dict[str, Any]:
    """Everything that can change the session's result (docs/caching.md)."""
    read = keys.session_files(root, files.include, files.exclude)
    common = keys.session_files(root, COMMON_FILES)
    return {
        "session": session.name,
        "posargs": list(session.posargs),
        "interpreter": keys.interpreter(python_of(session)),
        "nox_interpreter": sys.version,  # the harness code in nox's own process
        "tools": tool_versions(run),
        "files": keys.file_digests(root, sorted({*read, *common})),
        "environment": keys.environment(environ),
        "inputs": dict(inputs),
    }


def lookup(
    session: Session,
    root: Path,
    store: Store | None,
    *,
    files: FileSet,
    environ: Mapping[str, str],
    inputs: Mapping[str, Any] | Callable[[], Mapping[str, Any]] = {},  # noqa: B006 - read only
    present: Callable[[Cached], bool] = lambda cached: True,
    with_posargs: bool = True,
) -> Cached:
    """The session's cached pass, if its key has one whose outputs are intact (and ``present``
    agrees: e.g. the recorded image is in the engine). On a hit, logs the replay line.
    ``with_posargs=False``: a run with arguments is neither looked up nor recorded."""
    withhold_secrets(session, environ)
    cached = Cached(session, root, store)
    if store is None or (session.posargs and not with_posargs):
        return cached

    def key_now() -> str:
        own = inputs() if callable(inputs) else inputs
        return keys.digest(key_parts(session, root, files=files, environ=environ, inputs=own))

    try:
        cached.key = key_now()  # computed here: a failure is a miss
    except (HarnessError, OSError, ValueError) as exc:
        session.warn(f"results cache: {exc}; {session.name} runs and is not recorded")
        return cached
    cached.rekey = key_now
    entry = store.get(cached.key)
    if entry is None or not intact(root, entry):
        return cached
    cached.entry = entry
    try:
        found = present(cached)
    except (HarnessError, OSError):
        found = False
    if not found:
        cached.entry = None
        return cached
    session.log(hit_line(session.name, cached.key, entry, pulled=is_pulled(store, cached.key)))
    return cached


def is_pulled(store: Store, key: str) -> bool:
    """Whether ``key``'s entry came from the shared tier in this run."""
    return isinstance(store.remote, remote.Remote) and key in store.remote.pulled


@dataclass(frozen=True)
class Results:
    """The noxfile's handle: the checkout, its store (None: off) and the environment."""

    root: Path
    store: Store | None
    environ: Mapping[str, str]

    @classmethod
    def open(cls, root: Path, environ: Mapping[str, str]) -> Results:
        return cls(root, remote.open_shared(environ, root), environ)

    def lookup(
        self,
        session: Session,
        files: FileSet,
        *,
        inputs: Mapping[str, Any] | Callable[[], Mapping[str, Any]] = {},  # noqa: B006
        present: Callable[[Cached], bool] = lambda cached: True,
        with_posargs: bool = True,
    ) -> Cached:
        """:func:`lookup` in this checkout and store."""
        return lookup(
            session, self.root, self.store, files=files, environ=self.environ,
            inputs=inputs, present=present, with_posargs=with_posargs,
        )  # fmt: skip


def intact(root: Path, entry: Mapping[str, Any]) -> bool:
    """The outputs the entry recorded are all there, byte for byte, and nothing was added."""
    paths, recorded = entry.get("output_paths"), entry.get("outputs")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        return False
    try:
        return output_digests(root, paths) == recorded
    except (OSError, ValueError):
        return False


def hit_line(name: str, key: str, entry: Mapping[str, Any], *, pulled: bool = False) -> str:
    """``lint: cached pass from 2026-12-04 17:01 (summary, key 3f2a9c…)``, in local time;
    ``pulled``: ``from CI run 1234, 2026-12-04 17:01``."""
    when = str(entry.get("recorded_at", "?"))
    try:
        stamp = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        when = stamp.astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        when = "?"
    summary = entry.get("summary")
    # Printed to a terminal: an entry's text never carries control sequences.
    detail = (
        f"{summary}, " if isinstance(summary, str) and summary.isprintable() and summary else ""
    )
    made_by = entry.get("origin")
    if pulled:  # checked like the summary: text from a registry
        ok = isinstance(made_by, str) and made_by.isprintable() and len(made_by) < 80
        when = f"{made_by if ok else 'the shared cache'}, {when}"
    return f"{name}: cached pass from {when} ({detail}key {key[:6]}…)"


def junit_summary(path: Path) -> str:
    """pytest's counts from its JUnit XML (our own run's file): ``"12 passed, 1 skipped"``."""
    try:
        suites = ElementTree.parse(path).getroot()  # noqa: S314 - written by our pytest run
    except (OSError, ElementTree.ParseError):
        return ""
    counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in suites.iter("testsuite"):
        for name in counts:
            counts[name] += int(suite.get(name, "0"))
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    parts = [f"{passed} passed"]
    parts += [f"{counts[n]} {n}" for n in ("skipped", "failures", "errors") if counts[n]]
    return ", ".join(parts)


# The .dockerignore allow-list's entries under dist/: what the image reads of build's outputs.
IMAGE_READS = ("dist/staging", "dist/wheelhouse")
IMAGE_REF = re.compile(r"\w[\w.:/@-]*")
# What integration must not key on: the record it writes itself.
INTEGRATION_WRITES = ("verified.json",)


def fields_of(value: object) -> dict[str, Any]:
    """A dataclass instance's fields (a plan, a record) as a key part."""
    if not is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"not a dataclass instance: {value!r}")
    return asdict(value)


def image_inputs(root: Path, plan: object, builder: str) -> dict[str, Any]:
    """The image's own inputs: the plan (commit, dirt, epoch, base and its digest), the builder's
    versions, and the bytes of build's outputs that the context lets in."""
    return {
        "plan": fields_of(plan),
        "builder": builder,
        "context": output_digests(root, IMAGE_READS),
    }


def integration_inputs(
    root: Path, record: object, testcontainers: Mapping[str, str], docker: Docker | None = None
) -> dict[str, Any]:
    """Integration's own inputs: the image record (its ID, builder, revision), everything in
    dist/ the tests may read, the engine, HEAD (test_push clones it), testcontainers' settings."""
    dist = root / DIST
    read = sorted(p.name for p in dist.iterdir() if p.name not in INTEGRATION_WRITES)
    return {
        "image": fields_of(record),
        "dist": output_digests(dist, read),
        "engine": (docker or Docker()).server_version(),
        "head": git.head_commit(root),
        "testcontainers": keys.environment(testcontainers),
    }


def image_present(image_id: Callable[[str], str | None]) -> Callable[[Cached], bool]:
    """A ``present`` check: the recorded image is in the engine with its ID, and each recorded
    tag names it (``image_id(ref)`` answers the ID a ref names now, or None)."""

    def present(cached: Cached) -> bool:
        recorded = cached.facts.get("image_id", "")
        refs = [recorded, *cached.facts.get("tags", "").split()]
        # Refs from an entry become docker's arguments: a name, never an option.
        if not recorded or not all(IMAGE_REF.fullmatch(ref) for ref in refs):
            return False
        return all(image_id(ref) == recorded for ref in refs)

    return present
