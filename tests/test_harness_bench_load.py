"""harness.bench.images' HTTP and wrk: the bench's requests, wrk's command and its summary.

A stand-in deathstar (Handler) answers on 127.0.0.1; no timing is asserted: figures depend on
the machine.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Unpack

import pytest

from harness import HarnessError
from harness.bench import images
from harness.core import process
from harness.core.process import RunOptions
from tests.serving import refused_port, serving

# wrk's own report, then the line the bench's `done` hook writes (harness/bench/wrk_summary.lua).
WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:40001/v1/targets?limit=100
  1 threads and 10 connections
  15300 requests in 10.00s, 230.00MB read
Requests/sec:   1530.12
{"rps": 1530.12, "p50_ms": 6.100, "p99_ms": 15.300, "errors": 7}
"""


def wrk_runs(output: str) -> tuple[list[list[str]], process.Runner]:
    ran: list[list[str]] = []

    def runner(args: Sequence[str], **options: Unpack[RunOptions]) -> str:
        ran.append(list(args))
        assert options.get("timeout", 0) >= 10  # bounded, past wrk's own duration
        return output

    return ran, runner


def test_wrk_runs_bounded_against_loopback_and_reads_its_summary(tmp_path: Path) -> None:
    ran, runner = wrk_runs(WRK_OUTPUT)
    url = f"http://127.0.0.1:40001{images.LIST_PATH}"
    result = images.wrk(runner, tmp_path / "s.lua", url, 10, 10)
    assert result == {"rps": 1530.12, "p50_ms": 6.1, "p99_ms": 15.3, "errors": 7}
    (command,) = ran
    assert command[0] == "wrk"
    assert command[-1] == url
    assert command[command.index("--duration") + 1] == "10s"
    assert command[command.index("--connections") + 1] == "10"
    assert command[command.index("--script") + 1] == str(tmp_path / "s.lua")
    ran, runner = wrk_runs(WRK_OUTPUT)
    images.wrk(runner, tmp_path / "s.lua", url, 1, 0.2)
    assert ran[0][ran[0].index("--duration") + 1] == "1s"


@pytest.mark.parametrize(
    "output", ["Running 10s test @ http://127.0.0.1:1/\n", "", '{"rps": 1}\n', "[1]\n"]
)
def test_wrk_output_without_the_summary_is_refused(output: str, tmp_path: Path) -> None:
    _, runner = wrk_runs(output)
    with pytest.raises(HarnessError, match="wrk printed no summary"):
        images.wrk(runner, tmp_path / "s.lua", "http://127.0.0.1:1/", 1, 10)


class Handler(BaseHTTPRequestHandler):
    """A stand-in deathstar: /healthz, POST and GET /v1/targets, anything else answers 500."""

    protocol_version = "HTTP/1.1"
    targets: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.answer(200, {"status": "ok"})
        elif self.path.startswith("/v1/targets"):
            self.answer(200, {"items": self.targets[:100], "total": len(self.targets)})
        else:
            self.answer(500, {"detail": "boom"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.targets.append(body)
        self.answer(201, body)


@contextmanager
def serve(port: int = 0) -> Iterator[ThreadingHTTPServer]:
    with serving(ThreadingHTTPServer(("127.0.0.1", port), Handler)) as server:
        yield server


@pytest.fixture
def server() -> Iterator[int]:
    Handler.targets = []
    with serve() as running:
        yield running.server_address[1]


def test_http_request_and_wait_ready(server: int) -> None:
    status, body = images.http_request(server, "/v1/targets", {"name": "a"})
    assert status == 201
    assert json.loads(body) == {"name": "a"}
    assert images.http_request(server, "/v1/targets")[0] == 200
    assert images.http_request(server, "/fail")[0] == 500  # an answer, not an exception
    images.wait_ready(server, timeout=5)
    with refused_port() as port, pytest.raises(HarnessError, match="no 200"):
        images.wait_ready(port, timeout=0.05)


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed")
def test_the_summary_hook_runs_in_the_real_wrk(server: int) -> None:
    script = images.WRK_SUMMARY
    url = f"http://127.0.0.1:{server}"
    result = images.wrk(process.run, script, f"{url}{images.LIST_PATH}", 1, 1)
    assert result["rps"] > 0
    assert result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert images.wrk(process.run, script, f"{url}/fail", 1, 1)["errors"] > 0  # the 500s


def test_without_wrk_p5_is_not_measured_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert images.wrk_missing().startswith("not measured: wrk is not installed")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert images.wrk_missing() == ""
