"""The requirement files exported from uv.lock: how they are made; stale ones are caught."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
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


PYPI_FILE = f"{locks.PYPI_FILES}aa/bb/anyio-4.16.0-py3-none-any.whl"
PYPI_PACKAGE: dict[str, object] = {
    "name": "anyio",
    "source": {"registry": locks.PYPI_INDEX},
    "sdist": {"url": f"{locks.PYPI_FILES}aa/bb/anyio-4.16.0.tar.gz"},
    "wheels": [{"url": PYPI_FILE}],
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"source": {"registry": "https://evil.example/simple"}}, "anyio comes from"),
        ({"source": {"git": "https://evil.example/anyio"}}, "anyio comes from"),
        ({"source": {"url": "https://evil.example/anyio.whl"}}, "anyio comes from"),
        ({"wheels": [{"url": "https://evil.example/anyio-4.16.0-py3-none-any.whl"}]}, "a file at"),
        ({"wheels": [{"url": "https://files.pythonhosted.org.evil.example/packages/x"}]}, "a file"),
        ({"sdist": {"url": "file:///tmp/anyio.tar.gz"}}, "anyio has a file at"),
        ({"sdist": {"path": "anyio.tar.gz"}}, "anyio has a file at"),
    ],
)
def test_a_lock_naming_anything_but_pypi_is_refused(
    tmp_path: Path, change: dict[str, object], named: str
) -> None:
    """PoC: a wheel URL edited to another host passed `uv lock --check`, and `uv sync --locked`
    downloaded it."""
    project: dict[str, object] = {"name": "deathstar", "source": {"editable": "."}}
    assert locks.foreign_sources({"package": [project, PYPI_PACKAGE]}) == []
    lock: dict[str, list[dict[str, object]]] = {"package": [project, {**PYPI_PACKAGE, **change}]}
    assert named in locks.foreign_sources(lock)[0]
    path = tmp_path / "uv.lock"
    path.write_text(toml_of(lock))
    with pytest.raises(HarnessError, match=r"^uv.lock names a source other than PyPI: anyio"):
        locks.check_sources(path)


def test_the_committed_lock_names_pypi_alone_and_a_garbled_one_is_one_line(tmp_path: Path) -> None:
    locks.check_sources()
    garbled = tmp_path / "uv.lock"
    garbled.write_text("[[package]\n")
    with pytest.raises(HarnessError, match=r"^uv.lock cannot be read"):
        locks.check_sources(garbled)


def toml_of(lock: Mapping[str, Sequence[Mapping[str, object]]]) -> str:
    """The few TOML shapes a uv.lock package uses here (inline tables of strings)."""

    def inline(value: object) -> str:
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{k} = {inline(v)}" for k, v in value.items()) + " }"
        if isinstance(value, list):
            return "[" + ", ".join(inline(v) for v in value) + "]"
        return json.dumps(value)

    return "".join(
        "[[package]]\n" + "".join(f"{k} = {inline(v)}\n" for k, v in package.items()) + "\n"
        for package in lock["package"]
    )
