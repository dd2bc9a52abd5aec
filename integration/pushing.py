"""Helpers of test_push: the release project, ``python -m harness.release``, registry reads.

Every subprocess gets a throwaway ``DOCKER_CONFIG``, so nothing touches ``~/.docker``, and its
output is checked for the password.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from containers import RUN_ID, WORKER
from packaging.version import Version

from harness import ROOT
from harness.core.docker import Docker
from harness.image.archive import read_archive
from harness.image.records import INTEGRATION_SUITE, ImageRecord
from harness.registry import Credentials, Registry, login, run_skopeo

USERNAME = "release-bot"
# Random per run: a leak check cannot pass by luck, and no secret lives in the source.
PASSWORD = secrets.token_urlsafe(24)
WRONG_PASSWORD = secrets.token_urlsafe(24)
SECRETS = (
    PASSWORD,
    WRONG_PASSWORD,
    base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
    base64.b64encode(f"{USERNAME}:{WRONG_PASSWORD}".encode()).decode(),
)
GOOD_CREDENTIALS = {"REGISTRY_USERNAME": USERNAME, "REGISTRY_PASSWORD": PASSWORD}
RELEASE_TIMEOUT = 600  # seconds for one `python -m harness.release`, pushes included
DOCKER_TIMEOUT = 120
DIGEST = re.compile(
    r"^pushed (\d+) tags, all resolve to (sha256:[0-9a-f]{64}), (unsigned|signed.*)$"
)
# Variables of the caller that would change what the release module does.
SCRUBBED_ENV = (*GOOD_CREDENTIALS, "DOCKER_CONFIG", "DEATHSTAR_REGISTRY", "DEATHSTAR_REPOSITORY")
# Images the push tests derive from the recorded one (relabelled); removed after the module.
DERIVED_REPOSITORY = f"deathstar-push-test-{RUN_ID}-{WORKER}"


def docker(*args: str, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
    """The harness's own docker runner: a failure raises with docker's last error line."""
    return Docker()(*args, stdin=stdin, env=env, timeout=DOCKER_TIMEOUT)


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr.strip()}"
    return result.stdout.strip()


def expected_tags(version: str, head: str) -> set[str]:
    """metadata-action's semver tags for a stable release that is the only (so highest) one."""
    parsed = Version(version)
    assert not parsed.is_prerelease, f"these tests expect a stable version, not {version}"
    major, minor, _patch = parsed.release
    tags = {version, f"{major}.{minor}", f"sha-{head[:7]}", "latest"}
    if major > 0:
        tags.add(str(major))
    return tags


# Repository paths up to this many components deep are searched for a registry's local refs.
REF_DEPTH = 8


def local_refs(prefix: str) -> list[str]:
    """Local image tags and repo digests that start with ``prefix``: ``host:port/`` or ``name:``.

    The engine is asked only for the matching references: a whole `docker image ls` under the
    containerd store takes 0.4 s, and every push test asks several times.
    """
    if prefix.endswith("/"):  # a registry: any repository path below it (* stops at each /)
        patterns = [prefix + "/".join(["*"] * depth) for depth in range(1, REF_DEPTH + 1)]
    else:
        patterns = [prefix.removesuffix(":")]  # a repository: all its tags
    filters = [arg for pattern in patterns for arg in ("--filter", f"reference={pattern}")]
    listed = docker("image", "ls", "--all", "--digests", *filters, "--format", "{{json .}}")
    refs: list[str] = []
    for line in listed.splitlines():
        entry = json.loads(line)
        repository, tag, digest = entry["Repository"], entry["Tag"], entry["Digest"]
        if repository.startswith(prefix) or f"{repository}:".startswith(prefix):
            refs.append(f"{repository}:{tag}" if tag != "<none>" else f"{repository}@{digest}")
    return refs


