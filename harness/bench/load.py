"""P5: the API under load, driven by wrk (Debian's package).

``api_load`` fills a container of our image with targets, then lists them under load: wrk keeps
a fixed number of HTTP/1.1 keep-alive connections busy for a fixed duration against one URL on
127.0.0.1 and reports requests per second, p50 and p99 latency, and errors: answers outside 2xx
and socket errors (refused, reset, timed out). Without wrk, P5 is not measured.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from harness import HarnessError
from harness.bench.engine import Engine
from harness.bench.options import Options
from harness.bench.report import Figure, Target
from harness.bench.start import http_request, wait_ready
from harness.bench.workspace import Side
from harness.core.process import Runner

LIST_PATH = "/v1/targets?limit=100"
TIMEOUT = 5.0
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured; ``errors`` counts answers outside 2xx and socket errors."""

    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def wrk_command(url: str, *, connections: int, seconds: float) -> list[str]:
    # One thread: the client shares the machine's cores with the server and should take little.
    return [
        "wrk", "--threads", "1", "--connections", str(connections),
        "--duration", f"{max(1, round(seconds))}s", "--timeout", f"{TIMEOUT:g}s",
        "--latency", url,
    ]  # fmt: skip


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise HarnessError(f"wrk printed a latency I cannot read: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> LoadResult:
    """Read wrk's summary (it must have run with --latency)."""

    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    done = find(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
    rps = find(r"^Requests/sec:\s*([\d.]+)")
    p50 = find(r"^\s*50(?:\.000)?%\s+(\S+)")
    p99 = find(r"^\s*99(?:\.000)?%\s+(\S+)")
    if not (done and rps and p50 and p99):
        raise HarnessError("wrk's output lacks its summary or latency distribution")
    sockets = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    non_2xx = find(r"Non-2xx or 3xx responses: (\d+)")
    return LoadResult(
        tool="wrk",
        requests=int(done[1]),
        seconds=_milliseconds(f"{done[2]}{done[3]}") / 1e3,
        rps=float(rps[1]),
        p50_ms=_milliseconds(p50[1]),
        p99_ms=_milliseconds(p99[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


NOT_MEASURED = "not measured: wrk is not installed (`apt-get install wrk`, Debian's package)"


def wrk_missing() -> str:
    """Why P5 cannot be measured here, or "" when wrk is on PATH."""
    return "" if shutil.which("wrk") else NOT_MEASURED


def load_once(runner: Runner, port: int, *, connections: int, seconds: float) -> LoadResult:
    url = f"http://127.0.0.1:{port}{LIST_PATH}"
    command = wrk_command(url, connections=connections, seconds=seconds)
    return parse_wrk(runner(command, timeout=seconds + 60))


def api_load(
    engine: Engine,
    ours: Side,
    options: Options,
    *,
    runner: Runner,
    log: Callable[[str], None],
) -> list[Figure]:
    rps = Figure("P5", f"GET {LIST_PATH} ({options.rows} rows)", "req/s")
    rps.target = Target(at_least=1500)
    p50 = Figure("P5.p50", "latency p50", "ms")
    p99 = Figure("P5.p99", "latency p99", "ms", target=Target(at_most=20))
    errors = Figure("P5.err", "errors: non-2xx and socket (sum)", "count")
    errors.target = Target(at_most=0)
    with engine.container(ours.tags[-1]) as port:
        wait_ready(port)
        for row in range(options.rows):
            body = {"name": f"target-{row:03d}", "system": "bench"}
            status, _ = http_request(port, "POST", "/v1/targets", body)
            if status != 201:
                raise HarnessError(f"creating target {row} answered {status}, not 201")
        status, page = http_request(port, "GET", LIST_PATH)
        if status != 200 or len(json.loads(page)["items"]) != min(options.rows, 100):
            raise HarnessError(f"GET {LIST_PATH} does not list the {options.rows} targets")

        def once(seconds: float) -> LoadResult:
            return load_once(runner, port, connections=options.connections, seconds=seconds)

        once(1.0)  # warm-up, not counted
        for run in range(1, options.load_runs + 1):
            result = once(options.load_seconds)
            rps.runs.append(result.rps)
            p50.runs.append(result.p50_ms)
            p99.runs.append(result.p99_ms)
            errors.runs.append(result.errors)
            log(
                f"bench: P5 run {run}/{options.load_runs}: {result.rps:.0f} req/s, "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                f"{result.errors} errors ({result.tool})"
            )
    errors.aggregate = "sum"
    rps.note = (
        f"wrk, {options.connections} keep-alive connections for "
        f"{options.load_seconds:g} s per run, through the published port on 127.0.0.1"
    )
    return [rps, p50, p99, errors]
