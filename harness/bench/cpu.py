"""The CPU time the whole machine spends while a step runs: what sets a CPU-bound step's floor.

A step that keeps every core busy cannot finish faster than the CPU time it needs divided by
the cores, however its work is scheduled. The count is the machine's (``/proc/stat``): the
Docker engine, its containers and every process a session starts are in it, and so is any
other load on the machine at the time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
PROC_STAT = Path("/proc/stat")
# /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal guest guest_nice.
# Busy: user, nice, system, irq and softirq. Not idle or iowait; not steal (another guest of
# the host ran); guest time is already counted in user and nice.
BUSY_FIELDS = (0, 1, 2, 5, 6)


def busy_ticks(stat: str) -> int:
    """The machine's busy clock ticks since boot, from the text of /proc/stat."""
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(value) for value in fields[1:]]
            if len(values) < max(BUSY_FIELDS) + 1:
                raise ValueError(f"/proc/stat's cpu line has {len(values)} fields")
            return sum(values[index] for index in BUSY_FIELDS)
    raise ValueError("/proc/stat has no cpu line")


@dataclass(frozen=True)
class Spent:
    """What a step took: its wall time and the machine's busy CPU time meanwhile, in seconds."""

    wall: float
    cpu: float
    cores: int

    @property
    def floor(self) -> float:
        """The least wall time that much CPU needs on these cores."""
        return self.cpu / self.cores


class MachineCpu:
    """Reads the machine's busy CPU seconds; ``available`` is False where there is no /proc/stat."""

    def __init__(
        self,
        stat: Path | None = None,
        ticks_per_second: int | None = None,
        cores: int | None = None,
    ) -> None:
        self.stat = stat or PROC_STAT
        self.ticks_per_second = ticks_per_second or os.sysconf("SC_CLK_TCK")
        self.cores = cores or os.cpu_count() or 1

    @property
    def available(self) -> bool:
        return self.stat.is_file()

    def busy_seconds(self) -> float:
        return busy_ticks(self.stat.read_text(encoding="ascii")) / self.ticks_per_second

    def measure(self, step: Callable[[], T], clock: Callable[[], float]) -> tuple[T, Spent]:
        """Run ``step``: its result, and what it took (``clock``: seconds, monotonic)."""
        cpu_before, wall_before = self.busy_seconds(), clock()
        result = step()
        wall, cpu = clock() - wall_before, self.busy_seconds() - cpu_before
        return result, Spent(wall=wall, cpu=cpu, cores=self.cores)
