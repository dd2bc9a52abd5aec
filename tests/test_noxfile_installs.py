"""Every session's install asks uv, each time, against the lock as it is on disk then.

A reused venv must never skip an install on the strength of what an earlier read of the lock
said (a `nox -s lock test`, a `git pull` during a long run): `uv sync --locked` compares the
venv with uv.lock when the session runs and fails when the lock no longer matches pyproject.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from harness import ROOT


@pytest.fixture(scope="module")
def noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deathstar_noxfile", ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    spec.loader.exec_module(module)
    sys.path[:] = path
    return module


class Session:
    """What install_groups uses of a nox session."""

    def __init__(self, location: Path) -> None:
        self.virtualenv = type("Venv", (), {"location": str(location)})()
        self.installs: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def run_install(self, *args: str, **kwargs: Any) -> None:
        self.installs.append((args, kwargs))


def test_every_install_syncs_from_the_lock_on_disk(noxfile: ModuleType, tmp_path: Path) -> None:
    session = Session(tmp_path / "venv")
    noxfile.install_groups(session, "test")
    noxfile.install_groups(session, "release", project=False)
    (project, env), (tools, _) = session.installs
    assert project[:3] == ("uv", "sync", "--locked")
    assert "--no-default-groups" in project
    assert "--group=test" in project
    assert env == {"env": {"UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}}
    assert tools[:3] == ("uv", "sync", "--locked")
    assert "--only-group=release" in tools
