"""P4 and P6: nox in clones of the snapshot, started as a user would start it.

P4 is the default ``nox`` pipeline in a fresh clone and again with its venvs reused; P6 a
session's environment, ``nox -s test-X --install-only``, with the uv and virtualenv backends.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from harness.bench.cpu import MachineCpu, Spent
from harness.bench.engine import Engine, short_id
from harness.bench.options import Options
from harness.bench.rebuild import EDITED, prepend_line
from harness.bench.report import Figure, Target
from harness.bench.workspace import Workspace
from harness.core.process import CommandError, reason
from harness.image import records

NOX_TIMEOUT = 3600.0


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


def read_report(report: Path) -> dict[str, float | str]:
    """Seconds per session from a ``nox --report`` file; none when nox wrote no report."""
    return session_times(json.loads(report.read_text("utf-8"))) if report.is_file() else {}


def describe_times(times: Mapping[str, float | str]) -> str:
    return ", ".join(
        f"{name} {took:g} s" if isinstance(took, float) else f"{name} {took}"
        for name, took in times.items()
    )


# Sessions of the reused pipeline that have a figure of their own: key, title, target (s).
SESSION_FIGURES = (
    ("P8", "unit suite: `{test}` in the reused pipeline", 12.0),
    ("P7", "`integration` in the reused pipeline", 20.0),
)


def session_figures(reused: Figure, test_session: str) -> list[Figure]:
    """P7 and P8 from the reused pipeline's per-session times (nox --report), run by run."""
    figures = []
    for key, title, limit in SESSION_FIGURES:
        name = "integration" if key == "P7" else test_session
        fig = Figure(key, title.format(test=test_session), "s", target=Target(at_most=limit))
        for times in reused.details.get("sessions per run", []):
            took = times.get(name)
            if isinstance(took, float):
                fig.runs.append(took)
            elif took is not None:
                fig.error = f"{name}: {took}"
        if not fig.runs and not fig.error:
            fig.error = f"the reused pipeline ran no {name} session"
        figures.append(fig)
    return figures


# Sessions run again alone after the pipeline, to count the CPU they keep busy: key, title, nox
# arguments. A CPU-bound session cannot take less than that CPU time divided by the cores.
FLOOR_RUNS = (
    ("P8.floor", "CPU time of `nox -s {test} -R` ÷ the cores", ("-s", "{test}", "-R")),
    (
        "P7.floor",
        "CPU time of `nox -s integration -R` (alone) ÷ the cores",
        ("-s", "integration", "-R", "--no-dependencies"),
    ),
)
NO_CPU_COUNT = "no CPU count: /proc/stat is not readable on this machine"
CPU_NOTE = (
    "the machine's busy CPU time (/proc/stat: the engine, the containers and every process the "
    "session starts) ÷ its {cores} cores"
)


def describe_spent(spent: Spent) -> str:
    return f"{spent.cpu:.1f} s of CPU in {spent.wall:.1f} s"


