"""python -m harness.bench against a stand-in engine: every step, the refusals, the cleanup.

The stand-in (FakeEngine, a FakeDocker that remembers images and containers) answers the docker
commands the bench sends; its containers are small HTTP servers on 127.0.0.1. No timing is
asserted anywhere: figures depend on the machine.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.bench import __main__ as bench_main
from harness.bench import engine as bench_engine
from harness.bench import images, pipeline
from harness.bench.images import BARE_SERVER, FRAMEWORK_IMPORT
from harness.core import git as gitinfo
from harness.core import process
from harness.image import wheelhouse
from harness.image.build import BuildPlan
from harness.stage import stage
from tests import serving
from tests.archives import save_archive
from tests.fakedocker import FakeDocker
from tests.gitrepo import EPOCH, GIT_ENV, git
from tests.test_harness_bench_load import WRK_OUTPUT, Handler
from tests.test_harness_stage import make_wheel

BASE = "python:3.11-slim-bookworm"


@dataclass
class Image:
    """An image of the stand-in engine: its ID, its layers' diff-ids, its size."""

    id: str
    layers: list[str]
    size: int


@dataclass(kw_only=True)
class FakeEngine(FakeDocker):
    """The FakeDocker of a bench run: it remembers images and containers; git runs for real.

    A command that contains one of the words in ``fail`` fails, whatever it is.
    """

    fail: set[str] = field(default_factory=set)
    images: dict[str, Image] = field(default_factory=dict)
    containers: dict[str, tuple[ThreadingHTTPServer, threading.Thread]] = field(
        default_factory=dict
    )
    count: int = 0
    heads: list[str] = field(default_factory=list)  # the commits the pipeline ran at
    staged: list[tuple[str, bool]] = field(default_factory=list)  # build tag, dist/staging?
    sources: list[tuple[str, str]] = field(default_factory=list)  # edited files, per pipeline
    floor_runs: list[tuple[list[str], Path]] = field(default_factory=list)  # nox args, where
    caches: list[str] = field(default_factory=list)  # each nox's result cache: a dir or "off"
    broken_passes: bool = False  # nox passes although /healthz answers 500 (P4.break's miss)
    shared: list[tuple[str, str]] = field(default_factory=list)  # P10's runs: side, registry
    stat: Path | None = None  # a /proc/stat whose busy ticks each nox run advances

    def spend_cpu(self, ticks: int) -> None:
        if self.stat is not None:
            busy = pipeline.busy_ticks(self.stat.read_text()) + ticks
            self.stat.write_text(f"cpu  {busy} 0 0 0 0 0 0 0 0 0\n")

    def __post_init__(self) -> None:
        self.images[BASE] = Image("sha256:31ba6b2d6dfa" + "0" * 52, ["sha256:base"], 100_000_000)
        Handler.targets = []

    def answer(self, args: list[str], *, cwd: Path | None, env: Mapping[str, str] | None) -> str:
        what = " ".join(args)
        if any(word in what for word in self.fail):
            raise process.CommandError(f"`{what}` failed", f"ERROR: {what} failed\n", 1)
        if args[0] == "git":  # for real, but away from the developer's git configuration
            return process.run(args, cwd=cwd, env={**GIT_ENV, **(env or {})})
        if args[0] == "docker":
            return self.docker(args[1:])
        if args[0] == "wrk":
            return WRK_OUTPUT
        if args[:2] == ["uv", "build"] or args[1:3] == ["-m", "harness.stage"]:
            return self.project(args, cwd, env)
        if args[1:4] == ["-m", "pip", "download"]:
            dest = Path(args[args.index("--dest") + 1])
            dest.mkdir(parents=True, exist_ok=True)
            (dest / "poetry_core-2.0-py3-none-any.whl").write_bytes(b"tool")
            return ""
        if args[1:3] == ["-m", "nox"]:
            assert env is not None
            return self.nox(args[3:], cwd, env)
        raise AssertionError(f"unexpected command {args}")

    def project(self, args: list[str], cwd: Path | None, env: Mapping[str, str] | None) -> str:
        """The wheel (a real one) and its staging (for real, confined to the clone's dist/)."""
        assert cwd is not None
        if args[:2] == ["uv", "build"]:
            assert env is not None
            assert "SOURCE_DATE_EPOCH" in env
            make_wheel(cwd / args[args.index("--out-dir") + 1])
        else:
            stage(cwd / args[3], cwd / args[4], within=cwd / "dist")
        return ""

    def shared_nox(self, env: Mapping[str, str]) -> str:
        """CI's run pushes its passes; a fresh clone's run finds them in the registry."""
        writes = env.get("DEATHSTAR_RESULTS_CACHE_WRITE") == "1"
        self.shared.append(("CI" if writes else "reader", env["DEATHSTAR_RESULTS_CACHE"]))
        sessions = ("lint", "test-3.11")
        hit = "" if writes else "nox > {0}: cached pass from CI run 1, 2026-12-04 21:10 (key a…)\n"
        return "".join(f"{hit}nox > Session {{0}} was successful.\n".format(s) for s in sessions)

    def nox(self, args: list[str], cwd: Path | None, env: Mapping[str, str]) -> str:
        assert cwd is not None
        if args[:3] == ["-s", "lint", "test"]:  # P10: lint and the unit tests, shared results
            return self.shared_nox(env)
        off = env.get("DEATHSTAR_CACHE") == "off"
        self.caches.append("off" if off else env["DEATHSTAR_CACHE_DIR"])
        if "--install-only" in args:
            return "nox > Session test-3.11 was successful.\n"
        report = Path(args[args.index("--report") + 1])
        if "-s" in args:  # a session again, alone, for its CPU floor
            assert pipeline.UNHEALTHY not in (cwd / pipeline.BROKEN).read_text()  # P4.break undone
            session = args[args.index("-s") + 1]
            self.floor_runs.append((args[: args.index("--report")], cwd))
            self.spend_cpu(FLOOR_TICKS[session])
            entry = {"name": session, "result": "success", "duration": 2.0}
            report.write_text(json.dumps({"sessions": [entry]}))
            return ""
        if pipeline.UNHEALTHY in (cwd / pipeline.BROKEN).read_text():  # P4.break
            result = "success" if self.broken_passes else "failed"
            ran = [{"name": name, "result": result, "duration": 1.0}
                   for name in ("lint", "test-3.11", "integration")]  # fmt: skip
            report.write_text(json.dumps({"sessions": ran}))
            if not self.broken_passes:
                raise process.CommandError("nox failed", "nox > Session test-3.11 failed.\n", 1)
            return ""
        self.spend_cpu(PIPELINE_TICKS)
        edited = ("deathstar/app.py", "tests/test_config.py")
        self.sources.append(tuple((cwd / name).read_text() for name in edited))  # type: ignore[arg-type]
        # The tags `nox -s image` gives in this clone: the version and the clone's commit.
        commit = process.run(["git", "rev-parse", "HEAD"], cwd=cwd, env=GIT_ENV).strip()
        self.heads.append(commit)
        tags = ["deathstar:0.1.0", f"deathstar:sha-{commit[:7]}"]
        built = self.add_image(tags, extra=1)
        record = {
            "image_id": built.id, "tags": tags, "version": "0.1.0",
            "commit": commit, "revision": commit, "base_image": BASE,
            "size": built.size, "base_size": 100_000_000, "config_digest": built.id,
            "diff_ids": built.layers, "base_digest": "", "builder": "", "reproducible": True,
        }  # fmt: skip
        (cwd / "dist").mkdir(exist_ok=True)
        (cwd / "dist" / "image.json").write_text(json.dumps(record))
        sessions = {"sessions": [{"name": "lint", "result": "success", "duration": 5.0}]}
        report.write_text(json.dumps(sessions))
        return f" ---> {built.id[7:19]}\nSuccessfully built {built.id[7:19]}\n"

    def add_image(self, tags: list[str], extra: int) -> Image:
        self.count += 1
        layers = [*self.images[BASE].layers, *(f"sha256:{self.count}-{n}" for n in range(extra))]
        image = Image(f"sha256:{self.count:064x}", layers, 100_000_000 + 1000 * self.count)
        for ref in [image.id, *tags]:
            self.images[ref] = image
        return image

    def run(self, args: list[str]) -> str:
        if "--rm" in args:  # the framework's import, timed in the image
            return "0.125\n"
        # The engine picks the host port (`127.0.0.1::8080`); `docker port` names it.
        assert args[args.index("--publish") + 1] == f"127.0.0.1::{bench_engine.PORT}"
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        cid = f"container{len(self.containers)}"
        self.containers[cid] = (server, serving.start(server))
        return cid + "\n"

    def docker(self, args: list[str]) -> str:  # noqa: PLR0911, PLR0912 - one answer per command
        command = args[0]
        if command == "version":
            return "20.10.99\n"
        if command == "images":
            return self.images[BASE].id + "\n"
        if command == "image":
            ref = args[-1]
            if ref not in self.images:
                raise process.CommandError(f"no such image {ref}", "", 1)
            image = self.images[ref]
            answers = {
                "{{.Id}}": image.id,
                "{{.Size}}": str(image.size),
                "{{json .RootFS.Layers}}": json.dumps(image.layers),
                "{{json .RepoDigests}}": "[]",  # a base built here, not pulled
                "{{json .Config.Labels}}": "null",
                "{{json .RootFS.Layers}}\t{{json .Config.Labels}}\t{{.Size}}": (
                    f"{json.dumps(image.layers)}\tnull\t{image.size}"
                ),
            }
            return answers[args[3]] + "\n"
        if command == "build":
            tag = args[args.index("--tag") + 1]
            self.staged.append((tag, (Path(args[-1]) / "dist" / "staging").is_dir()))
            image = self.add_image([tag], extra=2 if "seed" in tag else 1)
            short = image.id[7:19]
            return f" ---> 31ba6b2d6dfa\n ---> {short}\nSuccessfully built {short}\n"
        if command == "save":
            image = self.images[args[-1]]
            contents = {layer: layer.encode() * 100 for layer in image.layers}
            save_archive(Path(args[args.index("--output") + 1]), contents)
            return ""
        if command == "run":
            return self.run(args)
        if command == "port":
            assert args[2] == f"{bench_engine.PORT}/tcp"
            server, _ = self.containers[args[1]]
            return f"127.0.0.1:{server.server_address[1]}\n"
        if command == "rm":
            for cid in args[3:]:
                serving.stop(*self.containers[cid])
            return ""
        if command == "rmi":
            for ref in args[1:]:
                self.images.pop(ref, None)
            return ""
        if command == "tag":
            self.images[args[2]] = self.images[args[1]]
        return ""  # ps, tag


