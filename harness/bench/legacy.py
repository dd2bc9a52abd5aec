"""``python -m harness.bench``: the figures behind ``nox -s bench``, measured on this machine.

- P1 rebuild after a one-line source change, ours vs ``bench/seed-style.Dockerfile``:
  (a) wall time from the edit to a tagged image, (b) bytes of the layers that are new;
- P2 image payload: image size minus base image size;
- P3 container start to the first 200 on /healthz through the published port;
- P4 the default ``nox`` pipeline, in a fresh clone and again with its venvs reused;
- P5 GET /v1/targets?limit=100 under load: requests/s, p50, p99, errors;
- P6 a session's environment: ``nox -s test-X --install-only`` with uv vs virtualenv.

Everything runs on a copy of the working tree, committed into a throwaway repository and
cloned from there; the edits happen in those clones, never in the checkout. Two sides of a
comparison alternate run by run. Containers carry a label naming this run, images are tagged
``deathstar-bench-*``; all of them, and the intermediate images the builds made, are removed at
the end, also when a step fails.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import socket
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import ROOT, HarnessError
from harness.bench import layers as bench_layers
from harness.bench import load as bench_load
from harness.bench.report import Figure, Target, document, markdown, splice, table
from harness.core import build, records
from harness.core import git as gitinfo
from harness.core.process import DEFAULT_TIMEOUT, CommandError, Runner, reason
from harness.core.process import run as run_command

LABEL = "deathstar-bench"
OURS = "deathstar-bench-ours"
SEED = "deathstar-bench-seed"
SEED_DOCKERFILE = Path("bench/seed-style.Dockerfile")
EDITED = Path("deathstar/app.py")
PORT = 8080
LIST_PATH = "/v1/targets?limit=100"
BUILD_TIMEOUT = 900.0
NOX_TIMEOUT = 3600.0
READY_TIMEOUT = 60.0
GIT_IDENTITY = ("-c", "user.name=deathstar bench", "-c", "user.email=bench@localhost")

_BUILT = re.compile(r"^(?: ---> |Successfully built )([0-9a-f]{12,64})\s*$", re.MULTILINE)


def built_image_ids(output: str) -> list[str]:
    """Image IDs a classic-builder ``docker build`` printed, intermediate stages included."""
    return list(dict.fromkeys(_BUILT.findall(output)))


def session_times(report: Mapping[str, Any]) -> dict[str, float | str]:
    """Seconds per session from a ``nox --report`` file; the outcome where it did not succeed."""
    times: dict[str, float | str] = {}
    for entry in report.get("sessions", []):
        name = (entry.get("signatures") or [entry["name"]])[0]  # test-3.11 rather than test
        duration = entry.get("duration")
        result = str(entry.get("result", "?"))
        if not isinstance(duration, int | float):
            times[name] = result
        elif result == "success":
            times[name] = round(float(duration), 1)
        else:  # a skip can take long: nox may first try to download the missing interpreter
            times[name] = f"{result} after {duration:.1f} s"
    return times


def describe_times(times: Mapping[str, float | str]) -> str:
    return ", ".join(
        f"{name} {took:g} s" if isinstance(took, float) else f"{name} {took}"
        for name, took in times.items()
    )


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def append_line(path: Path, line: str) -> None:
    """The one-line change: ``line`` appended to ``path``."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text + ("" if text.endswith("\n") else "\n") + line + "\n", encoding="utf-8")


