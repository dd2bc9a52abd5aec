"""P1, P2, P3 and P5: our image and the seed-style one, rebuilt after a one-line change, their
new layers and payloads, started, and ours under load (wrk, Debian's package)."""

from __future__ import annotations

import gzip
import http.client
import json
import math
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from harness import HarnessError
from harness.bench.engine import BUILD_TIMEOUT, PORT, Engine
from harness.bench.options import Options
from harness.bench.report import Figure
from harness.core.process import Runner
from harness.image import archive, build, imaging, records

Log = Callable[[str], None]
EDITED = Path("deathstar/app.py")
SEED_DOCKERFILE = Path("bench/seed-style.Dockerfile")
LIST_PATH = "/v1/targets?limit=100"
NOT_MEASURED = "not measured: wrk is not installed (`apt-get install wrk`, Debian's package)"
# wrk's `done` hook: its summary as JSON, from its own counters.
WRK_SUMMARY = Path(__file__).with_name("wrk_summary.lua")
# Run instead of the service (P3.floor): a 200 for whatever arrives, from a bare socket, one
# client at a time (one that sends nothing is given up on rather than waited for).
BARE_SERVER = ["python", "-c", f"""import socket
server = socket.create_server(('0.0.0.0', {PORT}))
while True:
    client, _ = server.accept()
    client.settimeout(1)
    try:
        client.recv(65536)
        client.sendall(b'HTTP/1.1 200 OK\\r\\ncontent-length: 0\\r\\n\\r\\n')
    except OSError:
        pass
    client.close()
"""]  # fmt: skip
# The web stack as deathstar.cli.serve imports it (without pydantic.v1: keep the two alike).
FRAMEWORK_IMPORT = ["python", "-c", """import sys, time
started = time.perf_counter()
sys.modules.setdefault('pydantic.v1', None)
import fastapi, pydantic, uvicorn, uvloop, httptools
print(time.perf_counter() - started)
"""]  # fmt: skip


@dataclass
class Side:
    """One side of the rebuild comparison: a clone and the way it builds an image."""

    name: str
    repo: str
    clone: Path
    build: Callable[[str], str]
    tags: list[str] = field(default_factory=list)


def sides(engine: Engine, base_image: str) -> tuple[Side, Side]:
    """Ours (``nox -s build image``) and the seed-style Dockerfile, each in its own clone."""
    ours, seed = engine.clone("ours"), engine.clone("seed")
    for clone in (ours, seed):
        shutil.copytree(engine.root / "dist" / "wheelhouse", clone / "dist" / "wheelhouse")
    # The seed builds its wheel in the image with the project's build backend, from a local
    # wheel (the build has no network); like the tutorial, it has no .dockerignore.
    engine.run([
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
        *engine.pyproject["build-system"]["requires"], "--dest", str(seed / "dist" / "build-tools"),
    ])  # fmt: skip
    (seed / ".dockerignore").unlink(missing_ok=True)
    builder = build.Builder.detect(engine.docker)
    plan = replace(engine.plan, base_digest=imaging.resolve_base(engine.docker, base_image))
    build_env = {**os.environ, "SOURCE_DATE_EPOCH": str(plan.epoch)}

    def build_run(command: Sequence[str]) -> None:
        engine.track(engine.run(list(command), timeout=BUILD_TIMEOUT, merge=True))

    def build_ours(tag: str) -> str:
        # As `nox -s build image` after a change: uv build, the wheel staged as the project
        # layer (python -m harness.stage), then the image, reproducible where the engine can.
        wheel_build = build.wheel_build_command(Path("dist"), python=sys.executable)
        engine.run(wheel_build, cwd=ours, env=build_env, timeout=BUILD_TIMEOUT)
        wheel = build.project_wheel(ours / "dist", plan.version).relative_to(ours)
        stage = build.staging_command(wheel, build.STAGING, python=sys.executable)
        engine.run(stage, cwd=ours, timeout=BUILD_TIMEOUT)
        record = imaging.build_image(
            plan, builder, engine.docker, build_run, context=ours,
            archive_path=records.image_archive_path(ours), tags=[tag],
        )  # fmt: skip
        base_id = record.runtime_base and engine.docker.image_id(record.runtime_base)
        engine.remember([base_id] if base_id else [])  # removed at the end unless there before
        return record.image_id

    def build_seed(tag: str) -> str:
        build_run([
            *build.OFFLINE_BUILD, "--build-arg", f"BASE_IMAGE={base_image}",
            "--file", str(seed / SEED_DOCKERFILE), "--tag", tag, str(seed),
        ])  # fmt: skip
        return tag

    return (
        Side("ours", "deathstar-bench-ours", ours, build_ours),
        Side("seed-style", "deathstar-bench-seed", seed, build_seed),
    )


