"""The unit-test session's cache: which test modules rerun, and what a full hit reports.

Each test module has a key: its inputs' blob IDs (``selection``) with the session-wide part
(interpreter, environment, this machinery's own code). A module whose key has a recorded pass
does not rerun; ``floor`` (run in the session venv) merges the rerun modules' coverage with the
stored coverage of the others, enforces the floor and records. Standard library only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness import HarnessError
from harness.results import keys, remote, selection, sessions

PLUGIN = "harness.results.contexts"
COLLECT, CHILD = "collect:", "child:"  # coverage contexts: a module's import, its children
PLAN_FILE = "unit-plan.json"
COUNTS_FILE = "unit-counts.json"
# The session's own machinery: how it selects, attributes and merges is part of every key.
OWN_CODE = (
    "noxfile.py",
    "harness/results/selection.py",
    "harness/results/unit.py",
    "harness/results/contexts.py",
    "harness/results/floor.py",
)


@dataclass
class Module:
    key: str
    rerun: bool
    closure: list[str]  # our files its imports reach: its import-time coverage is theirs


@dataclass
class Plan:
    root: str
    session: str
    record: bool  # False with pytest arguments: maybe not the whole suite
    session_key: str = ""
    modules: dict[str, Module] = field(default_factory=dict)
    pytest_args: list[str] = field(default_factory=list)
    counts: str = ""  # where the plugin writes each module's passed tests
    blobs: dict[str, str] = field(default_factory=dict)  # what the keys saw: coverage is of it
    cached: str = ""  # the one line a full hit prints; then nothing runs
    reason: str = ""
    withdrawn: str = ""  # why this run's passes may not be recorded (the floor still holds)

    @property
    def runs_tests(self) -> bool:
        return bool(self.pytest_args) or not self.record

    def workers(self, default: str) -> str:
        """pytest-xdist's workers: none for a single module, whose workers would cost more to
        start than its tests take."""
        return "0" if self.record and sum(m.rerun for m in self.modules.values()) == 1 else default

    def save(self, folder: Path) -> Path:
        path = folder / PLAN_FILE
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        return path


def load(path: Path) -> Plan:
    data = json.loads(path.read_text(encoding="utf-8"))
    modules = {name: Module(**module) for name, module in data.pop("modules").items()}
    return Plan(**data, modules=modules)


def now() -> str:
    """A record's time, in the form ``sessions.hit_line`` reads."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_module_entry(entry: object) -> bool:
    """A module's pass as ``floor`` reads it: its test count, and its arcs (pairs of line
    numbers) and blob IDs by file. Any other shape (a hostile registry's) is a miss."""
    if not isinstance(entry, dict) or type(entry.get("tests")) is not int:
        return False
    arcs, blobs = entry.get("arcs"), entry.get("blobs")
    if not isinstance(arcs, dict) or not isinstance(blobs, dict):
        return False
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in blobs.items()):
        return False
    pairs = [
        pair for value in arcs.values() for pair in (value if isinstance(value, list) else [0])
    ]
    return all(
        isinstance(p, list) and len(p) == 2 and all(type(n) is int for n in p) for p in pairs
    )


def session_part(root: Path, python: str, environ: Mapping[str, str]) -> str:
    return keys.digest({
        "interpreter": keys.interpreter(python),
        "nox_interpreter": sys.version,  # the selection runs in nox's own process
        "tools": sessions.tool_versions(sessions._output),  # uv installs the session's tools
        "environment": keys.environment(environ),
        "code": keys.file_digests(root, OWN_CODE),
    })  # fmt: skip


def plan(
    root: Path,
    session: str,
    posargs: Sequence[str],
    *,
    python: str,
    environ: Mapping[str, str],
    scratch: Path,
) -> Plan:
    """What this run of the unit-test session does; ``scratch`` holds its plan and counts."""
    store = remote.open_shared(environ, root)
    # The plugin measures every run alike: coverage must not depend on the cache's switch.
    counts = str(scratch / COUNTS_FILE)
    measured = ["-p", PLUGIN, f"--module-counts={counts}"]
    if posargs or store is None:
        why = "pytest arguments" if posargs else "the cache is off"
        reason = f"{session}: runs every selected test, records nothing ({why})"
        args = [*measured, *posargs]
        return Plan(
            str(root), session, record=False, pytest_args=args, counts=counts, reason=reason
        )
    try:
        files = sorted({*keys.session_files(root), *keys.files_on_disk(root, selection.PACKAGES)})
        graph = selection.Graph(files, lambda path: (root / path).read_text(encoding="utf-8"))
        inputs = {name: graph.inputs(name) for name in selection.test_modules(files)}
        blobs = keys.file_digests(root, files)
    except (HarnessError, OSError, ValueError) as exc:  # not keyable: run all, record nothing
        reason = f"{session}: runs every test, records nothing (results cache: {exc})"
        return Plan(
            str(root), session, record=False, pytest_args=measured, counts=counts, reason=reason
        )
    shared = session_part(root, python, environ)
    run = Plan(str(root), session, record=True, blobs=blobs)
    for name, (needs, closure) in inputs.items():
        key = keys.digest(
            {"session": shared, "module": name, "inputs": {f: blobs[f] for f in needs}}
        )
        run.modules[name] = Module(key, not is_module_entry(store.get(key)), closure)
    run.session_key = keys.digest(
        {"session": shared, "modules": {n: m.key for n, m in run.modules.items()}}
    )
    rerun = sorted(name for name, module in run.modules.items() if module.rerun)
    entry = store.get(run.session_key)
    if not rerun and entry is not None:
        pulled = sessions.is_pulled(store, run.session_key)
        run.cached = sessions.hit_line(session, run.session_key, entry, pulled=pulled)
        return run
    if rerun:
        run.counts, run.pytest_args = counts, [*measured, *rerun]
    shown = ", ".join(Path(name).name for name in rerun[:4]) + (", …" if len(rerun) > 4 else "")
    kept = len(run.modules) - len(rerun)
    run.reason = (
        f"{session}: {len(rerun)} of {len(run.modules)} test modules rerun, no recorded pass for "
        f"their inputs ({shown}); {kept} count with their recorded pass and coverage"
        if rerun
        else f"{session}: every test module has a recorded pass; merging their coverage"
    )
    return run
