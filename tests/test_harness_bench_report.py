"""harness.bench.report: targets and verdicts, figures, the table, the JSON and the Markdown."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.bench import report as bench_report
from harness.bench.report import Figure


def test_limits_and_the_baseline() -> None:
    def verdict(value: float, baseline: float | None, **targets: float) -> bool | None:
        fig = Figure("X", "x", "s", runs=[value], baseline_name="seed", **targets)  # type: ignore[arg-type]
        fig.baseline_runs = [] if baseline is None else [baseline]
        return fig.verdict

    assert verdict(3.0, 5.0, at_most=4.0, at_most_ratio=1) is True
    assert verdict(3.0, 2.0, at_most=4.0, at_most_ratio=1) is False  # slower than the baseline
    assert verdict(4.5, 9.0, at_most=4.0, at_most_ratio=1) is False
    assert verdict(1600, None, at_least=1500) is True
    assert verdict(1400, None, at_least=1500) is False
    assert verdict(1.2, 2.0, at_most=4.0, at_most_ratio=0.6) is True
    assert verdict(1.3, 2.0, at_most=4.0, at_most_ratio=0.6) is False  # under 4 s, but 0.65x
    assert verdict(5.0, 10.0, at_most=4.0, at_most_ratio=0.6) is False  # 0.5x, but over 4 s
    assert verdict(1.0, None, at_most_ratio=0.6) is False  # a ratio needs its baseline
    assert verdict(1.0, 0.0, at_most_ratio=0.6) is False
    assert verdict(1.0, 2.0) is None  # no target: no verdict
    assert Figure("X", "x", "s", at_most=1).verdict is None  # no runs: no verdict
    failed = Figure("X", "x", "s", runs=[1.0], at_most=2, error="boom")
    assert failed.verdict is None


def test_target_descriptions() -> None:
    p1a = Figure("P1a", "", "s", at_most=4.0, at_most_ratio=0.6, baseline_name="seed-style")
    assert p1a.target == "≤ 4.00 s, ≤ 0.6x seed-style"
    assert Figure("P2", "", "s", at_most=4.0, at_most_ratio=1, baseline_name="seed").target == (
        "≤ 4.00 s, ≤ 1x seed"
    )
    assert Figure("P5", "", "req/s", at_least=1500).target == "≥ 1,500 req/s"
    assert Figure("P1b", "", "bytes", at_most=20_000).target == "≤ 20.0 kB"
    assert Figure("P2", "", "bytes", at_most=17e6).target == "≤ 17.000 MB"
    assert Figure("P5.err", "", "count", at_most=0).target == "≤ 0"
    assert Figure("P6", "", "s").target == ""


def test_figure_median_ratio_and_verdict() -> None:
    fig = Figure("P1a", "rebuild", "s", runs=[3.0, 2.0, 10.0], baseline_name="seed")
    fig.baseline_runs = [4.0, 6.0, 5.0]
    fig.at_most, fig.at_most_ratio = 4.0, 1
    assert fig.value == 3.0
    assert fig.baseline == 5.0
    assert fig.ratio == pytest.approx(0.6)
    assert fig.verdict is True
    fig.add(1.0)
    fig.add(7.0, baseline=True)
    assert (fig.runs[-1], fig.baseline_runs[-1]) == (1.0, 7.0)
    assert Figure("X", "x", "s").value is None
    assert Figure("X", "x", "s", runs=[1.0]).ratio is None
    assert Figure("X", "x", "s", runs=[1.0], baseline_runs=[0.0]).ratio is None


def test_error_counts_are_summed_not_medianed() -> None:
    errors = Figure("P5.err", "errors", "count", runs=[0, 0, 7], aggregate="sum", at_most=0)
    assert errors.value == 7
    assert errors.verdict is False


def test_figure_json_shape() -> None:
    fig = Figure("P2", "payload", "bytes", runs=[17e6], baseline_name="seed-style")
    fig.baseline_runs, fig.at_most, fig.at_most_ratio, fig.note = [40e6], 17e6, 1, "n"
    data = fig.as_json()
    assert data == {
        "key": "P2",
        "title": "payload",
        "unit": "bytes",
        "aggregate": "median",
        "value": 17e6,
        "runs": [17e6],
        "baseline_name": "seed-style",
        "baseline": 40e6,
        "baseline_runs": [40e6],
        "ratio": pytest.approx(0.425),
        "at_most": 17e6,
        "at_least": None,
        "at_most_ratio": 1,
        "target": "≤ 17.000 MB, ≤ 1x seed-style",
        "verdict": "pass",
        "note": "n",
        "error": "",
        "details": {},
    }
    bare = Figure("P4", "pipeline", "s").as_json()
    assert (bare["baseline"], bare["target"], bare["verdict"], bare["value"]) == (
        None,
        "",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "s", "—"),
        (999, "bytes", "999 B"),
        (18_200, "bytes", "18.2 kB"),
        (17_004_825, "bytes", "17.005 MB"),
        (3.14159, "s", "3.14 s"),
        (59.994, "s", "59.99 s"),
        (185.4, "s", "3 min 05 s"),
        (12.345, "ms", "12.3 ms"),
        (1534.6, "req/s", "1,535 req/s"),
        (0, "count", "0"),
    ],
)
def test_format_value(value: float | None, unit: str, text: str) -> None:
    assert bench_report.format_value(value, unit) == text


def figures() -> list[Figure]:
    p1a = Figure("P1a", "rebuild", "s", runs=[4.5], baseline_name="seed", baseline_runs=[5.0])
    p1a.at_most, p1a.at_most_ratio = 4.0, 1
    p3 = Figure("P3", "start", "s", runs=[0.5], at_most=1.0, note="docker run")
    p4 = Figure("P4", "pipeline", "s", error="nox failed")
    return [p1a, p3, p4]


def test_table_rows() -> None:
    lines = bench_report.table(figures()).splitlines()
    assert lines[0] == "|  | measure | ours | compared with | ratio | target | result |"
    assert lines[1].startswith("| --- |")
    assert lines[2] == (
        "| P1a | rebuild | 4.50 s | 5.00 s (seed) | 0.90x | ≤ 4.00 s, ≤ 1x seed | **miss** |"
    )
    assert lines[3] == "| P3 | start | 0.50 s |  |  | ≤ 1.00 s | pass |"
    assert lines[4] == "| P4 | pipeline | failed |  |  |  | error |"


def doc() -> dict[str, Any]:
    machine = {
        "cores": 2,
        "cpu_model": "Test CPU",
        "memory_bytes": 8 * 2**30,
        "os": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1",
        "docker_version": "20.10.24",
        "python": "3.11.7",
    }
    return bench_report.document(
        figures(),
        612.34,
        machine=machine,
        command="nox -s bench",
        date="2026-01-02 03:04 UTC",
        revision="abc123",
        settings={"P1 runs per side": 5},
    )


def test_document_shape() -> None:
    data = doc()
    assert data["schema"] == bench_report.SCHEMA
    assert data["duration_s"] == 612.3
    assert data["machine"]["cores"] == 2
    assert data["revision"] == "abc123"
    assert [f["key"] for f in data["figures"]] == ["P1a", "P3", "P4"]
    json.dumps(data)  # serialisable as it is


def test_markdown_names_command_machine_and_notes() -> None:
    text = bench_report.markdown(doc(), figures())
    assert text.startswith(bench_report.BEGIN_MARK)
    assert text.rstrip().endswith(bench_report.END_MARK)
    assert "- command: `nox -s bench`" in text
    assert "- revision: `abc123`" in text
    assert "2 cores (Test CPU), 8.0 GiB RAM, Debian GNU/Linux 12 (bookworm)" in text
    assert "Docker engine 20.10.24" in text
    assert "10 min 12 s in all" in text
    assert "- runs: P1 runs per side 5" in text
    assert "- **P3**: docker run" in text
    assert "- **P4**: nox failed" in text
    assert "| P1a | rebuild |" in text


def test_splice_keeps_text_outside_the_marks() -> None:
    block = f"{bench_report.BEGIN_MARK}\nnew\n{bench_report.END_MARK}\n"
    assert bench_report.splice(None, block) == f"# Benchmarks\n\n{block}"
    marked = f"{bench_report.BEGIN_MARK}\nold\n{bench_report.END_MARK}\n"
    old = f"# Title\n\nintro\n\n{marked}\nanalysis\n"
    assert bench_report.splice(old, block) == f"# Title\n\nintro\n\n{block}\nanalysis\n"
    assert bench_report.splice("# Hand-written\n", block) == f"# Hand-written\n\n{block}"
