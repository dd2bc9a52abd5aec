"""P4, P6, P7 and P8: nox in clones of the snapshot, started as a user would start it.

A ``.floor`` row is the machine's busy CPU time (/proc/stat) while a step ran ÷ the cores: a
CPU-bound step cannot take less wall time on this machine, however it is scheduled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from harness.bench.engine import Engine, short_id
from harness.bench.images import EDITED, add_line
from harness.bench.options import Options
from harness.bench.report import Figure
from harness.core.process import CommandError, reason
from harness.image import records

T = TypeVar("T")
EDITED_TEST = Path("tests/test_config.py")
BROKEN = Path("deathstar/routes/ops.py")  # P4.break: /healthz raises, so it answers 500
HEALTHY, UNHEALTHY = 'return {"status": "ok"}', 'raise RuntimeError("P4.break")'
NOX_TIMEOUT = 3600.0
PROC_STAT = Path("/proc/stat")
# The pipeline's steps in order: key, title, target (s), the file edited (a comment put first).
# Each run starts from a fresh clone and an empty result cache of its own.
PIPELINE: tuple[tuple[str, str, float | None, Path | None], ...] = (
    ("P4", "`nox` (default sessions) in a fresh clone, nothing cached", None, None),
    ("P4.reuse", "`nox` again, nothing changed", 5.0, None),
    ("P4.edit", "`nox` again after a one-line source change", 45.0, EDITED),
    ("P4.test", "`nox` again after a comment line in a test module", 12.0, EDITED_TEST),
)  # fmt: skip
# P4.break's sessions that must fail once /healthz answers 500 (the unit tests' name prefix).
MUST_FAIL = ("test-", "integration")
BREAK_TITLE = "`nox` after an edit that makes /healthz answer 500: unit tests and integration fail"


def spent_of(step: Figure) -> list[tuple[Spent, str]]:
    """A step's counted CPU per run, with its sessions' times: what its floor row shows."""
    cpu = step.details.get("cpu per run", [])
    times = step.details.get("sessions per run", [])
    pairs = zip(cpu, times[: len(cpu)], strict=True)  # no CPU counted: no runs
    return [(Spent(**c), f" (sessions: {describe_times(t)})") for c, t in pairs]


# The fresh pipeline's sessions with rows of their own (cold: nothing cached), and nox's
# arguments that run the same session again alone, uncached, for its floor: key, title,
# session, target (s), arguments.
SESSIONS = (
    ("P8", "unit suite: `{test}` in the fresh pipeline", "{test}", 12.0, "-s {test} -R"),
    ("P7", "`integration` in the fresh pipeline", "integration", 20.0,
     "-s integration -R --no-dependencies"),
)  # fmt: skip
CACHE_LINE = re.compile(r"cached pass from|test modules rerun|not recorded|results cache:")
NO_CPU_COUNT = "no CPU count: /proc/stat is not readable on this machine"


def busy_ticks(stat: str) -> int:
    """Busy clock ticks since boot from /proc/stat's cpu line: user, nice, system, irq, softirq
    (not idle or iowait; not steal: another guest ran; guest time is in user and nice)."""
    fields = next((line.split() for line in stat.splitlines() if line.startswith("cpu ")), [])
    if len(fields) < 8:
        raise ValueError(f"/proc/stat has no whole cpu line: {fields}")
    return sum(int(fields[index]) for index in (1, 2, 3, 6, 7))


@dataclass(frozen=True)
class Spent:
    """A step's wall time and the machine's busy CPU seconds meanwhile (None: not counted)."""

    wall: float
    cpu: float | None
    cores: int

    @property
    def floor(self) -> float:
        return (self.cpu or 0.0) / self.cores

    def __str__(self) -> str:
        return f"{self.cpu or 0:.1f} s of CPU in {self.wall:.1f} s"


def measure(
    step: Callable[[], T], clock: Callable[[], float] = time.perf_counter
) -> tuple[T, Spent]:
    """``step``'s result and what it took; the CPU where /proc/stat can be read."""

    def busy() -> float | None:
        text = PROC_STAT.read_text("ascii") if PROC_STAT.is_file() else ""
        return busy_ticks(text) / os.sysconf("SC_CLK_TCK") if text else None

    cpu_before, wall_before = busy(), clock()
    result = step()
    wall, cpu_after = clock() - wall_before, busy()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return result, Spent(wall=wall, cpu=cpu, cores=os.cpu_count() or 1)


