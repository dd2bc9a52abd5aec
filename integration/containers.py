"""Containers for the integration tests: started and removed by testcontainers, on 127.0.0.1.

Every container is a testcontainers ``DockerContainer`` used as a context manager: ``start()``
runs its wait strategy, and leaving the ``with`` removes it with its anonymous volumes, also
when the test or the wait fails. Containers that publish a port join the run's loopback
network, a Docker bridge network whose ``host_binding_ipv4`` option publishes on 127.0.0.1
only (``with_exposed_ports`` alone publishes on 0.0.0.0, opening the service to the network).

The ``ContainerLedger`` notes which test or fixture started each container and keeps a log
snapshot when it is removed, for the report of a failed test and the final leftover check.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import pytest
import requests
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import HttpWaitStrategy

PORT = 8080
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 30  # seconds until /readyz answers 200
HTTP_TIMEOUT = 10  # seconds for any one request to the service
LOG_TAIL = 300  # lines of a container's log attached to a failed test's report
# Labels every container, volume and network of this run carries, so the final check finds them.
RUN_LABEL = "org.deathstar.integration.run"
# One run, possibly over several pytest-xdist workers: each worker checks and removes only its
# own, so the worker is a label too.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:12]
WORKER_LABEL = "org.deathstar.integration.worker"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
LABELS = {RUN_LABEL: RUN_ID, WORKER_LABEL: WORKER}
OURS = {"label": [f"{key}={value}" for key, value in LABELS.items()]}
HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"


def loopback_network() -> Network:
    """A bridge network whose containers' published ports bind to 127.0.0.1 only."""
    options = {"driver": "bridge", "options": {HOST_BINDING: LOOPBACK}, "labels": dict(LABELS)}
    return Network(docker_network_kw=options)


def published_on_loopback(container: DockerContainer, port: int) -> str:
    """``127.0.0.1:<mapped port>`` of ``port``, after checking nothing else publishes it."""
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    bindings = wrapped.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"]
    assert bindings, f"port {port} is not published"
    assert {b["HostIp"] for b in bindings} == {LOOPBACK}, f"published beyond {LOOPBACK}: {bindings}"
    host = container.get_container_host_ip()
    assert host == LOOPBACK, f"tests must reach containers via {LOOPBACK}, got {host}"
    return f"{host}:{container.get_exposed_port(port)}"


# --- the ledger: who started which container, and its logs -------------------------------------


@dataclass
class LedgerEntry:
    id: str
    what: str
    owner: str  # the node ID of the test, or the name of the shared fixture, that started it
    volumes: list[str] = field(default_factory=list)  # anonymous volumes it created
    logs: str | None = None  # a snapshot, taken just before the container was removed


class ContainerLedger:
    """Every container and volume this run created, and who started each container."""

    def __init__(self) -> None:
        self.entries: dict[str, LedgerEntry] = {}
        self.volumes: set[str] = set()

    @contextmanager
    def running(self, container: DockerContainer, what: str, owner: str) -> Iterator[Any]:
        """testcontainers' own lifecycle (``with container``), noted in the ledger meanwhile.

        A start whose wait strategy fails is removed by testcontainers at once; its logs are
        then in the exception's notes, so they reach the report all the same.
        """
        with container:
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            mounts = wrapped.attrs["Mounts"]
            volumes = [m["Name"] for m in mounts if m["Type"] == "volume"]
            entry = LedgerEntry(str(wrapped.id), what, owner, volumes)
            self.entries[entry.id] = entry
            self.volumes.update(volumes)
            try:
                yield container
            finally:
                with suppress(docker.errors.NotFound):
                    entry.logs = bytes(wrapped.logs(tail=LOG_TAIL)).decode(errors="replace")

    def used_by(self, item: pytest.Item) -> list[LedgerEntry]:
        """The containers ``item`` started itself or shares through one of its fixtures."""
        owners = {item.nodeid, *getattr(item, "fixturenames", ())}
        return [entry for entry in self.entries.values() if entry.owner in owners]

    def logs(self, client: Any, entry: LedgerEntry) -> str:
        if entry.logs is not None:
            return entry.logs
        try:
            raw: bytes = client.containers.get(entry.id).logs(tail=LOG_TAIL)
        except docker.errors.NotFound:
            return "(container already removed, no log snapshot)"
        return raw.decode(errors="replace")


def owner_of(request: pytest.FixtureRequest) -> str:
    """A test's containers belong to the test; a shared fixture's to the fixture's name."""
    shared = request.fixturename if request.scope != "function" else None
    return shared or request.node.nodeid


# --- the service --------------------------------------------------------------------------------


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
        result = self.container.exec(list(argv))
        return int(result.exit_code), bytes(result.output).decode(errors="replace")

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


