"""Integration fixtures: the recorded image, started with testcontainers, reached over 127.0.0.1.

Every container runs EXACTLY the image ID that ``nox -s image`` recorded in
``$DEATHSTAR_IMAGE_RECORD``, never a tag. Ryuk (testcontainers' reaper) may be disabled, so
every fixture removes what it started itself, also when a test fails; a session-wide check
then proves that no container or volume of ours is left. When a test fails, the logs of the
containers it used are attached to its report.

Test modules import the types below (``from conftest import Service``): pytest puts this
directory on ``sys.path`` (rootdir conftest, no ``__init__.py``), and so does mypy.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy

from harness import HarnessError
from harness.core.records import ImageRecord, load_image_record

ROOT = Path(__file__).resolve().parent.parent
PORT = 8080
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 30  # seconds until /readyz answers 200; startup takes about 1 s here
HTTP_TIMEOUT = 10  # seconds for any one request to the service
LOG_TAIL = 300  # lines of a container's log attached to a failed test's report
# Labels every container and volume of this run carries, so the final check can find them.
RUN_LABEL = "org.deathstar.integration.run"
RUN_ID = uuid.uuid4().hex[:12]


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


# --- which containers each test used, for the failure report ------------------------------------


@dataclass
class Tracked:
    id: str
    what: str
    logs: str | None = None  # a snapshot, taken just before the container was removed
    volumes: list[str] = field(default_factory=list)  # anonymous volumes it created


class Registry:
    """Every container and volume this run created, and which test started each container."""

    def __init__(self) -> None:
        self.containers: dict[str, Tracked] = {}
        self.volumes: set[str] = set()
        self.by_test: dict[str, list[str]] = {}
        self.shared: dict[str, list[str]] = {}  # fixture name -> containers it keeps up
        self.current_test = ""

    def add(self, tracked: Tracked, fixture: str | None) -> None:
        self.containers[tracked.id] = tracked
        self.volumes.update(tracked.volumes)
        self.by_test.setdefault(self.current_test, []).append(tracked.id)
        if fixture is not None:
            self.shared.setdefault(fixture, []).append(tracked.id)

    def used_by(self, item: pytest.Item) -> list[Tracked]:
        ids = list(self.by_test.get(item.nodeid, []))
        for name in getattr(item, "fixturenames", ()):
            ids += self.shared.get(name, [])
        return [self.containers[i] for i in dict.fromkeys(ids)]


REGISTRY = Registry()


def container_logs(client: Any, tracked: Tracked) -> str:
    if tracked.logs is not None:
        return tracked.logs
    try:
        raw: bytes = client.containers.get(tracked.id).logs(tail=LOG_TAIL)
    except docker.errors.NotFound:
        return "(container already removed, no log snapshot)"
    return raw.decode(errors="replace")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    REGISTRY.current_test = item.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        used = REGISTRY.used_by(item)
        if used:
            client = docker.from_env()
            try:
                for tracked in used:
                    title = f"logs of {tracked.what} {tracked.id[:12]} (last {LOG_TAIL} lines)"
                    report.sections.append((title, container_logs(client, tracked)))
            finally:
                client.close()
    return report


# --- starting and removing containers -----------------------------------------------------------


@dataclass
class Service:
    """One running deathstar container and an HTTP session to it over 127.0.0.1."""

    container: Any  # testcontainers DockerContainer
    base_url: str
    http: requests.Session

    @property
    def wrapped(self) -> Any:
        """The docker SDK Container object."""
        return self.container.get_wrapped_container()

    @property
    def id(self) -> str:
        return str(self.wrapped.id)

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def attrs(self) -> dict[str, Any]:
        """A fresh `docker inspect` of the container."""
        self.wrapped.reload()
        attrs: dict[str, Any] = self.wrapped.attrs
        return attrs

    def exec(self, *argv: str) -> tuple[int, str]:
        exit_code, output = self.wrapped.exec_run(list(argv))
        return int(exit_code), bytes(output).decode(errors="replace")

    def logs(self) -> str:
        return bytes(self.wrapped.logs()).decode(errors="replace")

    def stop(self, grace: float) -> int:
        """`docker stop -t GRACE`: SIGTERM, SIGKILL after GRACE seconds; the exit code.

        Idle keep-alive connections of ``http`` stay open meanwhile, as a real client's would.
        """
        self.wrapped.stop(timeout=grace)
        self.http.close()
        state = self.attrs()["State"]
        assert not state["Running"], f"container still running after docker stop: {state}"
        return int(state["ExitCode"])

    def all_targets(self) -> list[dict[str, Any]]:
        """Every target, read page by page (100 a page, the maximum)."""
        targets: list[dict[str, Any]] = []
        for _ in range(1000):  # bounded: 100k targets is far more than any test makes
            page = self.get("/v1/targets", params={"limit": 100, "offset": len(targets)})
            assert page.status_code == 200, page.text
            items: list[dict[str, Any]] = page.json()["items"]
            targets += items
            if not items:
                return targets
        pytest.fail("more than 1000 pages of targets")


def publish_on_loopback(container: DockerContainer, port: int) -> DockerContainer:
    """Publish ``port`` on 127.0.0.1 only (a random host port), not on every interface.

    testcontainers' own ``with_exposed_ports`` publishes on 0.0.0.0, which would open the
    service under test to the network for the length of the run.
    """
    container.ports[port] = ("127.0.0.1", None)
    return container


def wait_until_serving(container: DockerContainer, port: int, path: str) -> None:
    """testcontainers' HTTP wait strategy: a 200 on ``path`` through the mapped port."""
    wait = HttpWaitStrategy(port, path).with_startup_timeout(STARTUP_TIMEOUT)
    wait.with_poll_interval(0.1).wait_until_ready(container)


