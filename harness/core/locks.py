"""The hash-pinned locks and the check that they are not stale.

A lock's first line records a sha256 of the inputs it was resolved from (``requires-python``,
the runtime dependencies and the dependency groups). When pyproject.toml changes any of them,
the recorded fingerprint no longer matches and ``check`` says to run ``nox -s lock``.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, HarnessError

FINGERPRINT_PREFIX = "# input-sha256: "


@dataclass(frozen=True)
class Lock:
    """One lock file and what it resolves: the runtime dependencies or a dependency group."""

    path: Path
    group: str | None  # None: the project's runtime dependencies
    with_project: bool = True  # False: the group alone, without the runtime dependencies


RUNTIME = Lock(ROOT / "requirements" / "runtime.txt", None)
DEV = Lock(ROOT / "requirements" / "dev.txt", "dev")
# What CI and the release job install before nox runs, hash-checked (pip --require-hashes).
NOX = Lock(ROOT / "requirements" / "nox.txt", "nox", with_project=False)
LOCKS = (RUNTIME, DEV, NOX)


def load_pyproject(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise HarnessError(f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{path} is not valid TOML: {exc}") from None


def fingerprint(pyproject: dict[str, Any]) -> str:
    project = pyproject.get("project", {})
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "dependency-groups": pyproject.get("dependency-groups", {}),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def compile_command(lock: Lock, python_version: str) -> list[str]:
    """uv's resolution of one lock: every platform (--universal), with hashes for every file."""
    source = ["pyproject.toml"] if lock.with_project else []
    group = ["--group", lock.group] if lock.group else []
    return [
        "uv", "pip", "compile", *source, *group, "--generate-hashes", "--universal",
        "--python-version", python_version, "--no-header", "--quiet",
    ]  # fmt: skip


def with_fingerprint(resolved: str, digest: str) -> str:
    return f"{FINGERPRINT_PREFIX}{digest}\n# regenerate with: nox -s lock\n{resolved}"


def write(lock: Lock, resolved: str, pyproject_path: Path = ROOT / "pyproject.toml") -> None:
    digest = fingerprint(load_pyproject(pyproject_path))
    lock.path.parent.mkdir(parents=True, exist_ok=True)
    lock.path.write_text(with_fingerprint(resolved, digest), encoding="utf-8")


def recorded_fingerprint(lock_path: Path) -> str | None:
    try:
        first_line = lock_path.read_text(encoding="utf-8").partition("\n")[0]
    except FileNotFoundError:
        return None
    if first_line.startswith(FINGERPRINT_PREFIX):
        return first_line.removeprefix(FINGERPRINT_PREFIX).strip()
    return None


def stale_locks(pyproject_path: Path, locks: tuple[Lock, ...] = LOCKS) -> list[str]:
    """One message per lock that is missing or older than pyproject.toml's inputs."""
    expected = fingerprint(load_pyproject(pyproject_path))
    problems = []
    for lock in locks:
        recorded = recorded_fingerprint(lock.path)
        if recorded is None:
            problems.append(f"{lock.path.name} is missing or has no input fingerprint")
        elif recorded != expected:
            problems.append(f"{lock.path.name} is stale: pyproject.toml changed since it was made")
    return problems


def check(pyproject_path: Path = ROOT / "pyproject.toml", locks: tuple[Lock, ...] = LOCKS) -> None:
    problems = stale_locks(pyproject_path, locks)
    if problems:
        raise HarnessError(f"{'; '.join(problems)}; run `nox -s lock` and commit the result")
