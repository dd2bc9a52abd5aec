"""The whole-suite coverage floor: fresh data by test module, stored data only where current."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import coverage
import pytest
from coverage.config import CoverageConfig

from harness.results import contexts, floor, keys, unit
from harness.results.store import Store, open_store
from tests.gitrepo import git

A, B = "tests/test_a.py", "tests/test_b.py"
SOURCE = "def f(x):\n    if x:\n        return 1\n    return 2\n"
IMPORT = {(-1, 1), (1, -1)}
WHEN_TRUE = {(-1, 2), (2, 3), (3, -1)}
WHEN_FALSE = {(-1, 2), (2, 4), (4, -1)}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text(SOURCE)
    (root / "pyproject.toml").write_text(
        "[tool.coverage.run]\nbranch = true\nsource = ['pkg']\n"
        "[tool.coverage.report]\nfail_under = 90\n"
    )
    git(root, "init", "-q")
    monkeypatch.chdir(root)
    monkeypatch.setenv("DEATHSTAR_CACHE_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("DEATHSTAR_CACHE", raising=False)  # the caller's switch is not the test's
    return root


def store() -> Store:
    opened = open_store(os.environ)
    assert opened is not None
    return opened


def write_fresh(root: Path, by_context: dict[str, set[tuple[int, int]]]) -> None:
    data = coverage.CoverageData(basename=str(root / ".coverage.worker"))
    for context, arcs in by_context.items():
        data.set_context(context)
        data.add_arcs({str(root / "pkg" / "mod.py"): arcs})
    data.write()


def make_plan(root: Path, b_stored_blob: str | None) -> Path:
    blobs = keys.file_digests(root, keys.session_files(root))
    mod = "pkg/mod.py"
    if b_stored_blob is not None:
        entry = {"recorded_at": unit.now(), "tests": 3, "arcs": {mod: sorted(WHEN_FALSE)},
                 "blobs": {mod: b_stored_blob}}  # fmt: skip
        store().put("b" * 64, entry)
    run = unit.Plan(
        str(root), "test-3.11", record=True, session_key="c" * 64,
        modules={A: unit.Module("a" * 64, True, [mod]), B: unit.Module("b" * 64, False, [])},
        counts=str(root / "counts.json"), blobs=blobs,
    )  # fmt: skip
    (root / "counts.json").write_text(json.dumps({A: 2}))
    return run.save(root)


def test_fresh_and_stored_coverage_together_meet_the_floor_and_record(project: Path) -> None:
    write_fresh(project, {A: WHEN_TRUE, "": IMPORT})
    blob = keys.file_digests(project, ["pkg/mod.py"])["pkg/mod.py"]
    assert floor.main([str(make_plan(project, blob))]) == 0
    recorded = store().get("a" * 64)
    assert recorded is not None
    assert recorded["tests"] == 2
    assert {tuple(arc) for arc in recorded["arcs"]["pkg/mod.py"]} == WHEN_TRUE | IMPORT
    assert recorded["blobs"] == {"pkg/mod.py": blob}
    session = store().get("c" * 64)
    assert session is not None
    assert session.pop("recorded_at").startswith("20")  # its own second: no timed assertion
    assert session == {
        "summary": "5 tests, 100.0 % branch coverage",
        "origin": "a developer machine",
    }


def test_stored_lines_of_a_changed_source_file_do_not_count(project: Path) -> None:
    write_fresh(project, {A: WHEN_TRUE, "": IMPORT})
    assert floor.main([str(make_plan(project, "0" * 40))]) == 2  # measured on other contents
    assert store().get("a" * 64) is None  # a failed floor records nothing
    assert store().get("c" * 64) is None


def test_a_source_file_no_test_ran_counts_with_nothing_covered(project: Path) -> None:
    (project / "pkg" / "unrun.py").write_text("".join(f"x{n} = {n}\n" for n in range(40)))
    write_fresh(project, {A: WHEN_TRUE | WHEN_FALSE, "": IMPORT})
    blob = keys.file_digests(project, ["pkg/mod.py"])["pkg/mod.py"]
    assert floor.main([str(make_plan(project, blob))]) == 2


def test_a_stored_entry_that_went_missing_fails_rather_than_counting_nothing(
    project: Path,
) -> None:
    write_fresh(project, {A: WHEN_TRUE | WHEN_FALSE, "": IMPORT})
    assert floor.main([str(make_plan(project, None))]) == 1


def test_a_run_with_pytest_arguments_reports_its_own_data_and_records_nothing(
    project: Path,
) -> None:
    write_fresh(project, {"": IMPORT | WHEN_TRUE | WHEN_FALSE})
    run = unit.Plan(str(project), "test-3.11", record=False, pytest_args=["-k", "x"])
    assert floor.main([str(run.save(project))]) == 0
    assert not any(store().root.glob("*.json")) if store().root.exists() else True


def test_only_current_files_of_a_stored_entry_count() -> None:
    entry = {
        "arcs": {"a.py": [[1, 2]], "b.py": [[3, 4]], "c.py": [[5, 6]]},
        "blobs": {"a.py": "x", "b.py": "y", "c.py": "unknown"},  # c.py: no key saw it
    }
    assert floor.current(entry, {"a.py": "x", "b.py": "changed"}) == {"a.py": {(1, 2)}}


def test_whose_fresh_coverage_each_context_is() -> None:
    run = unit.Plan("/r", "s", record=True, modules={
        A: unit.Module("a" * 64, True, ["pkg/x.py"]),
        B: unit.Module("b" * 64, True, ["pkg/y.py"]),
        "tests/test_c.py": unit.Module("c" * 64, False, ["pkg/x.py"]),
    })  # fmt: skip
    assert floor.owners(A, "pkg/x.py", run) == [A]
    assert floor.owners(unit.CHILD + B, "pkg/x.py", run) == [B]
    # Import-time lines go to every rerun module whose imports reach the file.
    assert floor.owners(unit.COLLECT + B, "pkg/x.py", run) == [B, A]
    assert floor.owners(unit.COLLECT + B, "pkg/z.py", run) == [B]
    assert floor.owners("", "pkg/x.py", run) == [A, B]  # start-up: every rerun module's


class Measuring:
    def __init__(self) -> None:
        self.contexts: list[str] = []

    def switch_context(self, context: str) -> None:
        self.contexts.append(context)


@pytest.fixture
def measuring(monkeypatch: pytest.MonkeyPatch) -> Measuring:
    fake = Measuring()
    monkeypatch.setattr(coverage.Coverage, "current", lambda: fake)
    monkeypatch.setenv(contexts.CHILD_CONFIG, CoverageConfig().serialize())
    return fake


def test_a_module_its_children_and_its_import_are_attributed(measuring: Measuring) -> None:
    before = os.environ[contexts.CHILD_CONFIG]
    config = SimpleNamespace(rootpath=Path("/r"))
    item = SimpleNamespace(config=config, path=Path("/r/tests/test_a.py"))
    hook: Generator[None, object, object] = contexts.pytest_runtest_protocol(item)  # type: ignore[arg-type]
    next(hook)
    child = CoverageConfig.deserialize(os.environ[contexts.CHILD_CONFIG])
    assert child.context == unit.CHILD + A
    with pytest.raises(StopIteration) as done:
        hook.send("result")
    assert done.value.value == "result"
    assert os.environ[contexts.CHILD_CONFIG] == before
    assert measuring.contexts == [A, ""]
    module = pytest.Module.__new__(pytest.Module)
    object.__setattr__(module, "config", config)  # a Module as collection hands it over
    object.__setattr__(module, "path", Path("/r/tests/test_b.py"))
    collect: Generator[None, Any, Any] = contexts.pytest_make_collect_report(module)
    next(collect)
    assert measuring.contexts[-1] == unit.COLLECT + B


def test_the_controller_writes_each_modules_passed_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contexts, "PASSED", contexts.PASSED.__class__())
    for nodeid, when, passed in [
        (f"{A}::test_1", "call", True), (f"{A}::test_2", "call", True),
        (f"{A}::test_3", "call", False), (f"{B}::test_1", "setup", True),
    ]:  # fmt: skip
        contexts.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, when=when, passed=passed))  # type: ignore[arg-type]
    counts = tmp_path / "counts.json"
    config = controller(tmp_path, counts)
    contexts.pytest_sessionfinish(SimpleNamespace(config=config))  # type: ignore[arg-type]
    assert json.loads(counts.read_text()) == {A: 2}


def controller(root: Path, counts: Path) -> SimpleNamespace:
    """What the plugin reads of pytest's config in the controller."""
    lines: list[str] = []
    writer = SimpleNamespace(line=lambda text, **_: lines.append(text))
    return SimpleNamespace(
        getoption=lambda name: str(counts), rootpath=root, stash=pytest.Stash(), lines=lines,
        get_terminal_writer=lambda: writer,
    )  # fmt: skip


def test_a_run_that_relinked_the_checkouts_pythons_fails(tmp_path: Path) -> None:
    pythons = tmp_path / ".nox" / "pythons"
    pythons.mkdir(parents=True)
    (pythons / "python3.11").symlink_to("/usr/bin/python3.11")
    config = controller(tmp_path, tmp_path / "counts.json")
    session = SimpleNamespace(config=config, exitstatus=pytest.ExitCode.OK)
    contexts.pytest_sessionstart(session)  # type: ignore[arg-type]
    contexts.pytest_sessionfinish(session)  # type: ignore[arg-type]
    assert session.exitstatus == pytest.ExitCode.OK
    (pythons / "python3.11").unlink()
    (pythons / "python3.11").symlink_to("/opt/other/python3.11")  # what a test's nox -l did
    contexts.pytest_sessionfinish(session)  # type: ignore[arg-type]
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert config.lines == [f"error: a test relinked {pythons}"]
