"""CI's test matrix comes from `nox -l --json`, and that list is pyproject's classifiers."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness import ROOT, HarnessError
from harness.core import matrix

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def entry(session: str, name: str = "test", python: str | None = "3.11") -> dict[str, object]:
    return {"session": session, "name": name, "python": python, "tags": [], "call_spec": {}}


def classifier_pythons() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found = (
        re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c)
        for c in pyproject["project"]["classifiers"]
    )
    return [m[1] for m in found if m]


def test_matrix_has_one_job_per_test_session() -> None:
    listing = [entry("lint", "lint"), entry("test-3.11"), entry("test-3.12", python="3.12")]
    assert matrix.matrix(listing) == {
        "include": [
            {"session": "test-3.11", "python": "3.11"},
            {"session": "test-3.12", "python": "3.12"},
        ]
    }


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        ([entry("lint", "lint")], "no 'test' session"),
        ([], "no 'test' session"),
        ([entry("test", python=None)], "names no Python"),
    ],
)
def test_matrix_refuses_what_would_make_a_wrong_ci(
    listing: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(HarnessError, match=message):
        matrix.matrix(listing)


def test_output_line_is_one_github_output_line() -> None:
    line = matrix.output_line(json.dumps([entry("test-3.13", python="3.13")]))
    assert "\n" not in line
    assert line == 'matrix={"include":[{"session":"test-3.13","python":"3.13"}]}'
    with pytest.raises(HarnessError, match="no JSON"):
        matrix.output_line("nox > Running session")
    with pytest.raises(HarnessError, match="not a list"):
        matrix.output_line("{}")


def test_main_prints_the_line_or_one_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps([entry("test-3.11")])))
    assert matrix.main() == 0
    assert capsys.readouterr().out.startswith("matrix=")
    monkeypatch.setattr(sys, "stdin", io.StringIO("[]"))
    assert matrix.main() == 1
    assert capsys.readouterr().err.startswith("matrix: error:")


def test_noxs_test_sessions_are_the_classifiers_and_ci_runs_them(tmp_path: Path) -> None:
    # In a copy: loading the noxfile links this machine's Pythons into .nox/pythons, and the
    # checkout's are what the nox running these tests uses for its later sessions.
    copy = tmp_path / "project"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".nox", "dist", ".*_cache"))
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "--json", "-s", "test"],
        capture_output=True,
        text=True,
        cwd=copy,
        timeout=60,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("NOX")},
    )
    jobs = matrix.matrix(json.loads(listed.stdout))["include"]
    pythons = classifier_pythons()
    assert pythons, "pyproject lists no Python version classifiers"
    assert [job["python"] for job in jobs] == pythons
    assert [job["session"] for job in jobs] == [f"test-{p}" for p in pythons]


def test_the_workflow_takes_its_test_matrix_from_nox() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "nox -l --json -s test | python -m harness.core.matrix" in text
    assert "matrix: ${{ fromJSON(needs.sessions.outputs.matrix) }}" in text
    assert 'nox --error-on-missing-interpreters -s "$SESSION"' in text
    # No hand-written list of versions left to drift from the classifiers.
    assert not re.search(r"python: \[", text)