def download_fastapi(command: Sequence[str]) -> None:
    """`nox -s build`'s download, standing in: one 1 kB wheel into --dest."""
    dest = Path(command[list(command).index("--dest") + 1])
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "fastapi-1-py3-none-any.whl").write_bytes(b"w" * 1000)


@pytest.fixture(autouse=True)
def wrk_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in engine answers wrk's command; the machine need not have wrk. It starts no
    second engine either: P9 (tests/test_harness_bench_cache.py) says it was not measured."""
    monkeypatch.setattr(images, "wrk_missing", lambda: "")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "deathstar").mkdir(parents=True)
    (root / "deathstar" / "app.py").write_text("app = None\n")
    (root / "deathstar" / "routes").mkdir()
    (root / "deathstar" / "routes" / "ops.py").write_text(
        f"def healthz():\n    {pipeline.HEALTHY}\n"
    )
    (root / "tests").mkdir()
    (root / "tests" / "test_config.py").write_text("def test() -> None: ...\n")
    (root / "bench").mkdir()
    (root / "bench" / "seed-style.Dockerfile").write_text("FROM scratch\n")
    (root / ".dockerignore").write_text("*\n")
    (root / ".gitignore").write_text("/dist/\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "deathstar"\nversion = "0.1.0"\n'
        '[build-system]\nrequires = ["poetry-core>=2.0,<3"]\n'
    )
    (root / "requirements").mkdir()
    (root / "requirements" / "runtime.txt").write_text("fastapi==1 --hash=sha256:00\n")
    wheelhouse.refresh(root / "requirements" / "runtime.txt", root / "dist", download_fastapi)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    (root / "untracked.txt").write_text("in the snapshot too\n")
    return root


# The busy ticks the stand-in nox spends: each pipeline run, and each session run alone.
PIPELINE_TICKS = 30_000
FLOOR_TICKS = {"test-3.11": 1_500, "integration": 2_500}

QUICK = [
    "--runs", "2", "--start-runs", "1", "--load-runs", "1", "--load-seconds", "1",
    "--env-runs", "1",
]  # fmt: skip


def run_bench(project: Path, engine: FakeEngine, *args: str) -> tuple[int, dict[str, Any]]:
    out = project / "out"
    code = bench_main.main(
        ["--nox-python", sys.executable, "--", *QUICK, "--output-dir", str(out), *args],
        runner=engine,
        root=project,
    )
    data = json.loads((out / "results.json").read_text()) if code == 0 else {}
    return code, data


def test_bench_measures_everything_and_cleans_up(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = FakeEngine(stat=project.parent / "stat")
    engine.stat.write_text("cpu  1000 0 0 50000 0 0 0 0 0 0\n")  # type: ignore[union-attr]
    monkeypatch.setattr(pipeline, "PROC_STAT", engine.stat)
    previous = Image("sha256:" + "9" * 64, ["sha256:base"], 1)
    engine.images["deathstar:0.1.0"] = engine.images[previous.id] = previous
    code, data = run_bench(project, engine)
    assert code == 0
    figures = {f["key"]: f for f in data["figures"]}
    assert list(figures) == [
        "P1a", "P1b", "P1b.raw", "P2", "P3", "P3.floor", "P3.framework", "P5", "P5.p50",
        "P5.p99", "P5.err", "P6", "P4", "P4.floor", "P4.reuse", "P4.edit", "P4.edit.floor",
        "P4.test", "P4.break", "P8", "P8.floor", "P7", "P7.floor", "P9", "P10", "P11",
    ]  # fmt: skip
    assert_pipeline_edited_last(engine)
    assert_start_decomposed(engine, figures)
    # The stand-in pipeline runs lint only: no unit suite and no integration to time.
    assert_break_and_caches(engine, figures)
    assert figures["P4"]["error"] == ""
    assert figures["P4"]["note"] == "run 1: lint 5 s"
    assert figures["P4.reuse"]["details"]["sessions per run"] == [{"lint": 5.0}]
    assert len(figures["P1a"]["runs"]) == len(figures["P1a"]["baseline_runs"]) == 2
    # one new layer per rebuild for ours, two for the seed: 100 copies of a 10-byte diff-id each
    assert figures["P1b.raw"]["runs"] == [1000, 1000]
    assert figures["P1b.raw"]["baseline_runs"] == [2000, 2000]
    # P1b is what a push sends: gzip of the same layers, far smaller than 100 repeated ids
    assert 0 < figures["P1b"]["runs"][0] < 1000
    assert_targets(figures)
    # the stand-in's n-th image is n kB over the base; the seed's minus its 1 kB wheelhouse
    assert figures["P2"]["runs"] == [3000, 5000]
    assert figures["P2"]["baseline_runs"] == [4000 - 1000, 6000 - 1000]
    assert figures["P5"]["value"] == 1530.12
    assert figures["P5.err"]["value"] == 7
    assert figures["P5.err"]["verdict"] == "miss"
    assert_cpu_floors(engine, project, figures)
    assert len(figures["P6"]["runs"]) == len(figures["P6"]["baseline_runs"]) == 1
    assert data["command"].startswith("nox -s bench -- --runs 2")
    assert data["machine"]["docker_version"] == "20.10.99"
    assert len(Handler.targets) == 100
    # the edits happened in clones, the checkout is untouched
    assert (project / "deathstar" / "app.py").read_text() == "app = None\n"
    # builds: ours via uv build + docker build of ./Dockerfile, the seed too
    builds = [c for c in engine.docker_calls() if c[0] == "build"]
    assert all(c[:4] == ["build", "--network", "none", "--pull=false"] for c in builds)
    seed = [c for c in builds if "seed-style.Dockerfile" in " ".join(c)]
    assert len(seed) == 3  # the untimed first build and two runs
    ours = [c for c in builds if c not in seed]
    assert len(ours) == 3
    # the plan `nox -s image` makes in a clean clone of the snapshot, with the bench's tag
    assert len(set(engine.heads)) == 1
    plan = BuildPlan(
        version="0.1.0", commit=engine.heads[0], dirty=False, epoch=EPOCH, base_image=BASE,
        base_digest=engine.images[BASE].id,  # pinned, as `nox -s image` pins it
    )  # fmt: skip
    for n, command in enumerate(ours):
        assert ["docker", *command] == plan.build_command(
            Path(command[-1]), [f"deathstar-bench-ours:{n}"]
        )
    wheels = [c for c in engine.calls if c.args[:2] == ["uv", "build"]]
    assert len(wheels) == 3
    assert all(c.env is not None and c.env["SOURCE_DATE_EPOCH"] == str(EPOCH) for c in wheels)
    assert_nothing_left(engine, previous)
    markdown = (project / "out" / "RESULTS.md").read_text()
    assert markdown.startswith("# Benchmarks\n")
    assert "| P1a |" in markdown
    printed = capsys.readouterr().out
    assert "| P5.p99 |" in printed
    assert "wrote" in printed


def test_ours_stages_the_wheel_before_each_docker_build(project: Path) -> None:
    engine = FakeEngine()
    code, _ = run_bench(project, engine, "--runs", "1", "--skip-pipeline")
    assert code == 0
    # ours: wheel, then its staging into dist/staging (as `nox -s build`), then docker build
    steps = [
        c.args[2] if c.args[1] == "-m" else " ".join(c.args[:2])
        for c in engine.calls
        if (c.args[1] in ("-m", "build") and c.cwd is not None and c.cwd.name == "ours")
        or (c.args[:2] == ["docker", "build"] and Path(c.args[-1]).name == "ours")
    ]
    assert steps == ["uv build", "harness.stage", "docker build"] * 2
    staging = next(c.args for c in engine.calls if c.args[1:3] == ["-m", "harness.stage"])
    assert staging[3:] == ["dist/deathstar-0.1.0-py3-none-any.whl", "dist/staging"]
    # ours built from a context with the staged project; the seed's never staged anything
    assert engine.staged == [
        ("deathstar-bench-ours:0", True), ("deathstar-bench-seed:0", False),
        ("deathstar-bench-ours:1", True), ("deathstar-bench-seed:1", False),
    ]  # fmt: skip


def assert_targets(figures: dict[str, Any]) -> None:
    """Issue 21's targets for the pipeline's rows, and P1b's push budget."""
    keys = ("P1b", "P4.reuse", "P4.edit", "P4.test")
    assert [figures[key]["target"] for key in keys] == [
        "≤ 20.0 kB",
        "≤ 5.00 s",
        "≤ 45.00 s",
        "≤ 12.00 s",
    ]


