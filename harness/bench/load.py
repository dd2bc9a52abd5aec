"""P5: the API under load, by wrk when it is installed, else a small asyncio client.

``api_load`` fills a container of our image with targets, then lists them under load. Both
clients keep a fixed number of HTTP/1.1 keep-alive connections busy for a fixed duration
against one URL on 127.0.0.1 and report requests per second, p50 and p99 latency, and errors:
answers outside 2xx and socket errors (refused, reset, timed out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from asyncio import LimitOverrunError
from collections.abc import Callable
from dataclasses import dataclass

from harness import HarnessError
from harness.bench.engine import Engine
from harness.bench.options import Options
from harness.bench.report import Figure, Target, percentile
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


@dataclass
class _Tally:
    """What the asyncio client's connections have seen so far."""

    latencies: list[float]
    non_2xx: int = 0
    socket_errors: int = 0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool]:
    """Send one request, read its answer; the status and whether the server keeps the line."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" not in headers:
        raise ValueError("an answer without Content-Length")
    await reader.readexactly(int(headers["content-length"]))
    return status, headers.get("connection") != "close"


async def _connection(host: str, port: int, request: bytes, deadline: float, tally: _Tally) -> None:
    line: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                if line is None:
                    line = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
                status, keep = await asyncio.wait_for(_exchange(*line, request), TIMEOUT)
            except (OSError, EOFError, TimeoutError, ValueError, IndexError, LimitOverrunError):
                # Refused, reset, closed mid-answer (IncompleteReadError is an EOFError), timed
                # out, or an answer that is not HTTP: one socket error, then a new connection.
                tally.socket_errors += 1
                keep = False
            else:
                tally.latencies.append(time.perf_counter() - started)
                if not 200 <= status < 300:
                    tally.non_2xx += 1
            if not keep and line is not None:
                await _close(line[1])
                line = None
    finally:
        if line is not None:
            await _close(line[1])


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _load(host: str, port: int, path: str, connections: int, seconds: float) -> _Tally:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    tally = _Tally(latencies=[])
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *(_connection(host, port, request, deadline, tally) for _ in range(connections))
    )
    return tally


def python_load(host: str, port: int, path: str, *, connections: int, seconds: float) -> LoadResult:
    """The fallback client: asyncio, keep-alive, one request in flight per connection."""
    started = time.perf_counter()
    tally = asyncio.run(_load(host, port, path, connections, seconds))
    elapsed = time.perf_counter() - started
    done = len(tally.latencies)
    if not done:
        raise HarnessError(f"no request to http://{host}:{port}{path} got an answer")
    return LoadResult(
        tool="python-asyncio",
        requests=done,
        seconds=elapsed,
        rps=done / elapsed,
        p50_ms=percentile(tally.latencies, 50) * 1e3,
        p99_ms=percentile(tally.latencies, 99) * 1e3,
        non_2xx=tally.non_2xx,
        socket_errors=tally.socket_errors,
    )


def install_wrk() -> bool:
    """``apt-get install -y wrk`` where that can work (root, Debian's apt); True if it did."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "wrk"]
    try:
        done = subprocess.run(command, capture_output=True, env=env, timeout=300, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and shutil.which("wrk") is not None


def resolve_tool(choice: str, install: Callable[[], bool] = install_wrk) -> str:
    """``wrk`` or ``python``: ``auto`` takes wrk, installing it from Debian's archive if it can."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") or install() else "python"
    return choice


FALLBACK_NOTE = (
    "measured with the fallback Python client (wrk is not installed): it shares the cores "
    "with the server, so these figures are NOT comparable with wrk's"
)


def load_once(
    runner: Runner, tool: str, port: int, *, connections: int, seconds: float
) -> LoadResult:
    if tool == "wrk":
        url = f"http://127.0.0.1:{port}{LIST_PATH}"
        command = wrk_command(url, connections=connections, seconds=seconds)
        return parse_wrk(runner(command, timeout=seconds + 60))
    return python_load("127.0.0.1", port, LIST_PATH, connections=connections, seconds=seconds)


def api_load(
    engine: Engine,
    ours: Side,
    options: Options,
    *,
    tool: str,
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
            return load_once(runner, tool, port, connections=options.connections, seconds=seconds)

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
        f"{tool}, {options.connections} keep-alive connections for "
        f"{options.load_seconds:g} s per run, through the published port on 127.0.0.1"
    )
    if tool != "wrk":
        rps.note += f"; {FALLBACK_NOTE}"
        log(f"bench: P5 {FALLBACK_NOTE}")
    return [rps, p50, p99, errors]
