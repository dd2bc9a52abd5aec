"""The lock's staleness check: a pyproject change that affects resolution must be caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import ROOT, HarnessError
from harness.core import locks as lock

PYPROJECT = """\
[project]
name = "demo"
requires-python = ">=3.11"
dependencies = ["fastapi>=0.115"]

[dependency-groups]
test = ["pytest>=8"]
"""


def make_project(tmp_path: Path, text: str = PYPROJECT) -> tuple[Path, lock.Lock]:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(text, encoding="utf-8")
    return pyproject, lock.Lock(tmp_path / "requirements" / "runtime.txt", None)


def test_fresh_lock_passes(tmp_path: Path) -> None:
    pyproject, target = make_project(tmp_path)
    lock.write(target, "fastapi==1.0 \\\n    --hash=sha256:00\n", pyproject)
    assert lock.stale_locks(pyproject, (target,)) == []
    assert target.path.read_text().endswith("fastapi==1.0 \\\n    --hash=sha256:00\n")


@pytest.mark.parametrize(
    "change",
    [
        ('"fastapi>=0.115"', '"fastapi>=0.115", "httpx"'),  # a new runtime dependency
        ('">=3.11"', '">=3.12"'),  # requires-python
        ('"pytest>=8"', '"pytest>=9"'),  # a dependency group
    ],
)
def test_resolution_input_change_makes_lock_stale(tmp_path: Path, change: tuple[str, str]) -> None:
    pyproject, target = make_project(tmp_path)
    lock.write(target, "", pyproject)
    pyproject.write_text(PYPROJECT.replace(*change), encoding="utf-8")
    assert lock.stale_locks(pyproject, (target,)) == [
        "runtime.txt is stale: pyproject.toml changed since it was made"
    ]


def test_unrelated_pyproject_change_keeps_lock_fresh(tmp_path: Path) -> None:
    pyproject, target = make_project(tmp_path)
    lock.write(target, "", pyproject)
    pyproject.write_text(PYPROJECT + "\n[tool.ruff]\nline-length = 99\n", encoding="utf-8")
    assert lock.stale_locks(pyproject, (target,)) == []


def test_dependency_order_does_not_matter(tmp_path: Path) -> None:
    one = lock.fingerprint({"project": {"dependencies": ["a", "b"]}})
    other = lock.fingerprint({"project": {"dependencies": ["b", "a"]}})
    assert one == other


def test_missing_or_hand_made_lock_is_reported(tmp_path: Path) -> None:
    pyproject, target = make_project(tmp_path)
    assert lock.stale_locks(pyproject, (target,)) == [
        "runtime.txt is missing or has no input fingerprint"
    ]
    target.path.parent.mkdir()
    target.path.write_text("fastapi==1.0\n", encoding="utf-8")
    assert lock.recorded_fingerprint(target.path) is None


def test_check_names_the_fix(tmp_path: Path) -> None:
    pyproject, target = make_project(tmp_path)
    with pytest.raises(HarnessError, match=r"run `nox -s lock` and commit the result"):
        lock.check(pyproject, (target,))
    lock.write(target, "", pyproject)
    lock.check(pyproject, (target,))


def test_invalid_or_missing_pyproject_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="does not exist"):
        lock.load_pyproject(tmp_path / "nope.toml")
    broken = tmp_path / "pyproject.toml"
    broken.write_text("[project\n", encoding="utf-8")
    with pytest.raises(HarnessError, match="is not valid TOML"):
        lock.load_pyproject(broken)


def test_compile_command_pins_with_hashes_for_every_platform() -> None:
    runtime = lock.compile_command(lock.RUNTIME, "3.11")
    dev = lock.compile_command(lock.DEV, "3.11")
    assert {"--generate-hashes", "--universal"} <= set(runtime)
    assert "--group" not in runtime
    assert dev[dev.index("--group") + 1] == "dev"
    assert "pyproject.toml" in runtime
    assert "pyproject.toml" in dev
    # nox's own lock holds the group alone: CI installs nothing of the project before nox.
    tools = lock.compile_command(lock.NOX, "3.11")
    assert tools[tools.index("--group") + 1] == "nox"
    assert "pyproject.toml" not in tools


def test_committed_locks_are_fresh() -> None:
    # The repository's own locks: this is the check `lint` and `build` run.
    assert lock.stale_locks(ROOT / "pyproject.toml") == []
