"""Integration fixtures: the recorded image, started with testcontainers, reached over 127.0.0.1.

Every deathstar container runs EXACTLY the image ID that ``nox -s image`` recorded in
``$DEATHSTAR_IMAGE_RECORD``, never a tag. Ryuk (testcontainers' reaper) may be disabled, so
every fixture removes what it started itself (testcontainers' ``with``), also when a test
fails; a session-wide check then proves that no container, volume or network of this run is
left. When a test fails, the logs of the containers it used are attached to its report.

Helpers that tests import live in ``containers.py``; pytest puts this directory on
``sys.path`` (rootdir conftest, no ``__init__.py``), and so does mypy.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from containers import (
    LOG_TAIL,
    OURS,
    WORKER,
    WORKER_LABEL,
    ContainerLedger,
    Lab,
    Launcher,
    Service,
    exists,
    loopback_network,
    owner_of,
)
from fuzzing import read_schema
from testcontainers.core.network import Network

from harness import HarnessError
from harness.image.records import ImageRecord, load_image_record

ROOT = Path(__file__).resolve().parent.parent
LEDGER = pytest.StashKey[ContainerLedger]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[LEDGER] = ContainerLedger()


# --- the image record ---------------------------------------------------------------------------


def load_record() -> ImageRecord:
    where = os.environ.get("DEATHSTAR_IMAGE_RECORD", "")
    if not where:
        pytest.fail(
            "DEATHSTAR_IMAGE_RECORD is not set: run `nox -s integration`, which builds the "
            "image and sets it",
            pytrace=False,
        )
    try:
        record = load_image_record(Path(where))
    except HarnessError as exc:
        pytest.fail(f"DEATHSTAR_IMAGE_RECORD={where}: {exc}", pytrace=False)
    if not record.image_id.startswith("sha256:"):
        pytest.fail(f"{where}: image_id {record.image_id!r} is not an image ID", pytrace=False)
    return record


@pytest.fixture(scope="session")
def record() -> ImageRecord:
    return load_record()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    client = docker.from_env()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def image_attrs(record: ImageRecord, docker_client: Any) -> dict[str, Any]:
    """`docker image inspect` of the recorded image ID; fails clearly when it is gone."""
    try:
        attrs: dict[str, Any] = docker_client.images.get(record.image_id).attrs
    except docker.errors.ImageNotFound:
        pytest.fail(
            f"the recorded image {record.image_id} is not in the local engine; "
            "run `nox -s image integration`",
            pytrace=False,
        )
    assert attrs["Id"] == record.image_id
    return attrs


# --- containers ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ledger(pytestconfig: pytest.Config) -> ContainerLedger:
    return pytestconfig.stash[LEDGER]


@pytest.fixture(scope="session")
def loopback() -> Iterator[Network]:
    """The network every container with a published port joins: it publishes on 127.0.0.1."""
    with loopback_network() as network:
        yield network


@pytest.fixture(scope="session")
def launcher(record: ImageRecord, loopback: Network, ledger: ContainerLedger) -> Launcher:
    return Launcher(record.image_id, loopback, ledger)


@pytest.fixture(scope="session")
def service(launcher: Launcher, request: pytest.FixtureRequest) -> Iterator[Service]:
    """One container shared by every test that only reads it or uses names of its own."""
    with launcher.serving(owner_of(request)) as shared:
        yield shared


@pytest.fixture(scope="module")
def own_service(launcher: Launcher, request: pytest.FixtureRequest) -> Iterator[Service]:
    """A container for one module's tests alone: they fill it (the fuzzing) and need no other."""
    with launcher.serving(owner_of(request)) as service:
        yield service


@pytest.fixture(scope="module")
def api_schema(own_service: Service) -> Any:
    """The module's service's own OpenAPI schema, as schemathesis reads it."""
    return read_schema(own_service)


@pytest.fixture
def lab(launcher: Launcher, docker_client: Any, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """Containers and volumes for one test; all of them are removed after it, pass or fail."""
    with ExitStack() as stack:
        yield Lab(launcher, owner_of(request), docker_client, stack)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report gets the logs of every container it used."""
    report = yield
    used = item.config.stash[LEDGER].used_by(item) if report.failed else []
    if used:
        client = docker.from_env()
        try:
            for entry in used:
                title = f"logs of {entry.what} {entry.id[:12]} (last {LOG_TAIL} lines)"
                report.sections.append((title, item.config.stash[LEDGER].logs(client, entry)))
        finally:
            client.close()
    return report


# --- nothing of ours is left behind --------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(
    record: ImageRecord, docker_client: Any, ledger: ContainerLedger
) -> Iterator[None]:
    """After the session: no container of the recorded image and nothing of this run remain.

    Torn down last (an autouse session fixture is set up before the others).
    """
    # The engine's listing, not docker-py's `containers.list`, which inspects each container
    # it lists: another worker's container removed in between made that a NotFound.
    listed = docker_client.api.containers
    before = {c["Id"] for c in listed(all=True)}
    yield
    ours = OURS
    of_image = listed(all=True, filters={"ancestor": record.image_id})
    labelled = listed(all=True, filters=ours)
    # Another worker's containers carry its own worker label: its check, not ours.
    left = {
        c["Id"]: ",".join(c.get("Names") or []).strip("/")
        for c in [*of_image, *labelled]
        if c["Id"] not in before and (c.get("Labels") or {}).get(WORKER_LABEL, WORKER) == WORKER
    }
    left.update({i: e.what for i, e in ledger.entries.items() if exists(docker_client, i)})
    volumes = {v.name for v in docker_client.volumes.list(filters=ours)}
    volumes |= {name for name in ledger.volumes if exists(docker_client, name, "volumes")}
    leftovers = [f"container {i[:12]} ({what})" for i, what in left.items()]
    leftovers += [f"volume {name}" for name in sorted(volumes)]
    leftovers += [f"network {n.name}" for n in docker_client.networks.list(filters=ours)]
    assert leftovers == [], f"left behind by the integration tests: {leftovers}"