def assert_nothing_left(engine: FakeEngine, previous: Image) -> None:
    """Bench tags gone, the pipeline's tags point back or are gone, the base image kept."""
    assert not [ref for ref in engine.images if ref.startswith("deathstar:sha-")]
    assert not [ref for ref in engine.images if ref.startswith("deathstar-bench")]
    assert engine.images["deathstar:0.1.0"].id == previous.id
    assert ["tag", previous.id, "deathstar:0.1.0"] in engine.docker_calls()
    assert not [c for c in engine.docker_calls() if c[0] == "rmi" and "31ba6b2d6dfa" in c]


def assert_start_decomposed(engine: FakeEngine, figures: dict[str, Any]) -> None:
    """P3 beside the same start without our code, and the framework's import, in our image."""
    runs = [c for c in engine.docker_calls() if c[0] == "run"]
    # P3 itself: one start of each side, each its own image, with its own entrypoint
    plain = [c for c in runs if "--entrypoint" not in c and "--rm" not in c]
    image = plain[0][-1]
    assert image.startswith("deathstar-bench-ours")
    assert plain[1][-1].startswith("deathstar-bench-seed")
    bare = [c for c in runs if "--entrypoint" in c and "--publish" in c and "registry:2" not in c]
    assert len(bare) == 1
    assert bare[0][bare[0].index("--entrypoint") :][:2] == ["--entrypoint", "python"]
    assert bare[0][bare[0].index("python") + 1 :] == [image, *BARE_SERVER[1:]]
    timed = [c for c in runs if "--rm" in c]
    assert len(timed) == 1
    assert timed[0][:4] == ["run", "--rm", "--network", "none"]  # nothing to reach from it
    assert timed[0][-3:] == [image, *FRAMEWORK_IMPORT[1:]]
    assert figures["P3.framework"]["runs"] == [0.125]
    assert len(figures["P3.floor"]["runs"]) == 1
    assert figures["P3.floor"]["target"] == ""