class Lab:
    """Starts containers of the recorded image and named volumes; removes all of them on close.

    ``fixture`` names a longer-lived fixture whose container any test using it shares.
    """

    def __init__(self, record: ImageRecord, client: Any, fixture: str | None = None) -> None:
        self.record = record
        self.client = client
        self.fixture = fixture
        self.started: list[tuple[Any, Tracked]] = []
        self.volume_names: list[str] = []
        self.sessions: list[requests.Session] = []

    def volume(self) -> str:
        name = f"deathstar-it-{RUN_ID}-{uuid.uuid4().hex[:8]}"
        self.client.volumes.create(name=name, labels={RUN_LABEL: RUN_ID})
        self.volume_names.append(name)
        REGISTRY.volumes.add(name)
        return name

    def _track(self, container: DockerContainer, what: str) -> Tracked | None:
        try:
            wrapped = container.get_wrapped_container()
        except Exception:  # testcontainers raises when nothing was created
            container.get_docker_client().client.close()
            return None
        wrapped.reload()
        tracked = Tracked(
            id=str(wrapped.id),
            what=what,
            volumes=[m["Name"] for m in wrapped.attrs["Mounts"] if m["Type"] == "volume"],
        )
        self.started.append((container, tracked))
        REGISTRY.add(tracked, self.fixture)
        return tracked

    def _container(self, image: str, **kwargs: Any) -> DockerContainer:
        # A label of this run on the container, so that the final check finds strays.
        return DockerContainer(image, labels={RUN_LABEL: RUN_ID}, **kwargs)

    def service(self, *, volume: str | None = None, read_only: bool = False) -> Service:
        """Start the image, wait until /readyz answers 200 on 127.0.0.1:<mapped port>."""
        kwargs: dict[str, Any] = {"read_only": True} if read_only else {}
        container = publish_on_loopback(self._container(self.record.image_id, **kwargs), PORT)
        if volume is not None:
            container.with_volume_mapping(volume, "/data", "rw")
        try:
            container.start()
        finally:
            tracked = self._track(container, "deathstar container")
        assert tracked is not None
        attrs = self.client.api.inspect_container(tracked.id)
        assert attrs["Image"] == self.record.image_id, "container runs another image"
        bindings = attrs["NetworkSettings"]["Ports"][f"{PORT}/tcp"]
        assert {b["HostIp"] for b in bindings} == {LOOPBACK}, f"published beyond {LOOPBACK}"
        host = container.get_container_host_ip()
        assert host == LOOPBACK, f"tests must reach containers via {LOOPBACK}, got {host}"
        # The wait strategy runs after registration, so a start that never gets ready still
        # has its logs in the failure report and is removed by close().
        wait_until_serving(container, PORT, "/readyz")
        port = int(container.get_exposed_port(PORT))
        session = requests.Session()
        self.sessions.append(session)
        return Service(container, f"http://{host}:{port}", session)

    def run(
        self, image: str, argv: Sequence[str], timeout: float = 60, **kwargs: Any
    ) -> tuple[int, str]:
        """Run argv[0] as the entrypoint of a throwaway container: exit code and output."""
        entrypoint = {"entrypoint": list(argv[:1]), "command": list(argv[1:])}
        container = self._container(image, **entrypoint, **kwargs)
        try:
            container.start()
        finally:
            self._track(container, f"one-off {argv[0]} container")
        wrapped = container.get_wrapped_container()
        status = wrapped.wait(timeout=timeout)
        output = bytes(wrapped.logs()).decode(errors="replace")
        return int(status["StatusCode"]), output

    def remove(self, container: Any) -> None:
        """Remove one container now (with its anonymous volumes), keeping a log snapshot."""
        for entry in list(self.started):
            if entry[0] is container:
                self._discard(*entry)
                self.started.remove(entry)

    def _discard(self, container: DockerContainer, tracked: Tracked) -> None:
        try:
            raw = self.client.containers.get(tracked.id).logs(tail=LOG_TAIL)
            tracked.logs = bytes(raw).decode(errors="replace")
            container.stop()  # testcontainers: remove(force=True, v=True), close its client
        except docker.errors.NotFound:
            pass
        finally:
            container.get_docker_client().client.close()  # idempotent

    def close(self) -> None:
        errors: list[Exception] = []
        for session in self.sessions:
            session.close()
        for entry in reversed(self.started):
            try:
                self._discard(*entry)
            except Exception as exc:  # remove the rest, then report
                errors.append(exc)
        self.started.clear()
        for name in self.volume_names:
            try:
                self.client.volumes.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup("could not remove every container and volume", errors)


