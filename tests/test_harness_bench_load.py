"""harness.bench.load and harness.bench.start: wrk's command and output, the bench's HTTP.

A stand-in deathstar (Handler) answers on 127.0.0.1; no timing is asserted: figures depend on
the machine.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Unpack

import pytest

from harness import HarnessError
from harness.bench import load as bench_load
from harness.bench import start as bench_start
from harness.core.process import RunOptions
from tests.serving import refused_port, serving

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:40001/v1/targets?limit=100
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.52ms    2.10ms  41.00ms   80.00%
    Req/Sec     1.53k   100.00     1.70k    70.00%
  Latency Distribution
     50%    6.10ms
     75%    7.00ms
     90%    8.50ms
     99%   15.30ms
  15300 requests in 10.00s, 230.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1530.12
Transfer/sec:     23.00MB
"""


def test_parse_wrk_reads_throughput_percentiles_and_errors() -> None:
    result = bench_load.parse_wrk(WRK_OUTPUT)
    assert result.tool == "wrk"
    assert result.requests == 15300
    assert result.seconds == 10.0
    assert result.rps == 1530.12
    assert result.p50_ms == pytest.approx(6.1)
    assert result.p99_ms == pytest.approx(15.3)
    assert (result.non_2xx, result.socket_errors, result.errors) == (4, 3, 7)


def test_parse_wrk_units_and_clean_runs() -> None:
    changed = WRK_OUTPUT.replace("6.10ms", "870.00us").replace("15.30ms", "1.20s")
    changed = changed.replace("10.00s,", "1.00m,")
    clean = "\n".join(
        line for line in changed.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    result = bench_load.parse_wrk(clean)
    assert result.p50_ms == pytest.approx(0.87)
    assert result.p99_ms == pytest.approx(1200)
    assert result.seconds == 60
    assert result.errors == 0


def test_parse_wrk_refuses_output_without_summary() -> None:
    with pytest.raises(HarnessError, match="lacks its summary"):
        bench_load.parse_wrk("Running 10s test @ http://127.0.0.1:1/\n")
    with pytest.raises(HarnessError, match="cannot read"):
        bench_load.parse_wrk(WRK_OUTPUT.replace("15.30ms", "15.30xs"))


def test_wrk_command_is_bounded() -> None:
    command = bench_load.wrk_command("http://127.0.0.1:1/x", connections=10, seconds=10)
    assert command[0] == "wrk"
    assert command[command.index("--duration") + 1] == "10s"
    assert command[command.index("--connections") + 1] == "10"
    assert "--latency" in command
    short = bench_load.wrk_command("http://127.0.0.1:1/x", connections=1, seconds=0.2)
    assert short[short.index("--duration") + 1] == "1s"


class Handler(BaseHTTPRequestHandler):
    """A stand-in deathstar: /healthz, POST and GET /v1/targets, /fail answers 500."""

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


def test_load_once_runs_wrk_against_the_list_on_loopback() -> None:
    ran: list[list[str]] = []

    def runner(args: Sequence[str], **options: Unpack[RunOptions]) -> str:
        ran.append(list(args))
        assert options.get("timeout", 0) >= 10  # bounded, past wrk's own duration
        return WRK_OUTPUT

    result = bench_load.load_once(runner, 40001, connections=10, seconds=10)
    assert ran[0][0] == "wrk"
    assert ran[0][-1] == f"http://127.0.0.1:40001{bench_load.LIST_PATH}"
    assert result.tool == "wrk"


def test_http_request_and_wait_ready(server: int) -> None:
    status, body = bench_start.http_request(server, "POST", "/v1/targets", {"name": "a"})
    assert status == 201
    assert json.loads(body) == {"name": "a"}
    bench_start.wait_ready(server, timeout=5)
    with refused_port() as port, pytest.raises(HarnessError, match="no 200"):
        bench_start.wait_ready(port, timeout=0.05)


def test_without_wrk_p5_is_not_measured_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert bench_load.wrk_missing().startswith("not measured: wrk is not installed")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert bench_load.wrk_missing() == ""
