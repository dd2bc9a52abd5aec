"""python -m harness.package: the project's backend, called in-process, and its refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import HarnessError, package

BACKEND = """
from pathlib import Path

calls = []

def build_sdist(sdist_directory):
    calls.append("sdist")
    Path(sdist_directory, "demo-1.tar.gz").write_bytes(b"sdist")
    return "demo-1.tar.gz"

def build_wheel(wheel_directory):
    calls.append("wheel")
    Path(wheel_directory, "demo-1-py3-none-any.whl").write_bytes(b"wheel")
    return "demo-1-py3-none-any.whl"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "demo_backend.py").write_text(BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path / "backends"))
    monkeypatch.delitem(sys.modules, "demo_backend", raising=False)
    root = tmp_path / "src"
    root.mkdir()
    (root / "pyproject.toml").write_text('[build-system]\nbuild-backend = "demo_backend"\n')
    monkeypatch.chdir(root)
    return root


def test_the_backend_builds_the_sdist_then_the_wheel_in_this_process(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert package.main(["dist"]) == 0
    assert sorted(p.name for p in (project / "dist").iterdir()) == [
        "demo-1-py3-none-any.whl", "demo-1.tar.gz",
    ]  # fmt: skip
    assert sys.modules["demo_backend"].calls == ["sdist", "wheel"]
    assert capsys.readouterr().out == "built demo-1.tar.gz, demo-1-py3-none-any.whl\n"


def test_an_object_of_a_module_can_be_the_backend(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[build-system]\nbuild-backend = "demo_backend:Inner.api"\n'
    )
    with (project.parent / "backends" / "demo_backend.py").open("a") as handle:
        handle.write(
            "class Inner:\n    import types\n    api = types.SimpleNamespace(\n"
            "        build_sdist=build_sdist, build_wheel=build_wheel)\n"
        )
    assert [p.name for p in package.build(project, project / "out")] == [
        "demo-1.tar.gz", "demo-1-py3-none-any.whl",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("pyproject", "message"),
    [
        ("[project]\n", "names no build backend"),
        ("not toml [", "names no build backend"),
        ('[build-system]\nbuild-backend = "nope_backend_x"\n', "is not installed here"),
        ('[build-system]\nbuild-backend = "b"\nbackend-path = ["."]\n', "only an installed"),
    ],
)
def test_refusals(
    project: Path, pyproject: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text(pyproject)
    with pytest.raises(HarnessError, match=message):
        package.build(project, project / "dist")
    assert package.main(["dist"]) == 1
    assert capsys.readouterr().err.startswith("package: ")


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert package.main([]) == 2
    assert "usage: python -m harness.package OUTDIR" in capsys.readouterr().err