def outer_env(environ: Mapping[str, str], venv: str) -> dict[str, str]:
    """``environ`` without the virtualenv ``venv``: what a nox started by a user would see."""
    env = {k: v for k, v in environ.items() if k not in {"VIRTUAL_ENV", "CONDA_PREFIX"}}
    venv_bin = str(Path(venv) / "bin")
    path = [p for p in environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join(path)
    return env


class NoxRuns:
    """The P4 and P6 steps; the images the pipeline builds go to the engine's cleanup."""

    def __init__(
        self,
        engine: Engine,
        workspace: Workspace,
        options: Options,
        log: Callable[[str], None],
        cpu: MachineCpu | None = None,
    ) -> None:
        self.engine = engine
        self.workspace = workspace
        self.options = options
        self.log = log
        self.cpu = cpu or MachineCpu()

    def nox(self, clone: Path, *args: str) -> str:
        return self.workspace.run(
            [self.options.nox_python, "-m", "nox", *args],
            cwd=clone,
            env=outer_env(os.environ, sys.prefix),
            timeout=NOX_TIMEOUT,
            merge=True,
        )

    def environments(self) -> list[Figure]:
        session = self.options.test_session
        fig = Figure("P6", f"`nox -s {session} --install-only`", "s")
        fig.baseline_name = "virtualenv"
        fig.note = "ours: the uv backend; venvs removed before each run, package caches warm"
        clone = self.workspace.clone("env")
        failed: dict[str, str] = {}
        for run in range(1, self.options.env_runs + 1):
            for backend in ("uv", "virtualenv"):
                if backend in failed:
                    continue
                shutil.rmtree(clone / ".nox", ignore_errors=True)
                started = time.perf_counter()
                try:
                    self.nox(clone, "-s", session, "--install-only", "-db", backend)
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
        reused.target = Target(at_most=40.0)
        edited = Figure("P4.edit", "`nox` again after a one-line source change", "s")
        edited.target = Target(at_most=50.0)
        edited.note = f"a comment line put first in {EDITED}, not committed"
        fresh.note = "git clone + nox with no venvs and no dist/; base image and caches present"
        before = {tag: self.engine.docker.image_id(tag) for tag in self.workspace.plan.tags}
        made: list[str] = []
        order = (fresh, reused, edited)
        try:
            for run in range(1, self.options.pipeline_runs + 1):
                for step, fig in enumerate(order):
                    if not self._run(fig, run, made):
                        for later in order[step + 1 :]:
                            later.error = f"not run: the pipeline failed in {fig.key}"
                        return list(order)
            p8_floor, p7_floor = (self._floor(*floor_run) for floor_run in FLOOR_RUNS)
        finally:
            self._restore_tags(before, made)
        p8, p7 = session_figures(reused, self.options.test_session)
        return [fresh, reused, self._pipeline_floor(reused), edited, p8, p8_floor, p7, p7_floor]

    def _pipeline_floor(self, reused: Figure) -> Figure:
        """P4.floor: the reused pipeline's CPU time ÷ the cores, run by run."""
        fig = Figure("P4.floor", "the reused pipeline's CPU time ÷ the cores", "s")
        spent = [Spent(**counted) for counted in reused.details.get("cpu per run", [])]
        fig.runs = [s.floor for s in spent]
        if not spent:
            fig.error = NO_CPU_COUNT
            return fig
        runs = "; ".join(f"run {n}: {describe_spent(s)}" for n, s in enumerate(spent, 1))
        fig.note = f"{CPU_NOTE.format(cores=spent[0].cores)}, during P4.reuse; {runs}"
        return fig

    def _floor(self, key: str, title: str, args: tuple[str, ...]) -> Figure:
        """One session again, alone, in the pipeline's clone: the CPU it keeps busy ÷ the cores."""
        test = self.options.test_session
        fig = Figure(key, title.format(test=test), "s")
        args = tuple(arg.format(test=test) for arg in args)
        if not self.cpu.available:
            fig.error = NO_CPU_COUNT
            return fig
        command = f"nox {' '.join(args)}"
        notes = []
        work = self.workspace.work
        for run in range(1, self.options.pipeline_runs + 1):
            report = work / f"nox-report-{key}-{run}.json"
            nox_args = (*args, "--report", str(report))
            try:
                _, spent = self.cpu.measure(
                    partial(self.nox, work / "pipeline", *nox_args), time.perf_counter
                )
            except CommandError as exc:
                fig.error = f"`{command}` failed: {reason(exc.output)}"
                return fig
            fig.runs.append(spent.floor)
            times = read_report(report)
            # nox's own start is in the CPU count, not in the session's time nox reports.
            notes.append(f"run {run}: {describe_spent(spent)} (sessions: {describe_times(times)})")
            self.log(f"bench: {key} run {run}: {describe_spent(spent)}")
        fig.note = f"{CPU_NOTE.format(cores=self.cpu.cores)}, `{command}` after the pipeline; "
        fig.note += "; ".join(notes)
        return fig

    def _run(self, fig: Figure, run: int, made: list[str]) -> bool:
        """One `nox` in the pipeline clone (a new clone for a fresh run); False when it failed."""
        started = time.perf_counter()
        work = self.workspace.work
        clone = self.workspace.clone("pipeline") if fig.key == "P4" else work / "pipeline"
        report = work / f"nox-report-{fig.key}-{run}.json"
        if fig.key == "P4.edit":
            prepend_line(clone / EDITED, f"# bench pipeline edit {run}")
        args = ("--no-error-on-missing-interpreters", "--report", str(report))
        try:
            if self.cpu.available:
                output, spent = self.cpu.measure(partial(self.nox, clone, *args), time.perf_counter)
                fig.details.setdefault("cpu per run", []).append(asdict(spent))
            else:
                output = self.nox(clone, *args)
            self.engine.track(output)
        except CommandError as exc:
            self.engine.track(exc.output)
            tail = "\n".join(exc.output.strip().splitlines()[-15:])
            self.log(f"bench: P4 failed; the end of its output:\n{tail}")
            fig.error = str(exc)
            return False
        finally:
            record = records.image_record_path(clone)
            if record.is_file():
                made.append(records.load_image_record(record).image_id)
        fig.runs.append(time.perf_counter() - started)
        times = read_report(report)
        fig.details.setdefault("sessions per run", []).append(times)
        fig.note = "; ".join(filter(None, [fig.note, f"run {run}: {describe_times(times)}"]))
        self.log(f"bench: P4 run {run} {fig.key}: {fig.runs[-1]:.0f} s")
        return True

    def _restore_tags(self, before: Mapping[str, str | None], made: Sequence[str]) -> None:
        """Point the tags the pipeline moved back where they were; drop the images it made."""
        for tag, previous in before.items():
            if self.engine.docker.image_id(tag) in made:  # moved by us, and by no one since
                if previous:
                    self.engine.docker("tag", previous, tag)
                else:
                    self.engine.docker("rmi", tag)
        self.engine.remember(short_id(i) for i in made)