def test_a_share_of_p3_that_fails_is_its_own_failed_row(project: Path) -> None:
    engine = FakeEngine(fail={"run --rm"})
    code, data = run_bench(project, engine, "--runs", "1", "--skip-pipeline")
    assert code == 0
    figures = {f["key"]: f for f in data["figures"]}
    assert figures["P3.framework"]["error"].endswith("failed")
    assert figures["P3.framework"]["runs"] == []
    assert figures["P3"]["error"] == figures["P3.floor"]["error"] == ""
    assert len(figures["P3"]["runs"]) == len(figures["P3"]["baseline_runs"]) == 1


def assert_shared_results(engine: FakeEngine, figures: dict[str, Any]) -> None:
    """P10: CI's run then a fresh clone's, against one loopback registry; every session a hit."""
    assert [side for side, _ in engine.shared] == ["CI", "reader"]
    assert engine.shared[0][1].startswith("127.0.0.1:")
    assert engine.shared[0][1] == engine.shared[1][1]
    assert figures["P10"]["error"] == ""
    assert len(figures["P10"]["runs"]) == len(figures["P10"]["baseline_runs"]) == 1


def assert_break_and_caches(engine: FakeEngine, figures: dict[str, Any]) -> None:
    """/healthz made to answer 500 failed the unit tests and integration: the row passes. Each
    pipeline run has an empty result cache of its own; every other nox runs with it off."""
    assert figures["P4.break"]["runs"] == [1.0]
    assert figures["P4.break"]["verdict"] == "pass"
    assert_shared_results(engine, figures)
    assert figures["P8"]["error"] == "the fresh pipeline ran no test-3.11 session"
    pipeline_caches = [c for c in engine.caches if c != "off"]
    assert len(pipeline_caches) == 5
    assert len(set(pipeline_caches)) == 1
    assert pipeline_caches[0].endswith("results-cache-1")
    assert engine.caches.count("off") == len(engine.caches) - 5


