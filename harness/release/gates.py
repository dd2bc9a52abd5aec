"""The release gates, the tags and the plan they produce; each refusal is one line, no side effect.
Tags follow docker/metadata-action's semver rules."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from packaging.version import InvalidVersion, Version

from harness import HarnessError
from harness import registry as reg
from harness.core import git, locks
from harness.core import references as names
from harness.core.docker import Docker
from harness.core.untrusted import parse_json
from harness.image import records

PASSWORD_VARIABLE = "REGISTRY_PASSWORD"  # noqa: S105 (the name of a variable)
# The regular expression semver.org suggests, with the leading "v" our git tags carry.
SEMVER_TAG = re.compile(
    r"^v(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@dataclass(frozen=True)
class Release:
    """A release tag ``vX.Y.Z[-pre][+build]``."""

    core: tuple[int, int, int]
    pre: str | None
    build: str | None

    @classmethod
    def parse(cls, tag: str) -> Release | None:
        match = SEMVER_TAG.match(tag)
        if match is None:
            return None
        return cls(
            (int(match["major"]), int(match["minor"]), int(match["patch"])),
            *match.group("pre", "build"),
        )

    @property
    def version(self) -> str:
        """The semver string without the leading v."""
        pre, build = f"-{self.pre}" if self.pre else "", f"+{self.build}" if self.build else ""
        return ".".join(map(str, self.core)) + pre + build


def image_tags(release: Release, commit: str, repo_tags: list[str]) -> list[str]:
    """The tags to push, immutable ones first; a floating tag only for the highest stable
    release of its line (a backport v1.2.4 while v1.3.0 exists moves ``1.2`` only)."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        raise HarnessError(f"{commit!r} is not a git commit sha")
    tags = [release.version.replace("+", "-"), f"sha-{commit[:7]}"]
    if not reg.TAG.fullmatch(tags[0]):
        raise HarnessError(f"v{release.version} makes no docker tag (at most 128 characters)")
    if release.pre is not None:
        return tags
    stable = [r.core for r in map(Release.parse, repo_tags) if r is not None and r.pre is None]
    major, minor, _ = release.core
    for line, tag in ((2, f"{major}.{minor}"), (1, str(major)), (0, "latest")):
        peers = [core for core in stable if core[:line] == release.core[:line]]
        if release.core >= max(peers, default=release.core) and (line != 1 or major > 0):
            tags.append(tag)
    return tags


def take_secrets(env: Mapping[str, str], *names: str) -> tuple[dict[str, str], dict[str, str]]:
    """Secrets read once: gone from ``os.environ`` and from the mapping handed on."""
    rest = dict(env)
    taken = {name: rest.pop(name, "") for name in names}
    for name in names:
        os.environ.pop(name, None)
    return rest, taken


def without_password(env: Mapping[str, str]) -> dict[str, str]:
    """A child's environment: ``docker login`` gets the password on stdin, nothing else ever."""
    return {name: value for name, value in env.items() if name != PASSWORD_VARIABLE}


def credentials(
    registry: str, env: Mapping[str, str], *, password: str, password_stdin: bool, stdin: TextIO
) -> tuple[reg.Credentials | None, str]:
    """The credentials and where they came from; None: docker's own login for the registry (its
    config or credential helper), which docker and skopeo use and this code never reads."""
    username = env.get("REGISTRY_USERNAME", "")
    if password_stdin:
        password = stdin.read().rstrip("\r\n")
    if username and password:
        source = "stdin" if password_stdin else PASSWORD_VARIABLE
        return reg.Credentials(username, password), f"{username} (REGISTRY_USERNAME, {source})"
    if username or password:
        raise HarnessError(
            "set both REGISTRY_USERNAME and REGISTRY_PASSWORD (or pipe the password to "
            "--password-stdin)"
        )
    if not reg.logged_in(registry, env):
        raise HarnessError(
            f"no credentials for {registry}: set REGISTRY_USERNAME and REGISTRY_PASSWORD, "
            f"or pipe the password to --password-stdin, or `docker login {registry}` first"
        )
    return None, "existing docker login"


