"""``python -m harness.bench``: preflight, measure, clean up, write the results."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from harness import ROOT, HarnessError
from harness.bench import load, rebuild, start
from harness.bench.engine import Engine
from harness.bench.machine import machine
from harness.bench.options import Options, parse_args
from harness.bench.pipeline import NoxRuns
from harness.bench.report import Figure, document, markdown, splice, table
from harness.bench.workspace import SEED_DOCKERFILE, Workspace
from harness.core import git as gitinfo
from harness.core.process import Runner
from harness.core.process import run as run_command
from harness.image import records, wheelhouse

Log = Callable[[str], None]


def preflight(engine: Engine, options: Options, root: Path, runner: Runner = run_command) -> str:
    """The engine's version; refusals for what the bench cannot do without."""
    version = engine.docker.require_engine()
    if not engine.docker.image_id(options.base_image):
        raise HarnessError(
            f"the base image {options.base_image} is missing: pull it, or run "
            "`bash .ci/provision` where no registry is reachable"
        )
    # A fresh clone has none: filled as `nox -s build` fills it (this session has pip).
    lock, dist = root / "requirements" / "runtime.txt", root / "dist"
    try:
        said = wheelhouse.refresh(
            lock, dist, lambda command: runner([sys.executable, *command[1:]], timeout=600)
        )
    except HarnessError as exc:
        raise HarnessError(
            f"the locked wheels could not be downloaded into dist/wheelhouse ({exc}): "
            "run `nox -s build` first"
        ) from None
    print(f"bench: {said}")
    if not any((dist / "wheelhouse").glob("*.whl")):
        raise HarnessError("dist/wheelhouse is still empty: run `nox -s build` first")
    if not (root / SEED_DOCKERFILE).is_file():
        raise HarnessError(f"{SEED_DOCKERFILE} is missing")
    engine.note_existing_images()
    return version


def attempt(key: str, title: str, step: Callable[[], list[Figure]], log: Log) -> list[Figure]:
    """The figures of ``step``, or one failed row: a failing step does not stop the rest."""
    try:
        return step()
    except HarnessError as exc:
        log(f"bench: {key} failed: {exc}")
        return [Figure(key, title, "s", error=str(exc))]


def measure(engine: Engine, workspace: Workspace, options: Options, log: Log) -> list[Figure]:
    workspace.take_snapshot()
    ours, seed = workspace.sides()
    figures = attempt(
        "P1", "rebuild and layers", lambda: rebuild.rebuilds(engine, ours, seed, options, log), log
    )
    if ours.tags and seed.tags:
        figures += attempt(
            "P3",
            "start",
            lambda: start.start_to_ready(engine, ours, seed, options.start_runs, log),
            log,
        )
        if why := load.wrk_missing():
            log(f"bench: P5 {why}")
            figures.append(Figure("P5", "API under load", "req/s", error=why))
        else:
            figures += attempt(
                "P5",
                "API under load",
                lambda: load.api_load(engine, ours, options, runner=workspace.run, log=log),
                log,
            )
    nox = NoxRuns(engine, workspace, options, log)
    figures += attempt("P6", "environments", nox.environments, log)
    if not options.skip_pipeline:
        figures += attempt("P4", "pipeline", nox.pipeline, log)
    return figures


def main(argv: Sequence[str], *, runner: Runner = run_command, root: Path = ROOT) -> int:
    options = parse_args(argv)
    engine = Engine(runner, print)
    workspace = Workspace(root, engine, runner, options.base_image)
    started = time.perf_counter()
    try:
        try:
            version = preflight(engine, options, root, runner)
            print(f"bench: Docker engine {version}; working in {engine.work}")
            facts = machine(version)
            figures = measure(engine, workspace, options, print)
        finally:
            engine.cleanup()
    except HarnessError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    doc = document(
        figures=figures,
        machine=facts,
        command=options.command,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        revision=gitinfo.revision(root),
        duration=time.perf_counter() - started,
        settings=options.settings(),
    )
    out = options.output_dir
    records.write_json(out / "results.json", doc)
    results_md = out / "RESULTS.md"
    existing = results_md.read_text(encoding="utf-8") if results_md.is_file() else None
    results_md.write_text(splice(existing, markdown(doc, figures)), encoding="utf-8")
    print()
    print(table(figures), end="")
    print(f"\nwrote {out / 'results.json'} and {results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
