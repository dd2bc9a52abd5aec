"""uv.lock, the one lock, and the requirement files exported from it (the image's pip and CI's
nox install them ``--require-hashes``); lint fails when either is not what the lock exports."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, HarnessError

UV_LOCK = ROOT / "uv.lock"
# uv installs from the URLs the lock names: every package must be PyPI's, every file its host's.
PYPI_INDEX = "https://pypi.org/simple"
PYPI_FILES = "https://files.pythonhosted.org/packages/"


@dataclass(frozen=True)
class Export:
    """One requirements file and the part of the lock it holds (uv export's group options)."""

    path: Path
    selection: tuple[str, ...]

    def command(self) -> list[str]:
        return [
            "uv", "export", "--locked", *self.selection, "--no-emit-project",
            "--format", "requirements-txt", "--quiet",
        ]  # fmt: skip

    def stale(self, exported: str) -> str:
        """Why the file is not ``exported`` (what the lock exports now); "" when it is."""
        try:
            current = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return f"{self.path.name} is missing"
        return "" if current == exported else f"{self.path.name} is not what uv.lock exports"


RUNTIME = Export(ROOT / "requirements" / "runtime.txt", ("--no-default-groups",))  # the image's
NOX = Export(ROOT / "requirements" / "nox.txt", ("--only-group", "nox"))
EXPORTS = (RUNTIME, NOX)


def check_exports(exported: dict[Export, str]) -> None:
    """One line for every export that is stale, with what to run."""
    problems = [why for export, text in exported.items() if (why := export.stale(text))]
    if problems:
        raise HarnessError(f"{'; '.join(problems)}; run `nox -s lock` and commit the result")


def write(export: Export, exported: str) -> None:
    export.path.parent.mkdir(parents=True, exist_ok=True)
    export.path.write_text(exported, encoding="utf-8")


def load_pyproject(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise HarnessError(f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{path} is not valid TOML: {exc}") from None


def foreign_sources(lock: dict[str, Any]) -> list[str]:
    """Each package of a parsed uv.lock that is not PyPI's, or has a file from elsewhere."""
    problems = []
    packages = lock.get("package")
    for package in packages if isinstance(packages, list) else [None]:
        if not isinstance(package, dict):
            problems.append("a package entry is not a table")
            continue
        name, source = package.get("name"), package.get("source")
        if source == {"editable": "."}:  # the project itself
            continue
        if source != {"registry": PYPI_INDEX}:
            problems.append(f"{name} comes from {source}")
            continue
        wheels = package.get("wheels")
        files = [package.get("sdist"), *(wheels if isinstance(wheels, list) else [wheels])]
        for found in files:
            url = found.get("url") if isinstance(found, dict) else found
            if found is not None and not (isinstance(url, str) and url.startswith(PYPI_FILES)):
                problems.append(f"{name} has a file at {url!r}")
    return problems


def check_sources(path: Path | None = None) -> None:
    """uv.lock may name PyPI alone: one line naming the first package that is not."""
    path = path or UV_LOCK
    try:
        lock = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(f"{path.name} cannot be read ({exc}); run `nox -s lock`") from None
    problems = foreign_sources(lock)
    if problems:
        raise HarnessError(
            f"{path.name} names a source other than PyPI: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + "; run `nox -s lock` from a trusted checkout"
        )
