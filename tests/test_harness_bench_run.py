"""python -m harness.bench against a stand-in engine, and the helpers of the measuring.

The stand-in (FakeEngine, a FakeDocker that remembers images and containers) answers the docker
commands the bench sends; its containers are small HTTP servers on 127.0.0.1. No timing is
asserted anywhere: figures depend on the machine.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.bench import __main__ as bench_main
from harness.bench import engine as bench_engine
from harness.bench import machine as bench_machine
from harness.bench import options as bench_options
from harness.bench import pipeline as bench_pipeline
from harness.bench import rebuild as bench_rebuild
from harness.core import process
from tests.fakedocker import FakeDocker
from tests.gitrepo import GIT_ENV, git
from tests.test_harness_bench_layers import save_archive
from tests.test_harness_bench_load import WRK_OUTPUT, Handler

# --- helpers of the measuring ----------------------------------------------------------------


def test_built_image_ids_reads_the_classic_builders_output() -> None:
    output = (
        "Step 1/9 : FROM python:3.11-slim-bookworm AS deps\n ---> 31ba6b2d6dfa\n"
        "Step 2/9 : RUN true\n ---> Running in 0123456789ab\n"
        "Removing intermediate container 0123456789ab\n ---> 5ee1c0ffee00\n"
        "Step 3/9 : COPY x y\n ---> Using cache\n ---> 31ba6b2d6dfa\n"
        "Successfully built 5ee1c0ffee00\nSuccessfully tagged deathstar-bench-ours:1\n"
    )
    assert bench_engine.built_image_ids(output) == ["31ba6b2d6dfa", "5ee1c0ffee00"]
    assert bench_engine.built_image_ids("#5 DONE 0.1s\n") == []


def test_session_times_from_a_nox_report() -> None:
    report = {
        "result": 1,
        "sessions": [
            {"name": "lint", "result": "success", "duration": 5.123, "signatures": ["lint"]},
            {
                "name": "test",
                "result": "skipped",
                "duration": 12.04,
                "signatures": ["test-3.14", "test(python='3.14')"],
            },
            {"name": "build", "result": "success"},  # a nox without durations
            {"name": "integration", "result": "success", "duration": 61},
        ],
    }
    times = bench_pipeline.session_times(report)
    assert times == {
        "lint": 5.1,
        "test-3.14": "skipped after 12.0 s",
        "build": "success",
        "integration": 61,
    }
    assert bench_pipeline.describe_times(times) == (
        "lint 5.1 s, test-3.14 skipped after 12.0 s, build success, integration 61 s"
    )
    assert bench_pipeline.session_times({}) == {}


def test_short_id() -> None:
    assert bench_engine.short_id("sha256:" + "ab" * 32) == "ab" * 6
    assert bench_engine.short_id("5ee1c0ffee00") == "5ee1c0ffee00"


def test_append_line(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    source.write_text("x = 1\n")
    bench_rebuild.append_line(source, "# edit 1")
    assert source.read_text() == "x = 1\n# edit 1\n"
    source.write_text("x = 1")
    bench_rebuild.append_line(source, "# edit 2")
    assert source.read_text() == "x = 1\n# edit 2\n"


def test_outer_env_drops_the_sessions_venv() -> None:
    environ = {"PATH": "/v/bin:/usr/bin::/bin", "VIRTUAL_ENV": "/v", "HOME": "/root"}
    assert bench_pipeline.outer_env(environ, "/v") == {"PATH": "/usr/bin:/bin", "HOME": "/root"}


def test_machine_facts_from_proc_files() -> None:
    meminfo = "MemTotal:       24683916 kB\nMemFree: 1 kB\n"
    assert bench_machine.read_meminfo(meminfo) == 24683916 * 1024
    assert bench_machine.read_meminfo("") is None
    cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n"
    assert bench_machine.read_cpu_model(cpuinfo) == "AMD EPYC 7B13"
    assert bench_machine.read_cpu_model("") is None
    os_release = 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
    assert bench_machine.read_os_name(os_release) == "Debian GNU/Linux 12 (bookworm)"
    assert bench_machine.read_os_name("PRETTY_NAME=Plain\n") == "Plain"
    assert bench_machine.read_os_name("") is None
    assert bench_machine._read("/nonexistent/file") == ""


def test_parse_args_defaults_and_the_recorded_command() -> None:
    options = bench_options.parse_args([])
    assert options == bench_options.Options(base_image=options.base_image)
    assert options.command == "nox -s bench"
    assert not options.skip_pipeline
    options = bench_options.parse_args(
        ["--nox-python", "/x/python", "--test-session", "test-3.12", "--", "--skip-pipeline"]
    )
    assert options.skip_pipeline
    assert options.nox_python == "/x/python"
    assert options.test_session == "test-3.12"
    assert options.command == "nox -s bench -- --skip-pipeline"
    assert bench_options.parse_args(["--runs", "7"]).command == "nox -s bench -- --runs 7"


@pytest.mark.parametrize("args", [["--runs", "0"], ["--load-seconds", "0"], ["--what"]])
def test_parse_args_refuses_nonsense(args: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench_options.parse_args(args)


def test_settings_say_what_ran() -> None:
    settings = bench_options.Options(skip_pipeline=True).settings("wrk")
    assert settings["P4 runs"] == 0
    assert settings["P5"].startswith("wrk, 10 connections, 3 x 10 s")


# --- the whole bench against a stand-in engine -----------------------------------------------

BASE = "python:3.11-slim-bookworm"


@dataclass
class Image:
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
    containers: dict[str, ThreadingHTTPServer] = field(default_factory=dict)
    count: int = 0

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
        if args[1:3] == ["-m", "build"]:
            assert cwd is not None
            assert env is not None
            assert "SOURCE_DATE_EPOCH" in env
            (cwd / "dist" / "deathstar-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
            return ""
        if args[1:4] == ["-m", "pip", "download"]:
            dest = Path(args[args.index("--dest") + 1])
            dest.mkdir(parents=True)
            (dest / "poetry_core-2.0-py3-none-any.whl").write_bytes(b"tool")
            return ""
        if args[1:3] == ["-m", "nox"]:
            return self.nox(args[3:], cwd)
        raise AssertionError(f"unexpected command {args}")

    def nox(self, args: list[str], cwd: Path | None) -> str:
        assert cwd is not None
        if "--install-only" in args:
            return "nox > Session test-3.11 was successful.\n"
        built = self.add_image(["deathstar:0.1.0"], extra=1)
        record = {
            "image_id": built.id, "tags": ["deathstar:0.1.0"], "version": "0.1.0",
            "commit": "c" * 40, "revision": "c" * 40, "base_image": BASE,
            "size": built.size, "base_size": 100_000_000,
        }  # fmt: skip
        (cwd / "dist").mkdir(exist_ok=True)
        (cwd / "dist" / "image.json").write_text(json.dumps(record))
        report = {"sessions": [{"name": "lint", "result": "success", "duration": 5.0}]}
        Path(args[args.index("--report") + 1]).write_text(json.dumps(report))
        return f" ---> {built.id[7:19]}\nSuccessfully built {built.id[7:19]}\n"

    def add_image(self, tags: list[str], extra: int) -> Image:
        self.count += 1
        layers = [*self.images[BASE].layers, *(f"sha256:{self.count}-{n}" for n in range(extra))]
        image = Image(f"sha256:{self.count:064x}", layers, 100_000_000 + 1000 * self.count)
        for ref in [image.id, *tags]:
            self.images[ref] = image
        return image

    def docker(self, args: list[str]) -> str:  # noqa: PLR0911 - one answer per command
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
            }
            return answers[args[3]] + "\n"
        if command == "build":
            tag = args[args.index("--tag") + 1]
            image = self.add_image([tag], extra=2 if "seed" in tag else 1)
            short = image.id[7:19]
            return f" ---> 31ba6b2d6dfa\n ---> {short}\nSuccessfully built {short}\n"
        if command == "save":
            image = self.images[args[-1]]
            contents = {layer: layer.encode() * 100 for layer in image.layers}
            save_archive(Path(args[args.index("--output") + 1]), contents)
            return ""
        if command == "run":
            port = int(args[args.index("--publish") + 1].split(":")[1])
            server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            cid = f"container{len(self.containers)}"
            self.containers[cid] = server
            return cid + "\n"
        if command == "rm":
            for cid in args[3:]:
                self.containers[cid].shutdown()
                self.containers[cid].server_close()
            return ""
        if command == "rmi":
            for ref in args[1:]:
                self.images.pop(ref, None)
            return ""
        if command == "tag":
            self.images[args[2]] = self.images[args[1]]
        return ""  # ps, tag


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "deathstar").mkdir(parents=True)
    (root / "deathstar" / "app.py").write_text("app = None\n")
    (root / "bench").mkdir()
    (root / "bench" / "seed-style.Dockerfile").write_text("FROM scratch\n")
    (root / ".dockerignore").write_text("*\n")
    (root / ".gitignore").write_text("/dist/\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "deathstar"\nversion = "0.1.0"\n'
        '[build-system]\nrequires = ["poetry-core>=2.0,<3"]\n'
    )
    (root / "dist" / "wheelhouse").mkdir(parents=True)
    (root / "dist" / "wheelhouse" / "fastapi-1-py3-none-any.whl").write_bytes(b"w" * 1000)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    (root / "untracked.txt").write_text("in the snapshot too\n")
    return root


QUICK = [
    "--runs", "2", "--start-runs", "1", "--load-runs", "1", "--load-seconds", "1",
    "--env-runs", "1", "--load-tool", "wrk",
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
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine()
    previous = Image("sha256:" + "9" * 64, ["sha256:base"], 1)
    engine.images["deathstar:0.1.0"] = engine.images[previous.id] = previous
    code, data = run_bench(project, engine)
    assert code == 0
    figures = {f["id"]: f for f in data["figures"]}
    assert list(figures) == [
        "P1a", "P1b", "P1b.raw", "P2", "P3", "P5", "P5.p50", "P5.p99", "P5.err", "P6", "P4",
        "P4.reuse",
    ]  # fmt: skip
    assert len(figures["P1a"]["runs"]) == len(figures["P1a"]["baseline"]["runs"]) == 2
    # one new layer per rebuild for ours, two for the seed: 100 copies of a 10-byte diff-id each
    assert figures["P1b.raw"]["runs"] == [1000, 1000]
    assert figures["P1b.raw"]["baseline"]["runs"] == [2000, 2000]
    # P1b is what a push sends: gzip of the same layers, far smaller than 100 repeated ids
    assert 0 < figures["P1b"]["runs"][0] < 1000
    assert figures["P1b"]["target"] is not None
    # the stand-in's n-th image is n kB over the base; the seed's minus its 1 kB wheelhouse
    assert figures["P2"]["runs"] == [3000, 5000]
    assert figures["P2"]["baseline"]["runs"] == [4000 - 1000, 6000 - 1000]
    assert figures["P5"]["value"] == 1530.12
    assert figures["P5.err"]["value"] == 7
    assert figures["P5.err"]["verdict"] == "miss"
    assert figures["P4"]["error"] == ""
    assert figures["P4"]["note"].endswith("; run 1: lint 5 s")
    assert figures["P4.reuse"]["details"] == {"sessions per run": [{"lint": 5.0}]}
    assert len(figures["P6"]["runs"]) == len(figures["P6"]["baseline"]["runs"]) == 1
    assert data["command"].startswith("nox -s bench -- --runs 2")
    assert data["machine"]["docker_version"] == "20.10.99"
    assert len(Handler.targets) == 100
    # the edits happened in clones, the checkout is untouched
    assert (project / "deathstar" / "app.py").read_text() == "app = None\n"
    # builds: ours via python -m build + docker build of ./Dockerfile, the seed offline too
    builds = [c for c in engine.docker_calls() if c[0] == "build"]
    assert all("--network" in c and c[c.index("--network") + 1] == "none" for c in builds)
    assert any("seed-style.Dockerfile" in " ".join(c) for c in builds)
    # nothing of the run is left: bench tags gone, the pipeline's tag points back
    assert not [ref for ref in engine.images if ref.startswith("deathstar-bench")]
    assert engine.images["deathstar:0.1.0"].id == "sha256:" + "9" * 64
    assert ["tag", "sha256:" + "9" * 64, "deathstar:0.1.0"] in engine.docker_calls()
    assert not [c for c in engine.docker_calls() if c[0] == "rmi" and "31ba6b2d6dfa" in c]
    markdown = (project / "out" / "RESULTS.md").read_text()
    assert markdown.startswith("# Benchmarks\n")
    assert "| P1a |" in markdown
    printed = capsys.readouterr().out
    assert "| P5.p99 |" in printed
    assert "wrote" in printed


def test_bench_keeps_going_when_steps_fail(project: Path) -> None:
    engine = FakeEngine(fail={"virtualenv", "docker build --network none --pull=false"})
    engine.fail.add("--no-error-on-missing-interpreters")
    code, data = run_bench(project, engine)
    assert code == 0
    figures = {f["id"]: f for f in data["figures"]}
    assert list(figures) == ["P1", "P6", "P4", "P4.reuse"]  # no images: no P3 and no P5
    assert "failed" in figures["P1"]["error"]
    assert "virtualenv backend failed: ERROR:" in figures["P6"]["note"]
    assert "failed" in figures["P4"]["error"]
    assert figures["P4.reuse"]["error"].startswith("not run")


def test_bench_reports_a_failing_uv_backend(project: Path) -> None:
    engine = FakeEngine(fail={"-db uv"})
    engine.fail.add("docker build")
    code, data = run_bench(project, engine, "--skip-pipeline")
    assert code == 0
    p6 = next(f for f in data["figures"] if f["id"] == "P6")
    assert p6["error"].startswith("the uv backend failed")
    assert not [f for f in data["figures"] if f["id"].startswith("P4")]


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
    assert run_bench(project, FakeEngine())[0] == 1
    assert "run `nox -s build` first" in capsys.readouterr().err


def test_cleanup_goes_on_when_a_step_fails(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(fail={"docker ps"})
    cleaner = bench_engine.Engine(engine)
    cleaner.tags = ["deathstar-bench-ours:1"]
    engine.images["deathstar-bench-ours:1"] = Image("sha256:1", [], 1)
    cleaner.cleanup()
    assert "cleanup of containers incomplete" in capsys.readouterr().out
    assert "deathstar-bench-ours:1" not in engine.images
    assert not cleaner.work.exists()
