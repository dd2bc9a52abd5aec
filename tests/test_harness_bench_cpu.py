"""The machine's CPU count behind the bench's floors: /proc/stat's busy ticks, and a step's cost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.bench import pipeline

# user nice system idle iowait irq softirq steal guest guest_nice
STAT = """\
cpu  1000 20 300 9000 500 7 11 3 40 0
cpu0 500 10 150 4500 250 3 5 1 20 0
cpu1 500 10 150 4500 250 4 6 2 20 0
intr 12345
"""


def test_busy_is_every_state_but_idle_iowait_and_steal() -> None:
    assert pipeline.busy_ticks(STAT) == 1000 + 20 + 300 + 7 + 11


@pytest.mark.parametrize("text", ["", "intr 1\n", "cpu  1 2 3 4 5 6\n", "cpu0 1 2 3 4 5 6 7 8\n"])
def test_a_stat_without_a_whole_cpu_line_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="cpu line"):
        pipeline.busy_ticks(text)


def stat_file(path: Path, busy: int, idle: int = 0) -> None:
    path.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\n", encoding="ascii")


def test_a_step_costs_the_busy_time_that_passed_while_it_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stat = tmp_path / "stat"
    stat_file(stat, busy=1_000)
    monkeypatch.setattr(pipeline, "PROC_STAT", stat)
    ticks, cores = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    clock = iter([10.0, 14.0])

    def step() -> str:
        stat_file(stat, busy=1_000 + 6 * ticks, idle=200)  # 6 s of CPU while the step ran
        return "done"

    result, spent = pipeline.measure(step, lambda: next(clock))
    assert result == "done"
    assert (spent.wall, spent.cores) == (4.0, cores)
    assert spent.cpu == pytest.approx(6.0)
    assert spent.floor == pytest.approx(6.0 / cores)
    assert str(spent) == "6.0 s of CPU in 4.0 s"


def test_without_proc_stat_only_the_wall_time_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "PROC_STAT", tmp_path)  # a directory is no stat file
    _, spent = pipeline.measure(lambda: None, iter([1.0, 3.5]).__next__)
    assert (spent.wall, spent.cpu) == (2.5, None)
