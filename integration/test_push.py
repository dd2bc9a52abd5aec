"""The gated push, for real: ``python -m harness.release`` against a registry with htpasswd auth.

One ``registry:2`` container (testcontainers' ``DockerRegistryContainer``, basic auth over plain
HTTP on 127.0.0.1) serves the whole module. Every test pushes to, or must leave empty, a
repository of its own, so the tests do not depend on the order they run in.

Each test releases from a fresh ``git clone`` of this repository, tagged ``v<version>`` at
HEAD, with a ``dist/`` that claims the recorded image was built and verified at that HEAD.
That claim is fabricated: the image was built and verified elsewhere. It exists only so the
push mechanics (gates, tags, login, push, read-back) can be exercised; the gates that compare
those records are tested by fabricating them wrong on purpose.

Every subprocess gets a throwaway ``DOCKER_CONFIG``, so nothing touches ``~/.docker``, and its
output is checked for the password. The registry container, the pulled image ref and the
container started from it are removed in ``finally`` blocks: Ryuk may be disabled.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import publish_on_loopback, wait_until_serving
from packaging.version import Version
from testcontainers.core.container import DockerContainer

from harness import ROOT
from harness.core.docker import Docker
from harness.core.records import ImageRecord
from harness.release.registry import Credentials, RegistryClient

with warnings.catch_warnings():
    # testcontainers' registry module applies its own deprecated wait decorator at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from testcontainers.community.registry import DockerRegistryContainer

LOOPBACK = "127.0.0.1"
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
SERVICE_PORT = 8080
RELEASE_TIMEOUT = 600  # seconds for one `python -m harness.release`; a push takes 5-20 s here
DOCKER_TIMEOUT = 120
DIGEST = re.compile(r"^pushed (\d+) tags, all resolve to (sha256:[0-9a-f]{64})$")
CREDENTIALS_ENV = ("REGISTRY_USERNAME", "REGISTRY_PASSWORD")
# Variables of the caller that would change what the release module does.
SCRUBBED_ENV = (*CREDENTIALS_ENV, "DOCKER_CONFIG", "DEATHSTAR_REGISTRY", "DEATHSTAR_REPOSITORY")


# --- helpers ------------------------------------------------------------------------------------


def docker(*args: str, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
    """The harness's own docker runner: a failure raises with docker's last error line."""
    return Docker()(*args, stdin=stdin, env=env, timeout=DOCKER_TIMEOUT)


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr.strip()}"
    return result.stdout.strip()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def expected_tags(version: str, head: str) -> set[str]:
    """metadata-action's semver tags for a stable release that is the only (so highest) one."""
    parsed = Version(version)
    assert not parsed.is_prerelease, f"these tests expect a stable version, not {version}"
    major, minor, _patch = parsed.release
    tags = {version, f"{major}.{minor}", f"sha-{head[:7]}", "latest"}
    if major > 0:
        tags.add(str(major))
    return tags


def local_refs(prefix: str) -> list[str]:
    """Local image tags and repo digests that start with ``prefix``."""
    listed = docker("image", "ls", "--all", "--digests", "--format", "{{json .}}")
    refs: list[str] = []
    for line in listed.splitlines():
        entry = json.loads(line)
        repository, tag, digest = entry["Repository"], entry["Tag"], entry["Digest"]
        if repository.startswith(prefix):
            refs.append(f"{repository}:{tag}" if tag != "<none>" else f"{repository}@{digest}")
    return refs


# --- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveRegistry:
    address: str  # 127.0.0.1:<mapped port>

    def prefix(self, repository: str) -> str:
        return f"{self.address}/{repository}"

    @contextmanager
    def client(self) -> Iterator[RegistryClient]:
        client = RegistryClient(self.address, Credentials(USERNAME, PASSWORD))
        try:
            yield client
        finally:
            client.session.close()

    def tags(self, repository: str) -> list[str]:
        with self.client() as client:
            return client.tags(repository)

    def digests(self, repository: str, tags: set[str]) -> dict[str, str | None]:
        with self.client() as client:
            return {tag: client.manifest_digest(repository, tag) for tag in sorted(tags)}


