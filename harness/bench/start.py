"""P3: container start to the first 200 on /healthz, and the HTTP the bench speaks to it."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any

from harness import HarnessError
from harness.bench.engine import Engine
from harness.bench.report import Figure, Target
from harness.bench.workspace import Side

READY_TIMEOUT = 60.0


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
    for run in range(1, runs + 1):
        for side in (ours, seed):
            started = time.perf_counter()
            with engine.container(side.tags[-1]) as port:
                wait_ready(port)
                elapsed = time.perf_counter() - started
            (fig.runs if side is ours else fig.baseline_runs).append(elapsed)
        log(f"bench: P3 run {run}/{runs}")
    fig.note = "from `docker run --detach` to the first 200 through 127.0.0.1:<published>"
    return [fig]
