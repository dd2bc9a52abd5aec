"""The release gates and the plan they produce; each refusal is one line, with no side effect."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from packaging.version import InvalidVersion, Version

from harness import HarnessError
from harness.core import git, locks
from harness.core.docker import Docker
from harness.image import records
from harness.registry import (
    DIGEST,
    Credentials,
    Registry,
    Skopeo,
    check_registry,
    check_repository,
    login,
    run_skopeo,
    shown,
)
from harness.release.credentials import credentials
from harness.release.tags import Release, image_tags


@dataclass(frozen=True)
class Plan:
    registry: str
    repository: str
    image_id: str
    config_digest: str  # what every pushed tag's manifest must name as config.digest
    commit: str
    release: Release
    tags: list[str]
    credentials: Credentials | None  # None: use the existing `docker login`
    credentials_source: str
    skopeo: Skopeo = run_skopeo  # what reads the registry (tests pass a stand-in)
    # The environment docker and skopeo see (no secret): where the user's docker login is.
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)

    def login(self, docker: Docker) -> AbstractContextManager[dict[str, str]]:
        """The throwaway login of the plan's credentials, or the user's own docker login."""
        return login(self.registry, self.credentials, docker, self.environment)

    def reader(self, docker_env: Mapping[str, str]) -> Registry:
        """The registry, read with the login ``docker_env``'s docker config holds."""
        return Registry.logged_in_as(self.registry, docker_env, self.skopeo)

    @property
    def repository_ref(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def refs(self) -> list[str]:
        return [f"{self.repository_ref}:{tag}" for tag in self.tags]

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


REVISION_LABEL = "org.opencontainers.image.revision"
VERSION_LABEL = "org.opencontainers.image.version"


def verified_image(project: Path, head: str, version: str, docker: Docker) -> records.ImageRecord:
    """The image ``nox -s integration`` verified at HEAD, cross-checked with what we can see.

    The records are files anyone who can write ``dist/`` can forge; the image's own labels and
    the integration suite's tree are checked too, so a hand-written record needs more than two
    fields. It is no proof against someone who can write files and run docker here.
    """
    record = records.load_image_record(records.image_record_path(project))
    verified = records.load_verification(records.verified_record_path(project))
    if record.commit != head or record.revision != head:
        # "<sha>-dirty"[:12] would hide the "-dirty": say so, or the two shas read the same.
        dirty = " with uncommitted changes" if record.revision.endswith("-dirty") else ""
        raise HarnessError(
            f"the recorded image was built from {shown(record.commit[:12])}{dirty}, not from "
            f"HEAD {head[:12]}; run `nox` on this commit first"
        )
    if verified.get("image_id") != record.image_id or verified.get("commit") != head:
        raise HarnessError(
            f"image {shown(record.image_id[:19])} has not passed `nox -s integration` at "
            f"{head[:12]}; run it first"
        )
    suite = integration_tree(project)
    if verified.get("integration_tree") != suite:
        raise HarnessError(
            f"the recorded verification does not name the integration suite at HEAD (tree "
            f"{suite[:12]}); run `nox -s integration` on this commit"
        )
    if not DIGEST.fullmatch(str(record.image_id)) or not DIGEST.fullmatch(
        str(record.config_digest)
    ):
        raise HarnessError(
            f"{records.image_record_path(project)} names no sha256 image ID and config digest; "
            "run `nox -s image` again"
        )
    if docker.image_id(record.image_id) != record.image_id:
        raise HarnessError(
            f"the verified image {record.image_id[:19]} is no longer in the local Docker engine; "
            "run `nox` again"
        )
    labels = image_labels(record.image_id, docker)
    for label, wanted in ((REVISION_LABEL, head), (VERSION_LABEL, version)):
        if labels.get(label) != wanted:
            raise HarnessError(
                f"image {record.image_id[:19]} is labelled {label}="
                f"'{shown(labels.get(label, ''))}', not {wanted}; it was not built from this "
                "release: run `nox` again"
            )
    return record


def integration_tree(project: Path) -> str:
    """The git tree hash of the integration suite at HEAD, which a verification must name."""
    try:
        return git.tree_hash(project, records.INTEGRATION_SUITE)
    except HarnessError:
        raise HarnessError(
            f"HEAD has no {records.INTEGRATION_SUITE}/ suite, so nothing can have verified "
            "the image"
        ) from None


def image_labels(image_id: str, docker: Docker) -> dict[str, object]:
    """The image's labels (an image without any has none)."""
    raw = docker("image", "inspect", "--format", "{{json .Config.Labels}}", image_id)
    try:
        labels = json.loads(raw)
    except json.JSONDecodeError:
        labels = None
    return labels if isinstance(labels, dict) else {}


def preflight(
    args: argparse.Namespace,
    env: Mapping[str, str],
    password: str,
    stdin: TextIO,
    docker: Docker,
    *,
    skopeo: Skopeo = run_skopeo,
) -> Plan:
    check_registry(args.registry)
    check_repository(args.registry, args.repository)
    project: Path = args.project_dir
    if git.is_dirty(project):
        raise HarnessError(
            "the working tree has uncommitted changes; release from a clean checkout"
        )
    head = git.head_commit(project)
    version = locks.load_pyproject(project / "pyproject.toml")["project"]["version"]
    release = release_at_head(git.tags_at_head(project), version)
    record = verified_image(project, head, version, docker)
    creds, source = credentials(
        args.registry, env, password=password, password_stdin=args.password_stdin, stdin=stdin
    )
    plan = Plan(
        registry=args.registry,
        repository=args.repository,
        image_id=record.image_id,
        config_digest=record.config_digest,
        commit=head,
        release=release,
        tags=image_tags(release, head, git.all_tags(project)),
        credentials=creds,
        credentials_source=source,
        skopeo=skopeo,
        environment=dict(env),
    )
    check_access(plan, docker)
    return plan


def check_access(plan: Plan, docker: Docker) -> None:
    """Refuse early, with nothing pushed, when the registry is down or refuses the login:
    ``docker login`` checks the credentials, and the repository's tags are read with them."""
    try:
        with plan.login(docker) as docker_env:
            plan.reader(docker_env).tags(plan.repository)
    except HarnessError as exc:
        raise HarnessError(f"registry {plan.registry}: {exc}") from None