def assert_cpu_floors(engine: FakeEngine, project: Path, figures: dict[str, Any]) -> None:
    """The fresh and edited pipelines' CPU is counted; test-3.11 and integration run again,
    alone."""
    seconds = os.sysconf("SC_CLK_TCK")
    cores = os.cpu_count()
    assert cores is not None
    (counted,) = figures["P4"]["details"]["cpu per run"]
    assert counted["cores"] == cores
    assert counted["cpu"] == pytest.approx(PIPELINE_TICKS / seconds)
    assert figures["P4.floor"]["runs"] == [pytest.approx(PIPELINE_TICKS / seconds / cores)]
    for key, session in (("P8.floor", "test-3.11"), ("P7.floor", "integration")):
        assert figures[key]["runs"] == [pytest.approx(FLOOR_TICKS[session] / seconds / cores)]
        assert f"(sessions: {session} 2 s)" in figures[key]["note"]
    assert [args for args, _ in engine.floor_runs] == [
        ["-s", "test-3.11", "-R"],
        ["-s", "integration", "-R", "--no-dependencies"],
    ]
    assert all(cwd.name == "pipeline" for _, cwd in engine.floor_runs)
    assert figures["P4.edit.floor"]["runs"] == figures["P4.floor"]["runs"]
    assert "(sessions: lint 5 s)" in figures["P4.edit.floor"]["note"]
    for key in ("P4.floor", "P4.edit.floor", "P8.floor", "P7.floor"):
        assert figures[key]["error"] == ""
    alone = "CPU time of `nox -s integration -R --no-dependencies` ÷ the cores"
    assert figures["P7.floor"]["title"] == alone


