"""The release gates and the plan they produce; each refusal is one line, with no side effect."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from packaging.version import InvalidVersion, Version

from harness import HarnessError
from harness.core import git, locks, records
from harness.core.docker import Docker
from harness.release.credentials import credentials
from harness.release.registry import Credentials, RegistryClient
from harness.release.tags import Release, image_tags


@dataclass(frozen=True)
class Plan:
    registry: str
    repository: str
    image_id: str
    commit: str
    release: Release
    tags: list[str]
    credentials: Credentials | None  # None: use the existing `docker login`
    credentials_source: str

    @property
    def refs(self) -> list[str]:
        return [f"{self.registry}/{self.repository}:{tag}" for tag in self.tags]

    def describe(self) -> str:
        lines = [
            f"registry:    {self.registry}",
            f"repository:  {self.repository}",
            f"image:       {self.image_id}",
            f"commit:      {self.commit} (v{self.release.version})",
            f"credentials: {self.credentials_source}",
            "tags:",
            *(f"  {ref}" for ref in self.refs),
        ]
        return "\n".join(lines)


def release_at_head(tags_at_head: list[str], package_version: str) -> Release:
    releases = [r for r in map(Release.parse, tags_at_head) if r is not None]
    if not releases:
        raise HarnessError(
            f"HEAD carries no release tag; tag the release commit: git tag v{package_version}"
        )
    try:
        wanted = Version(package_version)
        matching = [r for r in releases if Version(r.version) == wanted]
    except InvalidVersion as exc:
        raise HarnessError(f"not a valid version: {exc}") from None
    if not matching:
        found = ", ".join(f"v{r.version}" for r in releases)
        raise HarnessError(
            f"HEAD is tagged {found} but the package version is {package_version}; "
            "make them equal and tag again"
        )
    return matching[0]


def verified_image(project: Path, head: str, docker: Docker) -> records.ImageRecord:
    record = records.load_image_record(records.image_record_path(project))
    verified = records.load_verification(records.verified_record_path(project))
    if record.commit != head or record.revision != head:
        # "<sha>-dirty"[:12] would hide the "-dirty": say so, or the two shas read the same.
        dirty = " with uncommitted changes" if record.revision.endswith("-dirty") else ""
        raise HarnessError(
            f"the recorded image was built from {record.commit[:12]}{dirty}, not from HEAD "
            f"{head[:12]}; run `nox` on this commit first"
        )
    if verified.get("image_id") != record.image_id or verified.get("commit") != head:
        raise HarnessError(
            f"image {record.image_id[:19]} has not passed `nox -s integration` at {head[:12]}; "
            "run it first"
        )
    if docker.image_id(record.image_id) != record.image_id:
        raise HarnessError(
            f"the verified image {record.image_id[:19]} is no longer in the local Docker engine; "
            "run `nox` again"
        )
    return record


def preflight(
    args: argparse.Namespace, env: Mapping[str, str], stdin: TextIO, docker: Docker
) -> Plan:
    project: Path = args.project_dir
    if git.is_dirty(project):
        raise HarnessError(
            "the working tree has uncommitted changes; release from a clean checkout"
        )
    head = git.head_commit(project)
    version = locks.load_pyproject(project / "pyproject.toml")["project"]["version"]
    release = release_at_head(git.tags_at_head(project), version)
    record = verified_image(project, head, docker)
    creds, source = credentials(
        args.registry, env, password_stdin=args.password_stdin, stdin=stdin, runner=docker.runner
    )
    RegistryClient(args.registry, creds).check_login(args.repository)
    return Plan(
        registry=args.registry,
        repository=args.repository,
        image_id=record.image_id,
        commit=head,
        release=release,
        tags=image_tags(release, head, git.all_tags(project)),
        credentials=creds,
        credentials_source=source,
    )
