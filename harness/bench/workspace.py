"""The bench's copy of the working tree, the clones it edits, and the two sides of P1.

The working tree (tracked and untracked files, not the ignored ones) is committed into a
throwaway repository and cloned from there: the edits happen in those clones, never in the
checkout.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.bench.engine import BUILD_TIMEOUT, Engine
from harness.core import git as gitinfo
from harness.core.process import Runner
from harness.image import build, imaging, records

OURS = "deathstar-bench-ours"
SEED = "deathstar-bench-seed"
SEED_DOCKERFILE = Path("bench/seed-style.Dockerfile")
GIT_IDENTITY = ("-c", "user.name=deathstar bench", "-c", "user.email=bench@localhost")


@dataclass
class Side:
    """One side of the rebuild comparison: a clone and the way it builds an image."""

    name: str
    repo: str
    clone: Path
    build: Callable[[str], str]
    tags: list[str] = field(default_factory=list)


class Workspace:
    """A snapshot of the working tree in a throwaway repository, and clones of it."""

    def __init__(self, root: Path, engine: Engine, runner: Runner, base_image: str) -> None:
        self.root = root
        self.engine = engine
        self.run = runner
        self.base_image = base_image
        self.work = engine.work
        self.snapshot = self.work / "snapshot"
        self.commit = ""
        self.epoch = 0
        self.pyproject: dict[str, Any] = {}

    def take_snapshot(self) -> None:
        """Copy the working tree (tracked and untracked, not ignored) into a new repository."""
        listed = self.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=self.root
        )
        self.snapshot.mkdir()
        for name in filter(None, listed.split("\0")):
            source = self.root / name
            if source.is_file():
                (self.snapshot / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, self.snapshot / name, follow_symlinks=False)
        self.epoch = gitinfo.commit_epoch(self.root)
        stamp = {"GIT_AUTHOR_DATE": f"@{self.epoch}", "GIT_COMMITTER_DATE": f"@{self.epoch}"}
        env = {**os.environ, **stamp}
        git = ["git", *GIT_IDENTITY, "-c", "commit.gpgsign=false"]
        self.run([*git, "init", "--quiet"], cwd=self.snapshot)
        self.run([*git, "add", "--all"], cwd=self.snapshot)
        self.run([*git, "commit", "--quiet", "-m", "bench snapshot"], cwd=self.snapshot, env=env)
        self.commit = gitinfo.head_commit(self.snapshot)
        self.pyproject = tomllib.loads((self.snapshot / "pyproject.toml").read_text("utf-8"))

    @property
    def plan(self) -> build.BuildPlan:
        """The plan of `nox -s image` in a clone of the snapshot (clean, at its commit)."""
        return build.BuildPlan(
            version=self.pyproject["project"]["version"],
            commit=self.commit,
            dirty=False,
            epoch=self.epoch,
            base_image=self.base_image,
        )

    def clone(self, name: str) -> Path:
        dest = self.work / name
        shutil.rmtree(dest, ignore_errors=True)
        self.run(["git", "clone", "--quiet", str(self.snapshot), str(dest)])
        return dest

    def with_wheelhouse(self, clone: Path) -> Path:
        shutil.copytree(self.root / "dist" / "wheelhouse", clone / "dist" / "wheelhouse")
        return clone

    def sides(self) -> tuple[Side, Side]:
        """Ours (``nox -s build image``) and the seed-style Dockerfile, each in its own clone."""
        plan = self.plan
        ours = self.with_wheelhouse(self.clone("ours"))
        seed = self.with_wheelhouse(self.clone("seed"))
        # The seed builds its wheel inside the image with the project's build backend, from a
        # local wheel (the build has no network); like the tutorial, it has no .dockerignore.
        download = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary", ":all:", *self.pyproject["build-system"]["requires"],
            "--dest", str(seed / "dist" / "build-tools"),
        ]  # fmt: skip
        self.run(download)
        (seed / ".dockerignore").unlink(missing_ok=True)
        build_env = {**os.environ, "SOURCE_DATE_EPOCH": str(self.epoch)}

        version = self.pyproject["project"]["version"]
        builder = build.Builder.detect(self.engine.docker)
        plan = replace(plan, base_digest=imaging.resolve_base(self.engine.docker, plan.base_image))

        def build_run(command: Sequence[str]) -> None:
            self.engine.track(self.run(list(command), timeout=BUILD_TIMEOUT, merge=True))

        def build_ours(tag: str) -> str:
            # What `nox -s build image` does for a change: sdist and wheel as the build session
            # makes them (uv build, the backend from uv.lock), then the
            # wheel staged as the project layer (python -m harness.stage).
            self.run(
                build.wheel_build_command(Path("dist"), python=sys.executable),
                cwd=ours,
                env=build_env,
                timeout=BUILD_TIMEOUT,
            )
            wheel = build.project_wheel(ours / "dist", version).relative_to(ours)
            stage = build.staging_command(wheel, build.STAGING, python=sys.executable)
            self.run(stage, cwd=ours, timeout=BUILD_TIMEOUT)
            # Then the image as `nox -s image` builds it: reproducible where the engine can.
            record = imaging.build_image(
                plan, builder, self.engine.docker, build_run, context=ours,
                archive_path=records.image_archive_path(ours), tags=[tag],
            )  # fmt: skip
            base_id = record.runtime_base and self.engine.docker.image_id(record.runtime_base)
            if base_id:  # removed at the end unless it was there before the run
                self.engine.remember([base_id])
            return record.image_id

        def build_seed(tag: str) -> str:
            command = [
                *build.OFFLINE_BUILD,
                "--build-arg", f"BASE_IMAGE={self.base_image}",
                "--file", str(seed / SEED_DOCKERFILE), "--tag", tag, str(seed),
            ]  # fmt: skip
            return self.engine.track(self.run(command, timeout=BUILD_TIMEOUT, merge=True))

        return Side("ours", OURS, ours, build_ours), Side("seed-style", SEED, seed, build_seed)
