"""The helpers of the measuring: build output, nox reports, the edits, machine facts, options."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import ROOT, HarnessError
from harness.bench import engine as bench_engine
from harness.bench import images, pipeline, report
from harness.bench import options as bench_options
from harness.bench.report import Figure


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


def test_session_times_from_a_nox_report(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    report_file.write_text(json.dumps({
        "result": 1,
        "sessions": [
            {"name": "lint", "result": "success", "duration": 5.123, "signatures": ["lint"]},
            {"name": "test", "result": "skipped", "duration": 12.04,
             "signatures": ["test-3.14", "test(python='3.14')"]},
            {"name": "build", "result": "success"},  # a nox without durations
            {"name": "integration", "result": "success", "duration": 61},
        ],
    }))  # fmt: skip
    times = pipeline.session_times(report_file)
    assert times == {
        "lint": 5.1,
        "test-3.14": "skipped after 12.0 s",
        "build": "success",
        "integration": 61,
    }
    assert pipeline.describe_times(times) == (
        "lint 5.1 s, test-3.14 skipped after 12.0 s, build success, integration 61 s"
    )
    assert pipeline.session_times(tmp_path / "none.json") == {}  # nox wrote no report


def test_published_port_from_docker_port() -> None:
    assert bench_engine.published_port("127.0.0.1:49153\n") == 49153
    # An engine that publishes on IPv6 too names it on a line of its own.
    assert bench_engine.published_port("127.0.0.1:49154\n[::1]:49154\n") == 49154
    with pytest.raises(HarnessError, match="no published port: ''"):
        bench_engine.published_port("")


def test_short_id() -> None:
    assert bench_engine.short_id("sha256:" + "ab" * 32) == "ab" * 6
    assert bench_engine.short_id("5ee1c0ffee00") == "5ee1c0ffee00"


def test_add_line_appends(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    source.write_text("x = 1\n")
    images.add_line(source, "# edit 1")
    assert source.read_text() == "x = 1\n# edit 1\n"
    source.write_text("x = 1")
    images.add_line(source, "# edit 2")
    assert source.read_text() == "x = 1\n# edit 2\n"


def test_add_line_first_keeps_the_module_docstring_and_its_shape(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    original = '"""The app."""\n\n\ndef f() -> None:\n    pass\n'
    source.write_text(original)
    images.add_line(source, "# edit 1", first=True)
    assert source.read_text() == "# edit 1\n" + original
    namespace: dict[str, object] = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)  # noqa: S102
    assert namespace["__doc__"] == "The app."  # a leading comment leaves the docstring first


def test_the_pipelines_edits_are_in_files_the_repository_has() -> None:
    edited = [edit for *_, edit in pipeline.PIPELINE if edit]
    assert edited == [images.EDITED, pipeline.EDITED_TEST]
    assert all((ROOT / path).is_file() for path in edited)
    assert pipeline.EDITED_TEST.parts[0] == "tests"  # P4.test edits a unit-test module


def test_outer_env_drops_the_sessions_venv_and_the_callers_shared_caches() -> None:
    environ = {"PATH": "/v/bin:/usr/bin::/bin", "VIRTUAL_ENV": "/v", "HOME": "/root",
               "UV_PYTHON": "/v", "UV_PROJECT_ENVIRONMENT": "/v",
               "DEATHSTAR_BUILD_CACHE": "ghcr.io/t/c", "DEATHSTAR_BUILD_CACHE_WRITE": "1",
               "DEATHSTAR_RESULTS_CACHE": "ghcr.io/t/r",
               "DEATHSTAR_RESULTS_CACHE_WRITE": "1"}  # fmt: skip
    assert pipeline.outer_env(environ, "/v") == {"PATH": "/usr/bin:/bin", "HOME": "/root"}


def test_machine_facts() -> None:
    assert report.cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert report.cpu_model("") is None
    facts = report.machine("26.1.5")
    assert facts["docker_version"] == "26.1.5"
    assert facts["cores"] == os.cpu_count()
    assert isinstance(facts["memory_bytes"], int)
    assert facts["memory_bytes"] > 0


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
    options = bench_options.parse_args(["--runs", "7", "--load-seconds", "2.5"])
    assert (options.runs, options.load_seconds) == (7, 2.5)
    assert options.command == "nox -s bench -- --runs 7 --load-seconds 2.5"


@pytest.mark.parametrize(
    "args", [["--runs", "0"], ["--load-seconds", "0"], ["--pipeline-runs", "-1"], ["--what"]]
)
def test_parse_args_refuses_nonsense(args: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench_options.parse_args(args)


def test_settings_say_what_ran() -> None:
    settings = bench_options.Options(skip_pipeline=True).settings()
    assert settings["P4 runs"] == 0
    assert settings["P5 connections"] == 10
    assert settings["seconds per P5 run"] == 10.0
    assert bench_options.Options().settings()["P4 runs"] == 1


def test_p7_and_p8_come_from_the_reused_pipelines_sessions() -> None:
    reused = Figure("P4.reuse", "again", "s")
    reused.details["sessions per run"] = [
        {"test-3.11": 11.0, "integration": 30.0},
        {"test-3.11": 13.0, "integration": "failed after 3.0 s"},
        {"test-3.11": 12.5},
    ]
    p8, p7 = pipeline.session_figures(reused, "test-3.11")
    assert (p8.key, p8.runs, p8.value, p8.error) == ("P8", [11.0, 13.0, 12.5], 12.5, "")
    assert p8.verdict is False  # 12.5 s is over the 12 s target
    assert "test-3.11" in p8.title
    assert (p7.key, p7.runs) == ("P7", [30.0])
    assert p7.error == "integration: failed after 3.0 s"
    assert p7.verdict is None


def test_a_timing_command_s_seconds_are_its_last_line() -> None:
    assert images.seconds_printed("a warning\n0.1875\n") == 0.1875


@pytest.mark.parametrize(
    "printed", ["", "Traceback ...\nImportError: no fastapi\n", "nan\n", "-inf\n", "-0.5\n"]
)
def test_a_timing_command_that_printed_no_number_is_a_failed_row(printed: str) -> None:
    with pytest.raises(HarnessError, match="expected a number of seconds"):
        images.seconds_printed(printed)