def assert_pipeline_edited_last(engine: FakeEngine) -> None:
    """nox ran in a fresh clone, again in it, after the source edit, then after the test edit
    (neither committed)."""
    app, test = "app = None\n", "def test() -> None: ...\n"
    edit = "# bench pipeline edit 1\n"
    assert engine.sources == [
        (app, test),
        (app, test),
        (edit + app, test),
        (edit + app, edit + test),
    ]
    assert len(set(engine.heads)) == 1


def test_bench_keeps_going_when_steps_fail(project: Path) -> None:
    engine = FakeEngine(fail={"virtualenv", "docker build --network none --pull=false"})
    engine.fail.add("--no-error-on-missing-interpreters")
    code, data = run_bench(project, engine)
    assert code == 0
    figures = {f["key"]: f for f in data["figures"]}
    # no P3 or P5: no images
    assert list(figures) == [
        "P1", "P6", "P4", "P4.reuse", "P4.edit", "P4.test", "P4.break", "P9", "P10", "P11",
    ]  # fmt: skip
    assert "failed" in figures["P1"]["error"]
    assert "virtualenv backend failed: ERROR:" in figures["P6"]["note"]
    assert "failed" in figures["P4"]["error"]
    assert figures["P4.reuse"]["error"] == "not run: the pipeline failed in P4"
    assert figures["P4.edit"]["error"] == "not run: the pipeline failed in P4"
    assert figures["P4.test"]["error"] == "not run: the pipeline failed in P4"
    assert figures["P4.break"]["error"] == "not run: the pipeline failed in P4"