# --- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveRegistry:
    address: str  # 127.0.0.1:<mapped port>

    def prefix(self, repository: str) -> str:
        return f"{self.address}/{repository}"

    @contextmanager
    def reader(self) -> Iterator[Registry]:
        """The registry as the harness reads it: skopeo, under a throwaway docker login."""
        with login(self.address, Credentials(USERNAME, PASSWORD), Docker()) as env:
            yield Registry.logged_in_as(self.address, env, run_skopeo)

    def tags(self, repository: str) -> list[str]:
        with self.reader() as registry:
            return registry.tags(repository)

    def digests(self, repository: str, tags: set[str]) -> dict[str, str | None]:
        with self.reader() as registry:
            found = {tag: registry.manifest(repository, tag) for tag in sorted(tags)}
        return {
            tag: None if manifest is None else manifest.digest for tag, manifest in found.items()
        }


# --- the release project ------------------------------------------------------------------------


@dataclass
class Project:
    path: Path
    head: str
    version: str
    record: dict[str, Any]
    docker_config: Path  # empty: no existing `docker login` anywhere
    built_revision: str  # the revision the image itself reports at /version

    @property
    def dist(self) -> Path:
        return self.path / "dist"

    def write_json(self, name: str, data: Mapping[str, Any]) -> None:
        (self.dist / name).write_text(json.dumps(dict(data), indent=2) + "\n", encoding="utf-8")


def relabelled(image_id: str, revision: str, workdir: Path) -> tuple[str, str]:
    """An image of ``image_id`` whose revision label says ``revision``: (image ID, config digest).

    The push refuses an image whose label names another commit than HEAD; the clone's HEAD and
    the checkout the image came from may differ (a dirty tree is labelled "<sha>-dirty").
    """
    base = f"{DERIVED_REPOSITORY}:base-{revision[:12]}"
    derived = f"{DERIVED_REPOSITORY}:{revision[:12]}"
    context = workdir / "relabel"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {base}\nLABEL org.opencontainers.image.revision={revision}\n", encoding="utf-8"
    )
    docker("tag", image_id, base)
    docker("build", "--quiet", "--network", "none", "--tag", derived, str(context))
    docker("save", "--output", str(workdir / "derived.tar"), derived)
    config_digest = read_archive(workdir / "derived.tar").config_digest
    (workdir / "derived.tar").unlink()
    return docker("image", "inspect", "--format", "{{.Id}}", derived), config_digest


def remove_derived_images() -> None:
    for ref in local_refs(f"{DERIVED_REPOSITORY}:"):
        subprocess.run(["docker", "image", "rm", ref], capture_output=True, check=False)


@dataclass(frozen=True)
class Derived:
    """The recorded image relabelled for a commit: what every test's clone releases."""

    revision: str
    image_id: str
    config_digest: str


def derive(record: ImageRecord, workdir: Path) -> Derived:
    """The recorded image relabelled for this repository's HEAD (a clone's HEAD is the same).

    Made once for the module: a ``docker build`` and a ``docker save`` of the whole image.
    """
    head = git("rev-parse", "HEAD", cwd=ROOT)
    return Derived(head, *relabelled(record.image_id, head, workdir))