def outer_env(environ: Mapping[str, str], venv: str) -> dict[str, str]:
    """``environ`` without the virtualenv ``venv``: what a nox started by a user would see."""
    env = {k: v for k, v in environ.items() if k not in {"VIRTUAL_ENV", "CONDA_PREFIX"}}
    venv_bin = str(Path(venv) / "bin")
    path = [p for p in environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join(path)
    return env


def read_meminfo(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+) kB", text, re.MULTILINE)
    return int(match[1]) * 1024 if match else None


def read_cpu_model(text: str) -> str | None:
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match[1].strip() if match else None


def read_os_name(text: str) -> str | None:
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?$', text, re.MULTILINE)
    return match[1] if match else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


@dataclass(frozen=True)
class Options:
    runs: int = 5
    start_runs: int = 10
    load_runs: int = 3
    load_seconds: float = 10.0
    connections: int = 10
    rows: int = 100
    load_tool: str = "auto"
    env_runs: int = 3
    pipeline_runs: int = 1
    skip_pipeline: bool = False
    base_image: str = build.DEFAULT_BASE_IMAGE
    output_dir: Path = ROOT / "bench"
    nox_python: str = sys.executable
    test_session: str = "test-3.11"
    command: str = "nox -s bench"

    def settings(self, load_tool: str) -> dict[str, Any]:
        return {
            "P1 runs per side": self.runs,
            "P3 runs per side": self.start_runs,
            "P4 runs": 0 if self.skip_pipeline else self.pipeline_runs,
            "P5": f"{load_tool}, {self.connections} connections, {self.load_runs} x "
            f"{self.load_seconds:g} s, {self.rows} rows",
            "P6 runs per backend": self.env_runs,
        }


@dataclass
class Side:
    """One side of the rebuild comparison: a clone and the way it builds an image."""

    name: str
    repo: str
    clone: Path
    build: Callable[[str], str]
    tags: list[str] = field(default_factory=list)


class Bench:
    def __init__(
        self,
        options: Options,
        *,
        root: Path = ROOT,
        runner: Runner = run_command,
        log: Callable[[str], None] = print,
    ) -> None:
        self.options = options
        self.root = root
        self.run = runner
        self.log = log
        self.token = f"{os.getpid()}-{time.time_ns()}"
        self.tags: list[str] = []
        self.built: list[str] = []
        self.preexisting: set[str] = set()
        self.work = Path(tempfile.mkdtemp(prefix="deathstar-bench-"))
        self.snapshot = self.work / "snapshot"
        self.commit = ""
        self.epoch = 0

    # --- docker -------------------------------------------------------------------------
    def docker(self, *args: str, timeout: float = DEFAULT_TIMEOUT, merge: bool = False) -> str:
        return self.run(["docker", *args], timeout=timeout, merge=merge).strip()

    def image_id(self, ref: str) -> str | None:
        try:
            return self.docker("image", "inspect", "--format", "{{.Id}}", ref)
        except CommandError:
            return None

    def image_size(self, ref: str) -> int:
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", ref))

    def layers(self, ref: str) -> list[str]:
        layers: list[str] = json.loads(
            self.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref)
        )
        return layers

    def track(self, output: str) -> str:
        """Remember the images a build printed, for the cleanup; return the output."""
        self.built += [i for i in built_image_ids(output) if i not in self.built]
        return output

    @contextmanager
    def container(self, image: str) -> Iterator[int]:
        """A container of ``image`` published on a free 127.0.0.1 port; removed on exit."""
        port = free_port()
        cid = self.docker(
            "run", "--detach", "--label", f"{LABEL}={self.token}",
            "--publish", f"127.0.0.1:{port}:{PORT}", image,
        )  # fmt: skip
        try:
            yield port
        finally:
            self.docker("rm", "--force", "--volumes", cid)

    def cleanup(self) -> None:
        """Remove what this run made; every step is tried even when an earlier one fails."""
        steps: list[tuple[str, Callable[[], object]]] = [
            ("containers", self._remove_containers),
            ("images", self._remove_images),
            ("files", lambda: shutil.rmtree(self.work, ignore_errors=True)),
        ]
        for what, step in steps:
            try:
                step()
            except HarnessError as exc:
                self.log(f"bench: cleanup of {what} incomplete: {exc}")

    def _remove_containers(self) -> None:
        found = self.docker("ps", "--all", "--quiet", "--filter", f"label={LABEL}={self.token}")
        if found.split():
            self.docker("rm", "--force", "--volumes", *found.split())

    def _remove_images(self) -> None:
        # The tags first (the engine then drops their untagged parents), then the intermediate
        # images the builds created rather than found in the cache, children before parents.
        # An image that something else still uses is refused by the engine and stays.
        tags = [t for t in self.tags if self.image_id(t)]
        leftovers = [i for i in reversed(self.built) if i not in self.preexisting]
        for ref in [*tags, *leftovers]:
            try:
                self.docker("rmi", ref)
            except CommandError:
                continue

    # --- setup --------------------------------------------------------------------------
    def machine(self) -> dict[str, Any]:
        return {
            "cores": os.cpu_count(),
            "cpu_model": read_cpu_model(_read("/proc/cpuinfo")),
            "memory_bytes": read_meminfo(_read("/proc/meminfo")),
            "os": read_os_name(_read("/etc/os-release")),
            "kernel": platform.release(),
            "docker_version": self.docker("version", "--format", "{{.Server.Version}}"),
            "python": platform.python_version(),
        }

    def preflight(self) -> str:
        """The engine's version; refusals for what the bench cannot do without."""
        try:
            version = self.docker("version", "--format", "{{.Server.Version}}", timeout=15)
        except HarnessError:
            raise HarnessError(
                "no Docker engine answers: start Docker (`bash .ci/provision` on a bare machine)"
            ) from None
        if not self.image_id(self.options.base_image):
            raise HarnessError(
                f"the base image {self.options.base_image} is missing: pull it, or run "
                "`bash .ci/provision` where no registry is reachable"
            )
        if not any((self.root / "dist" / "wheelhouse").glob("*.whl")):
            raise HarnessError("dist/wheelhouse is empty: run `nox -s build` first")
        if not (self.root / SEED_DOCKERFILE).is_file():
            raise HarnessError(f"{SEED_DOCKERFILE} is missing")
        self.preexisting = {
            short_id(i) for i in self.docker("images", "--all", "--quiet", "--no-trunc").split()
        }
        return version

    def take_snapshot(self) -> None:
        """Copy the working tree (tracked and untracked, not ignored) into a new repository."""
        listed = self.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=self.root
        )
        self.snapshot.mkdir()
        for name in filter(None, listed.split("\0")):
            source = self.root / name
            if source.is_file():
                (self.snapshot / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, self.snapshot / name, follow_symlinks=False)
        self.epoch = gitinfo.commit_epoch(self.root)
        stamp = {"GIT_AUTHOR_DATE": f"@{self.epoch}", "GIT_COMMITTER_DATE": f"@{self.epoch}"}
        env = {**os.environ, **stamp}
        git = ["git", *GIT_IDENTITY, "-c", "commit.gpgsign=false"]
        self.run([*git, "init", "--quiet"], cwd=self.snapshot)
        self.run([*git, "add", "--all"], cwd=self.snapshot)
        self.run([*git, "commit", "--quiet", "-m", "bench snapshot"], cwd=self.snapshot, env=env)
        self.commit = gitinfo.head_commit(self.snapshot)

    def clone(self, name: str) -> Path:
        dest = self.work / name
        shutil.rmtree(dest, ignore_errors=True)
        self.run(["git", "clone", "--quiet", str(self.snapshot), str(dest)])
        return dest

    def with_wheelhouse(self, clone: Path) -> Path:
        shutil.copytree(self.root / "dist" / "wheelhouse", clone / "dist" / "wheelhouse")
        return clone

    def sides(self) -> tuple[Side, Side]:
        pyproject = tomllib.loads((self.snapshot / "pyproject.toml").read_text(encoding="utf-8"))
        plan = build.BuildPlan(
            version=pyproject["project"]["version"],
            commit=self.commit,
            dirty=False,
            epoch=self.epoch,
            base_image=self.options.base_image,
        )
        ours = self.with_wheelhouse(self.clone("ours"))
        seed = self.with_wheelhouse(self.clone("seed"))
        # The seed builds its wheel inside the image with the project's build backend, from a
        # local wheel (the build has no network); like the tutorial, it has no .dockerignore.
        download = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary", ":all:", *pyproject["build-system"]["requires"],
            "--dest", str(seed / "dist" / "build-tools"),
        ]  # fmt: skip
        self.run(download)
        (seed / ".dockerignore").unlink(missing_ok=True)
        build_env = {**os.environ, "SOURCE_DATE_EPOCH": str(self.epoch)}

        def build_ours(tag: str) -> str:
            # What `nox -s build image` does for a change: python -m build as the build session
            # runs it (backend from the dev lock, no isolation), then docker build.
            self.run(
                [sys.executable, *build.wheel_build_command(Path("dist"))[1:]],
                cwd=ours,
                env=build_env,
                timeout=BUILD_TIMEOUT,
            )
            command = plan.build_command(ours, [tag])
            return self.track(self.run(command, timeout=BUILD_TIMEOUT, merge=True))

        def build_seed(tag: str) -> str:
            command = [
                *build.OFFLINE_BUILD,
                "--build-arg", f"BASE_IMAGE={self.options.base_image}",
                "--file", str(seed / SEED_DOCKERFILE), "--tag", tag, str(seed),
            ]  # fmt: skip
            return self.track(self.run(command, timeout=BUILD_TIMEOUT, merge=True))

        return Side("ours", OURS, ours, build_ours), Side("seed-style", SEED, seed, build_seed)

    # --- P1, P2 -------------------------------------------------------------------------
    def new_layer_bytes(self, before: str, after: str) -> tuple[int, int]:
        """Tarball and gzip bytes of the layers of ``after`` that ``before`` lacks."""
        fresh = bench_layers.new_layers(self.layers(before), self.layers(after))
        if not fresh:
            return 0, 0
        archive = self.work / "save.tar"
        try:
            self.docker("save", "--output", str(archive), after, timeout=BUILD_TIMEOUT)
            measured = bench_layers.measure_saved(archive, fresh)
        finally:
            archive.unlink(missing_ok=True)
        return sum(m.size for m in measured), sum(m.gzip_size for m in measured)

    def rebuilds(self, ours: Side, seed: Side) -> list[Figure]:
        opts = self.options
        p1a = Figure("P1a", "rebuild after a one-line change", "s", baseline_name=seed.name)
        p1a.target = Target(at_most=4.0, beat_baseline=True)
        # P1b counts what a registry receives on push: layers travel gzip-compressed.
        p1b_gz = Figure(
            "P1b",
            "new layer bytes pushed after that change (gzip)",
            "bytes",
            baseline_name=seed.name,
        )
        p1b_gz.target = Target(at_most=20_000)
        p1b = Figure("P1b.raw", "the same, uncompressed tar", "bytes", baseline_name=seed.name)
        p2 = Figure("P2", "image payload (size - base)", "bytes", baseline_name=seed.name)
        p2.target = Target(at_most=17_000_000, beat_baseline=True)
        base_size = self.image_size(opts.base_image)
        for side in (ours, seed):
            self.log(f"bench: P1 first build of {side.name} (untimed, fills the build cache)")
            self.tags.append(f"{side.repo}:0")
            side.build(f"{side.repo}:0")
            side.tags.append(f"{side.repo}:0")
        for run in range(1, opts.runs + 1):
            for side in (ours, seed):
                append_line(side.clone / EDITED, f"# bench edit {run}")
                tag = f"{side.repo}:{run}"
                self.tags.append(tag)
                started = time.perf_counter()
                side.build(tag)
                elapsed = time.perf_counter() - started
                raw, packed = self.new_layer_bytes(side.tags[-1], tag)
                side.tags.append(tag)
                size = self.image_size(tag) - base_size
                mine = side is ours
                (p1a.runs if mine else p1a.baseline_runs).append(elapsed)
                (p1b.runs if mine else p1b.baseline_runs).append(raw)
                (p1b_gz.runs if mine else p1b_gz.baseline_runs).append(packed)
                (p2.runs if mine else p2.baseline_runs).append(size)
                self.log(
                    f"bench: P1 run {run}/{opts.runs} {side.name}: {elapsed:.2f} s, "
                    f"{raw / 1000:.1f} kB new layers ({packed / 1000:.1f} kB gzip)"
                )
        # The seed's final stage holds a copy of the wheelhouse, which the tutorial's build
        # fetches from the network instead: compare with the seed's payload without it.
        wheelhouse = sum(f.stat().st_size for f in (seed.clone / "dist" / "wheelhouse").iterdir())
        p2.baseline_runs = [size - wheelhouse for size in p2.baseline_runs]
        p2.note = (
            f"seed-style measured minus its {wheelhouse / 1e6:.1f} MB wheelhouse layer, which "
            "only the offline build needs (the tutorial installs from the network)"
        )
        p1a.note = "ours: python -m build (sdist and wheel, as `nox -s build`) + docker build"
        return [p1a, p1b_gz, p1b, p2]

    # --- P3 -----------------------------------------------------------------------------
    def start_to_ready(self, ours: Side, seed: Side) -> list[Figure]:
        fig = Figure("P3", "container start to first 200 on /healthz", "s")
        fig.baseline_name, fig.target = seed.name, Target(at_most=1.0)
        for run in range(1, self.options.start_runs + 1):
            for side in (ours, seed):
                started = time.perf_counter()
                with self.container(side.tags[-1]) as port:
                    wait_ready(port)
                    elapsed = time.perf_counter() - started
                (fig.runs if side is ours else fig.baseline_runs).append(elapsed)
            self.log(f"bench: P3 run {run}/{self.options.start_runs}")
        fig.note = "from `docker run --detach` to the first 200 through 127.0.0.1:<published>"
        return [fig]

    # --- P5 -----------------------------------------------------------------------------
    def load_tool(self) -> str:
        if self.options.load_tool == "auto":
            return "wrk" if shutil.which("wrk") else "python"
        return self.options.load_tool

    def load_once(self, port: int, seconds: float) -> bench_load.LoadResult:
        opts = self.options
        if self.load_tool() == "wrk":
            url = f"http://127.0.0.1:{port}{LIST_PATH}"
            command = bench_load.wrk_command(url, connections=opts.connections, seconds=seconds)
            return bench_load.parse_wrk(self.run(command, timeout=seconds + 60))
        return bench_load.python_load(
            "127.0.0.1", port, LIST_PATH, connections=opts.connections, seconds=seconds
        )

    def api_load(self, ours: Side) -> list[Figure]:
        opts = self.options
        rps = Figure("P5", f"GET {LIST_PATH} ({opts.rows} rows)", "req/s")
        rps.target = Target(at_least=1500)
        p50 = Figure("P5.p50", "latency p50", "ms")
        p99 = Figure("P5.p99", "latency p99", "ms", target=Target(at_most=20))
        errors = Figure("P5.err", "errors: non-2xx and socket (sum)", "count")
        errors.target = Target(at_most=0)
        with self.container(ours.tags[-1]) as port:
            wait_ready(port)
            for row in range(opts.rows):
                body = {"name": f"target-{row:03d}", "system": "bench"}
                status, _ = http_request(port, "POST", "/v1/targets", body)
                if status != 201:
                    raise HarnessError(f"creating target {row} answered {status}, not 201")
            status, page = http_request(port, "GET", LIST_PATH)
            if status != 200 or len(json.loads(page)["items"]) != min(opts.rows, 100):
                raise HarnessError(f"GET {LIST_PATH} does not list the {opts.rows} targets")
            self.load_once(port, 1.0)  # warm-up, not counted
            for run in range(1, opts.load_runs + 1):
                result = self.load_once(port, opts.load_seconds)
                rps.runs.append(result.rps)
                p50.runs.append(result.p50_ms)
                p99.runs.append(result.p99_ms)
                errors.runs.append(result.errors)
                self.log(
                    f"bench: P5 run {run}/{opts.load_runs}: {result.rps:.0f} req/s, "
                    f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                    f"{result.errors} errors ({result.tool})"
                )
        errors.aggregate = "sum"
        rps.note = (
            f"{self.load_tool()}, {opts.connections} keep-alive connections for "
            f"{opts.load_seconds:g} s per run, through the published port on 127.0.0.1"
        )
        return [rps, p50, p99, errors]

    # --- P4, P6 -------------------------------------------------------------------------
    def nox(self, clone: Path, *args: str) -> str:
        return self.run(
            [self.options.nox_python, "-m", "nox", *args],
            cwd=clone,
            env=outer_env(os.environ, sys.prefix),
            timeout=NOX_TIMEOUT,
            merge=True,
        )

    def environments(self) -> list[Figure]:
        fig = Figure("P6", f"`nox -s {self.options.test_session} --install-only`", "s")
        fig.baseline_name = "virtualenv"
        fig.note = "ours: the uv backend; venvs removed before each run, package caches warm"
        clone = self.clone("env")
        failed: dict[str, str] = {}
        for run in range(1, self.options.env_runs + 1):
            for backend in ("uv", "virtualenv"):
                if backend in failed:
                    continue
                shutil.rmtree(clone / ".nox", ignore_errors=True)
                started = time.perf_counter()
                try:
                    self.nox(
                        clone, "-s", self.options.test_session, "--install-only", "-db", backend
                    )
                except CommandError as exc:
                    failed[backend] = reason(exc.output)
                    self.log(f"bench: P6 {backend} backend failed: {failed[backend]}")
                    continue
                elapsed = time.perf_counter() - started
                (fig.runs if backend == "uv" else fig.baseline_runs).append(elapsed)
                self.log(f"bench: P6 run {run}/{self.options.env_runs} {backend}: {elapsed:.1f} s")
        if "uv" in failed:
            fig.error = f"the uv backend failed: {failed['uv']}"
        if "virtualenv" in failed:
            fig.note += f"; the virtualenv backend failed: {failed['virtualenv']}"
        return [fig]

    def pipeline(self) -> list[Figure]:
        fresh = Figure("P4", "`nox` (default sessions) in a fresh clone", "s")
        reused = Figure("P4.reuse", "`nox` again, nothing changed, venvs reused", "s")
        fresh.note = "git clone + nox with no venvs and no dist/; base image and caches present"
        version = tomllib.loads((self.snapshot / "pyproject.toml").read_text("utf-8"))
        watched = [
            f"{build.IMAGE_NAME}:{version['project']['version']}",
            f"{build.IMAGE_NAME}:sha-{self.commit[:7]}",
        ]
        before = {tag: self.image_id(tag) for tag in watched}
        made: list[str] = []
        try:
            for run in range(1, self.options.pipeline_runs + 1):
                for fig in (fresh, reused):
                    if not self.pipeline_run(fig, run, made):
                        if fig is fresh:
                            reused.error = "not run: the pipeline failed in the fresh clone"
                        return [fresh, reused]
        finally:
            self._restore_tags(before, made)
        return [fresh, reused]

    def pipeline_run(self, fig: Figure, run: int, made: list[str]) -> bool:
        """One `nox` in the pipeline clone (a new clone for a fresh run); False when it failed."""
        started = time.perf_counter()
        clone = self.clone("pipeline") if fig.key == "P4" else self.work / "pipeline"
        report = self.work / f"nox-report-{fig.key}-{run}.json"
        try:
            self.track(
                self.nox(clone, "--no-error-on-missing-interpreters", "--report", str(report))
            )
        except CommandError as exc:
            self.track(exc.output)
            tail = "\n".join(exc.output.strip().splitlines()[-15:])
            self.log(f"bench: P4 failed; the end of its output:\n{tail}")
            fig.error = str(exc)
            return False
        finally:
            record = clone / "dist" / "image.json"
            if record.is_file():
                made.append(records.load_image_record(record).image_id)
        fig.runs.append(time.perf_counter() - started)
        times = session_times(json.loads(report.read_text("utf-8"))) if report.is_file() else {}
        fig.details.setdefault("sessions per run", []).append(times)
        fig.note = "; ".join(filter(None, [fig.note, f"run {run}: {describe_times(times)}"]))
        self.log(f"bench: P4 run {run} {fig.key}: {fig.runs[-1]:.0f} s")
        return True

    def _restore_tags(self, before: Mapping[str, str | None], made: Sequence[str]) -> None:
        """Point the tags the pipeline moved back where they were; drop the images it made."""
        for tag, previous in before.items():
            if self.image_id(tag) in made:  # moved by us, and by no one since
                if previous:
                    self.docker("tag", previous, tag)
                else:
                    self.docker("rmi", tag)
        self.built += [short_id(i) for i in made if short_id(i) not in self.built]

    # --- all ----------------------------------------------------------------------------
    def attempt(self, key: str, title: str, step: Callable[[], list[Figure]]) -> list[Figure]:
        """The figures of ``step``, or one failed row: a failing step does not stop the rest."""
        try:
            return step()
        except HarnessError as exc:
            self.log(f"bench: {key} failed: {exc}")
            return [Figure(key, title, "s", error=str(exc))]

    def measure(self) -> list[Figure]:
        self.take_snapshot()
        ours, seed = self.sides()
        figures = self.attempt("P1", "rebuild and layers", lambda: self.rebuilds(ours, seed))
        if ours.tags and seed.tags:
            figures += self.attempt("P3", "start", lambda: self.start_to_ready(ours, seed))
            figures += self.attempt("P5", "API under load", lambda: self.api_load(ours))
        figures += self.attempt("P6", "environments", self.environments)
        if not self.options.skip_pipeline:
            figures += self.attempt("P4", "pipeline", self.pipeline)
        return figures