@pytest.fixture
def lab(record: ImageRecord, docker_client: Any) -> Iterator[Lab]:
    """Containers and volumes for one test; all of them are removed after it, pass or fail."""
    started = Lab(record, docker_client)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="session")
def service(record: ImageRecord, docker_client: Any) -> Iterator[Service]:
    """One container shared by every test that only reads it or uses names of its own."""
    shared = Lab(record, docker_client, fixture="service")
    try:
        yield shared.service()
    finally:
        shared.close()


def wait_until(
    check: Callable[[], Any], timeout: float, interval: float = 0.25, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached within {timeout:g} s (last: {result!r})")
        time.sleep(interval)


# --- nothing of ours is left behind --------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(record: ImageRecord, docker_client: Any) -> Iterator[None]:
    """After the session: no container of the recorded image and no volume of this run remain.

    Torn down last (an autouse session fixture is set up before the others).
    """
    before = {c.id for c in docker_client.containers.list(all=True)}
    yield
    of_image = docker_client.containers.list(all=True, filters={"ancestor": record.image_id})
    labelled = docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"})
    left = {c.id: c.name for c in [*of_image, *labelled] if c.id not in before}
    left.update({i: t.what for i, t in REGISTRY.containers.items() if _exists(docker_client, i)})
    volumes = {
        v.name for v in docker_client.volumes.list(filters={"label": f"{RUN_LABEL}={RUN_ID}"})
    }
    volumes |= {name for name in REGISTRY.volumes if _volume_exists(docker_client, name)}
    leftovers = [f"container {i[:12]} ({what})" for i, what in left.items()]
    leftovers += [f"volume {name}" for name in sorted(volumes)]
    assert leftovers == [], f"left behind by the integration tests: {leftovers}"


def _exists(client: Any, container_id: str) -> bool:
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return False
    return True


def _volume_exists(client: Any, name: str) -> bool:
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        return False
    return True
