"""Figures of ``nox -s bench``: targets and verdicts, the table, bench/results.json, RESULTS.md.

Units: ``s``, ``ms``, ``bytes``, ``req/s``, ``count``; kB and MB are decimal, as Docker's.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "deathstar-bench/2"
BEGIN_MARK = "<!-- bench:begin (written by `nox -s bench`; text outside the marks is kept) -->"
END_MARK = "<!-- bench:end -->"


@dataclass
class Figure:
    """One row: our runs, those of a baseline that alternated with ours, and the targets
    (``at_most_ratio``: ours ÷ the baseline's, which then must have been measured)."""

    key: str
    title: str
    unit: str
    at_most: float | None = None
    at_least: float | None = None
    at_most_ratio: float | None = None
    baseline_name: str | None = None
    runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    note: str = ""
    error: str = ""
    aggregate: str = "median"  # or "sum", for counts such as errors; "min": the worst run
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, value: float, *, baseline: bool = False) -> None:
        (self.baseline_runs if baseline else self.runs).append(value)

    @property
    def value(self) -> float | None:
        if not self.runs:
            return None
        if self.aggregate == "sum":
            return float(sum(self.runs))
        return float(min(self.runs) if self.aggregate == "min" else statistics.median(self.runs))

    @property
    def baseline(self) -> float | None:
        return float(statistics.median(self.baseline_runs)) if self.baseline_runs else None

    @property
    def ratio(self) -> float | None:
        value, baseline = self.value, self.baseline
        return None if value is None or not baseline else value / baseline

    @property
    def target(self) -> str:
        limits = [
            self.at_most is not None and f"≤ {format_value(self.at_most, self.unit)}",
            self.at_least is not None and f"≥ {format_value(self.at_least, self.unit)}",
            self.at_most_ratio is not None and f"≤ {self.at_most_ratio:g}x {self.baseline_name}",
        ]
        return ", ".join(limit for limit in limits if limit)

    @property
    def verdict(self) -> bool | None:
        value, ratio = self.value, self.ratio
        if not self.target or self.error or value is None:
            return None
        return (
            (self.at_most is None or value <= self.at_most)
            and (self.at_least is None or value >= self.at_least)
            and (self.at_most_ratio is None or (ratio is not None and ratio <= self.at_most_ratio))
        )

    def as_json(self) -> dict[str, Any]:
        verdict = {True: "pass", False: "miss", None: None}[self.verdict]
        computed = {"baseline": self.baseline, "ratio": self.ratio, "target": self.target}
        return {**asdict(self), "value": self.value, **computed, "verdict": verdict}


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s" and value >= 60:
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes} min {seconds:02d} s"
    if unit == "bytes" and abs(value) >= 1_000_000:
        return f"{value / 1e6:.3f} MB"  # a miss by kilobytes must show
    if unit == "bytes" and abs(value) >= 1000:
        return f"{value / 1000:.1f} kB"
    formats = {"s": "{:.2f} s", "ms": "{:.1f} ms", "req/s": "{:,.0f} req/s", "bytes": "{:.0f} B"}
    return formats.get(unit, "{:g}").format(value)


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table: readable in a terminal and in RESULTS.md alike."""
    rows = [["", "measure", "ours", "compared with", "ratio", "target", "result"], ["---"] * 7]
    for fig in figures:
        other = fig.baseline_name
        ratio = "—" if fig.ratio is None else f"{fig.ratio:.2f}x"
        rows.append([
            fig.key, fig.title, "failed" if fig.error else format_value(fig.value, fig.unit),
            f"{format_value(fig.baseline, fig.unit)} ({other})" if other else "",
            ratio if other else "", fig.target,
            "error" if fig.error else {True: "pass", False: "**miss**", None: ""}[fig.verdict],
        ])  # fmt: skip
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows) + "\n"


def cpu_model(cpuinfo: str) -> str | None:
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return match[1].strip() if match else None


def machine(docker_version: str) -> dict[str, Any]:
    """The facts about this machine that bench/results.json records beside the figures."""
    cpuinfo = Path("/proc/cpuinfo")
    try:
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        os_name = None
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(cpuinfo.read_text("utf-8") if cpuinfo.is_file() else ""),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "os": os_name,
        "kernel": platform.release(),
        "docker_version": docker_version,
        "python": platform.python_version(),
    }


def document(figures: Sequence[Figure], duration: float, **facts: object) -> dict[str, Any]:
    """The JSON record (bench/results.json): command, date, revision, machine, settings."""
    runs = [fig.as_json() for fig in figures]
    return {"schema": SCHEMA, **facts, "duration_s": round(duration, 1), "figures": runs}


def markdown(doc: dict[str, Any], figures: Sequence[Figure]) -> str:
    """The generated part of bench/RESULTS.md: what ran, where, when, and the table."""
    notes = [f"- **{f.key}**: {f.error or f.note}" for f in figures if f.error or f.note]
    facts = doc["machine"]
    memory = f"{facts['memory_bytes'] / 2**30:.1f} GiB RAM" if facts["memory_bytes"] else "RAM ?"
    lines = [
        BEGIN_MARK,
        "## Latest results",
        "",
        f"- command: `{doc['command']}`",
        f"- date: {doc['date']}, {format_value(doc['duration_s'], 's')} in all",
        f"- revision: `{doc['revision']}` (the working tree, copied into a throwaway clone)",
        f"- machine: {facts['cores']} cores ({facts['cpu_model']}), {memory}, {facts['os']} "
        f"(kernel {facts['kernel']}), Docker engine {facts['docker_version']}",
        f"- runs: {', '.join(f'{k} {v}' for k, v in doc['settings'].items())}",
        "",
        table(figures).rstrip("\n"),
        "",
        "Each figure is the median of its runs; ratios are ours ÷ the other side, whose runs "
        "alternate with ours. Every run's figure is in `bench/results.json`; what each row "
        "measures is in docs/benchmarks.md.",
        "",
        *notes,
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def splice(existing: str | None, generated: str) -> str:
    """Replace the marked block of ``existing`` by ``generated``, keeping the text around it."""
    start = (existing or "").find(BEGIN_MARK)
    end = (existing or "").find(END_MARK, max(start, 0))
    if not existing:
        return f"# Benchmarks\n\n{generated}"
    if start < 0 or end < 0:
        return existing.rstrip("\n") + "\n\n" + generated
    return existing[:start] + generated + existing[end + len(END_MARK) :].removeprefix("\n")
