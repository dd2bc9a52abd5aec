"""dist/wheelhouse: downloaded once per lock, again whenever anything in it differs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from harness.image import wheelhouse
from harness.image.build import wheelhouse_command

WHEELS = {"fastapi-1.0-py3-none-any.whl": b"fastapi", "uvloop-1.0-cp311-x86_64.whl": b"uvloop"}


class Downloads:
    """A stand-in `pip download`: writes the wheels into --dest and counts its runs."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command: Sequence[str]) -> None:
        self.commands.append(list(command))
        dest = Path(command[command.index("--dest") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        for name, content in WHEELS.items():
            (dest / name).write_bytes(content)


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "runtime.txt"
    path.write_text("fastapi==1.0 --hash=sha256:00\n")
    return path


@pytest.fixture
def dist(tmp_path: Path, lock: Path) -> Path:
    """A dist/ whose wheelhouse was downloaded for ``lock``."""
    path = tmp_path / "dist"
    path.mkdir()
    wheelhouse.refresh(lock, path, Downloads())
    return path


def test_downloaded_once_then_kept(lock: Path, dist: Path) -> None:
    downloads = Downloads()
    said = wheelhouse.refresh(lock, dist, downloads)
    assert downloads.commands == []
    assert said.endswith("is up to date with runtime.txt: not downloaded again")
    stamp = json.loads((dist / "wheelhouse.json").read_text())
    assert stamp["command"] == wheelhouse_command(lock, dist / "wheelhouse")
    assert sorted(stamp["files"]) == sorted(WHEELS)


def wheel(dist: Path) -> Path:
    return dist / "wheelhouse" / "fastapi-1.0-py3-none-any.whl"


def replace_with_link(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent.parent.parent / "runtime.txt")


def swap_wheelhouse_for_link(dist: Path) -> None:
    (dist / "wheelhouse").rename(dist.parent / "elsewhere")
    (dist / "wheelhouse").symlink_to(dist.parent / "elsewhere")


CHANGES: dict[str, Callable[[Path, Path], object]] = {
    "lock changed": lambda lock, dist: lock.write_text("fastapi==1.1 --hash=sha256:11\n"),
    "wheel altered": lambda lock, dist: wheel(dist).write_bytes(b"evil"),
    "wheel removed": lambda lock, dist: wheel(dist).unlink(),
    "wheel added": lambda lock, dist: (dist / "wheelhouse" / "x-1-py3-none-any.whl").touch(),
    "wheel made a link": lambda lock, dist: replace_with_link(wheel(dist)),
    "a directory inside": lambda lock, dist: (dist / "wheelhouse" / "sub").mkdir(),
    "wheelhouse made a link": lambda lock, dist: swap_wheelhouse_for_link(dist),
    "stamp corrupt": lambda lock, dist: (dist / "wheelhouse.json").write_text("{"),
    "stamp removed": lambda lock, dist: (dist / "wheelhouse.json").unlink(),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_anything_else_and_it_is_downloaded_again_from_nothing(
    lock: Path, dist: Path, change: Callable[[Path, Path], object]
) -> None:
    change(lock, dist)
    downloads = Downloads()
    said = wheelhouse.refresh(lock, dist, downloads)
    assert len(downloads.commands) == 1
    assert said == f"downloaded {len(WHEELS)} wheels into {dist / 'wheelhouse'}"
    assert sorted(p.name for p in (dist / "wheelhouse").iterdir()) == sorted(WHEELS)
    assert not (dist / "wheelhouse").is_symlink()
    assert wheelhouse.is_current(lock, dist)
    assert (lock.parent / "runtime.txt").exists(), "a link's target was removed"


def test_clean_dist_keeps_the_wheelhouse_and_follows_no_link(tmp_path: Path, dist: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    (dist / "deathstar-1.0.tar.gz").write_text("sdist")
    (dist / "staging" / "opt").mkdir(parents=True)
    (dist / "staging" / "escape").symlink_to(outside)
    (dist / "link-to-outside").symlink_to(outside)
    wheelhouse.clean_dist(dist)
    assert sorted(p.name for p in dist.iterdir()) == ["wheelhouse", "wheelhouse.json"]
    assert (outside / "precious").read_text() == "keep me"


def test_a_dist_that_is_a_link_is_unlinked_not_emptied(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious").write_text("keep me")
    dist = tmp_path / "dist"
    dist.symlink_to(target)
    wheelhouse.clean_dist(dist)
    assert not dist.exists()
    assert (target / "precious").read_text() == "keep me"


def test_without_its_lock_the_wheelhouse_is_not_current(lock: Path, dist: Path) -> None:
    lock.unlink()
    assert not wheelhouse.is_current(lock, dist)
