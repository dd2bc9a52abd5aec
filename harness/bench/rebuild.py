"""P1 and P2: a one-line source change, rebuilt by both sides, and the images' payloads.

P1a is the wall time from the edit to a tagged image; P1b the bytes of the layers that are new
(gzip, as a push sends them, and the uncompressed tarballs); P2 image size minus base size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from harness.bench import layers as bench_layers
from harness.bench.engine import BUILD_TIMEOUT, Engine
from harness.bench.options import Options
from harness.bench.report import Figure, Target
from harness.bench.workspace import Side

EDITED = Path("deathstar/app.py")


def append_line(path: Path, line: str) -> None:
    """The one-line change: ``line`` appended to ``path``."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text + ("" if text.endswith("\n") else "\n") + line + "\n", encoding="utf-8")


def prepend_line(path: Path, line: str) -> None:
    """A one-line change that stays lint-clean: ``line`` (a comment) becomes the first line.

    The pipeline lints what it builds, and ruff's format wants two blank lines before a
    comment that follows a function at the end of a module.
    """
    path.write_text(line + "\n" + path.read_text(encoding="utf-8"), encoding="utf-8")


def new_layer_bytes(engine: Engine, before: str, after: str) -> tuple[int, int]:
    """Tarball and gzip bytes of the layers of ``after`` that ``before`` lacks."""
    fresh = bench_layers.new_layers(engine.layers(before), engine.layers(after))
    if not fresh:
        return 0, 0
    archive = engine.work / "save.tar"
    try:
        engine.docker("save", "--output", str(archive), after, timeout=BUILD_TIMEOUT)
        measured = bench_layers.measure_saved(archive, fresh)
    finally:
        archive.unlink(missing_ok=True)
    return sum(m.size for m in measured), sum(m.gzip_size for m in measured)


def rebuilds(
    engine: Engine, ours: Side, seed: Side, options: Options, log: Callable[[str], None]
) -> list[Figure]:
    p1a = Figure("P1a", "rebuild after a one-line change", "s", baseline_name=seed.name)
    p1a.target = Target(at_most=4.0, ratio_at_most=0.6)
    # P1b counts what a registry receives on push: layers travel gzip-compressed.
    p1b_gz = Figure(
        "P1b",
        "new layer bytes pushed after that change (gzip)",
        "bytes",
        baseline_name=seed.name,
    )
    p1b_gz.target = Target(at_most=20_000)
    p1b = Figure("P1b.raw", "the same, uncompressed tar", "bytes", baseline_name=seed.name)
    p2 = Figure("P2", "image payload (size - base)", "bytes", baseline_name=seed.name)
    p2.target = Target(at_most=17_000_000, beat_baseline=True)
    base_size = engine.docker.image_size(options.base_image)
    for side in (ours, seed):
        log(f"bench: P1 first build of {side.name} (untimed, fills the build cache)")
        engine.tags.append(f"{side.repo}:0")
        side.build(f"{side.repo}:0")
        side.tags.append(f"{side.repo}:0")
    for run in range(1, options.runs + 1):
        for side in (ours, seed):
            # Unique to this bench run: an edit an earlier run made would be in the build
            # cache, and a side that rebuilds from that cache would be timed on a cache hit.
            append_line(side.clone / EDITED, f"# bench edit {run} of {engine.token}")
            tag = f"{side.repo}:{run}"
            engine.tags.append(tag)
            started = time.perf_counter()
            side.build(tag)
            elapsed = time.perf_counter() - started
            raw, packed = new_layer_bytes(engine, side.tags[-1], tag)
            side.tags.append(tag)
            size = engine.docker.image_size(tag) - base_size
            mine = side is ours
            (p1a.runs if mine else p1a.baseline_runs).append(elapsed)
            (p1b.runs if mine else p1b.baseline_runs).append(raw)
            (p1b_gz.runs if mine else p1b_gz.baseline_runs).append(packed)
            (p2.runs if mine else p2.baseline_runs).append(size)
            log(
                f"bench: P1 run {run}/{options.runs} {side.name}: {elapsed:.2f} s, "
                f"{raw / 1000:.1f} kB new layers ({packed / 1000:.1f} kB gzip)"
            )
    # The seed's final stage holds a copy of the wheelhouse, which the tutorial's build
    # fetches from the network instead: compare with the seed's payload without it.
    wheelhouse = sum(f.stat().st_size for f in (seed.clone / "dist" / "wheelhouse").iterdir())
    p2.baseline_runs = [size - wheelhouse for size in p2.baseline_runs]
    p2.note = (
        f"seed-style measured minus its {wheelhouse / 1e6:.1f} MB wheelhouse layer, which "
        "only the offline build needs (the tutorial installs from the network)"
    )
    p1a.note = (
        "ours: uv build (sdist and wheel, as `nox -s build`) + "
        "python -m harness.stage (the project layer, on the host) + the image as `nox -s image` "
        "builds it (reproducible: an archive with rewritten timestamps, FROM the kept runtime "
        "base, then docker load); "
        "seed-style: docker build, loaded by the engine, not reproducible"
    )
    return [p1a, p1b_gz, p1b, p2]