def session_times(report: Path) -> dict[str, float | str]:
    """Seconds per session from a ``nox --report`` file; the outcome where it did not succeed."""
    entries = json.loads(report.read_text("utf-8")).get("sessions", []) if report.is_file() else []
    times: dict[str, float | str] = {}
    for entry in entries:
        name = (entry.get("signatures") or [entry["name"]])[0]  # test-3.11 rather than test
        took, result = entry.get("duration"), str(entry.get("result", "?"))
        if not isinstance(took, int | float):
            times[name] = result
        else:  # a skip can take long: nox may first try to download the missing interpreter
            times[name] = round(took, 1) if result == "success" else f"{result} after {took:.1f} s"
    return times


def describe_times(times: Mapping[str, float | str]) -> str:
    return ", ".join(f"{name} {took:g} s" if isinstance(took, float | int) else f"{name} {took}"
                     for name, took in times.items())  # fmt: skip


def floor_figure(key: str, title: str, runs: Sequence[tuple[Spent, str]]) -> Figure:
    """A ``.floor`` row: each run's CPU ÷ the cores; ``runs``: what each took, and a note."""
    if not runs:
        return Figure(key, title, "s", error=NO_CPU_COUNT)
    notes = "; ".join(f"run {n}: {spent}{note}" for n, (spent, note) in enumerate(runs, 1))
    note = f"the machine's busy CPU time ÷ its {runs[0][0].cores} cores; {notes}"
    return Figure(key, title, "s", runs=[spent.floor for spent, _ in runs], note=note)


def session_figures(fresh: Figure, test_session: str) -> list[Figure]:
    """P8 and P7 from the fresh pipeline's per-session times (nox --report), run by run."""
    figures = []
    for key, title, session, limit, _ in SESSIONS:
        name = session.format(test=test_session)
        fig = Figure(key, title.format(test=test_session), "s", at_most=limit)
        for times in fresh.details.get("sessions per run", []):
            took = times.get(name)
            if isinstance(took, float | int):
                fig.runs.append(took)
            elif took is not None:
                fig.error = f"{name}: {took}"
        if not fig.runs and not fig.error:
            fig.error = f"the fresh pipeline ran no {name} session"
        figures.append(fig)
    return figures


def outer_env(environ: Mapping[str, str], venv: str) -> dict[str, str]:
    """``environ`` without the virtualenv ``venv``: what a nox started by a user would see."""
    # What nox set for the bench's own session (its venv, and uv's view of it) goes too, and
    # the caller's shared caches: a row that uses one sets its own.
    session = {"VIRTUAL_ENV", "CONDA_PREFIX", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT",
               "DEATHSTAR_BUILD_CACHE", "DEATHSTAR_BUILD_CACHE_WRITE", "DEATHSTAR_RESULTS_CACHE",
               "DEATHSTAR_RESULTS_CACHE_WRITE"}  # fmt: skip
    env = {k: v for k, v in environ.items() if k not in session}
    path = environ.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if p and p != str(Path(venv) / "bin"))
    return env


