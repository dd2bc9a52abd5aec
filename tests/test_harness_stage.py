"""harness.stage: the wheel at its image paths, modes normalized, the destination confined."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness import HarnessError
from harness.image import build
from harness.stage import main, stage

SITE = f"opt/venv/lib/python{build.IMAGE_PYTHON}/site-packages"
DIST_INFO = "deathstar-0.1.0.dist-info"
CONTENTS = {
    "deathstar/__init__.py": (b'"""The service."""\n', False),
    "deathstar/cli.py": (b"def main() -> int:\n    return 0\n", False),
    "deathstar/tool.sh": (b"#!/bin/sh\necho hi\n", True),
    f"{DIST_INFO}/METADATA": (b"Metadata-Version: 2.3\nName: deathstar\nVersion: 0.1.0\n", False),
    f"{DIST_INFO}/WHEEL": (
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        False,
    ),
    f"{DIST_INFO}/entry_points.txt": (b"[console_scripts]\ndeathstar=deathstar.cli:main\n", False),
}


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}\n"


def make_wheel(dist: Path, contents: dict[str, tuple[bytes, bool]] = CONTENTS) -> Path:
    """A small wheel, as a build backend writes one (RECORD with every file's hash)."""
    dist.mkdir(parents=True, exist_ok=True)
    wheel = dist / "deathstar-0.1.0-py3-none-any.whl"
    record = "".join(record_line(name, data) for name, (data, _) in contents.items())
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, (data, executable) in contents.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            archive.writestr(info, data)
        archive.writestr(f"{DIST_INFO}/RECORD", record + f"{DIST_INFO}/RECORD,,\n")
    return wheel


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(top: Path) -> dict[str, int]:
    return {
        str(path.relative_to(top)): stat.S_IMODE(path.lstat().st_mode)
        for path in sorted(top.rglob("*"))
    }


def test_the_wheel_lands_at_its_image_paths_without_bytecode(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "dist")
    dest = tmp_path / "dist" / "staging"
    files = stage(wheel, dest, within=tmp_path / "dist")
    names = {str(f.relative_to(dest)) for f in files}
    assert names == {
        # the layer a source change ships: the package and the hashes of its files
        f"project/{SITE}/deathstar/__init__.py",
        f"project/{SITE}/deathstar/cli.py",
        f"project/{SITE}/deathstar/tool.sh",
        f"project/{SITE}/{DIST_INFO}/RECORD",
        # the rest, which such a change leaves alone (METADATA carries the README)
        *(f"metadata/{SITE}/{DIST_INFO}/{n}" for n in ("METADATA", "WHEEL", "entry_points.txt")),
        *(f"metadata/{SITE}/{DIST_INFO}/{n}" for n in ("INSTALLER", "REQUESTED")),
        "metadata/opt/venv/bin/deathstar",
    }
    project, rest = dest / "project", dest / "metadata"
    script = (rest / "opt/venv/bin/deathstar").read_text()
    assert script.startswith("#!/opt/venv/bin/python\n")
    assert "from deathstar.cli import main" in script
    assert (rest / SITE / DIST_INFO / "INSTALLER").read_bytes() == b"installer\n"
    record = (project / SITE / DIST_INFO / "RECORD").read_text()
    assert "../../../bin/deathstar,sha256=" in record
    assert "tmp" not in record  # paths relative to site-packages, nothing of the host's


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    seen = []
    for mask in (0o022, 0o077, 0o002):
        wheel = make_wheel(tmp_path / f"{mask}" / "dist")
        dest = wheel.parent / "staging"
        with umask(mask):
            stage(wheel, dest, within=wheel.parent)
        seen.append(modes(dest))
    assert seen[0] == seen[1] == seen[2]
    assert seen[0]["project/opt"] == 0o755
    assert seen[0]["metadata/opt/venv/bin/deathstar"] == 0o755
    assert seen[0][f"project/{SITE}/deathstar/tool.sh"] == 0o755
    assert seen[0][f"project/{SITE}/deathstar/cli.py"] == 0o644
    assert seen[0][f"metadata/{SITE}/{DIST_INFO}/METADATA"] == 0o644
    assert stat.S_IMODE((tmp_path / "63" / "dist" / "staging").stat().st_mode) == 0o755


def test_what_was_there_before_is_gone(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "dist")
    dest = tmp_path / "dist" / "staging"
    (dest / "opt" / "stale").mkdir(parents=True)
    (dest / "opt" / "stale" / "old.py").write_text("x")
    (dest / "leftover").write_text("x")
    stage(wheel, dest, within=tmp_path / "dist")
    assert not (dest / "leftover").exists()
    assert not (dest / "opt" / "stale").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["metadata", "project"]


@pytest.mark.parametrize("dest", ["outside", "dist", "dist/..", "dist/sub/../../outside"])
def test_a_destination_outside_dist_is_refused_untouched(tmp_path: Path, dest: str) -> None:
    wheel = make_wheel(tmp_path / "dist")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_text("x")
    with pytest.raises(HarnessError, match=r"inside|directory name"):
        stage(wheel, tmp_path / dest, within=tmp_path / "dist")
    assert (tmp_path / "outside" / "keep").read_text() == "x"
    assert wheel.is_file()


def test_symlinks_out_of_dist_are_never_followed(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "dist")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    # A parent that leads out of dist: refused.
    (tmp_path / "dist" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(HarnessError, match="inside"):
        stage(wheel, tmp_path / "dist" / "link" / "staging", within=tmp_path / "dist")
    # The destination itself a link out of dist: the link goes, not what it points at.
    dest = tmp_path / "dist" / "staging"
    dest.symlink_to(outside, target_is_directory=True)
    stage(wheel, dest, within=tmp_path / "dist")
    assert (outside / "keep").read_text() == "x"
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]
    assert dest.is_dir()
    assert not dest.is_symlink()


def test_main_from_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_wheel(tmp_path / "dist")
    monkeypatch.chdir(tmp_path)
    wheel = "dist/deathstar-0.1.0-py3-none-any.whl"
    assert main([wheel, "dist/staging"]) == 0
    assert capsys.readouterr().out == (
        "staged deathstar-0.1.0-py3-none-any.whl under dist/staging: 10 files\n"
    )
    assert (tmp_path / "dist/staging/metadata/opt/venv/bin/deathstar").is_file()
    assert main([wheel, "elsewhere"]) == 1
    assert "stage: elsewhere is not inside dist/" in capsys.readouterr().err
    assert main([wheel]) == 2


def test_a_wheel_whose_record_lies_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr("deathstar/sneaky.py", b"import os\n")  # in no RECORD line
    with pytest.raises(HarnessError, match="could not be staged"):
        stage(wheel, tmp_path / "dist" / "staging", within=tmp_path / "dist")
    (tmp_path / "dist" / "broken.whl").write_bytes(b"not a zip")
    monkeypatch.chdir(tmp_path)
    assert main(["dist/broken.whl", "dist/staging"]) == 1


def test_the_image_python_has_one_owner() -> None:
    # The base image's tag and the wheelhouse's platform follow build.IMAGE_PYTHON.
    assert build.DEFAULT_BASE_IMAGE.startswith(f"python:{build.IMAGE_PYTHON}-")
    assert build.WHEEL_PLATFORM[build.WHEEL_PLATFORM.index("--python-version") + 1] == (
        build.IMAGE_PYTHON
    )


def test_the_wheel_to_stage_is_the_one_project_wheel(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="holds 0 deathstar"):
        build.project_wheel(tmp_path, "0.1.0")
    wheel = make_wheel(tmp_path)
    (tmp_path / "deathstar-0.1.0-py3-none-manylinux_2_17_x86_64.whl").write_bytes(b"")
    with pytest.raises(HarnessError, match="holds 2 deathstar"):
        build.project_wheel(tmp_path, "0.1.0")
    (tmp_path / "deathstar-0.1.0-py3-none-manylinux_2_17_x86_64.whl").unlink()
    assert build.project_wheel(tmp_path, "0.1.0") == wheel
