"""Figures of ``nox -s bench``: statistics, targets, the table for people, the JSON record.

Pure functions only; ``harness.bench`` measures, this module judges and formats. Units are
plain strings: ``s``, ``ms``, ``bytes``, ``req/s`` and ``count``; kB and MB are decimal
(1 kB = 1000 bytes), as Docker prints them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "deathstar-bench/1"
BEGIN_MARK = "<!-- bench:begin (written by `nox -s bench`; text outside the marks is kept) -->"
END_MARK = "<!-- bench:end -->"


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("the median of no values is undefined")
    return float(statistics.median(values))


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline; None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


@dataclass(frozen=True)
class Target:
    """A limit (``at_most`` or ``at_least``), optionally also "no worse than the baseline"."""

    at_most: float | None = None
    at_least: float | None = None
    beat_baseline: bool = False
    ratio_at_most: float | None = None  # ours / the baseline's, in the same run

    def verdict(self, value: float | None, baseline: float | None) -> bool | None:
        if value is None:
            return None
        ok = True
        if self.at_most is not None:
            ok = ok and value <= self.at_most
        if self.at_least is not None:
            ok = ok and value >= self.at_least
        if self.ratio_at_most is not None:
            ok = ok and baseline is not None and baseline > 0
            ok = ok and baseline is not None and value <= self.ratio_at_most * baseline
        if self.beat_baseline and baseline is not None:
            lower_is_better = self.at_least is None
            ok = ok and (value <= baseline if lower_is_better else value >= baseline)
        return ok

    def describe(self, unit: str, baseline_name: str | None) -> str:
        parts = []
        if self.at_most is not None:
            parts.append(f"≤ {format_value(self.at_most, unit)}")
        if self.at_least is not None:
            parts.append(f"≥ {format_value(self.at_least, unit)}")
        if self.beat_baseline and baseline_name:
            parts.append(f"{'≥' if self.at_least is not None else '≤'} {baseline_name}")
        if self.ratio_at_most is not None:
            parts.append(f"≤ {self.ratio_at_most:g}x {baseline_name or 'the baseline'}")
        return ", ".join(parts)


@dataclass
class Figure:
    """One row: the runs of our side, optionally those of a baseline, and a target."""

    key: str
    title: str
    unit: str
    runs: list[float] = field(default_factory=list)
    baseline_name: str | None = None
    baseline_runs: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""
    error: str = ""
    aggregate: str = "median"  # or "sum", for counts such as errors
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        if not self.runs:
            return None
        return float(sum(self.runs)) if self.aggregate == "sum" else median(self.runs)

    @property
    def baseline(self) -> float | None:
        return median(self.baseline_runs) if self.baseline_runs else None

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.baseline)

    @property
    def verdict(self) -> bool | None:
        if self.target is None or self.error:
            return None
        return self.target.verdict(self.value, self.baseline)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "title": self.title,
            "unit": self.unit,
            "aggregate": self.aggregate,
            "value": self.value,
            "runs": self.runs,
            "baseline": None
            if self.baseline_name is None
            else {"name": self.baseline_name, "median": self.baseline, "runs": self.baseline_runs},
            "ratio": self.ratio,
            "target": None
            if self.target is None
            else {
                "text": self.target.describe(self.unit, self.baseline_name),
                "at_most": self.target.at_most,
                "at_least": self.target.at_least,
                "beat_baseline": self.target.beat_baseline,
            },
            "verdict": {True: "pass", False: "miss", None: None}[self.verdict],
            "note": self.note,
            "error": self.error,
            "details": self.details,
        }


def _bytes(value: float) -> str:
    if abs(value) < 1000:
        return f"{value:.0f} B"
    if abs(value) < 1_000_000:
        return f"{value / 1000:.1f} kB"
    return f"{value / 1_000_000:.3f} MB"  # a miss by kilobytes must show


def _seconds(value: float) -> str:
    if value >= 60:
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes} min {seconds:02d} s"
    return f"{value:.2f} s"


_FORMATS: dict[str, Callable[[float], str]] = {
    "bytes": _bytes,
    "s": _seconds,
    "ms": lambda value: f"{value:.1f} ms",
    "req/s": lambda value: f"{value:,.0f} req/s",
}


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    formatter = _FORMATS.get(unit)
    return formatter(value) if formatter else f"{value:g}"


def format_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table: readable in a terminal and in RESULTS.md alike."""
    header = ["", "measure", "ours", "compared with", "ratio", "target", "result"]
    rows = [header, ["---"] * len(header)]
    for fig in figures:
        if fig.error:
            ours, result = "failed", "error"
        else:
            ours = format_value(fig.value, fig.unit)
            result = {True: "pass", False: "**miss**", None: ""}[fig.verdict]
        baseline = (
            f"{format_value(fig.baseline, fig.unit)} ({fig.baseline_name})"
            if fig.baseline_name
            else ""
        )
        target = fig.target.describe(fig.unit, fig.baseline_name) if fig.target else ""
        ratio_text = format_ratio(fig.ratio) if fig.baseline_name else ""
        rows.append([fig.key, fig.title, ours, baseline, ratio_text, target, result])
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows) + "\n"


def document(
    *,
    figures: Sequence[Figure],
    machine: dict[str, Any],
    command: str,
    date: str,
    revision: str,
    duration: float,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The JSON record (bench/results.json)."""
    return {
        "schema": SCHEMA,
        "command": command,
        "date": date,
        "revision": revision,
        "duration_s": round(duration, 1),
        "machine": machine,
        "settings": settings,
        "figures": [fig.as_json() for fig in figures],
    }


def machine_line(machine: dict[str, Any]) -> str:
    memory = machine.get("memory_bytes")
    memory_text = f"{memory / 2**30:.1f} GiB RAM" if isinstance(memory, int) else "RAM unknown"
    return (
        f"{machine.get('cores')} cores ({machine.get('cpu_model', 'unknown CPU')}), "
        f"{memory_text}, {machine.get('os', 'unknown OS')} "
        f"(kernel {machine.get('kernel', '?')}), Docker engine {machine.get('docker_version')}"
    )


def markdown(doc: dict[str, Any], figures: Sequence[Figure]) -> str:
    """The generated part of bench/RESULTS.md: what ran, where, when, and the table."""
    notes = [f"- **{f.key}**: {f.error or f.note}" for f in figures if f.error or f.note]
    lines = [
        BEGIN_MARK,
        "## Latest results",
        "",
        f"- command: `{doc['command']}`",
        f"- date: {doc['date']}, {format_value(doc['duration_s'], 's')} in all",
        f"- revision: `{doc['revision']}` (the working tree, copied into a throwaway clone)",
        f"- machine: {machine_line(doc['machine'])}",
        f"- runs: {', '.join(f'{k} {v}' for k, v in doc['settings'].items())}",
        "",
        table(figures).rstrip("\n"),
        "",
        "Each figure is the median of its runs; ratios are ours ÷ the other side, whose runs "
        "alternate with ours. Every run's figure is in `bench/results.json`.",
        "",
        *notes,
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def splice(existing: str | None, generated: str, *, title: str = "# Benchmarks") -> str:
    """Replace the marked block of ``existing`` by ``generated``, keeping the text around it."""
    if not existing:
        return f"{title}\n\n{generated}"
    start = existing.find(BEGIN_MARK)
    end = existing.find(END_MARK, start if start >= 0 else 0)
    if start < 0 or end < 0:
        return existing.rstrip("\n") + "\n\n" + generated
    after = existing[end + len(END_MARK) :].removeprefix("\n")
    return existing[:start] + generated + after
