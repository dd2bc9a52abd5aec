"""``python -m harness.bench``: preflight, measure, clean up, write the results."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from harness import ROOT, HarnessError
from harness.bench import images, shared_cache
from harness.bench.engine import Engine
from harness.bench.options import Options, parse_args
from harness.bench.pipeline import NoxRuns
from harness.bench.report import Figure, document, machine, markdown, splice, table
from harness.core.process import Runner
from harness.core.process import run as run_command
from harness.image import records, wheelhouse


def preflight(engine: Engine, options: Options) -> str:
    """The engine's version; refusals for what the bench cannot do without."""
    version = engine.docker.require_engine()
    if not engine.docker.image_id(options.base_image):
        raise HarnessError(f"the base image {options.base_image} is missing: pull it, or run "
                           "`bash .ci/provision` where no registry is reachable")  # fmt: skip
    # A fresh clone has none: filled as `nox -s build` fills it (this session has pip).
    dist, lock = engine.root / "dist", engine.root / "requirements" / "runtime.txt"
    try:
        said = wheelhouse.refresh(
            lock, dist, lambda command: engine.run([sys.executable, *command[1:]], timeout=600)
        )
    except HarnessError as exc:
        raise HarnessError(
            f"the locked wheels could not be downloaded into dist/wheelhouse ({exc}): "
            "run `nox -s build` first"
        ) from None
    print(f"bench: {said}")
    if not any((dist / "wheelhouse").glob("*.whl")):
        raise HarnessError("dist/wheelhouse is still empty: run `nox -s build` first")
    if not (engine.root / images.SEED_DOCKERFILE).is_file():
        raise HarnessError(f"{images.SEED_DOCKERFILE} is missing")
    engine.note_existing_images()
    return version


def measure(engine: Engine, options: Options, log: Callable[[str], None]) -> list[Figure]:
    """Every step in turn; a step that fails is one failed row and does not stop the rest."""
    engine.take_snapshot(options.base_image)
    ours, seed = images.sides(engine, options.base_image)
    nox = NoxRuns(engine, options, log)
    steps: list[tuple[str, str, Callable[[], list[Figure]]]] = [
        ("P1", "rebuild and layers", lambda: images.rebuilds(engine, ours, seed, options, log)),
        ("P3", "start", lambda: images.start_to_ready(engine, ours, seed, options.start_runs, log)),
        ("P5", "API under load", lambda: images.api_load(engine, ours, options, log)),
        ("P6", "environments", nox.environments),
        ("P4", "pipeline", nox.pipeline),
        ("P9", "registry build cache", lambda: shared_cache.cached_builds(engine, options, log)),
        ("P10", "shared results", lambda: shared_cache.shared_results(engine, options, log)),
        ("P11", "second engine", lambda: shared_cache.remote_builder(engine, options, log)),
    ]
    figures: list[Figure] = []
    for key, title, step in steps:
        without_images = key in ("P3", "P5") and not (ours.tags and seed.tags)
        if without_images or (key in ("P4", "P9", "P10", "P11") and options.skip_pipeline):
            continue
        try:
            figures += step()
        except HarnessError as exc:
            log(f"bench: {key} failed: {exc}")
            figures.append(Figure(key, title, "s", error=str(exc)))
    return figures


def main(argv: Sequence[str], *, runner: Runner = run_command, root: Path = ROOT) -> int:
    options = parse_args(argv)
    engine = Engine(runner, root)
    started = time.perf_counter()
    try:
        try:
            version = preflight(engine, options)
            print(f"bench: Docker engine {version}; working in {engine.work}")
            figures = measure(engine, options, print)
        finally:
            engine.cleanup()
    except HarnessError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    doc = document(
        figures, time.perf_counter() - started, command=options.command, revision=engine.revision,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine=machine(version),
        settings=options.settings(),
    )  # fmt: skip
    out = options.output_dir
    records.write_json(out / "results.json", doc)
    results_md = out / "RESULTS.md"
    existing = results_md.read_text(encoding="utf-8") if results_md.is_file() else None
    results_md.write_text(splice(existing, markdown(doc, figures)), encoding="utf-8")
    print(f"\n{table(figures)}\nwrote {out / 'results.json'} and {results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