@dataclass(frozen=True)
class Launcher:
    """Starts containers of the recorded image for the tests, on the loopback network."""

    image_id: str
    network: Network
    ledger: ContainerLedger

    def deathstar(
        self,
        image: str,
        *,
        volume: str | None,
        read_only: bool,
        env: Mapping[str, str] | None = None,
    ) -> DockerContainer:
        """The service's container, ready once /readyz answers 200 through the mapped port."""
        ready = HttpWaitStrategy(PORT, "/readyz").with_startup_timeout(STARTUP_TIMEOUT)
        container = (
            DockerContainer(image)
            .with_kwargs(labels=dict(LABELS), read_only=read_only)
            .with_network(self.network)
            .with_exposed_ports(PORT)
            .waiting_for(ready.with_poll_interval(0.02))  # it starts in a fraction of a second
        )
        if volume is not None:
            container.with_volume_mapping(volume, "/data", "rw")
        for key, value in (env or {}).items():
            container.with_env(key, value)
        return container

    @contextmanager
    def serving(
        self,
        owner: str,
        *,
        image: str | None = None,
        image_id: str | None = None,
        volume: str | None = None,
        read_only: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> Iterator[Service]:
        """A running service (the recorded image unless ``image`` names it otherwise).

        Whatever ``image`` names, the container must run exactly ``image_id``: the recorded
        image ID unless the test derived another image from it.
        """
        container = self.deathstar(
            image or self.image_id, volume=volume, read_only=read_only, env=env
        )
        expected = image_id or self.image_id
        with self.ledger.running(container, "deathstar container", owner):
            assert container.get_wrapped_container().attrs["Image"] == expected, (
                "container runs another image"
            )
            address = published_on_loopback(container, PORT)
            with requests.Session() as http:
                # Only to 127.0.0.1: a proxy from the environment would carry the traffic
                # elsewhere (and requests reads the environment and ~/.netrc on every request).
                http.trust_env = False
                yield Service(container, f"http://{address}", http)

    @contextmanager
    def unpublished(self, owner: str, env: Mapping[str, str]) -> Iterator[Any]:
        """A container of the recorded image that publishes no port and is not waited for
        (with ``DEATHSTAR_PORT=0`` the port is the server's to pick); the testcontainers one.
        """
        container = (
            DockerContainer(self.image_id)
            .with_kwargs(labels=dict(LABELS))
            .with_network(self.network)
        )
        for key, value in env.items():
            container.with_env(key, value)
        with self.ledger.running(container, "deathstar container, unpublished", owner):
            yield container

    def run(self, owner: str, image: str, argv: list[str], timeout: float, **kwargs: Any) -> str:
        """Run argv[0] as the entrypoint of a throwaway container; its output, if it exits 0."""
        container = (
            DockerContainer(image)
            .with_kwargs(labels=dict(LABELS), entrypoint=argv[:1], **kwargs)
            .with_command(argv[1:])
        )
        with self.ledger.running(container, f"one-off {argv[0]} container", owner):
            wrapped = container.get_wrapped_container()
            status = wrapped.wait(timeout=timeout)
            output = bytes(wrapped.logs()).decode(errors="replace")
        assert status["StatusCode"] == 0, output[-3000:]
        return output


@dataclass
class Lab:
    """One test's containers and volumes; its fixture removes all of them, pass or fail."""

    launcher: Launcher
    owner: str
    client: Any
    stack: ExitStack

    def volume(self) -> str:
        """A named volume of this run, removed after the test (after its containers)."""
        name = f"deathstar-it-{RUN_ID}-{WORKER}-{uuid.uuid4().hex[:8]}"
        volume = self.client.volumes.create(name=name, labels=dict(LABELS))
        self.launcher.ledger.volumes.add(name)
        self.stack.callback(volume.remove, force=True)
        return name

    def serving(self, **kwargs: Any) -> AbstractContextManager[Service]:
        """A service that is removed when the ``with`` ends (see ``Launcher.serving``)."""
        return self.launcher.serving(self.owner, **kwargs)

    def service(self, **kwargs: Any) -> Service:
        """A service that is removed after the test."""
        return self.stack.enter_context(self.serving(**kwargs))

    def unpublished(self, **env: str) -> Any:
        """A container that publishes no port, removed after the test (``Launcher.unpublished``)."""
        return self.stack.enter_context(self.launcher.unpublished(self.owner, env))

    def run(self, image: str, argv: list[str], timeout: float = 60, **kwargs: Any) -> str:
        return self.launcher.run(self.owner, image, argv, timeout, **kwargs)


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


def exists(client: Any, key: str, kind: str = "containers") -> bool:
    """Whether the engine still has the container (or volume, network) ``key``."""
    try:
        getattr(client, kind).get(key)
    except docker.errors.NotFound:
        return False
    return True
