"""The gated push, for real: ``python -m harness.release`` against a registry with htpasswd auth.

One ``registry:2`` container (testcontainers' ``DockerRegistryContainer``, basic auth over plain
HTTP on 127.0.0.1) serves the whole module. Every test pushes to, or must leave empty, a
repository of its own, so the tests do not depend on the order they run in.

Each test releases from a fresh ``git clone`` of this repository, tagged ``v<version>`` at
HEAD, with a ``dist/`` that claims the recorded image was built and verified at that HEAD.
That claim is fabricated: the image was built and verified elsewhere. It exists only so the
push mechanics (gates, tags, login, push, read-back) can be exercised; the gates that compare
those records are tested by fabricating them wrong on purpose.

The registry container and the container run from the pushed image are removed by
testcontainers' ``with``, the pulled image ref in a ``finally``: Ryuk may be disabled.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from containers import LABELS, LOOPBACK, ContainerLedger, Lab, owner_of, published_on_loopback
from packaging.version import Version
from pushing import (
    DERIVED_REPOSITORY,
    GOOD_CREDENTIALS,
    PASSWORD,
    USERNAME,
    Derived,
    LiveRegistry,
    Project,
    assert_pushed,
    derive,
    docker,
    expected_tags,
    fabricated_project,
    local_refs,
    plan_refs,
    push,
    release,
    remove_derived_images,
)
from refusals import REFUSALS, Refusal
from signing import COSIGN_PASSWORD, VERIFICATIONS, fabricated_sbom, key_pair, verify
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import HttpWaitStrategy

from harness.image.records import ImageRecord
from tests.serving import refused_port

with warnings.catch_warnings():
    # testcontainers' registry module applies its own deprecated wait decorator at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from testcontainers.community.registry import DockerRegistryContainer

REGISTRY_PORT = 5000


class HtpasswdRegistry(DockerRegistryContainer):  # type: ignore[misc]
    """testcontainers' registry:2 with htpasswd auth, the password file in place before it starts.

    testcontainers copies the file in after the start: a registry that looked for it first
    writes one of its own (a random password) and refuses ours until the probe times out. The
    password is hashed at bcrypt's lowest cost: the registry checks the hash on every request
    and a push makes dozens; testcontainers' cost 12 made the hashing what the tests spent
    their time on.
    """

    def __init__(self, htpasswd: Path, *, username: str, password: str, **kwargs: Any) -> None:
        super().__init__(username=username, password=password, **kwargs)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4, prefix=b"2a"))
        htpasswd.write_text(f"{username}:{hashed.decode()}\n", encoding="utf-8")
        self.with_volume_mapping(str(htpasswd), self.credentials_path, "ro")

    def _copy_credentials(self) -> None:
        """Nothing to copy: the file is mounted (see the class)."""

    def _readiness_probe(self) -> None:
        """Ready once /v2/ accepts the credentials, asked every 50 ms (testcontainers: 1 s)."""
        assert self.username is not None
        assert self.password is not None
        ready = HttpWaitStrategy(self.port, "/v2/").for_status_code(200)
        ready = ready.with_basic_credentials(self.username, self.password)
        ready.with_poll_interval(0.05).with_startup_timeout(30).wait_until_ready(self)


@pytest.fixture(scope="module")
def live_registry(
    loopback: Network,
    ledger: ContainerLedger,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveRegistry]:
    """registry:2 with htpasswd auth (bcrypt), on 127.0.0.1; removed after the module."""
    htpasswd = tmp_path_factory.mktemp("registry") / "htpasswd"
    container = (
        HtpasswdRegistry(
            htpasswd, image="registry:2", port=REGISTRY_PORT, username=USERNAME, password=PASSWORD
        )
        .with_kwargs(labels=dict(LABELS))
        .with_network(loopback)
    )
    with ledger.running(container, "registry:2 container", owner_of(request)):
        address = published_on_loopback(container, REGISTRY_PORT)
        assert container.get_registry() == address
        yield LiveRegistry(address)


@pytest.fixture(scope="module")
def derived(record: ImageRecord, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Derived]:
    """The recorded image relabelled for HEAD, once for the module; removed after it."""
    try:
        yield derive(record, tmp_path_factory.mktemp("derived"))
    finally:
        remove_derived_images()


@pytest.fixture
def project(tmp_path: Path, record: ImageRecord, derived: Derived) -> Project:
    return fabricated_project(tmp_path, record, derived)


# The successful pushes of one release share a repository, as a release and its re-runs do:
# each test checks the whole outcome, whichever ran first; later ones upload no layer again.
RELEASED = "test/deathstar"


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
    project: Project, live_registry: LiveRegistry, lab: Lab
) -> None:
    repository = RELEASED
    result, digest = push(project, live_registry, repository)
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
            version = ask_version(lab, ref, pulled)
            assert version["version"] == project.version
            assert version["revision"] == project.built_revision
        finally:
            subprocess.run(["docker", "image", "rm", ref], capture_output=True, check=False)
    assert local_refs(f"{live_registry.address}/") == []
    # Removing our refs never removed the image itself.
    assert docker("image", "inspect", "--format", "{{.Id}}", project.record["image_id"])


def ask_version(lab: Lab, ref: str, image_id: str) -> dict[str, Any]:
    """Run ``ref`` (it must be ``image_id``) until ready, return its /version."""
    with lab.serving(image=ref, image_id=image_id) as pulled:
        assert pulled.base_url.startswith(f"http://{LOOPBACK}:")
        response = pulled.get("/version")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def test_pushing_the_same_version_again_is_idempotent(
    project: Project, live_registry: LiveRegistry
) -> None:
    _, digest = push(project, live_registry, RELEASED)
    _, again = push(project, live_registry, RELEASED)
    assert again == digest


def test_password_from_stdin(project: Project, live_registry: LiveRegistry) -> None:
    repository = RELEASED
    result = release(
        project,
        live_registry.address,
        repository,
        "--confirm",
        "--password-stdin",
        "--unsigned",
        credentials={"REGISTRY_USERNAME": USERNAME},
        stdin=PASSWORD + "\n",
    )
    assert_pushed(result, live_registry, repository, project)
    assert f"credentials: {USERNAME} (REGISTRY_USERNAME, stdin)" in result.stdout


# --- refusals: one line, no traceback, nothing pushed -------------------------------------------


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r.id for r in REFUSALS])
def test_refusal(refusal: Refusal, project: Project, live_registry: LiveRegistry) -> None:
    repository = f"test/refuse-{refusal.id}"
    with ExitStack() as held:
        registry = live_registry.address
        if refusal.dead_registry:  # a port held, not released: nothing else can answer there
            registry = f"{LOOPBACK}:{held.enter_context(refused_port())}"
        refusal.prepare(project)
        result = release(
            project, registry, repository, "--confirm", credentials=refusal.credentials
        )
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


# --- signing: cosign with a throwaway key, verified with nothing but the public key --------------


def test_signed_push_verifies_with_the_public_key_until_the_tag_moves(
    project: Project, live_registry: LiveRegistry, tmp_path: Path
) -> None:
    keys = key_pair(tmp_path / "keys")
    fabricated_sbom(project)
    repository = "test/signed"
    credentials = {**GOOD_CREDENTIALS, **keys.env}
    result, digest = push(project, live_registry, repository, credentials=credentials)
    for secret in (COSIGN_PASSWORD, keys.private_pem.splitlines()[1]):
        assert secret not in result.stdout + result.stderr, "a signing secret leaked"
    assert result.stdout.splitlines()[-1].endswith(", signed and attested (verified)")
    assert f"{digest.replace(':', '-')}.sig" in live_registry.tags(repository)
    assert "the key in COSIGN_KEY (no transparency log)" in result.stdout
    latest = f"{live_registry.prefix(repository)}:latest"
    with tempfile.TemporaryDirectory(prefix="deathstar-verify-") as config:
        docker("login", live_registry.address, "--username", USERNAME, "--password-stdin",
               env={**os.environ, "DOCKER_CONFIG": config}, stdin=PASSWORD)  # fmt: skip
        for image in (f"{live_registry.prefix(repository)}@{digest}", latest):
            for args in VERIFICATIONS:
                done = verify(keys.public, image, Path(config), *args)
                assert done.returncode == 0, f"{' '.join(args)} {image}: {done.stderr}"
        # Point `latest` at another image: its signature does not follow the tag.
        other = project_base(project)
        assert other != project.record["image_id"]
        env = {**os.environ, "DOCKER_CONFIG": config}
        docker("tag", other, latest)
        try:
            docker("push", latest, env=env)
        finally:
            subprocess.run(["docker", "image", "rm", latest], capture_output=True, check=False)
        for args in VERIFICATIONS:
            done = verify(keys.public, latest, Path(config), *args)
            assert done.returncode != 0, f"{' '.join(args)} passed for a retargeted tag"
            assert "no signatures found" in done.stderr or "no matching" in done.stderr, done.stderr


def project_base(project: Project) -> str:
    """The image the project's relabelled image was derived from (another config)."""
    return docker(
        "image", "inspect", "--format", "{{.Id}}", f"{DERIVED_REPOSITORY}:base-{project.head[:12]}"
    )
