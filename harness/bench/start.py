"""P3: container start to the first 200 on /healthz, and the HTTP the bench speaks to it."""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness import HarnessError
from harness.bench.engine import PORT, Engine
from harness.bench.report import Figure, Target
from harness.bench.workspace import Side

READY_TIMEOUT = 60.0
# Run instead of the service (P3.floor): a 200 for whatever arrives, from a bare socket. One
# client at a time, so one that sends nothing is given up on rather than waited for.
BARE_SERVER = [
    "python",
    "-c",
    "import socket\n"
    f"server = socket.create_server(('0.0.0.0', {PORT}))\n"
    "while True:\n"
    "    client, _ = server.accept()\n"
    "    client.settimeout(1)\n"
    "    try:\n"
    "        client.recv(65536)\n"
    "        client.sendall(b'HTTP/1.1 200 OK\\r\\ncontent-length: 0\\r\\n\\r\\n')\n"
    "    except OSError:\n"
    "        pass\n"
    "    client.close()\n",
]
# The web stack `deathstar api` imports, as deathstar.cli.serve imports it (without
# pydantic.v1: keep the two alike), timed inside the interpreter.
FRAMEWORK_IMPORT = [
    "python",
    "-c",
    "import sys, time\n"
    "started = time.perf_counter()\n"
    "sys.modules.setdefault('pydantic.v1', None)\n"
    "import fastapi, pydantic, uvicorn, uvloop, httptools\n"
    "print(time.perf_counter() - started)\n",
]


def http_request(
    port: int, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 2.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(port: int, timeout: float = READY_TIMEOUT) -> None:
    """Poll /healthz on 127.0.0.1:port every 5 ms until it answers 200."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            if http_request(port, "GET", "/healthz", timeout=1.0)[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass  # not listening yet; docker-proxy accepts, then drops the connection
        if time.perf_counter() > deadline:
            raise HarnessError(f"no 200 from 127.0.0.1:{port}/healthz within {timeout:g} s")
        time.sleep(0.005)


def start_to_ready(
    engine: Engine, ours: Side, seed: Side, runs: int, log: Callable[[str], None]
) -> list[Figure]:
    fig = Figure("P3", "container start to first 200 on /healthz", "s")
    fig.baseline_name, fig.target = seed.name, Target(at_most=0.35)
    floor = Figure("P3.floor", "the same start, our image answering from a bare socket", "s")
    framework = Figure("P3.framework", "importing the web stack in our image", "s")
    image = ours.tags[-1]
    # The shares P3 is made of; one that fails is a failed row, not a failed P3.
    shares: list[tuple[Figure, Callable[[], float]]] = [
        (floor, lambda: time_start(engine, image, BARE_SERVER)),
        (framework, lambda: seconds_printed(engine.output(image, FRAMEWORK_IMPORT))),
    ]
    for run in range(1, runs + 1):
        for side in (ours, seed):
            elapsed = time_start(engine, side.tags[-1])
            (fig.runs if side is ours else fig.baseline_runs).append(elapsed)
        for share, measure in shares:
            if not share.error:
                try:
                    share.runs.append(measure())
                except HarnessError as exc:
                    share.error = str(exc)
                    log(f"bench: {share.key} failed: {exc}")
        log(f"bench: P3 run {run}/{runs}")
    fig.note = "from `docker run --detach` to the first 200 through 127.0.0.1:<published>"
    floor.note = (
        "P3's start with none of our code and no framework: the image's interpreter answers "
        "200 from a socket. The engine's and the interpreter's share of P3"
    )
    framework.note = (
        "FastAPI, pydantic, uvicorn, uvloop and httptools, timed inside the interpreter (no "
        "engine): what `deathstar api` imports before any of our code runs. P3 is about "
        "P3.floor + P3.framework + our own start"
    )
    return [fig, floor, framework]


def time_start(engine: Engine, image: str, argv: Sequence[str] = ()) -> float:
    started = time.perf_counter()
    with engine.container(image, argv) as port:
        wait_ready(port)
        return time.perf_counter() - started


def seconds_printed(output: str) -> float:
    """The number of seconds a timing command printed last."""
    lines = output.strip().splitlines()
    try:
        seconds = float(lines[-1])
    except (IndexError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise HarnessError(f"expected a number of seconds, got {output.strip()[-200:]!r}")
    return seconds
