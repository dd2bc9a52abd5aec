"""The unit-test session's plan: every kind of input, changed alone, makes its modules rerun."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.results import keys, unit
from harness.results.store import open_store
from tests.gitrepo import git

A, B = "tests/test_a.py", "tests/test_b.py"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(keys, "interpreter", lambda python: f"CPython 3.11 at {python}")
    root = tmp_path / "project"
    files = {
        ".gitignore": "/ignored/\n",
        "pyproject.toml": "[project]\nname = 'x'\n",
        "uv.lock": "version = 1\n",
        "noxfile.py": "import nox\n",
        "data/answers.json": "{}\n",
        "deathstar/__init__.py": "",
        "deathstar/core.py": "VALUE = 1\n",
        "deathstar/other.py": "VALUE = 2\n",
        "tests/__init__.py": "",
        "tests/conftest.py": "import pytest\n",
        A: "from deathstar import core\n\ndef test_a():\n    assert core.VALUE\n",
        B: "def test_b():\n    assert True\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "init", "-q")
    git(root, "add", ".")
    return root


def plan(
    root: Path, posargs: tuple[str, ...] = (), python: str = "python3.11", **environ: str
) -> unit.Plan:
    # A fixed environment: the ambient one is no business of these tests.
    environ = {"DEATHSTAR_CACHE_DIR": str(root.parent / "store"), "PATH": "/bin", **environ}
    return unit.plan(
        root, "test-3.11", posargs, python=python, environ=environ, scratch=root.parent
    )


def record_all(run: unit.Plan) -> None:
    store = open_store({"DEATHSTAR_CACHE_DIR": str(Path(run.root).parent / "store")})
    assert store is not None
    for module in run.modules.values():
        store.put(
            module.key, {"recorded_at": "2026-12-04T17:01:00Z", "tests": 2, "arcs": {}, "blobs": {}}
        )
    summary = {"recorded_at": "2026-12-04T17:01:00Z", "summary": "4 tests, 91.2 % branch coverage"}
    store.put(run.session_key, summary)


def rerun(run: unit.Plan) -> set[str]:
    return {name for name, module in run.modules.items() if module.rerun}


def test_a_first_run_runs_every_module_and_a_second_is_a_cached_pass(project: Path) -> None:
    first = plan(project)
    assert rerun(first) == {A, B}
    assert first.record
    assert first.pytest_args[-2:] == [A, B]
    assert "2 of 2 test modules rerun" in first.reason
    record_all(first)
    second = plan(project)
    assert rerun(second) == set()
    assert not second.runs_tests
    assert second.cached.startswith("test-3.11: cached pass from 2026-12-04 ")
    assert second.cached.endswith(
        f"(4 tests, 91.2 % branch coverage, key {second.session_key[:6]}…)"
    )


def edit(path: str, text: str = "# a comment\n") -> Callable[[Path], None]:
    def change(root: Path) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        with (root / path).open("a") as file:
            file.write(text)

    return change


@pytest.mark.parametrize(
    ("change", "reruns"),
    [
        (edit(A), {A}),  # the module itself
        (edit("tests/conftest.py"), {A, B}),  # the conftest above it
        (edit("deathstar/core.py"), {A}),  # code it imports
        (edit("deathstar/__init__.py"), {A}),  # the package above what it imports
        (edit("data/answers.json"), {A, B}),  # a data file
        (edit("data/new.txt"), {A, B}),  # an untracked file that is not ignored
        (edit("uv.lock"), {A, B}),
        (edit("pyproject.toml"), {A, B}),
        (edit("noxfile.py"), {A, B}),  # how the session runs
        (edit("deathstar/other.py"), set()),  # code no module imports
        (edit("ignored/x.txt"), set()),  # ignored by git
    ],
)
def test_each_input_changed_alone_reruns_the_modules_it_reaches(
    project: Path, change: Callable[[Path], None], reruns: set[str]
) -> None:
    record_all(plan(project))
    change(project)
    after = plan(project)
    assert rerun(after) == reruns
    assert (after.cached == "") == bool(reruns)
    assert after.pytest_args[3:] == sorted(reruns)


def test_the_environment_and_the_interpreter_are_inputs(project: Path) -> None:
    record_all(plan(project))
    assert rerun(plan(project, DEATHSTAR_SOME_SETTING="1")) == {A, B}
    assert rerun(plan(project, python="python3.12")) == {A, B}
    # Volatile (keys.VOLATILE): no tool's result depends on it.
    assert rerun(plan(project, TERM="dumb")) == set()


def test_a_deleted_module_is_gone_and_a_new_one_runs(project: Path) -> None:
    record_all(plan(project))
    (project / B).unlink()
    (project / "tests/test_c.py").write_text("def test_c():\n    pass\n")
    after = plan(project)
    assert set(after.modules) == {A, "tests/test_c.py"}
    assert rerun(after) == {"tests/test_c.py"}
    assert after.workers("3") == "0"  # one module: no workers to start


def test_every_module_passed_but_this_combination_was_never_recorded(project: Path) -> None:
    record_all(plan(project))
    store = open_store({"DEATHSTAR_CACHE_DIR": str(project.parent / "store")})
    assert store is not None
    store.path(plan(project).session_key).unlink()
    again = plan(project)
    assert (again.cached, again.pytest_args, again.runs_tests) == ("", [], False)
    assert "every test module has a recorded pass" in again.reason
    assert again.workers("3") == "3"


def test_pytest_arguments_or_the_switch_run_everything_and_record_nothing(project: Path) -> None:
    record_all(plan(project))
    with_args = plan(project, posargs=("-k", "a"))
    assert (with_args.record, with_args.pytest_args, with_args.cached) == (False, ["-k", "a"], "")
    assert with_args.runs_tests
    off = plan(project, DEATHSTAR_CACHE="off")
    assert (off.record, off.pytest_args, off.runs_tests) == (False, [], True)
    assert "the cache is off" in off.reason


@pytest.mark.parametrize(
    "entry",
    [{"tests": "2", "arcs": {}, "blobs": {}}, {"tests": 2, "arcs": [], "blobs": {}},
     {"tests": 2, "arcs": {"a.py": [[1, "x"]]}, "blobs": {}}, {"tests": 2, "arcs": {"a.py": 3},
     "blobs": {}}, {"tests": 2, "arcs": {}}],
)  # fmt: skip
def test_a_module_entry_of_another_shape_is_a_miss(entry: dict[str, object]) -> None:
    assert unit.is_module_entry({"tests": 2, "arcs": {"a.py": [[1, 2], [2, -1]]}, "blobs": {}})
    assert not unit.is_module_entry(entry)  # floor would crash on it: a rerun instead


def test_a_plan_survives_its_file(project: Path) -> None:
    first = plan(project)
    assert unit.load(first.save(project.parent)) == first