def add_line(path: Path, line: str, *, first: bool = False) -> None:
    """The one-line change: ``line`` appended, or put first (where a comment stays lint-clean:
    ruff's format wants two blank lines before one after a module's last function)."""
    text = path.read_text(encoding="utf-8")
    if first:
        text = f"{line}\n{text}"
    else:
        text += ("" if text.endswith("\n") else "\n") + line + "\n"
    path.write_text(text, encoding="utf-8")


def layer_sizes(stream: IO[bytes]) -> tuple[int, int]:
    """A layer's tarball size and its size as pushed: gzip at level 6 (Docker's), or the stored
    blob itself where the engine keeps layers gzipped (the containerd image store)."""
    data = stream.read()
    if data[:2] == b"\x1f\x8b":
        return len(gzip.decompress(data)), len(data)
    return len(data), len(gzip.compress(data, compresslevel=6))


def measure_saved(path: Path, wanted: Iterable[str]) -> list[tuple[int, int]]:
    """Tarball and gzip sizes of the ``wanted`` layers in the ``docker save`` archive ``path``."""
    image = archive.read_archive(path)
    sizes = []
    for layer in wanted:
        with archive.open_layer(image, layer) as stream:
            sizes.append(layer_sizes(stream))
    return sizes


def new_layer_bytes(engine: Engine, before: str, after: str) -> tuple[int, int]:
    """Tarball and gzip bytes of the layers of ``after`` that ``before`` lacks (a push sends
    only those)."""
    old, new = (
        json.loads(engine.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref))
        for ref in (before, after)
    )
    fresh = [layer for layer in dict.fromkeys(new) if layer not in old]
    saved = engine.work / "save.tar"
    try:
        if fresh:
            engine.docker("save", "--output", str(saved), after, timeout=BUILD_TIMEOUT)
        sizes = measure_saved(saved, fresh) if fresh else []
    finally:
        saved.unlink(missing_ok=True)
    return sum(raw for raw, _ in sizes), sum(packed for _, packed in sizes)


def rebuilds(engine: Engine, ours: Side, seed: Side, options: Options, log: Log) -> list[Figure]:
    figures = [
        Figure("P1a", "rebuild after a one-line change", "s", at_most=4, at_most_ratio=0.6),
        Figure("P1b", "new layer bytes pushed after that change (gzip)", "bytes", at_most=20e3),
        Figure("P1b.raw", "the same, uncompressed tar", "bytes"),
        Figure("P2", "image payload (size - base)", "bytes", at_most=17e6, at_most_ratio=1),
    ]
    for fig in figures:
        fig.baseline_name = seed.name
    base_size = engine.docker.image_size(options.base_image)
    for run in range(options.runs + 1):  # run 0: untimed, fills the build cache
        for side in (ours, seed):
            tag = f"{side.repo}:{run}"
            engine.tags.append(tag)
            # Unique to this bench run: an edit an earlier run made would be in the build
            # cache, and a side that rebuilds from that cache would be timed on a cache hit.
            if run:
                add_line(side.clone / EDITED, f"# bench edit {run} of {engine.token}")
            started = time.perf_counter()
            side.build(tag)
            elapsed = time.perf_counter() - started
            if run:
                raw, packed = new_layer_bytes(engine, side.tags[-1], tag)
                size = engine.docker.image_size(tag) - base_size
                for fig, value in zip(figures, (elapsed, packed, raw, size), strict=True):
                    fig.add(value, baseline=side is seed)
                log(f"bench: P1 run {run}/{options.runs} {side.name}: {elapsed:.2f} s, "
                    f"{raw / 1000:.1f} kB new layers ({packed / 1000:.1f} kB gzip)")  # fmt: skip
            side.tags.append(tag)
    # The seed's final stage holds a copy of the wheelhouse, which the tutorial's build
    # fetches from the network instead: compare with the seed's payload without it.
    wheelhouse = sum(f.stat().st_size for f in (seed.clone / "dist" / "wheelhouse").iterdir())
    figures[3].baseline_runs = [size - wheelhouse for size in figures[3].baseline_runs]
    figures[3].note = f"seed-style minus its {wheelhouse / 1e6:.1f} MB wheelhouse layer"
    return figures


