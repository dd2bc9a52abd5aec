"""The runtime base: the image's layers below the project, built once per set of their inputs.

BuildKit's ``rewrite-timestamp`` recompresses every layer it rewrites, on every export, and the
venv is most of the image; layers of the image a build starts FROM it leaves alone. So the
reproducible build makes the Dockerfile's runtime-base stage into an image of its own, tagged
with a digest of everything that stage can see, and the image's build starts FROM it. The image
is the same bytes either way: ``nox -s repro`` builds it in one go, from nothing, and compares.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from harness import HarnessError
from harness.core.docker import Docker
from harness.image.build import GZIP_LEVEL, IMAGE_NAME, Builder, BuildPlan
from harness.image.records import DIST

REPOSITORY = f"{IMAGE_NAME}-runtime-base"
# What the runtime-base stage reads from the build context (.dockerignore admits no more than
# these and dist/staging, which only the runtime stage copies).
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "requirements/runtime.txt")
WHEELHOUSE = DIST / "wheelhouse"
KEY_LENGTH = 24  # hex digits of the key in the tag
LOAD_TIMEOUT = 600.0


def key(context: Path, plan: BuildPlan, builder: Builder) -> str:
    """A digest of the stage's inputs: its files, its build arguments, the exporter, BuildKit."""
    digest = hashlib.sha256()
    exporter = {"epoch_args": plan.base_args(), "gzip": GZIP_LEVEL, "builder": builder.description}
    digest.update(json.dumps(exporter, sort_keys=True).encode() + b"\n")
    for entry in _context_entries(context):
        digest.update(json.dumps(entry).encode() + b"\n")
    return digest.hexdigest()[:KEY_LENGTH]


def _context_entries(context: Path) -> Iterator[list[str]]:
    """(kind, path, mode, content digest or link target) of each input; links not followed."""
    paths = [context / name for name in CONTEXT_FILES]
    wheelhouse = context / WHEELHOUSE
    if wheelhouse.is_dir() and not wheelhouse.is_symlink():
        for parent, dirs, files in os.walk(wheelhouse):
            dirs.sort()
            paths += [Path(parent) / name for name in sorted([*dirs, *files])]
    for path in paths:
        name = path.relative_to(context).as_posix()
        try:
            info = path.lstat()
        except FileNotFoundError:
            yield ["missing", name]
            continue
        mode = oct(stat.S_IMODE(info.st_mode))
        if stat.S_ISLNK(info.st_mode):
            yield ["link", name, mode, str(path.readlink())]
        elif stat.S_ISREG(info.st_mode):
            yield ["file", name, mode, hashlib.sha256(path.read_bytes()).hexdigest()]
        else:
            yield ["other", name, mode]


def ensure(
    plan: BuildPlan,
    builder: Builder,
    docker: Docker,
    run: Callable[[Sequence[str]], object],
    *,
    context: Path,
    archive_path: Path,
) -> tuple[str, bool]:
    """The runtime-base image for these inputs, built unless the engine has it: (tag, built)."""
    tag = f"{REPOSITORY}:{key(context, plan, builder)}"
    if docker.image_id(tag):
        return tag, False
    archive_path.unlink(missing_ok=True)
    try:
        run(plan.runtime_base_command(context, tag, archive_path))
        docker("load", "--input", str(archive_path), timeout=LOAD_TIMEOUT)
    finally:
        archive_path.unlink(missing_ok=True)
    return tag, True


def state_path(root: Path) -> Path:
    """Where a checkout notes the runtime base its last image was built FROM."""
    return root / ".nox" / "runtime-base"


def prune(docker: Docker, current: str, state: Path) -> list[str]:
    """Remove the runtime base this checkout used before, if it now uses another; note
    ``current``. Other checkouts' bases stay: they may be building from them right now.
    One line for a base that could not be removed."""
    try:
        previous = state.read_text(encoding="utf-8").strip()
    except OSError:
        previous = ""
    problems = []
    if previous and previous != current and previous.startswith(f"{REPOSITORY}:"):
        try:
            docker("image", "rm", previous)
        except HarnessError as exc:
            if "No such image" not in str(exc):
                problems.append(f"could not remove the earlier runtime base {previous}: {exc}")
    if current:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(current + "\n", encoding="utf-8")
    return problems
