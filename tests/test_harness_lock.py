"""The requirement files exported from uv.lock: how they are made; stale ones are caught."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from uv import find_uv_bin

from harness import ROOT, HarnessError
from harness.core import locks


def test_an_export_is_the_locked_selection_with_hashes_and_without_the_project() -> None:
    command = locks.RUNTIME.command()
    assert command[:3] == ["uv", "export", "--locked"]  # fails instead of re-resolving
    assert "--no-default-groups" in command  # the runtime dependencies alone
    assert "--no-emit-project" in command  # the image installs the project's wheel by itself
    assert "--no-hashes" not in command
    assert command[command.index("--format") + 1] == "requirements-txt"
    assert locks.NOX.command()[3:5] == ["--only-group", "nox"]


def test_a_file_that_is_not_the_export_is_stale(tmp_path: Path) -> None:
    export = locks.Export(tmp_path / "runtime.txt", ())
    assert export.stale("a==1\n") == "runtime.txt is missing"
    locks.write(export, "a==1\n")
    assert export.stale("a==1\n") == ""
    assert export.stale("a==2\n") == "runtime.txt is not what uv.lock exports"
    with pytest.raises(HarnessError, match=r"^runtime.txt is not .*; run `nox -s lock` and commit"):
        locks.check_exports({export: "a==2\n"})
    locks.check_exports({export: "a==1\n"})


@pytest.mark.parametrize("export", locks.EXPORTS, ids=lambda e: e.path.name)
def test_the_committed_exports_are_what_the_lock_exports(export: locks.Export) -> None:
    result = subprocess.run(
        [find_uv_bin(), *export.command()[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr  # --locked: uv.lock matches pyproject.toml
    assert export.stale(result.stdout) == ""


def test_invalid_or_missing_pyproject_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"does not exist"):
        locks.load_pyproject(tmp_path / "nope.toml")
    bad = tmp_path / "pyproject.toml"
    bad.write_text("[project\n", encoding="utf-8")
    with pytest.raises(HarnessError, match=r"is not valid TOML"):
        locks.load_pyproject(bad)