class NoxRuns:
    """The P4, P6, P7 and P8 steps; the images the pipeline builds go to the engine's cleanup."""

    def __init__(self, engine: Engine, options: Options, log: Callable[[str], None]) -> None:
        self.engine, self.options, self.log = engine, options, log
        self.clone = engine.work / "pipeline"

    def nox(self, clone: Path, *args: str, cache: Path | None = None) -> str:
        """nox as a user starts it; with the result cache in ``cache``, else with it off."""
        command = [self.options.nox_python, "-m", "nox", *args]
        env = outer_env(os.environ, sys.prefix)
        env.pop("DEATHSTAR_CACHE", None)
        env.update({"DEATHSTAR_CACHE_DIR": str(cache)} if cache else {"DEATHSTAR_CACHE": "off"})
        return self.engine.run(command, cwd=clone, env=env, timeout=NOX_TIMEOUT, merge=True)

    def timed(
        self,
        name: str,
        args: Sequence[str],
        prepare: Callable[[], object] = str,
        cache: Path | None = None,
    ) -> tuple[str, Spent, dict[str, float | str]]:
        """``nox ARGS`` in the pipeline's clone after ``prepare``: output, Spent, session times."""
        report = self.engine.work / f"nox-report-{name}.json"
        nox = partial(self.nox, self.clone, *args, "--report", str(report), cache=cache)
        output, spent = measure(lambda: (prepare(), nox())[1])
        return output, spent, session_times(report)

    def environments(self) -> list[Figure]:
        session = self.options.test_session
        fig = Figure("P6", f"`nox -s {session} --install-only`", "s", baseline_name="virtualenv")
        clone, failed = self.engine.clone("env"), dict[str, str]()
        for run in range(1, self.options.env_runs + 1):
            for backend in [b for b in ("uv", "virtualenv") if b not in failed]:
                shutil.rmtree(clone / ".nox", ignore_errors=True)
                args = ("-s", session, "--install-only", "-db", backend)
                try:
                    spent = measure(partial(self.nox, clone, *args))[1]
                except CommandError as exc:
                    failed[backend] = reason(exc.output)
                    self.log(f"bench: P6 {backend} backend failed: {failed[backend]}")
                    continue
                fig.add(spent.wall, baseline=backend != "uv")
                self.log(f"bench: P6 run {run} {backend}: {spent.wall:.1f} s")
        fig.error = f"the uv backend failed: {failed['uv']}" if "uv" in failed else ""
        if "virtualenv" in failed:
            fig.note = f"the virtualenv backend failed: {failed['virtualenv']}"
        return [fig]

    def pipeline(self) -> list[Figure]:
        steps = [Figure(key, title, "s", at_most=limit) for key, title, limit, _ in PIPELINE]
        broken = Figure("P4.break", BREAK_TITLE, "sessions", at_least=1.0, aggregate="min")
        before = {tag: self.engine.docker.image_id(tag) for tag in self.engine.plan.tags}
        made: list[str] = []
        floors: list[Figure] = []
        try:
            for run in range(1, self.options.pipeline_runs + 1):
                cache = self.engine.work / f"results-cache-{run}"  # empty: P4 is cold
                for index, (fig, (*_, edited)) in enumerate(zip(steps, PIPELINE, strict=True)):
                    if not self._run(fig, run, edited, made, cache):
                        for later in [*steps[index + 1 :], broken]:
                            later.error = f"not run: the pipeline failed in {fig.key}"
                        return [*steps, broken]
                if run == self.options.pipeline_runs:  # alone, before P4.break breaks the image
                    floors = [self._floor(f"{key}.floor", args) for key, *_, args in SESSIONS]
                self._break(broken, run, made, cache)
        finally:
            self._restore_tags(before, made)
        p4_floor, edit_floor = (
            floor_figure(f"{step.key}.floor", f"{step.key}'s CPU time ÷ the cores", spent_of(step))
            for step in (steps[0], steps[2])
        )
        p8, p7 = session_figures(steps[0], self.options.test_session)
        return [steps[0], p4_floor, steps[1], steps[2], edit_floor, *steps[3:], broken,
                p8, floors[0], p7, floors[1]]  # fmt: skip

    def _run(
        self, fig: Figure, run: int, edited: Path | None, made: list[str], cache: Path
    ) -> bool:
        """One ``nox`` in the pipeline's clone (a new clone for P4); False when it failed."""

        def prepare() -> None:
            if fig.key == "P4":
                self.engine.clone("pipeline")
            if edited:
                add_line(self.clone / edited, f"# bench pipeline edit {run}", first=True)

        try:
            output, spent, times = self.timed(
                f"{fig.key}-{run}", ["--no-error-on-missing-interpreters"], prepare, cache
            )
            self.engine.track(output)
            # What the result cache did, in the bench's log: hits, reruns, passes not recorded.
            for line in output.splitlines():
                if CACHE_LINE.search(line):
                    self.log(f"bench: {fig.key}: {line.strip()[:160]}")
        except CommandError as exc:
            self.engine.track(exc.output)
            tail = "\n".join(exc.output.strip().splitlines()[-15:])
            self.log(f"bench: {fig.key} failed; the end of its output:\n{tail}")
            fig.error = str(exc)
            return False
        finally:
            self._note_image(made)
        fig.runs.append(spent.wall)
        if spent.cpu is not None:
            fig.details.setdefault("cpu per run", []).append(asdict(spent))
        fig.details.setdefault("sessions per run", []).append(times)
        fig.note = "; ".join(filter(None, [fig.note, f"run {run}: {describe_times(times)}"]))
        self.log(f"bench: P4 run {run} {fig.key}: {spent.wall:.0f} s")
        return True

    def _break(self, fig: Figure, run: int, made: list[str], cache: Path) -> None:
        """P4.break: /healthz made to answer 500; nox must fail, in every unit-test session and
        in integration. The value is how many of those failed as they must (at least 1 of each
        kind to pass: the figure's minimum over kinds)."""
        path = self.clone / BROKEN
        path.write_text(path.read_text("utf-8").replace(HEALTHY, UNHEALTHY, 1), "utf-8")
        report = self.engine.work / f"nox-report-P4.break-{run}.json"
        args = ("--no-error-on-missing-interpreters", "--report", str(report))
        try:
            self.engine.track(self.nox(self.clone, *args, cache=cache))
            failed_as_it_must = False
        except CommandError as exc:
            self.engine.track(exc.output)
            failed_as_it_must = True
        finally:
            self._note_image(made)
        times = session_times(report)
        ran = {name: took for name, took in times.items()
               if name.startswith(MUST_FAIL) and not str(took).startswith("skipped")}  # fmt: skip
        failed = [name for name, took in ran.items() if str(took).startswith("failed")]
        kinds = [[n for n in failed if n.startswith(kind)] for kind in MUST_FAIL]
        fig.runs.append(float(min(len(k) for k in kinds)) if failed_as_it_must else 0.0)
        fig.note = "; ".join(filter(None, [fig.note, f"run {run}: {describe_times(times)}"]))
        if not failed_as_it_must:
            fig.error = "nox passed with /healthz answering 500"
        elif len(failed) < len(ran):
            fig.error = f"passed although /healthz answers 500: {sorted(set(ran) - set(failed))}"
        self.log(f"bench: P4 run {run} P4.break: {describe_times(times)}")

    def _note_image(self, made: list[str]) -> None:
        record = records.image_record_path(self.clone)
        if record.is_file():
            made.append(records.load_image_record(record).image_id)

    def _floor(self, key: str, args: str) -> Figure:
        """One session again, alone, in the pipeline's clone: the CPU it keeps busy ÷ the cores."""
        command = f"nox {args.format(test=self.options.test_session)}"
        title, spent = f"CPU time of `{command}` ÷ the cores", []
        for run in range(1, self.options.pipeline_runs + 1 if PROC_STAT.is_file() else 1):
            try:
                _, took, times = self.timed(f"{key}-{run}", command.split()[1:])
            except CommandError as exc:
                return Figure(key, title, "s", error=f"`{command}` failed: {reason(exc.output)}")
            # nox's own start is in the CPU count, not in the session's time nox reports.
            spent.append((took, f" (sessions: {describe_times(times)})"))
            self.log(f"bench: {key} run {run}: {took}")
        return floor_figure(key, title, spent)

    def _restore_tags(self, before: Mapping[str, str | None], made: Sequence[str]) -> None:
        """Point the tags the pipeline moved back where they were; drop the images it made."""
        for tag, previous in before.items():
            if self.engine.docker.image_id(tag) in made:  # moved by us, and by no one since
                self.engine.docker(*(("tag", previous, tag) if previous else ("rmi", tag)))
        self.engine.remember(short_id(i) for i in made)
