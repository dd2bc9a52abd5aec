"""harness.bench.report: statistics, targets, figures, the table, the JSON and the Markdown."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.bench import report as bench_report
from harness.bench.report import Figure, Target

# --- statistics ------------------------------------------------------------------------------


def test_median_of_odd_and_even_counts() -> None:
    assert bench_report.median([3.0, 1.0, 2.0]) == 2.0
    assert bench_report.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        bench_report.median([])


def test_ratio() -> None:
    assert bench_report.ratio(3.0, 4.0) == 0.75
    assert bench_report.ratio(3.0, 0.0) is None
    assert bench_report.ratio(None, 4.0) is None
    assert bench_report.ratio(3.0, None) is None


# --- targets and figures ---------------------------------------------------------------------


def test_target_limits_and_baseline() -> None:
    faster = Target(at_most=4.0, beat_baseline=True)
    assert faster.verdict(3.0, 5.0) is True
    assert faster.verdict(3.0, 2.0) is False  # under the limit, but slower than the baseline
    assert faster.verdict(4.5, 9.0) is False
    assert faster.verdict(3.0, None) is True  # nothing to compare with
    assert faster.verdict(None, 5.0) is None
    more = Target(at_least=1500, beat_baseline=True)
    assert more.verdict(1600, 1000) is True
    assert more.verdict(1600, 2000) is False
    assert more.verdict(1400, 1000) is False


def test_target_ratio_to_the_baseline_of_the_same_run() -> None:
    share = Target(at_most=4.0, ratio_at_most=0.6)
    assert share.verdict(1.2, 2.0) is True
    assert share.verdict(1.3, 2.0) is False  # under 4 s, but 0.65x
    assert share.verdict(5.0, 10.0) is False  # 0.5x, but over 4 s
    assert share.verdict(1.0, None) is False  # a ratio needs its baseline: no pass without it
    assert share.verdict(1.0, 0.0) is False
    assert share.describe("s", "seed-style") == "≤ 4.00 s, ≤ 0.6x seed-style"


def test_target_descriptions() -> None:
    assert Target(at_most=4.0, beat_baseline=True).describe("s", "seed-style") == (
        "≤ 4.00 s, ≤ seed-style"
    )
    assert Target(at_least=1500).describe("req/s", None) == "≥ 1,500 req/s"
    assert Target(at_most=20_000).describe("bytes", "seed") == "≤ 20.0 kB"
    assert Target(at_most=17e6).describe("bytes", None) == "≤ 17.000 MB"
    assert Target(at_least=1, beat_baseline=True).describe("count", "x") == "≥ 1, ≥ x"


def test_figure_median_ratio_and_verdict() -> None:
    fig = Figure("P1a", "rebuild", "s", runs=[3.0, 2.0, 10.0], baseline_name="seed")
    fig.baseline_runs = [4.0, 6.0, 5.0]
    fig.target = Target(at_most=4.0, beat_baseline=True)
    assert fig.value == 3.0
    assert fig.baseline == 5.0
    assert fig.ratio == pytest.approx(0.6)
    assert fig.verdict is True
    assert Figure("X", "x", "s").value is None
    assert Figure("X", "x", "s", target=Target(at_most=1)).verdict is None
    failed = Figure("X", "x", "s", runs=[1.0], target=Target(at_most=2), error="boom")
    assert failed.verdict is None


def test_error_counts_are_summed_not_medianed() -> None:
    errors = Figure("P5.err", "errors", "count", runs=[0, 0, 7], aggregate="sum")
    errors.target = Target(at_most=0)
    assert errors.value == 7
    assert errors.verdict is False


def test_figure_json_shape() -> None:
    fig = Figure("P2", "payload", "bytes", runs=[17e6], baseline_name="seed-style")
    fig.baseline_runs, fig.target, fig.note = [40e6], Target(at_most=17e6, beat_baseline=True), "n"
    data = fig.as_json()
    assert data == {
        "id": "P2",
        "title": "payload",
        "unit": "bytes",
        "aggregate": "median",
        "value": 17e6,
        "runs": [17e6],
        "baseline": {"name": "seed-style", "median": 40e6, "runs": [40e6]},
        "ratio": pytest.approx(0.425),
        "target": {
            "text": "≤ 17.000 MB, ≤ seed-style",
            "at_most": 17e6,
            "at_least": None,
            "beat_baseline": True,
        },
        "verdict": "pass",
        "note": "n",
        "error": "",
        "details": {},
    }
    bare = Figure("P4", "pipeline", "s").as_json()
    assert bare["baseline"] is None
    assert bare["target"] is None
    assert bare["verdict"] is None
    assert bare["value"] is None


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
    p1a.target = Target(at_most=4.0, beat_baseline=True)
    p3 = Figure("P3", "start", "s", runs=[0.5], target=Target(at_most=1.0), note="docker run")
    p4 = Figure("P4", "pipeline", "s", error="nox failed")
    return [p1a, p3, p4]


def test_table_rows() -> None:
    lines = bench_report.table(figures()).splitlines()
    assert lines[0] == "|  | measure | ours | compared with | ratio | target | result |"
    assert lines[1].startswith("| --- |")
    assert lines[2] == (
        "| P1a | rebuild | 4.50 s | 5.00 s (seed) | 0.90x | ≤ 4.00 s, ≤ seed | **miss** |"
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
        figures=figures(),
        machine=machine,
        command="nox -s bench",
        date="2026-01-02 03:04 UTC",
        revision="abc123",
        duration=612.34,
        settings={"P1 runs per side": 5},
    )


def test_document_shape() -> None:
    data = doc()
    assert data["schema"] == bench_report.SCHEMA
    assert data["duration_s"] == 612.3
    assert data["machine"]["cores"] == 2
    assert [f["id"] for f in data["figures"]] == ["P1a", "P3", "P4"]
    json.dumps(data)  # serialisable as it is


def test_markdown_names_command_machine_and_notes() -> None:
    text = bench_report.markdown(doc(), figures())
    assert text.startswith(bench_report.BEGIN_MARK)
    assert text.rstrip().endswith(bench_report.END_MARK)
    assert "- command: `nox -s bench`" in text
    assert "2 cores (Test CPU), 8.0 GiB RAM, Debian GNU/Linux 12 (bookworm)" in text
    assert "Docker engine 20.10.24" in text
    assert "10 min 12 s in all" in text
    assert "- **P3**: docker run" in text
    assert "- **P4**: nox failed" in text
    assert "| P1a | rebuild |" in text


def test_machine_line_without_memory() -> None:
    assert "RAM unknown" in bench_report.machine_line({"cores": 1, "memory_bytes": None})


def test_splice_keeps_text_outside_the_marks() -> None:
    block = f"{bench_report.BEGIN_MARK}\nnew\n{bench_report.END_MARK}\n"
    assert bench_report.splice(None, block) == f"# Benchmarks\n\n{block}"
    marked = f"{bench_report.BEGIN_MARK}\nold\n{bench_report.END_MARK}\n"
    old = f"# Title\n\nintro\n\n{marked}\nanalysis\n"
    assert bench_report.splice(old, block) == f"# Title\n\nintro\n\n{block}\nanalysis\n"
    assert bench_report.splice("# Hand-written\n", block) == f"# Hand-written\n\n{block}"
