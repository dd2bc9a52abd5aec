"""harness.core.interpreters: the test matrix's Pythons found in fake PATH, pyenv and uv trees."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from harness.core import interpreters


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def pyenv_python(root: Path, release: str) -> Path:
    minor = ".".join(release.split(".")[:2])
    return executable(root / "versions" / release / "bin" / f"python{minor}")


def env_for(tmp_path: Path, *path_dirs: Path) -> dict[str, str]:
    return {
        "PATH": os.pathsep.join(map(str, path_dirs)),
        "PYENV_ROOT": str(tmp_path / "pyenv"),
        "HOME": str(tmp_path / "home"),
    }


def no_uv(_version: str) -> Path | None:
    return None


def test_path_wins_over_pyenv(tmp_path: Path) -> None:
    on_path = executable(tmp_path / "bin" / "python3.12")
    pyenv_python(tmp_path / "pyenv", "3.12.1")
    env = env_for(tmp_path, tmp_path / "empty", tmp_path / "bin")
    assert interpreters.find("3.12", env, no_uv) == on_path.resolve()


def test_pyenv_shims_are_not_trusted_but_its_versions_are(tmp_path: Path) -> None:
    executable(tmp_path / "pyenv" / "shims" / "python3.13")  # answers only when pyenv allows
    real = pyenv_python(tmp_path / "pyenv", "3.13.0")
    env = env_for(tmp_path, tmp_path / "pyenv" / "shims")
    assert interpreters.find("3.13", env, no_uv) == real.resolve()


def test_newest_final_pyenv_release_is_taken(tmp_path: Path) -> None:
    root = tmp_path / "pyenv"
    pyenv_python(root, "3.12.1")
    newest = pyenv_python(root, "3.12.10")
    pyenv_python(root, "3.12.9")
    executable(root / "versions" / "3.12.11rc1" / "bin" / "python3.12")
    executable(root / "versions" / "3.12-dev" / "bin" / "python3.12")
    pyenv_python(root, "3.1.2")  # 3.1 is not 3.12
    assert interpreters.find("3.12", env_for(tmp_path), no_uv) == newest.resolve()
    assert list(interpreters.in_pyenv("3.1", env_for(tmp_path))) == [
        root / "versions" / "3.1.2" / "bin" / "python3.1"
    ]


def test_pyenv_root_defaults_to_home(tmp_path: Path) -> None:
    real = pyenv_python(tmp_path / "home" / ".pyenv", "3.11.7")
    env = {"PATH": "", "HOME": str(tmp_path / "home")}
    assert interpreters.pyenv_root(env) == tmp_path / "home" / ".pyenv"
    assert interpreters.find("3.11", env, no_uv) == real.resolve()


def test_a_file_that_cannot_run_is_no_interpreter(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3.12").write_text("", encoding="utf-8")  # not executable
    (tmp_path / "bin" / "python3.13").mkdir()  # a directory
    env = env_for(tmp_path, tmp_path / "bin")
    assert interpreters.find_all(["3.12", "3.13"], env, no_uv) == {}


def test_uv_is_asked_last_and_only_for_what_is_missing(tmp_path: Path) -> None:
    managed = executable(tmp_path / "uv" / "cpython-3.14.0" / "bin" / "python3.14")
    pyenv_python(tmp_path / "pyenv", "3.12.1")
    asked: list[str] = []

    def uv_find(version: str) -> Path | None:
        asked.append(version)
        return managed if version == "3.14" else None

    found = interpreters.find_all(["3.12", "3.14", "3.15"], env_for(tmp_path), uv_find)
    assert found == {
        "3.12": (tmp_path / "pyenv" / "versions" / "3.12.1" / "bin" / "python3.12").resolve(),
        "3.14": managed.resolve(),
    }
    assert asked == ["3.14", "3.15"]


def test_uv_finder_reads_uv_python_find(tmp_path: Path) -> None:
    managed = executable(tmp_path / "managed" / "python3.14")
    fake_uv = tmp_path / "uv"
    fake_uv.write_text(
        f"#!/bin/sh\n"
        f'[ "$1 $2 $3 $4 $5" = "python find --system --no-python-downloads 3.14" ] '
        f"&& echo {managed} && exit 0\n"
        f"echo 'error: No interpreter found' >&2; exit 2\n",
        encoding="utf-8",
    )
    fake_uv.chmod(0o755)
    find = interpreters.uv_finder(str(fake_uv))
    assert find("3.14") == managed
    assert find("3.15") is None
    assert interpreters.uv_finder(None)("3.14") is None
    assert interpreters.uv_finder(str(tmp_path / "no-such-uv"))("3.14") is None


def test_expose_links_pythons_and_replaces_stale_links(tmp_path: Path) -> None:
    first = pyenv_python(tmp_path / "pyenv", "3.12.1")
    second = pyenv_python(tmp_path / "pyenv", "3.13.0")
    links = tmp_path / "links"
    interpreters.expose({"3.12": first, "3.13": second}, links)
    assert (links / "python3.12").resolve() == first.resolve()
    interpreters.expose({"3.13": second}, links)
    assert sorted(p.name for p in links.iterdir()) == ["python3.13"]


def test_a_second_load_does_not_link_a_python_to_itself(tmp_path: Path) -> None:
    real = pyenv_python(tmp_path / "pyenv", "3.12.1")
    links = tmp_path / "links"
    env = env_for(tmp_path)
    for _ in range(2):  # the second time, links/ is on PATH already
        found = interpreters.find_all(["3.12"], env, no_uv)
        interpreters.expose(found, links)
        env["PATH"] = interpreters.prepend_path(env["PATH"], links)
    assert (links / "python3.12").resolve() == real.resolve()
    assert env["PATH"].split(os.pathsep).count(str(links)) == 1


def test_prepend_path_puts_the_directory_first_once(tmp_path: Path) -> None:
    links = tmp_path / "links"
    path = os.pathsep.join(["/usr/bin", str(links), "", "/bin"])
    assert interpreters.prepend_path(path, links).split(os.pathsep) == [
        str(links),
        "/usr/bin",
        "/bin",
    ]


def test_this_interpreter_is_found_on_its_own_path() -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    here = Path(sys.executable).parent
    if not (here / f"python{version}").exists():
        pytest.skip(f"no python{version} beside {sys.executable}")
    found = interpreters.find(version, {"PATH": str(here), "HOME": "/nonexistent"})
    assert found == (here / f"python{version}").resolve()


def test_default_uv_is_a_runnable_file_or_none() -> None:
    uv = interpreters.default_uv()
    assert uv is None or interpreters.is_runnable(Path(uv))