def http_request(port: int, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    """GET ``path`` on 127.0.0.1:``port``, or POST ``body`` as JSON; the status and the body."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers)
    try:
        with urllib.request.urlopen(request, timeout=2.0) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read()


def wait_ready(port: int, timeout: float = 60.0) -> None:
    """Poll /healthz on 127.0.0.1:port every 5 ms until it answers 200."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            if http_request(port, "/healthz")[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass  # not listening yet; docker-proxy accepts, then drops the connection
        if time.perf_counter() > deadline:
            raise HarnessError(f"no 200 from 127.0.0.1:{port}/healthz within {timeout:g} s")
        time.sleep(0.005)


def time_start(engine: Engine, image: str, argv: Sequence[str] = ()) -> float:
    started = time.perf_counter()
    with engine.container(image, argv) as port:
        wait_ready(port)
        return time.perf_counter() - started


def seconds_printed(output: str) -> float:
    """The number of seconds a timing command printed last."""
    try:
        seconds = float(output.strip().splitlines()[-1])
    except (IndexError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise HarnessError(f"expected a number of seconds, got {output.strip()[-200:]!r}")
    return seconds


def start_to_ready(engine: Engine, ours: Side, seed: Side, runs: int, log: Log) -> list[Figure]:
    fig = Figure("P3", "container start to first 200 on /healthz", "s", at_most=0.35)
    fig.baseline_name = seed.name
    image = ours.tags[-1]
    # The shares P3 is made of; one that fails is a failed row, not a failed P3.
    shares: list[tuple[Figure, Callable[[], float]]] = [
        (Figure("P3.floor", "the same start, our image answering from a bare socket", "s"),
         lambda: time_start(engine, image, BARE_SERVER)),
        (Figure("P3.framework", "importing the web stack in our image", "s"),
         lambda: seconds_printed(engine.output(image, FRAMEWORK_IMPORT))),
    ]  # fmt: skip
    for run in range(1, runs + 1):
        for side in (ours, seed):
            fig.add(time_start(engine, side.tags[-1]), baseline=side is seed)
        for share, measure in shares:
            try:
                share.runs += [] if share.error else [measure()]
            except HarnessError as exc:
                share.error = str(exc)
                log(f"bench: {share.key} failed: {exc}")
        log(f"bench: P3 run {run}/{runs}")
    return [fig, *(share for share, _ in shares)]


def wrk_missing() -> str:
    """Why P5 cannot be measured here, or "" when wrk is on PATH."""
    return "" if shutil.which("wrk") else NOT_MEASURED


def wrk(runner: Runner, script: Path, url: str, connections: int, seconds: float) -> dict[str, Any]:
    """One wrk run (one thread: it shares the cores with the server): its JSON summary."""
    command = [
        "wrk", "--threads", "1", "--connections", str(connections), "--duration",
        f"{max(1, round(seconds))}s", "--timeout", "5s", "--script", str(script), url,
    ]  # fmt: skip
    last = (runner(command, timeout=seconds + 60).strip().splitlines() or [""])[-1]
    try:
        summary: dict[str, Any] = json.loads(last)
        return {key: summary[key] for key in ("rps", "p50_ms", "p99_ms", "errors")}
    except (ValueError, TypeError, KeyError):
        raise HarnessError(f"wrk printed no summary: {last!r}") from None


def api_load(engine: Engine, ours: Side, options: Options, log: Log) -> list[Figure]:
    if why := wrk_missing():
        log(f"bench: P5 {why}")
        return [Figure("P5", "API under load", "req/s", error=why)]
    figures = [
        Figure("P5", f"GET {LIST_PATH} ({options.rows} rows)", "req/s", at_least=1500),
        Figure("P5.p50", "latency p50", "ms"),
        Figure("P5.p99", "latency p99", "ms", at_most=20),
        Figure("P5.err", "errors: non-2xx and socket (sum)", "count", at_most=0, aggregate="sum"),
    ]
    connections, seconds = options.connections, options.load_seconds
    figures[0].note = f"wrk, {connections} keep-alive connections, {seconds:g} s a run"
    with engine.container(ours.tags[-1]) as port:
        wait_ready(port)
        for row in range(options.rows):
            target = {"name": f"target-{row:03d}", "system": "bench"}
            status, _ = http_request(port, "/v1/targets", target)
            if status != 201:
                raise HarnessError(f"creating target {row} answered {status}, not 201")
        status, page = http_request(port, LIST_PATH)
        if status != 200 or len(json.loads(page)["items"]) != min(options.rows, 100):
            raise HarnessError(f"GET {LIST_PATH} does not list the {options.rows} targets")
        url = f"http://127.0.0.1:{port}{LIST_PATH}"
        for run in range(options.load_runs + 1):  # run 0 warms up, for 1 s, and is not counted
            result = wrk(engine.run, WRK_SUMMARY, url, connections, seconds if run else 1.0)
            if run:
                for fig, key in zip(figures, ("rps", "p50_ms", "p99_ms", "errors"), strict=True):
                    fig.add(result[key])
                log(f"bench: P5 run {run}/{options.load_runs}: {result}")
    return figures
