"""What the build, image and integration sessions do, in order, given their nox session."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from harness.core import checksums, git, locks, provision
from harness.core.docker import Docker
from harness.image import build, imaging, records, runtime_base, sbom, sharing, wheelhouse


class Session(Protocol):
    """What the steps use of a nox session."""

    @property
    def posargs(self) -> list[str]: ...

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, external: bool = False
    ) -> object: ...

    def log(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass(frozen=True)
class Made:
    """What a session made: its summary line, its output files, facts a cached pass replays."""

    summary: str
    outputs: list[Path] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)


def dist_inputs(root: Path) -> dict[str, int]:
    """What build reads beyond the checkout's files: HEAD's time (its SOURCE_DATE_EPOCH)."""
    return {"epoch": git.commit_epoch(root)}


def build_dist(root: Path, version: str, session: Session) -> Made:
    """sdist and wheel (SOURCE_DATE_EPOCH: HEAD's), twine check, SHA256SUMS, the wheel staged
    as the image's project layer, the wheelhouse."""
    epoch, dist = git.commit_epoch(root), root / records.DIST
    wheelhouse.clean_dist(dist)  # the wheelhouse stays while it matches the lock
    session.run(*build.wheel_build_command(dist), env={"SOURCE_DATE_EPOCH": str(epoch)})
    artifacts = sorted(dist.glob("deathstar-*"))
    session.run("twine", "check", "--strict", *map(str, artifacts))
    session.log(checksums.write(dist, artifacts))
    wheel = build.project_wheel(dist, version).relative_to(root)
    session.run(*build.staging_command(wheel, build.STAGING))
    session.log(wheelhouse.refresh(locks.RUNTIME.path, dist, lambda cmd: session.run(*cmd)))
    return Made(" ".join(a.name for a in artifacts), sorted(dist.iterdir()))


@dataclass(frozen=True)
class Planned:
    """The image a checkout would build now, on which engine and builder."""

    plan: build.BuildPlan
    builder: build.Builder
    docker: Docker  # the local engine
    buildx: sharing.BuildxBuilder | None  # the selected buildx builder


def plan_image(root: Path, version: str, session: Session, docker: Docker | None = None) -> Planned:
    """The engine checked, the builder detected, the base resolved to a digest,
    DEATHSTAR_BUILD_CACHE's flags: the plan. ``docker`` talks to the local engine."""
    shared = sharing.BuildCache.configured(os.environ)
    branch = sharing.branch(root) if shared else None
    selecting = docker or Docker()  # with the caller's DOCKER_CONTEXT and BUILDX_BUILDER
    docker = sharing.local_engine(selecting.runner)
    session.log(f"Docker engine {docker.require_engine()}")
    builder = build.Builder.detect(docker)
    buildx = sharing.BuildxBuilder.selected(selecting, docker) if builder.buildx else None
    base = imaging.resolve_base(docker, build.base_image(os.environ))
    plan = replace(
        build.BuildPlan.for_checkout(root, version, os.environ, base), shared=shared, branch=branch
    )
    return Planned(plan, builder, docker, buildx)


def build_image(root: Path, planned: Planned, session: Session) -> Made:
    """Build on the selected builder, record, prune this checkout's old runtime base, and
    write the SBOM (cyclonedx-py from the session's venv)."""
    plan, builder, docker = planned.plan, planned.builder, planned.docker
    if not builder.reproducible:
        session.warn(f"this image will not be reproducible: {builder.why_not_reproducible}")
    archive = records.image_archive_path(root)
    record = imaging.build_image(
        plan, builder, docker, lambda command: session.run(*command, external=True),
        context=root, archive_path=archive, buildx=planned.buildx, say=session.log,
    )  # fmt: skip
    records.save_image_record(record, records.image_record_path(root))
    session.log(record.summary())
    for problem in runtime_base.prune(docker, record.runtime_base, runtime_base.state_path(root)):
        session.warn(problem)
    written = sbom.write(
        record, root, docker, lambda cmd, env: session.run(*cmd, env=env), plan.epoch
    )
    session.log(f"wrote {written.relative_to(root)}")
    outputs = [records.image_record_path(root), written, *([archive] if archive.exists() else [])]
    facts = {"image_id": record.image_id, "tags": " ".join(record.tags)}
    return Made(record.summary(), outputs, facts)


def image_id(ref: str) -> str | None:
    """The ID of the image ``ref`` names in the local engine, or None."""
    return Docker().image_id(ref)


def integration_env(
    root: Path, environ: Mapping[str, str]
) -> tuple[records.ImageRecord, dict[str, str]]:
    """The recorded image the tests run against, and their environment (testcontainers')."""
    path = records.image_record_path(root)
    env = provision.testcontainers_env(environ, provision.provision_env_path(environ))
    return records.load_image_record(path), {**env, "DEATHSTAR_IMAGE_RECORD": str(path)}


def record_integration(root: Path, record: records.ImageRecord, session: Session) -> None:
    """Record that the whole suite at HEAD passed against ``record``'s image; a run with pytest
    arguments (-k, a path) may not be the whole suite and removes any record instead."""
    verified = records.verified_record_path(root)
    if session.posargs:
        verified.unlink(missing_ok=True)
        session.warn("a run with pytest arguments records no verification: push needs a whole one")
        return
    suite = git.tree_hash(root, records.INTEGRATION_SUITE)
    records.record_verification(record, git.head_commit(root), verified, suite)
    session.log(f"verified {record.image_id} at {record.commit}")