def test_a_pipeline_that_passes_with_healthz_broken_fails_its_row(project: Path) -> None:
    engine = FakeEngine(broken_passes=True)
    code, data = run_bench(project, engine)
    assert code == 0
    figures = {f["key"]: f for f in data["figures"]}
    assert figures["P4.break"]["error"] == "nox passed with /healthz answering 500"
    assert figures["P4.break"]["verdict"] is None


def test_a_floor_run_that_fails_is_its_own_failed_row(project: Path) -> None:
    engine = FakeEngine(fail={"--no-dependencies"})
    code, data = run_bench(project, engine)
    assert code == 0
    figures = {f["key"]: f for f in data["figures"]}
    assert figures["P7.floor"]["error"].startswith(
        "`nox -s integration -R --no-dependencies` failed: "
    )
    assert figures["P8.floor"]["error"] == figures["P4.floor"]["error"] == ""


def test_without_proc_stat_the_floors_say_so(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pipeline, "PROC_STAT", tmp_path / "no-proc-stat")
    engine = FakeEngine()
    code, data = run_bench(project, engine)
    assert code == 0
    figures = {f["key"]: f for f in data["figures"]}
    for key in ("P4.floor", "P8.floor", "P7.floor"):
        assert figures[key]["error"] == "no CPU count: /proc/stat is not readable on this machine"
    assert engine.floor_runs == []
    assert figures["P4.reuse"]["error"] == ""


def test_bench_reports_a_failing_uv_backend(project: Path) -> None:
    engine = FakeEngine(fail={"-db uv"})
    engine.fail.add("docker build")
    code, data = run_bench(project, engine, "--skip-pipeline")
    assert code == 0
    p6 = next(f for f in data["figures"] if f["key"] == "P6")
    assert p6["error"].startswith("the uv backend failed")
    assert not [f for f in data["figures"] if f["key"].startswith("P4")]