@dataclass(frozen=True)
class Plan:
    registry: str
    repository: str
    image_id: str
    config_digest: str  # what every pushed tag's manifest must name as config.digest
    commit: str
    release: Release
    tags: list[str]
    credentials: reg.Credentials | None  # None: use the existing `docker login`
    credentials_source: str
    skopeo: reg.Skopeo = reg.run_skopeo  # what reads the registry (tests pass a stand-in)
    # The environment docker and skopeo see (no secret): where the user's docker login is.
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)

    def login(self, docker: Docker) -> AbstractContextManager[dict[str, str]]:
        """The throwaway login of the plan's credentials, or the user's own docker login."""
        return reg.login(self.registry, self.credentials, docker, self.environment)

    def reader(self, docker_env: Mapping[str, str]) -> reg.Registry:
        """The registry, read with the login ``docker_env``'s docker config holds."""
        return reg.Registry.logged_in_as(self.registry, docker_env, self.skopeo)

    @property
    def repository_ref(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def refs(self) -> list[str]:
        return [f"{self.repository_ref}:{tag}" for tag in self.tags]

    def describe(self) -> str:
        commit = f"{self.commit} (v{self.release.version})"
        return (
            f"registry:    {self.registry}\nrepository:  {self.repository}\n"
            f"image:       {self.image_id}\ncommit:      {commit}\n"
            f"credentials: {self.credentials_source}\ntags:\n"
        ) + "\n".join(f"  {ref}" for ref in self.refs)


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


def verified_image(project: Path, head: str, version: str, docker: Docker) -> records.ImageRecord:
    """The image ``nox -s integration`` verified at HEAD, cross-checked with its labels and the
    suite's tree: the records are files anyone who can write ``dist/`` can forge."""
    record = records.load_image_record(records.image_record_path(project))
    verified = records.load_verification(records.verified_record_path(project))
    if record.commit != head or record.revision != head:
        # "<sha>-dirty"[:12] would hide the "-dirty": say so, or the two shas read the same.
        dirty = " with uncommitted changes" if record.revision.endswith("-dirty") else ""
        raise HarnessError(
            f"the recorded image was built from {names.shown(record.commit[:12])}{dirty}, not from "
            f"HEAD {head[:12]}; run `nox` on this commit first"
        )
    if verified.get("image_id") != record.image_id or verified.get("commit") != head:
        raise HarnessError(
            f"image {names.shown(record.image_id[:19])} has not passed `nox -s integration` at "
            f"{head[:12]}; run it first"
        )
    try:
        suite = git.tree_hash(project, records.INTEGRATION_SUITE)
    except HarnessError:
        raise HarnessError(
            f"HEAD has no {records.INTEGRATION_SUITE}/ suite, so nothing can have verified "
            "the image"
        ) from None
    if verified.get("integration_tree") != suite:
        raise HarnessError(
            f"the recorded verification does not name the integration suite at HEAD (tree "
            f"{suite[:12]}); run `nox -s integration` on this commit"
        )
    if record.build_cache:  # whoever writes a cache chooses what a hit returns
        raise HarnessError(
            f"image {record.image_id[:19]} was built with the build cache "
            f"{names.shown(record.build_cache)}; build the release without one "
            "(`DEATHSTAR_BUILD_CACHE= nox`), and `nox -s repro` proves it is its source"
        )
    if not all(names.DIGEST.fullmatch(str(d)) for d in (record.image_id, record.config_digest)):
        raise HarnessError(
            f"{records.image_record_path(project)} names no sha256 image ID and config digest; "
            "run `nox -s image` again"
        )
    if docker.image_id(record.image_id) != record.image_id:
        raise HarnessError(
            f"the verified image {record.image_id[:19]} is no longer in the local Docker engine; "
            "run `nox` again"
        )
    labels = parse_json(
        docker("image", "inspect", "--format", "{{json .Config.Labels}}", record.image_id)
    )
    labels = labels if isinstance(labels, dict) else {}
    for label, wanted in ((reg.REVISION_LABEL, head), (reg.VERSION_LABEL, version)):
        if labels.get(label) != wanted:
            raise HarnessError(
                f"image {record.image_id[:19]} is labelled {label}="
                f"'{names.shown(labels.get(label, ''))}', not {wanted}; it was not built from this "
                "release: run `nox` again"
            )
    return record


def preflight(
    args: argparse.Namespace,
    env: Mapping[str, str],
    password: str,
    stdin: TextIO,
    docker: Docker,
    *,
    skopeo: reg.Skopeo = reg.run_skopeo,
) -> Plan:
    names.check_registry(args.registry)
    names.check_repository(args.registry, args.repository)
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
    tags = image_tags(release, head, git.all_tags(project))
    plan = Plan(
        args.registry, args.repository, record.image_id, record.config_digest, head, release,
        tags, creds, source, skopeo, dict(env),
    )  # fmt: skip
    # Refuse early, with nothing pushed, when the registry is down or refuses the login:
    # `docker login` checks the credentials, and the repository's tags are read with them.
    try:
        with plan.login(docker) as docker_env:
            plan.reader(docker_env).tags(plan.repository)
    except HarnessError as exc:
        raise HarnessError(f"registry {plan.registry}: {exc}") from None
    return plan
