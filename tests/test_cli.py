"""The command line, in-process and as real processes serving HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import requests

import deathstar
from deathstar import portfile
from deathstar.cli import main
from deathstar.logs import ACCESS_LOGGER
from tests.conftest import strict_json
from tests.serving import refused_port

ROOT = Path(__file__).resolve().parents[1]
READY_WITHIN = 15.0  # seconds a server may take to answer /healthz before the test fails
STOP_WITHIN = 10.0  # seconds a server may take to exit after a signal before the test fails


def child_env(**extra: str) -> dict[str, str]:
    """The environment without DEATHSTAR_* settings.

    Coverage measures the children itself when this run measures (pyproject's
    ``patch = ["subprocess"]`` hands them its configuration through the environment).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEATHSTAR_")}
    env.update(extra)
    return env


def module_command() -> list[str]:
    """``python -m deathstar`` with the interpreter running the tests."""
    return [sys.executable, "-m", "deathstar"]


def script() -> str:
    """The installed ``deathstar`` console script of the interpreter running the tests."""
    beside = Path(sys.executable).with_name("deathstar")
    found = str(beside) if beside.is_file() else shutil.which("deathstar")
    assert found, "the deathstar console script is not installed"
    return found


def run(argv: list[str], **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=child_env(**extra_env),
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("DEATHSTAR_"):
            monkeypatch.delenv(key)


# --- in-process ----------------------------------------------------------------------------


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"deathstar {deathstar.__version__}\n"


def test_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "usage: deathstar" in capsys.readouterr().err


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["api", "--port", "abc"], "--port"),
        (["api", "--port", "70000"], "--port"),
        (["api", "--log-level", "nope"], "--log-level"),
        (["healthcheck", "--port", "-1"], "--port"),
    ],
)
def test_bad_flag_is_one_line_and_exit_2(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deathstar: error: {flag} must be")
    assert err.count("\n") == 1


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        ("api", "DEATHSTAR_PORT", "abc"),
        ("api", "DEATHSTAR_PORT", "70000"),
        ("api", "DEATHSTAR_LOG_LEVEL", "loud"),
        ("healthcheck", "DEATHSTAR_PORT", "abc"),
        ("healthcheck", "DEATHSTAR_PORT", "70000"),
        ("healthcheck", "DEATHSTAR_PORT_FILE", " "),
    ],
)
def test_bad_variable_is_one_line_and_exit_2(
    variable: str,
    value: str,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as caught:
        main([command])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deathstar: error: {variable} must")
    assert err.count("\n") == 1


@pytest.mark.usefixtures("clean_env")
def test_healthcheck_nothing_listening_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with refused_port() as port:
        assert main(["healthcheck", "--port", str(port), "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"deathstar: unhealthy: http://127.0.0.1:{port}/healthz: ")
    assert err.count("\n") == 1


@pytest.mark.usefixtures("clean_env")
def test_healthcheck_port_from_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with refused_port() as port:
        monkeypatch.setenv("DEATHSTAR_PORT", str(port))
        assert main(["healthcheck"]) == 1
    assert f"127.0.0.1:{port}/healthz" in capsys.readouterr().err


# --- the installed script ------------------------------------------------------------------


def test_script_version() -> None:
    result = run([script(), "--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"deathstar {deathstar.__version__}\n"


def test_script_bad_port_flag() -> None:
    result = run([script(), "api", "--port", "abc"])
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "deathstar: error: --port must be a port number, got 'abc'"
    ]


def test_script_bad_port_variable() -> None:
    result = run([script(), "api"], DEATHSTAR_PORT="abc")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "DEATHSTAR_PORT" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv", [["--nope"], ["api", "--database"], ["fly"]])
def test_script_usage_errors(argv: list[str]) -> None:
    result = run([script(), *argv])
    assert result.returncode == 2
    assert result.stderr.startswith("usage: deathstar")
    assert result.stderr.splitlines()[-1].startswith("deathstar")
    assert "Traceback" not in result.stderr


def test_module_healthcheck_nothing_listening() -> None:
    with refused_port() as port:
        result = run([*module_command(), "healthcheck", "--port", str(port)])
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"deathstar: unhealthy: http://127.0.0.1:{port}/healthz")


# --- real servers --------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    log: Path
    port_file: Path | None  # None: the port is read from its "listening on" log line
    http: requests.Session
    port: int = 0  # unknown until the server reports it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=STOP_WITHIN)

    def log_entries(self) -> list[dict[str, Any]]:
        """Every stderr line, each of which must be one JSON object."""
        entries = []
        for line in self.log.read_text().splitlines():
            entry = strict_json(line)
            assert isinstance(entry, dict), line
            entries.append(entry)
        return entries

    def wait_ready(self) -> None:
        """Until the server this test started answers /healthz with 200.

        The port comes from the server: the port file it writes once it serves, or the line it
        logs, either naming its PID. The server holds that port while it lives, so a 200 from
        it, with the process still running afterwards, is this server's answer and no other's.
        """
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            self.port = self.port or self.reported_port()
            if self.port and self.answers() and self.proc.poll() is None:
                return
            time.sleep(0.05)
        pytest.fail(f"server not ready within {READY_WITHIN}s:\n{self.log.read_text()}")

    def reported_port(self) -> int:
        """The port this server (its PID) reported, else 0: not yet."""
        if self.port_file is None:
            for line in self.log.read_text().splitlines(keepends=True):
                entry = strict_json(line) if line.endswith("\n") else {}  # whole lines only
                if entry.get("msg", "").startswith("listening on "):
                    return int(entry["port"]) if entry["pid"] == self.proc.pid else 0
            return 0
        try:
            listening = portfile.read(self.port_file)
        except portfile.PortFileError:
            return 0
        return listening.port if listening.pid == self.proc.pid else 0

    def answers(self) -> bool:
        try:
            return self.http.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False


def launch(
    directory: Path,
    name: str,
    http: requests.Session,
    *args: str,
    port_file: bool = True,
    **extra_env: str,
) -> Server:
    """``deathstar api`` on a port it picks itself (``--port 0``), not yet waited for.

    It reports the port in a port file, or without one only in its log.
    """
    log, file = directory / f"{name}.log", directory / f"{name}.port"
    argv = [*module_command(), "api", "--host", "127.0.0.1", "--port", "0", *args]
    if port_file:
        argv += ["--port-file", str(file)]
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT, env=child_env(**extra_env)
        )
    return Server(proc, log, file if port_file else None, http)


class StartServer(Protocol):
    def __call__(self, database: Path, *, ready: bool = True, port_file: bool = True) -> Server: ...


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # straight to 127.0.0.1, whatever proxy the environment names
        yield session


@pytest.fixture
def start_server(tmp_path: Path, http: requests.Session) -> Iterator[StartServer]:
    started: list[Server] = []

    def start(database: Path, *, ready: bool = True, port_file: bool = True) -> Server:
        name = f"server-{len(started)}"
        server = launch(tmp_path, name, http, "--database", str(database), port_file=port_file)
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=STOP_WITHIN)


def test_server_serves_and_stops_cleanly_on_sigterm(
    start_server: StartServer,
    http: requests.Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_server(tmp_path / "x.db")
    port_file = server.port_file
    assert port_file is not None

    created = http.post(
        f"{server.url}/v1/targets", json={"name": "Alderaan", "system": "Alderaan"}, timeout=5
    )
    assert created.status_code == 201, created.text
    target = created.json()
    assert created.headers["location"] == f"/v1/targets/{target['id']}"
    assert "server" not in created.headers

    listing = http.get(f"{server.url}/v1/targets", timeout=5).json()
    assert listing["total"] == 1
    assert listing["items"] == [target]

    fired = http.post(f"{server.url}/v1/targets/{target['id']}/fire", timeout=5)
    assert fired.status_code == 200
    assert fired.json()["status"] == "destroyed"
    again = http.post(f"{server.url}/v1/targets/{target['id']}/fire", timeout=5)
    assert again.status_code == 409
    assert "already destroyed" in again.json()["detail"]

    missing = http.get(f"{server.url}/nope", timeout=5)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"

    assert http.get(f"{server.url}/readyz", timeout=5).status_code == 200

    health = run([*module_command(), "healthcheck", "--port", str(server.port)])
    assert health.returncode == 0, health.stderr
    assert health.stderr == ""
    # As in an image run with DEATHSTAR_PORT=0: the port the server wrote, not the setting.
    from_file = run(
        [*module_command(), "healthcheck"],
        DEATHSTAR_PORT="0",
        DEATHSTAR_PORT_FILE=str(port_file),
    )
    assert from_file.returncode == 0, from_file.stderr
    with refused_port() as port:
        # A proxy in the environment (nothing listens there) must not reroute the local probe.
        dead_proxy = f"http://127.0.0.1:{port}"
        proxied = run(
            [*module_command(), "healthcheck", "--port-file", str(port_file)],
            http_proxy=dead_proxy,
            HTTP_PROXY=dead_proxy,
        )
        assert proxied.returncode == 0, proxied.stderr
        for key in [k for k in os.environ if k.startswith("DEATHSTAR_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("http_proxy", dead_proxy)
        assert main(["healthcheck", "--port", str(server.port)]) == 0

    assert server.stop(signal.SIGTERM) == 0
    assert not port_file.exists(), "a stopped server left its port file"
    assert list(port_file.parent.glob(f".{port_file.name}.*")) == []

    entries = server.log_entries()
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)
    access = [e for e in entries if e["logger"] == ACCESS_LOGGER]
    summary = [(e["method"], e["path"], e["status"]) for e in access]
    assert ("POST", "/v1/targets", 201) in summary
    assert ("GET", "/v1/targets", 200) in summary
    assert summary.count(("POST", f"/v1/targets/{target['id']}/fire", 200)) == 1
    assert summary.count(("POST", f"/v1/targets/{target['id']}/fire", 409)) == 1
    assert ("GET", "/nope", 404) in summary
    assert all(e["client"] == "127.0.0.1" for e in access)
    assert all(isinstance(e["duration_ms"], float | int) for e in access)
    assert any(e["logger"].startswith("uvicorn") for e in entries)


def test_server_stops_cleanly_on_sigint(
    start_server: StartServer, http: requests.Session, tmp_path: Path
) -> None:
    server = start_server(tmp_path / "x.db", port_file=False)  # the port from its log line
    assert http.get(f"{server.url}/v1/targets", timeout=5).status_code == 200
    assert server.stop(signal.SIGINT) == 0
    assert any(e["logger"] == ACCESS_LOGGER for e in server.log_entries())


def test_data_survives_a_restart(
    start_server: StartServer, http: requests.Session, tmp_path: Path
) -> None:
    database = tmp_path / "nested" / "keep.db"
    first = start_server(database)
    created = http.post(
        f"{first.url}/v1/targets", json={"name": "Jedha", "system": "Jedha"}, timeout=5
    )
    assert created.status_code == 201
    assert first.stop(signal.SIGTERM) == 0

    second = start_server(database)
    assert http.get(f"{second.url}{created.headers['location']}", timeout=5).json() == (
        created.json()
    )
    duplicate = http.post(
        f"{second.url}/v1/targets", json={"name": "Jedha", "system": "x"}, timeout=5
    )
    assert duplicate.status_code == 409
    assert second.stop(signal.SIGTERM) == 0


def test_two_servers_on_port_0_at_once_each_answer_for_themselves(
    start_server: StartServer, http: requests.Session, tmp_path: Path
) -> None:
    servers = [start_server(tmp_path / f"{name}.db", ready=False) for name in ("a", "b")]
    for server in servers:
        server.wait_ready()
    assert servers[0].port != servers[1].port
    for name, server in zip(("a", "b"), servers, strict=True):
        created = http.post(
            f"{server.url}/v1/targets", json={"name": f"only-{name}", "system": "x"}, timeout=5
        )
        assert created.status_code == 201, created.text
    for name, server in zip(("a", "b"), servers, strict=True):
        listing = http.get(f"{server.url}/v1/targets", timeout=5).json()
        assert [t["name"] for t in listing["items"]] == [f"only-{name}"]
        assert server.stop(signal.SIGTERM) == 0
        # The address each reported on stderr as well: its own port, its own PID.
        entries = server.log_entries()
        listening = [e for e in entries if e["msg"].startswith("listening on ")]
        assert [(e["msg"], e["host"], e["port"], e["pid"]) for e in listening] == [
            (f"listening on {server.url}", "127.0.0.1", server.port, server.proc.pid)
        ]
        posts = [e for e in entries if e["logger"] == ACCESS_LOGGER and e["method"] == "POST"]
        assert len(posts) == 1, "a server logged another server's request"


def test_readiness_takes_only_the_address_its_own_server_wrote(
    http: requests.Session, tmp_path: Path
) -> None:
    """A port file another process wrote (an earlier run, another server) is not taken."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        port_file = tmp_path / "port"
        server = Server(sleeper, tmp_path / "log", port_file, http)
        other = portfile.Listening("127.0.0.1", 8080, sleeper.pid + 1)
        port_file.write_text(other.dumps())
        assert server.reported_port() == 0
        ours = portfile.Listening("127.0.0.1", 8080, sleeper.pid)
        port_file.write_text(ours.dumps())  # as the child would have written it
        assert server.reported_port() == 8080
    finally:
        sleeper.kill()
        sleeper.wait(timeout=STOP_WITHIN)


@pytest.mark.usefixtures("clean_env")
def test_healthcheck_of_port_0_needs_the_port_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEATHSTAR_PORT", "0")
    with pytest.raises(SystemExit) as caught:
        main(["healthcheck"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("deathstar: error: port 0 lets the server pick its port; ")
    assert "--port-file (DEATHSTAR_PORT_FILE)" in err
    assert err.count("\n") == 1


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no port file"),
        ("nonsense", "cannot read"),
        ("{}", "names no port"),
        ("[8080]", "names no port"),
        ('{"host": "127.0.0.1", "port": 0, "pid": 1}', "names no port"),
    ],
)
def test_healthcheck_without_a_usable_port_file_is_unhealthy(
    content: str | None, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port_file = tmp_path / "port"
    if content is not None:
        port_file.write_text(content)
    assert main(["healthcheck", "--port", "0", "--port-file", str(port_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deathstar: unhealthy: ")
    assert reason in err
    assert err.count("\n") == 1


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("variable", "value"), [("DEATHSTAR_PORT", "abc"), ("DEATHSTAR_LOG_LEVEL", "loud")]
)
def test_a_flag_replaces_its_bad_variable_and_healthcheck_reads_only_the_port(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    with refused_port() as port:  # nothing listens: unhealthy, not a usage error
        assert main(["healthcheck", "--port", str(port), "--timeout", "1"]) == 1
    assert "unhealthy" in capsys.readouterr().err


# --- startup failures ----------------------------------------------------------------------


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("deathstar: error: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_garbage_database_file_is_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    result = run([*module_command(), "api", "--port", "0", "--database", str(garbage)])
    assert_one_line_failure(result, str(garbage), "not a database")


def test_database_path_that_is_a_directory_is_one_line(tmp_path: Path) -> None:
    result = run([*module_command(), "api", "--port", "0", "--database", str(tmp_path)])
    assert_one_line_failure(result, str(tmp_path))


@pytest.mark.parametrize("argv", [["--database", ""], []])
def test_empty_database_path_is_one_line(argv: list[str]) -> None:
    env = {} if argv else {"DEATHSTAR_DATABASE": " "}
    result = run([*module_command(), "api", "--port", "0", *argv], **env)
    assert_one_line_failure(result, "must be a file path")
    assert result.returncode == 2


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            [*module_command(), "api", "--port", str(port), "--database", str(tmp_path / "x.db")]
        )
    assert_one_line_failure(result, f"127.0.0.1:{port}", "in use")


def test_unwritable_port_file_is_one_line(tmp_path: Path) -> None:
    port_file = tmp_path / "missing" / "port"
    result = run(
        [*module_command(), "api", "--port", "0", "--port-file", str(port_file),
         "--database", str(tmp_path / "x.db")]
    )  # fmt: skip
    assert_one_line_failure(result, f"cannot write the port file {str(port_file)!r}")
    assert result.returncode == 1


def test_a_failed_start_leaves_no_port_file(tmp_path: Path) -> None:
    """A port file from an earlier run is gone once a start begins, also one that fails."""
    port_file = tmp_path / "port"
    port_file.write_text('{"host": "127.0.0.1", "port": 1, "pid": 1}\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            [*module_command(), "api", "--port", str(port), "--port-file", str(port_file),
             "--database", str(tmp_path / "x.db")]
        )  # fmt: skip
    assert_one_line_failure(result, "in use")
    assert sorted(p.name for p in tmp_path.iterdir() if "port" in p.name) == []


# Serves with a port file that cannot be written once the server is up (its directory is
# replaced by a file): the server stops rather than serve where no one will find it.
UNPUBLISHED_PROBE = """
import shutil, sys
from pathlib import Path
from deathstar import cli, portfile
publish = portfile.PortFile.publish
def replace_then_publish(self, listening):
    shutil.rmtree(self.path.parent)
    self.path.parent.write_text("in the way")
    publish(self, listening)
portfile.PortFile.publish = replace_then_publish
sys.exit(cli.main(["api", "--port", "0", "--port-file", sys.argv[1], "--database", sys.argv[2]]))
"""


def test_a_port_file_that_cannot_be_published_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    port_file = tmp_path / "run" / "port"
    result = run([sys.executable, "-c", UNPUBLISHED_PROBE, str(port_file), str(tmp_path / "x.db")])
    assert result.returncode == 1, result.stderr
    entries = [strict_json(line) for line in result.stderr.splitlines()]
    errors = [e for e in entries if e["level"] == "error"]
    assert [e["msg"].split(":")[0] for e in errors] == [f"cannot write the port file {port_file}"]
    assert not any(e["msg"].startswith("listening on ") for e in entries)


# --- hostile clients against a real server --------------------------------------------------


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=READY_WITHIN)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a timeout (server kept it open) fails."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# One limited server for the module (for each pytest-xdist worker that runs these tests): the
# tests below leave it as they found it (each closes its connections, and `limited_server`
# waits until it answers again), so they share it rather than pay a start each.


@pytest.fixture(scope="module")
def shared_limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("limited")
    with requests.Session() as http:
        http.trust_env = False
        server = launch(
            tmp_path, "limited", http, "--database", str(tmp_path / "l.db"),
            DEATHSTAR_HEAD_TIMEOUT="1", DEATHSTAR_MAX_CONNECTIONS="20",
        )  # fmt: skip
        try:
            server.wait_ready()
            yield server
        finally:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
                server.proc.wait(timeout=STOP_WITHIN)


@pytest.fixture
def limited_server(shared_limited_server: Server) -> Iterator[Server]:
    """The shared server, answering; after the test, once more (its connections released)."""
    shared_limited_server.wait_ready()
    yield shared_limited_server
    shared_limited_server.wait_ready()


def test_silent_and_slow_clients_are_closed(limited_server: Server) -> None:
    silent = [connect(limited_server) for _ in range(5)]
    slow = [connect(limited_server) for _ in range(5)]
    for sock in slow:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    idle = connect(limited_server)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    for sock in [*silent, *slow]:
        with sock:
            assert read_until_closed(sock) == b""
    with idle:  # answered, kept alive, then closed for idleness
        answer = read_until_closed(idle)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b'{"status":"ok"}')
    assert limited_server.http.get(f"{limited_server.url}/healthz", timeout=5).status_code == 200


def test_connections_over_the_cap_get_a_json_503(limited_server: Server) -> None:
    held = [connect(limited_server) for _ in range(20)]
    try:
        # Each accepted connection is counted before the next is: these are over the cap.
        for _ in range(3):
            with connect(limited_server) as extra:
                answer = read_until_closed(extra)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503")
            assert b"connection: close" in head.lower()
            assert "too many connections" in strict_json(body)["detail"]
    finally:
        for sock in held:
            sock.close()


def test_early_413_closes_a_chunked_upload(limited_server: Server) -> None:
    with connect(limited_server) as sock:
        sock.sendall(
            b"POST /v1/targets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (8192, b" " * 8192)
        for _ in range(8):  # 64 KiB: still allowed
            sock.sendall(chunk)
        sock.sendall(b"1\r\n \r\n")  # one byte over, and the client says no more
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in head.lower()
    assert "exceeds" in strict_json(body)["detail"]


def test_content_length_with_transfer_encoding_is_refused(limited_server: Server) -> None:
    with connect(limited_server) as sock:
        sock.sendall(
            b"POST /v1/targets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert "detail" in strict_json(body)


def exchange(server: Server, *parts: bytes) -> tuple[bytes, bytes]:
    """Send ``parts`` on a new connection; the head and body of what comes back before close."""
    with connect(server) as sock:
        for part in parts:
            sock.sendall(part)
        head, _, body = read_until_closed(sock).partition(b"\r\n\r\n")
    return head, body


def test_endless_head_is_431(limited_server: Server) -> None:
    # One write, then silence: the server reads it all before it closes, so no reset.
    pad = b"X-Pad: " + b"a" * 4000 + b"\r\n"
    head, body = exchange(limited_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + pad * 17)
    assert head.startswith(b"HTTP/1.1 431")
    assert "detail" in strict_json(body)


def test_unparsable_request_is_a_json_400(limited_server: Server) -> None:
    head, body = exchange(limited_server, b"NOT HTTP AT ALL\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/json" in head.lower()
    assert "detail" in strict_json(body)


@pytest.mark.parametrize("gap", [None, 0.3])
def test_a_body_that_stalls_or_trickles_is_closed(
    limited_server: Server, gap: float | None
) -> None:
    # The head is complete at once; the body never is: stalled, or a byte every `gap` seconds.
    with connect(limited_server) as sock:
        sock.sendall(
            b"POST /v1/targets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        sock.settimeout(gap or READY_WITHIN)
        closed = False
        while not closed and time.monotonic() - started < READY_WITHIN:
            try:
                closed = sock.recv(65536) == b""
            except TimeoutError:
                closed = not trickle(sock)
            except ConnectionResetError:
                closed = True
        waited = time.monotonic() - started
    assert closed, "the server kept a connection whose body never completed"
    assert waited < 5  # DEATHSTAR_HEAD_TIMEOUT=1 after the head


def trickle(sock: socket.socket) -> bool:
    """One more byte of the body; False when the server has closed the connection."""
    try:
        sock.sendall(b" ")
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True