def test_bench_refuses_without_engine_base_image_or_wheelhouse(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_bench(project, FakeEngine(fail={"docker version"}))[0] == 1
    assert "no Docker engine answers" in capsys.readouterr().err
    engine = FakeEngine()
    del engine.images[BASE]
    assert run_bench(project, engine)[0] == 1
    assert f"the base image {BASE} is missing" in capsys.readouterr().err
    (project / "bench" / "seed-style.Dockerfile").unlink()
    assert run_bench(project, FakeEngine())[0] == 1
    assert "seed-style.Dockerfile is missing" in capsys.readouterr().err
    for wheel in (project / "dist" / "wheelhouse").iterdir():
        wheel.unlink()
    engine = FakeEngine()
    assert run_bench(project, engine)[0] == 1  # the seed-style Dockerfile is still missing
    assert f"bench: downloaded 1 wheels into {project / 'dist' / 'wheelhouse'}" in (
        capsys.readouterr().out
    )
    # A fresh clone fills the wheelhouse itself, as `nox -s build` would.
    download = next(c.args for c in engine.calls if c.args[1:4] == ["-m", "pip", "download"])
    assert download[-2:] == ["--dest", str(project / "dist" / "wheelhouse")]
    assert any((project / "dist" / "wheelhouse").glob("*.whl"))
    assert "--require-hashes" in download


def test_cleanup_goes_on_when_a_step_fails(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(fail={"docker ps"})
    cleaner = bench_engine.Engine(engine, project)
    cleaner.tags = ["deathstar-bench-ours:1"]
    engine.images["deathstar-bench-ours:1"] = Image("sha256:1", [], 1)
    cleaner.cleanup()
    assert "cleanup of containers incomplete" in capsys.readouterr().out
    assert "deathstar-bench-ours:1" not in engine.images
    assert not cleaner.work.exists()


def test_bench_removes_a_tag_the_pipeline_made(project: Path) -> None:
    engine = FakeEngine()
    code, _ = run_bench(project, engine, "--runs", "1")
    assert code == 0
    assert "deathstar:0.1.0" not in engine.images
    assert ["rmi", "deathstar:0.1.0"] in engine.docker_calls()


def test_cleanup_removes_containers_and_tries_every_image(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    engine = FakeEngine(
        rules=[
            (["ps"], "container7 container8", 0),
            (["rm"], "", 0),
            (["rmi", "deathstar-bench-ours:1"], "Error: image is being used", 1),
        ]
    )
    cleaner = bench_engine.Engine(engine, tmp_path)
    cleaner.tags = ["deathstar-bench-ours:1", "deathstar-bench-ours:2"]
    for tag in cleaner.tags:
        engine.images[tag] = Image("sha256:1", [], 1)
    cleaner.track(" ---> 31ba6b2d6dfa\n ---> 5ee1c0ffee00\nSuccessfully built 5ee1c0ffee00\n")
    cleaner.preexisting = {"31ba6b2d6dfa"}
    cleaner.cleanup()
    assert capsys.readouterr().out == ""
    calls = engine.docker_calls()
    assert ["rm", "--force", "--volumes", "container7", "container8"] in calls
    assert [c for c in calls if c[0] == "rmi"] == [
        ["rmi", "deathstar-bench-ours:1"],
        ["rmi", "deathstar-bench-ours:2"],
        ["rmi", "5ee1c0ffee00"],
    ]
    assert not cleaner.work.exists()


def test_without_wrk_p5_is_a_row_that_says_it_was_not_measured(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "wrk_missing", lambda: images.NOT_MEASURED)
    engine = FakeEngine()
    code, data = run_bench(project, engine, "--runs", "1", "--skip-pipeline")
    assert code == 0
    (p5,) = [f for f in data["figures"] if f["key"].startswith("P5")]
    assert p5["error"] == images.NOT_MEASURED
    assert not [c for c in engine.calls if c.args[0] == "wrk"]


@dataclass(kw_only=True)
class CommitsMeanwhile(FakeEngine):
    """A stand-in engine whose first build sees the developer commit in the checkout."""

    checkout: Path

    def docker(self, args: list[str]) -> str:
        if args[0] == "build" and len(git(self.checkout, "log", "--oneline").splitlines()) == 1:
            (self.checkout / "later.txt").write_text("committed while the bench ran\n")
            git(self.checkout, "add", "later.txt")
            git(self.checkout, "commit", "-qm", "meanwhile")
        return super().docker(args)


def test_the_revision_is_the_snapshots_not_the_checkouts_at_the_end(project: Path) -> None:
    snapshot = gitinfo.revision(project)
    code, data = run_bench(project, CommitsMeanwhile(checkout=project), "--skip-pipeline")
    assert code == 0
    assert gitinfo.revision(project) != snapshot  # the checkout moved on while the bench ran
    assert data["revision"] == snapshot