@pytest.fixture(scope="module")
def live_registry() -> Iterator[LiveRegistry]:
    """registry:2 with htpasswd auth (bcrypt), on 127.0.0.1; removed after the module."""
    container = DockerRegistryContainer("registry:2", username=USERNAME, password=PASSWORD)
    publish_on_loopback(container, 5000)
    try:
        container.start()
        address = str(container.get_registry())
        assert address.startswith(f"{LOOPBACK}:"), f"the registry must be on {LOOPBACK}: {address}"
        yield LiveRegistry(address)
    finally:
        container.stop()  # remove(force=True, v=True); also after a failed start


# --- the release project ------------------------------------------------------------------------


@dataclass
class Project:
    path: Path
    head: str
    version: str
    record: dict[str, Any]
    docker_config: Path  # empty: no existing `docker login` anywhere

    @property
    def dist(self) -> Path:
        return self.path / "dist"

    def write_json(self, name: str, data: Mapping[str, Any]) -> None:
        (self.dist / name).write_text(json.dumps(dict(data), indent=2) + "\n", encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, record: ImageRecord) -> Project:
    """A clean clone of this repository, released at HEAD, with the image "verified" at HEAD."""
    image_record = asdict(record)
    path = tmp_path / "deathstar"
    # --no-tags: the repository's own release tags (a release manager tags before running
    # `nox`) would clash with the tag made here and change which version is `latest`.
    git("clone", "--quiet", "--no-tags", str(ROOT), str(path), cwd=tmp_path)
    git("config", "user.name", "Release Test", cwd=path)
    git("config", "user.email", "release-test@example.invalid", cwd=path)
    version = str(image_record["version"])
    git("tag", "--annotate", f"v{version}", "--message", f"deathstar {version}", cwd=path)
    head = git("rev-parse", "HEAD", cwd=path)
    # FABRICATED: the recorded image was built and verified from another checkout. These
    # records claim it was built and passed `nox -s integration` at the clone's HEAD, only so
    # that the push mechanics can run; nothing here verifies the image.
    (path / "dist").mkdir()
    fabricated = Project(path, head, version, image_record, tmp_path / "docker-config")
    fabricated.docker_config.mkdir()
    fabricated.write_json("image.json", {**image_record, "commit": head, "revision": head})
    fabricated.write_json(
        "verified.json",
        {
            "image_id": image_record["image_id"],
            "commit": head,
            "revision": head,
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
    credentials: Mapping[str, str] | None = None,
    stdin: str = "",
) -> Result:
    """``python -m harness.release`` for ``project``, with this repository's harness."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["DOCKER_CONFIG"] = str(project.docker_config)
    if credentials is None:
        credentials = {"REGISTRY_USERNAME": USERNAME, "REGISTRY_PASSWORD": PASSWORD}
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
    assert result.stdout.splitlines()[-1] == f"pushed {len(expected)} tags, all resolve to {digest}"
    assert set(live_registry.tags(repository)) == expected
    assert live_registry.digests(repository, expected) == dict.fromkeys(sorted(expected), digest)
    assert local_refs(f"{live_registry.address}/") == [], "push left registry tags behind"
    return digest


def plan_refs(stdout: str) -> list[str]:
    """The refs listed under ``tags:`` in the printed plan."""
    lines = stdout.splitlines()
    start = lines.index("tags:") + 1
    return [line.strip() for line in lines[start:] if line.startswith("  ")]


# --- the happy paths ----------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_pushes_nothing(
    project: Project, live_registry: LiveRegistry
) -> None:
    repository = "test/dry-run"
    result = release(project, live_registry.address, repository)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert f"registry:    {live_registry.address}" in out
    assert f"repository:  {repository}" in out
    assert f"image:       {project.record['image_id']}" in out
    assert f"commit:      {project.head} (v{project.version})" in out
    assert f"credentials: {USERNAME} (REGISTRY_USERNAME, REGISTRY_PASSWORD)" in out
    expected = expected_tags(project.version, project.head)
    refs = plan_refs(out)
    assert sorted(refs) == sorted(f"{live_registry.prefix(repository)}:{t}" for t in expected)
    major = Version(project.version).major
    bare_major = f"{live_registry.prefix(repository)}:{major}"
    assert (bare_major in refs) == (major > 0), "a bare major tag exactly when not 0.x"
    assert "nothing was pushed" in out.splitlines()[-1]
    assert "--confirm" in out.splitlines()[-1]
    assert live_registry.tags(repository) == []
    assert local_refs(f"{live_registry.address}/") == []


def test_confirmed_push_pulls_and_runs_by_digest(
    project: Project, live_registry: LiveRegistry
) -> None:
    repository = "test/deathstar"
    result = release(project, live_registry.address, repository, "--confirm")
    digest = assert_pushed(result, live_registry, repository, project)
    # Immutable tags go first, so a moving tag never points at something not yet pushed.
    pushing = [line.removeprefix("pushing ") for line in result.stdout.splitlines()]
    pushing = [ref.rsplit(":", 1)[1] for ref in pushing if ref.startswith(live_registry.address)]
    assert set(pushing[:2]) == {project.version, f"sha-{project.head[:7]}"}
    assert pushing[-1] == "latest"

    ref = f"{live_registry.prefix(repository)}@{digest}"
    # A throwaway Docker config for the login: its auth entry is deleted with it.
    with tempfile.TemporaryDirectory(prefix="deathstar-pull-") as config:
        env = {**os.environ, "DOCKER_CONFIG": config}
        docker("login", live_registry.address, "--username", USERNAME, "--password-stdin",
               env=env, stdin=PASSWORD)  # fmt: skip
        try:
            docker("pull", "--quiet", ref, env=env)
            # The registry holds exactly the verified image: same config, so the same image ID.
            pulled = docker("image", "inspect", "--format", "{{.Id}}", ref)
            assert pulled == project.record["image_id"]
            version = run_and_ask_version(ref)
            assert version["version"] == project.version
            assert version["revision"] == project.record["revision"]
        finally:
            subprocess.run(["docker", "image", "rm", ref], capture_output=True, check=False)
    assert local_refs(f"{live_registry.address}/") == []
    # Removing our refs never removed the image itself.
    assert docker("image", "inspect", "--format", "{{.Id}}", project.record["image_id"])


def run_and_ask_version(ref: str) -> dict[str, Any]:
    """Start ``ref``, wait for /healthz 200 over 127.0.0.1, return /version; always remove it."""
    container = publish_on_loopback(DockerContainer(ref), SERVICE_PORT)
    try:
        container.start()
        host = container.get_container_host_ip()
        assert host == LOOPBACK, f"tests must reach containers via {LOOPBACK}, got {host}"
        base = f"http://{host}:{container.get_exposed_port(SERVICE_PORT)}"
        wait_until_serving(container, SERVICE_PORT, "/healthz")
        with requests.Session() as http:
            response = http.get(base + "/version", timeout=10)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body
    finally:
        container.stop()


def test_pushing_the_same_version_again_is_idempotent(
    project: Project, live_registry: LiveRegistry
) -> None:
    repository = "test/idempotent"
    first = release(project, live_registry.address, repository, "--confirm")
    digest = assert_pushed(first, live_registry, repository, project)
    again = release(project, live_registry.address, repository, "--confirm")
    assert assert_pushed(again, live_registry, repository, project) == digest


def test_password_from_stdin(project: Project, live_registry: LiveRegistry) -> None:
    repository = "test/password-stdin"
    result = release(
        project,
        live_registry.address,
        repository,
        "--confirm",
        "--password-stdin",
        credentials={"REGISTRY_USERNAME": USERNAME},
        stdin=PASSWORD + "\n",
    )
    assert_pushed(result, live_registry, repository, project)
    assert f"credentials: {USERNAME} (REGISTRY_USERNAME, stdin)" in result.stdout


# --- refusals: one line, no traceback, nothing pushed -------------------------------------------


def dirty_tree(project: Project) -> None:
    (project.path / "NOTES.txt").write_text("not committed\n", encoding="utf-8")


def untagged_head(project: Project) -> None:
    git("tag", "--delete", f"v{project.version}", cwd=project.path)


def other_version_tag(project: Project) -> None:
    untagged_head(project)
    git("tag", "--annotate", "v9.9.9", "--message", "not the package version", cwd=project.path)


def not_verified(project: Project) -> None:
    (project.dist / "verified.json").unlink()


def verified_other_image(project: Project) -> None:
    verified = json.loads((project.dist / "verified.json").read_text(encoding="utf-8"))
    project.write_json("verified.json", {**verified, "image_id": "sha256:" + "0" * 64})


def built_elsewhere(project: Project) -> None:
    other = "f" * 40
    project.write_json("image.json", {**project.record, "commit": other, "revision": other})


def built_dirty(project: Project) -> None:
    dirty = {"commit": project.head, "revision": project.head + "-dirty"}
    project.write_json("image.json", {**project.record, **dirty})


def unchanged(project: Project) -> None:
    del project  # the gate under test is in the invocation, not in the project


@dataclass(frozen=True)
class Refusal:
    id: str
    keywords: tuple[str, ...]  # "{registry}" and "{version}" are filled in
    prepare: Callable[[Project], None] = unchanged
    credentials: Mapping[str, str] = field(
        default_factory=lambda: {"REGISTRY_USERNAME": USERNAME, "REGISTRY_PASSWORD": PASSWORD}
    )
    dead_registry: bool = False


REFUSALS = [
    Refusal("dirty", ("working tree", "uncommitted changes"), dirty_tree),
    Refusal("untagged", ("no release tag", "git tag v{version}"), untagged_head),
    Refusal("other-tag", ("tagged v9.9.9", "package version is {version}"), other_version_tag),
    Refusal("unverified", ("no integration run", "nox -s integration"), not_verified),
    Refusal("other-image", ("has not passed", "nox -s integration"), verified_other_image),
    Refusal("built-elsewhere", ("not from HEAD",), built_elsewhere),
    Refusal("built-dirty", ("with uncommitted changes", "not from HEAD"), built_dirty),
    Refusal("no-credentials", ("no credentials for {registry}",), credentials={}),
    Refusal(
        "half-credentials",
        ("REGISTRY_USERNAME and REGISTRY_PASSWORD",),
        credentials={"REGISTRY_USERNAME": USERNAME},
    ),
    Refusal(
        "wrong-password",
        ("registry {registry} refused the credentials (401)",),
        credentials={"REGISTRY_USERNAME": USERNAME, "REGISTRY_PASSWORD": WRONG_PASSWORD},
    ),
    Refusal("no-registry", ("registry {registry} does not answer",), dead_registry=True),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r.id for r in REFUSALS])
def test_refusal(refusal: Refusal, project: Project, live_registry: LiveRegistry) -> None:
    repository = f"test/refuse-{refusal.id}"
    registry = f"{LOOPBACK}:{free_port()}" if refusal.dead_registry else live_registry.address
    refusal.prepare(project)
    result = release(project, registry, repository, "--confirm", credentials=refusal.credentials)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == "", "a refusal prints no plan"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"not one line:\n{result.stderr}"
    assert lines[0].startswith("push refused: "), lines[0]
    for keyword in refusal.keywords:
        assert keyword.format(registry=registry, version=project.version) in lines[0]
    assert live_registry.tags(repository) == [], "a refusal pushed something"
    assert local_refs(f"{registry}/") == [], "a refusal left a local tag"
