"""The coverage floor over the whole suite, run in the session venv after the rerun modules:
``python -m harness.results.floor PLAN``.

Fresh data is attributed to test modules by context (``contexts``); the modules that did not rerun
add their stored arcs, but only for source files whose blob is still the one measured (line
numbers move). The merged data is reported with coverage's own report and ``fail_under``; only a
pass records each rerun module's result and the session's.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import coverage

from harness.results import keys, remote, unit
from harness.results.store import Store

Arcs = dict[str, set[tuple[int, int]]]  # source file (relative to the root) -> arcs


def _add(into: Arcs, file: str, arcs: Iterable[tuple[int, int]]) -> None:
    into.setdefault(file, set()).update(arcs)


def owners(context: str, file: str, plan: unit.Plan) -> list[str]:
    """Whose fresh coverage a context's arcs of ``file`` are. A module's own context and its
    children's are its; import-time lines (``collect:``) are every rerun module's whose imports
    reach the file, since only the first importer executes them; start-up is everyone's."""
    rerun = [name for name, module in plan.modules.items() if module.rerun]
    for prefix in (unit.CHILD, ""):
        if context.startswith(prefix) and context.removeprefix(prefix) in rerun:
            return [context.removeprefix(prefix)]
    if context.startswith(unit.COLLECT):
        importer = context.removeprefix(unit.COLLECT)
        return [importer, *(n for n in rerun if n != importer and file in plan.modules[n].closure)]
    return rerun


def attribute(root: Path, plan: unit.Plan) -> dict[str, Arcs]:
    """Each rerun module's fresh arcs, from every data file of this run."""
    fresh: dict[str, Arcs] = defaultdict(dict)
    for path in sorted(root.glob(".coverage.*")):
        data = coverage.CoverageData(basename=str(path))
        data.read()
        files = {f: Path(os.path.relpath(f, root)).as_posix() for f in data.measured_files()}
        for context in sorted(data.measured_contexts()):
            data.set_query_contexts([f"^{re.escape(context)}$"])
            for absolute, file in files.items():
                arcs = data.arcs(absolute) or []
                for owner in owners(context, file, plan):
                    if arcs and owner in plan.modules:
                        _add(fresh[owner], file, arcs)
    return fresh


def current(stored: Mapping[str, Any], blobs: Mapping[str, str]) -> Arcs:
    """A stored entry's arcs of the source files that have not changed since."""
    return {
        file: {(a, b) for a, b in arcs}
        for file, arcs in stored["arcs"].items()
        if stored["blobs"].get(file) == blobs.get(file)
    }


def main(argv: Sequence[str]) -> int:
    plan = unit.load(Path(argv[0]))
    root = Path(plan.root)
    store = remote.open_shared(os.environ, root)
    fresh = attribute(root, plan)
    stored = {
        n: store.get(m.key) if store else None for n, m in plan.modules.items() if not m.rerun
    }
    if missing := sorted(name for name, entry in stored.items() if entry is None):
        print(f"stored results went missing meanwhile ({missing[0]}…): run again", file=sys.stderr)
        return 1
    # The contents the keys were computed on: a file edited during the run counts as changed.
    blobs = plan.blobs
    merged: Arcs = {}
    for arcs in [*fresh.values(), *(current(e, blobs) for e in stored.values() if e)]:
        for file, pairs in arcs.items():
            _add(merged, file, pairs)
    if not plan.record:  # a run with pytest arguments: its own data, whatever the modules
        merged = {}
        for path in sorted(root.glob(".coverage.*")):
            data = coverage.CoverageData(basename=str(path))
            data.read()
            for f in data.measured_files():
                _add(merged, Path(os.path.relpath(f, root)).as_posix(), data.arcs(f) or [])
    total = report(root, merged)
    measuring = coverage.Coverage()
    floor = float(str(measuring.get_option("report:fail_under")))
    if round(total, 1) < floor:
        print(f"coverage {total:.1f} % is below the floor {floor:.0f} %", file=sys.stderr)
        return 2
    if plan.record and store is not None:
        changed = keys.file_digests(root, blobs) != blobs  # an edit while the tests ran
        why = plan.withdrawn or ("an input changed while it ran" if changed else "")
        if why:
            print(f"results cache: {plan.session} is not recorded: {why}", file=sys.stderr)
        else:
            record(plan, store, fresh, blobs, stored, total=total)
    return 0


def report(root: Path, merged: Arcs) -> float:
    """coverage's report of ``merged``, from a data file of its own; returns the total."""
    target = root / ".coverage"
    target.unlink(missing_ok=True)
    measuring = coverage.Coverage(data_file=str(target))
    # A source file no test ran counts too, with nothing covered.
    sources = measuring.get_option("run:source")
    folders = sources if isinstance(sources, list) else []
    data = coverage.CoverageData(basename=str(target))
    data.add_arcs({str(root / f): pairs for f, pairs in merged.items()})
    data.touch_files([str(f) for s in folders for f in (root / s).rglob("*.py")])
    data.write()
    measuring.load()
    return float(measuring.report())


def record(
    plan: unit.Plan,
    store: Store,
    fresh: Mapping[str, Arcs],
    blobs: Mapping[str, str],
    stored: Mapping[str, Any],
    *,
    total: float,
) -> None:
    """Each rerun module's pass with its coverage and the blobs it was measured on; the
    session's pass with the suite's figures, which a full hit prints."""
    counts = json.loads(Path(plan.counts).read_text(encoding="utf-8")) if plan.counts else {}
    tests = 0
    for name, module in plan.modules.items():
        if module.rerun:
            arcs = fresh.get(name, {})
            entry: Mapping[str, Any] = {
                "recorded_at": unit.now(),
                "tests": int(counts.get(name) or 0),
                "arcs": {f: sorted(pairs) for f, pairs in arcs.items()},
                "blobs": {f: blobs.get(f, "unknown") for f in arcs},  # unknown: never counts
            }
            store.put(module.key, entry)
        else:
            entry = stored[name]
        tests += int(entry["tests"])  # passed tests, as pytest counts them
    summary = f"{tests} tests, {total:.1f} % branch coverage"
    made_by = remote.origin(os.environ)
    store.put(plan.session_key, {"recorded_at": unit.now(), "summary": summary, "origin": made_by})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
