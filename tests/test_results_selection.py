"""Test selection: what can change a test module's result, checked against our own suite."""

from __future__ import annotations

import modulefinder
import re
from functools import cache
from pathlib import Path

import pytest

from harness import ROOT
from harness.results import keys, selection


@cache
def suite() -> tuple[selection.Graph, dict[str, tuple[list[str], list[str]]]]:
    files = keys.session_files(ROOT)
    graph = selection.Graph(files, lambda path: (ROOT / path).read_text(encoding="utf-8"))
    return graph, {name: graph.inputs(name) for name in selection.test_modules(files)}


def selected_by(changed: str) -> set[str]:
    return {name for name, (needs, _) in suite()[1].items() if changed in needs}


@cache
def found_by_modulefinder(module: str) -> set[str]:
    """Our files an independent static import finder reaches from ``module``: the oracle."""
    finder = modulefinder.ModuleFinder(path=[str(ROOT)])
    for script in [module, *selection.conftests(module, suite()[0].files)]:
        finder.run_script(str(ROOT / script))
    files = (getattr(module, "__file__", None) for module in finder.modules.values())
    found = {Path(file).resolve() for file in files if file}
    return {path.relative_to(ROOT).as_posix() for path in found if path.is_relative_to(ROOT)}


def test_every_module_that_can_import_the_app_reruns_when_it_changes() -> None:
    reaching = {n for n in suite()[1] if "deathstar/app.py" in found_by_modulefinder(n)}
    assert "tests/test_app.py" in reaching
    assert reaching <= selected_by("deathstar/app.py")


def test_the_import_closure_holds_what_an_independent_finder_finds() -> None:
    for name, (needs, _) in suite()[1].items():
        assert found_by_modulefinder(name) <= set(needs), name


# The oracle for child processes and code run by name: the source text, not the syntax tree.
STARTS = re.compile(
    r"subprocess|sys\.executable|multiprocessing|os\.exec|os\.spawn|importlib\.util"
)


def test_every_module_that_starts_our_code_in_a_child_depends_on_all_of_it() -> None:
    graph, inputs = suite()
    ours = {
        f for f in graph.files if f.startswith(("deathstar/", "harness/")) and f.endswith(".py")
    }
    starting = {
        name for name, (_, closure) in inputs.items()
        if any(STARTS.search((ROOT / path).read_text(encoding="utf-8")) for path in closure)
    }  # fmt: skip
    assert {"tests/test_cli.py", "tests/test_harness_matrix.py"} <= starting
    for name in starting:
        assert ours <= set(inputs[name][0]), name
    assert starting <= selected_by("deathstar/storage.py")


def test_a_comment_in_one_test_module_reruns_only_that_module() -> None:
    assert selected_by("tests/test_config.py") == {"tests/test_config.py"}
    # A module another imports (test_startup imports test_cli's helpers) reruns both.
    assert selected_by("tests/test_cli.py") == {"tests/test_cli.py", "tests/test_startup.py"}


def test_data_files_the_lock_and_pyproject_reach_every_module() -> None:
    everyone = set(suite()[1])
    for data in ("uv.lock", "pyproject.toml", "noxfile.py", "Dockerfile", "README.md"):
        assert selected_by(data) == everyone, data


def test_a_test_that_reads_the_repository_by_path_depends_on_every_source() -> None:
    # test_harness_layout reads harness/release/*.py as text: no import shows it.
    assert "tests/test_harness_layout.py" in selected_by("harness/release/gates.py")
    # A module that imports no harness code and starts nothing does not rerun for it.
    assert "tests/test_config.py" not in selected_by("harness/release/gates.py")


@pytest.mark.parametrize(
    ("source", "starts", "names_repository"),
    [
        ("import subprocess\n", True, False),
        ("from subprocess import run\n", True, False),
        ("import sys\nsys.executable\n", True, False),
        ("import os\nos.execv('x', [])\n", True, False),
        ("import multiprocessing.pool\n", True, False),
        ("from concurrent.futures import ProcessPoolExecutor\n", True, False),
        ("from concurrent.futures import ThreadPoolExecutor\n", False, False),
        ("import importlib\nimportlib.import_module('x')\n", True, False),
        ("exec('x = 1')\n", True, False),
        ("from importlib.metadata import version\n", False, False),
        ("from harness import ROOT\nROOT / 'x'\n", False, True),
        ("from pathlib import Path\nPath(__file__).parent\n", False, True),
        ("import logging\nlogging.LogRecord('n', 1, __file__, 1, '', None, None)\n", False, False),
        ("x = 1\n", False, False),
    ],
)
def test_scan_sees_what_no_import_shows(source: str, starts: bool, names_repository: bool) -> None:
    facts = selection.scan(source, "tests.test_x")
    assert (facts.starts, facts.names_repository) == (starts, names_repository)


def test_scan_finds_relative_and_named_imports() -> None:
    source = (
        "from . import sibling\nfrom .. import top\nimport deathstar.app\n"
        "def f(m):\n    import harness.core.git\n    m.setattr('harness.core.locks.UV_LOCK', 1)\n"
    )
    imports = selection.scan(source, "harness.core.x").imports
    assert {"harness.core.sibling", "harness.top", "deathstar.app", "harness.core.git"} <= imports
    assert "harness.core.locks.UV_LOCK" in imports
    assert (
        "harness.results.x" in selection.scan("from . import x\n", "harness.results", True).imports
    )


def test_importing_a_module_runs_each_package_above_it() -> None:
    graph = selection.Graph(["a/__init__.py", "a/b/__init__.py", "a/b/c.py"], lambda _: "")
    assert graph.files_of("a.b.c.name") == []  # not one of our packages
    graph.by_name = {"a": "a/__init__.py", "a.b": "a/b/__init__.py", "a.b.c": "a/b/c.py"}
    assert graph.files_of("a.b.c.name") == ["a/__init__.py", "a/b/__init__.py", "a/b/c.py"]


def test_conftests_are_those_above_the_module() -> None:
    files = ["conftest.py", "tests/conftest.py", "tests/sub/conftest.py", "other/conftest.py"]
    assert selection.conftests("tests/sub/test_x.py", files) == [
        "conftest.py", "tests/conftest.py", "tests/sub/conftest.py",
    ]  # fmt: skip
    assert selection.test_modules(["tests/test_a.py", "tests/b_test.py", "tests/helper.py"]) == [
        "tests/b_test.py", "tests/test_a.py",
    ]  # fmt: skip
