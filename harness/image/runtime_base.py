"""The runtime base: the Dockerfile's stage below the project layers, as an image tagged with a
digest of its inputs and built once per set of them. ``rewrite-timestamp`` recompresses every
layer it exports, but leaves those a build starts FROM alone; ``repro`` builds in one go."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from harness import HarnessError
from harness.core import checksums
from harness.core.docker import Docker
from harness.image.build import GZIP_LEVEL, IMAGE_NAME, Builder, BuildPlan
from harness.image.records import DIST

REPOSITORY = f"{IMAGE_NAME}-runtime-base"
# What the runtime-base stage reads from the build context (besides dist/wheelhouse).
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "requirements/runtime.txt")
WHEELHOUSE = DIST / "wheelhouse"
KEY_LENGTH = 24  # hex digits of the key in the tag
PULLED = "pulled-"  # the tag prefix of a runtime base from a build cache
REGISTRY_TIMEOUT = 600.0


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
        # Only the executable bit: the stage copies out pip's venv, not these files' modes, and
        # a key that followed the umask would never match another machine's.
        mode = "x" if info.st_mode & 0o111 else "-"
        if stat.S_ISLNK(info.st_mode):
            yield ["link", name, mode, str(path.readlink())]
        elif stat.S_ISREG(info.st_mode):
            yield ["file", name, mode, checksums.sha256(path)]
        else:
            yield ["other", name, mode]


Run = Callable[[Sequence[str]], object]  # runs a build, showing its output


def ensure(
    plan: BuildPlan,
    builder: Builder,
    docker: Docker,
    run: Run,
    *,
    context: Path,
    archive_path: Path,
    say: Callable[[str], object] = print,
) -> str:
    """The runtime-base image for these inputs, by a local tag: ``REPOSITORY:<key>`` when built
    here; ``REPOSITORY:pulled-<key>`` when pulled from the plan's build cache, which only a build
    that reads that cache takes. A cache writer never pulls: it pushes what it built."""
    digest = key(context, plan, builder)
    tag, pulled, shared = f"{REPOSITORY}:{digest}", f"{REPOSITORY}:{PULLED}{digest}", plan.shared
    remote = shared.runtime_base(digest) if shared else ""
    if not docker.image_id(tag):
        reader = shared is not None and not shared.write
        if reader and (docker.image_id(pulled) or _pulled(docker, remote, pulled, say)):
            return pulled
        archive_path.unlink(missing_ok=True)
        try:
            run(plan.runtime_base_command(context, tag, archive_path))
            docker.load(archive_path)
        finally:
            archive_path.unlink(missing_ok=True)
    if shared and shared.write:  # also one built before: an earlier push may have failed
        try:
            docker("tag", tag, remote)
            docker("push", "--quiet", remote, timeout=REGISTRY_TIMEOUT)
        finally:
            _untag(docker, remote)
        say(f"pushed the runtime base to {remote}")
    return tag


def _pulled(docker: Docker, remote: str, tag: str, say: Callable[[str], object]) -> bool:
    """Pull ``remote`` and tag it ``tag``; a missing or unreadable one costs a build, as a
    BuildKit cache miss does."""
    try:
        docker("pull", "--quiet", remote, timeout=REGISTRY_TIMEOUT)
        docker("tag", docker("image", "inspect", "--format", "{{.Id}}", remote), tag)
    except HarnessError as exc:
        say(f"no runtime base from the build cache, building it: {exc}")
        return False
    finally:
        _untag(docker, remote)
    say(f"pulled the runtime base from {remote}")
    return True


def _untag(docker: Docker, ref: str) -> None:
    """Drop the registry name; the image stays under its local tag."""
    with contextlib.suppress(HarnessError):
        docker("image", "rm", ref)


def state_path(root: Path) -> Path:
    """Where a checkout notes the runtime base its last image was built FROM."""
    return root / ".nox" / "runtime-base"


def prune(docker: Docker, current: str, state: Path) -> list[str]:
    """Remove the runtime base this checkout used before, if it now uses another (other
    checkouts' stay: they may be building from them); note ``current``; problems as lines."""
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
