"""``python -m harness.package OUTDIR``: the sdist and the wheel, by the backend, in this process.

The project's PEP 517 backend (pyproject's ``build-system.build-backend``, installed in the
session's venv from the dev lock) builds the sdist, then the wheel, both from the source tree
in the working directory. The bytes are those ``python -m build --no-isolation`` makes: the
same backend with the same SOURCE_DATE_EPOCH. What it saves is the frontend's four backend
subprocesses, each importing the backend again, and its building the wheel from an unpacked
sdist.
"""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from harness import HarnessError


class Backend(Protocol):
    def build_sdist(self, sdist_directory: str) -> str: ...
    def build_wheel(self, wheel_directory: str) -> str: ...


def backend(pyproject: Path) -> Backend:
    """The build backend ``pyproject`` names, imported from this environment."""
    try:
        system: dict[str, Any] = tomllib.loads(pyproject.read_text("utf-8"))["build-system"]
        name = system["build-backend"]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise HarnessError(f"{pyproject} names no build backend ({exc})") from None
    if not isinstance(name, str) or "backend-path" in system:
        raise HarnessError(f"{pyproject}: only an installed build backend, by module, is supported")
    module_name, _, attribute = name.partition(":")
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise HarnessError(
            f"the build backend {name} is not installed here ({exc}); "
            "the build session installs it from the dev lock"
        ) from None
    for part in filter(None, attribute.split(".")):
        found = getattr(found, part)
    return cast(Backend, found)


def build(source: Path, outdir: Path) -> list[Path]:
    """The sdist, then the wheel, of the project at ``source`` (the working directory)."""
    built = backend(source / "pyproject.toml")
    outdir.mkdir(parents=True, exist_ok=True)
    sdist = built.build_sdist(str(outdir))
    wheel = built.build_wheel(str(outdir))
    return [outdir / sdist, outdir / wheel]


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m harness.package OUTDIR (in the project's root)", file=sys.stderr)
        return 2
    try:
        artifacts = build(Path.cwd(), Path(argv[0]))
    except HarnessError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    print("built " + ", ".join(path.name for path in artifacts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