def parse_args(argv: Sequence[str]) -> Options:
    """``[INTERNAL... --] PUBLIC...``: nox passes its own settings before ``--``."""
    argv = list(argv)
    public = argv[argv.index("--") + 1 :] if "--" in argv else argv
    internal = argv[: argv.index("--")] if "--" in argv else []
    parser = argparse.ArgumentParser(
        prog="nox -s bench --",
        description="Measure P1-P6 on this machine; print the table, write bench/results.json "
        "and bench/RESULTS.md.",
    )
    defaults = Options()
    add = parser.add_argument
    add("--skip-pipeline", action="store_true", help="skip P4, the minutes-long nox pipeline")
    add("--runs", type=int, default=defaults.runs, help="P1 rebuilds per side (default 5)")
    add("--start-runs", type=int, default=defaults.start_runs, help="P3 starts per side (10)")
    add("--load-runs", type=int, default=defaults.load_runs, help="P5 load runs (default 3)")
    add("--load-seconds", type=float, default=defaults.load_seconds, help="per run (10)")
    add("--connections", type=int, default=defaults.connections, help="P5 connections (10)")
    add("--load-tool", choices=["auto", "wrk", "python"], default=defaults.load_tool)
    add("--env-runs", type=int, default=defaults.env_runs, help="P6 runs per backend (3)")
    add("--pipeline-runs", type=int, default=defaults.pipeline_runs, help="P4 runs (1)")
    add("--base-image", default=os.environ.get("DEATHSTAR_BASE_IMAGE", defaults.base_image))
    add("--output-dir", type=Path, default=defaults.output_dir, help="default: bench/")
    add("--nox-python", default=defaults.nox_python, help=argparse.SUPPRESS)
    add("--test-session", default=defaults.test_session, help=argparse.SUPPRESS)
    args = parser.parse_args([*internal, *public])
    counts = ("runs", "start_runs", "load_runs", "connections", "env_runs", "pipeline_runs")
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.load_seconds <= 0:
        parser.error("--load-seconds must be positive")
    command = "nox -s bench" + (f" -- {shlex.join(public)}" if public else "")
    return Options(**vars(args), command=command)


def main(argv: Sequence[str], *, runner: Runner = run_command, root: Path = ROOT) -> int:
    options = parse_args(argv)
    bench = Bench(options, root=root, runner=runner)
    started = time.perf_counter()
    try:
        try:
            version = bench.preflight()
            bench.log(f"bench: Docker engine {version}; working in {bench.work}")
            machine = bench.machine()
            figures = bench.measure()
        finally:
            bench.cleanup()
    except HarnessError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    doc = document(
        figures=figures,
        machine=machine,
        command=options.command,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        revision=gitinfo.revision(root),
        duration=time.perf_counter() - started,
        settings=options.settings(bench.load_tool()),
    )
    out = options.output_dir
    records.write_json(out / "results.json", doc)
    results_md = out / "RESULTS.md"
    existing = results_md.read_text(encoding="utf-8") if results_md.is_file() else None
    results_md.write_text(splice(existing, markdown(doc, figures)), encoding="utf-8")
    print()
    print(table(figures), end="")
    print(f"\nwrote {out / 'results.json'} and {results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