def fabricated_project(tmp_path: Path, record: ImageRecord, derived: Derived) -> Project:
    """A clean clone of this repository, released at HEAD, with the image "verified" at HEAD."""
    path = tmp_path / "deathstar"
    # --no-tags: the repository's own release tags (a release manager tags before running
    # `nox`) would clash with the tag made here and change which version is `latest`.
    # --shared: the clone reads this repository's objects instead of copying them, and writes
    # its own (the release tag) to itself; a run's clones are throwaway.
    git("clone", "--quiet", "--no-tags", "--shared", str(ROOT), str(path), cwd=tmp_path)
    git("config", "user.name", "Release Test", cwd=path)
    git("config", "user.email", "release-test@example.invalid", cwd=path)
    version = record.version
    git("tag", "--annotate", f"v{version}", "--message", f"deathstar {version}", cwd=path)
    head = git("rev-parse", "HEAD", cwd=path)
    # FABRICATED: the recorded image was built and verified from another checkout. These
    # records claim an image of it, labelled with the clone's HEAD, was built and passed
    # `nox -s integration` at that HEAD, only so that the push mechanics can run; nothing here
    # verifies the image.
    assert head == derived.revision, "the clone's HEAD is not the one the image was derived for"
    image_id, config_digest = derived.image_id, derived.config_digest
    image_record = {
        **asdict(record), "image_id": image_id, "config_digest": config_digest,
        "commit": head, "revision": head,
    }  # fmt: skip
    (path / "dist").mkdir()
    fabricated = Project(
        path, head, version, image_record, tmp_path / "docker-config", record.revision
    )
    fabricated.docker_config.mkdir()
    fabricated.write_json("image.json", image_record)
    fabricated.write_json(
        "verified.json",
        {
            "image_id": image_id,
            "commit": head,
            "revision": head,
            "integration_tree": git("rev-parse", f"HEAD:{INTEGRATION_SUITE}", cwd=path),
            "verified_at": "2000-01-01T00:00:00Z",
        },
    )
    assert git("status", "--porcelain", cwd=path) == "", "dist/ must be ignored by git"
    return fabricated


# --- running the release ------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def digest(self) -> str:
        lines = self.stdout.splitlines()
        match = DIGEST.match(lines[-1]) if lines else None
        assert match is not None, f"no digest in the last line:\n{self.stdout}"
        return match[2]


def release(
    project: Project,
    registry: str,
    repository: str,
    *flags: str,
    credentials: Mapping[str, str] = GOOD_CREDENTIALS,
    stdin: str = "",
) -> Result:
    """``python -m harness.release`` for ``project``, with this repository's harness."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["DOCKER_CONFIG"] = str(project.docker_config)
    env.update(credentials)
    command = [
        sys.executable, "-m", "harness.release", "--project-dir", str(project.path),
        "--registry", registry, "--repository", repository, *flags,
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=RELEASE_TIMEOUT,
        check=False,
    )
    for secret in SECRETS:
        assert secret not in done.stdout, "a password leaked to stdout"
        assert secret not in done.stderr, "a password leaked to stderr"
    return Result(done.returncode, done.stdout, done.stderr)


def assert_pushed(
    result: Result, live_registry: LiveRegistry, repository: str, project: Project
) -> str:
    """A successful push: every expected tag, and nothing else, resolves to the printed digest."""
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.stderr == ""
    expected = expected_tags(project.version, project.head)
    digest = result.digest
    assert result.stdout.splitlines()[-1].startswith(
        f"pushed {len(expected)} tags, all resolve to {digest}, "
    )
    # cosign stores a signature and attestations under sha256-<hex>.sig and .att tags.
    signed = {f"{digest.replace(':', '-')}.{kind}" for kind in ("sig", "att")}
    tags = set(live_registry.tags(repository))
    assert tags - signed == expected
    assert tags & signed in (set(), signed), "a signature without attestations, or the reverse"
    assert live_registry.digests(repository, expected) == dict.fromkeys(sorted(expected), digest)
    assert local_refs(f"{live_registry.address}/") == [], "push left registry tags behind"
    return digest


def push(
    project: Project,
    live_registry: LiveRegistry,
    repository: str,
    *flags: str,
    credentials: Mapping[str, str] = GOOD_CREDENTIALS,
) -> tuple[Result, str]:
    """A confirmed release that must succeed: its result and the digest every tag resolves to.

    Unsigned unless ``credentials`` hold a signing key (COSIGN_KEY)."""
    if "COSIGN_KEY" not in credentials:
        flags = ("--unsigned", *flags)
    result = release(
        project, live_registry.address, repository, "--confirm", *flags, credentials=credentials
    )
    return result, assert_pushed(result, live_registry, repository, project)


def plan_refs(stdout: str) -> list[str]:
    """The refs listed under ``tags:`` in the printed plan."""
    lines = stdout.splitlines()
    start = lines.index("tags:") + 1
    return [line.strip() for line in lines[start:] if line.startswith("  ")]
