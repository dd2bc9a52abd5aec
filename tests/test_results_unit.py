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
        entry = {"recorded_at": "2026-12-04T17:01:00Z", "tests": 2, "arcs": {}, "blobs": {}}
        store.put(module.key, entry)
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
    # The coverage plugin runs in every mode: what is measured does not depend on the switch.
    measured = ["-p", unit.PLUGIN, f"--module-counts={with_args.counts}"]
    assert (with_args.record, with_args.pytest_args, with_args.cached) == (
        False, [*measured, "-k", "a"], ""
    )  # fmt: skip
    assert with_args.runs_tests
    off = plan(project, DEATHSTAR_CACHE="off")
    assert (off.record, off.pytest_args, off.runs_tests) == (False, measured, True)
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


# --- review findings: what the plan must see, and what it must survive ------------------------


def test_a_git_ignored_test_module_is_still_collected_and_keyed(project: Path) -> None:
    (project / "tests" / "test_local.py").write_text("def test_x():\n    assert False\n")
    (project / ".git" / "info" / "exclude").write_text("tests/test_local.py\n")
    run = plan(project)
    assert "tests/test_local.py" in rerun(run)


def test_a_test_reading_our_source_as_data_reruns_when_it_changes(project: Path) -> None:
    reader = 'from pathlib import Path\n\ndef test_r():\n    assert Path("deathstar/other.py")\n'
    (project / "tests" / "test_reader.py").write_text(reader)
    record_all(plan(project))
    (project / "deathstar" / "other.py").write_text("VALUE = 3\n")
    assert rerun(plan(project)) == {"tests/test_reader.py"}


@pytest.mark.parametrize(
    ("name", "text"),
    [("tests/test_bad.py", "def broken(:\n"), ("tests/test_latin.py", b"# caf\xe9\n")],
)
def test_a_module_that_does_not_parse_is_opaque_not_a_crash(
    project: Path, name: str, text: str | bytes
) -> None:
    path = project / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    record_all(plan(project))
    (project / "deathstar" / "other.py").write_text("VALUE = 3\n")  # imported by no module
    assert name in rerun(plan(project))


def test_a_checkout_that_cannot_be_keyed_runs_everything_and_records_nothing(
    project: Path,
) -> None:
    (project / "docs").mkdir()
    (project / "docs" / "a\nb.txt").write_text("x\n")
    run = plan(project)
    assert not run.record
    assert run.runs_tests
    assert "cannot be keyed" in run.reason


@pytest.mark.parametrize(
    "entry",
    [{"note": "not a module entry"}, {"tests": "2", "arcs": {}, "blobs": {}},
     {"tests": 2, "arcs": {"a.py": [[1, "x"]]}, "blobs": {}}],
)  # fmt: skip
def test_a_malformed_module_entry_is_a_miss(project: Path, entry: dict[str, object]) -> None:
    first = plan(project)
    store = open_store({"DEATHSTAR_CACHE_DIR": str(project.parent / "store")})
    assert store is not None
    for module in first.modules.values():
        store.put(module.key, entry)
    assert rerun(plan(project)) == {A, B}
