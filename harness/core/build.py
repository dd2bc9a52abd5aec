"""How the sdist, the wheel, the wheelhouse and the image are built: commands and plans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.core import git

IMAGE_NAME = "deathstar"
# The Dockerfile's BASE_IMAGE default and .ci/provision's say the same; a unit test checks.
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
BASE_IMAGE_VARIABLE = "DEATHSTAR_BASE_IMAGE"
# The image's platform: CPython 3.11 on glibc x86_64 (bookworm has glibc 2.36).
WHEEL_PLATFORM = (
    *("--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64"),
    *("--implementation", "cp", "--python-version", "3.11"),
)
SOURCE_URL = "https://github.com/tea-n-tech/deathstar"
# Every image build: no network (the wheelhouse has everything), and never ask a registry for
# the base image (it is an input we resolved, not whatever a registry serves today).
OFFLINE_BUILD = ("docker", "build", "--network", "none", "--pull=false")


def base_image(environ: Mapping[str, str]) -> str:
    """The base image: DEATHSTAR_BASE_IMAGE, else the default."""
    return environ.get(BASE_IMAGE_VARIABLE) or DEFAULT_BASE_IMAGE


def wheel_build_command(outdir: Path, python: str = "python") -> list[str]:
    """sdist and wheel as the build session makes them.

    --no-isolation: the backend comes from the dev lock (the same poetry-core on every rebuild,
    and no build env to create); the caller sets SOURCE_DATE_EPOCH.
    """
    return [python, "-m", "build", "--no-isolation", "--outdir", str(outdir)]


def wheelhouse_command(lock: Path, dest: Path) -> list[str]:
    """pip download of the locked runtime wheels, hash-checked, for the image's platform."""
    return [
        "python", "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps",
        "--only-binary", ":all:", *WHEEL_PLATFORM, "--requirement", str(lock),
        "--dest", str(dest),
    ]  # fmt: skip


@dataclass(frozen=True)
class BuildPlan:
    version: str
    commit: str
    dirty: bool
    epoch: int
    base_image: str

    @classmethod
    def for_checkout(cls, root: Path, version: str, environ: Mapping[str, str]) -> BuildPlan:
        """The plan for HEAD of ``root``; DEATHSTAR_BASE_IMAGE overrides the base image."""
        return cls(
            version=version,
            commit=git.head_commit(root),
            dirty=git.is_dirty(root),
            epoch=git.commit_epoch(root),
            base_image=base_image(environ),
        )

    @property
    def revision(self) -> str:
        return git.revision_of(self.commit, dirty=self.dirty)

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def tags(self) -> list[str]:
        """The tags `nox -s image` applies: the version and the commit."""
        return [f"{IMAGE_NAME}:{self.version}", f"{IMAGE_NAME}:sha-{self.commit[:7]}"]

    def build_command(self, context: Path, tags: Sequence[str]) -> list[str]:
        args = {
            "BASE_IMAGE": self.base_image,
            "VERSION": self.version,
            "REVISION": self.revision,
            "CREATED": self.created,
            "SOURCE_DATE_EPOCH": str(self.epoch),
            "SOURCE": SOURCE_URL,
        }
        command = list(OFFLINE_BUILD)
        for key, value in args.items():
            command += ["--build-arg", f"{key}={value}"]
        for tag in tags:
            command += ["--tag", tag]
        return [*command, str(context)]
