"""The install stamp: a reused venv skips its install only when nothing it read has changed."""

from __future__ import annotations

import compileall
from pathlib import Path

import pytest

from harness.core import installs

REQUEST = ["test", "project=True"]


def venv_with_inputs(tmp_path: Path) -> tuple[Path, list[Path]]:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("version_info = 3.11.7\n", encoding="utf-8")
    inputs = []
    for name, text in (("pyproject.toml", "[project]\n"), ("dev.txt", "pytest==9\n")):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        inputs.append(path)
    return venv, inputs


def installed(venv: Path, inputs: list[Path], request: list[str] = REQUEST) -> installs.Stamp:
    """A stamp as the install's last step writes it (compileall left out)."""
    stamp = installs.Stamp.of(str(venv), inputs, request)
    assert stamp.path is not None
    installs.record(stamp.path, stamp.expected)
    return stamp


def test_a_venv_installed_from_the_same_inputs_is_current(tmp_path: Path) -> None:
    venv, inputs = venv_with_inputs(tmp_path)
    assert not installs.Stamp.of(str(venv), inputs, REQUEST).is_current()
    installed(venv, inputs)
    assert installs.Stamp.of(str(venv), inputs, REQUEST).is_current()


@pytest.mark.parametrize("changed", ["pyproject.toml", "dev.txt", "venv/pyvenv.cfg"])
def test_any_changed_input_installs_again(tmp_path: Path, changed: str) -> None:
    venv, inputs = venv_with_inputs(tmp_path)
    installed(venv, inputs)
    with (tmp_path / changed).open("a", encoding="utf-8") as handle:
        handle.write("# one more line\n")
    assert not installs.Stamp.of(str(venv), inputs, REQUEST).is_current()


def test_a_missing_input_or_another_request_installs_again(tmp_path: Path) -> None:
    venv, inputs = venv_with_inputs(tmp_path)
    installed(venv, inputs)
    assert not installs.Stamp.of(str(venv), inputs, ["test", "project=False"]).is_current()
    assert not installs.Stamp.of(str(venv), [*inputs, tmp_path / "gone"], REQUEST).is_current()
    inputs[1].unlink()
    assert not installs.Stamp.of(str(venv), inputs, REQUEST).is_current()


def test_the_digest_tells_contents_apart_however_they_split() -> None:
    one = installs.digest([], ["ab", "c"])
    assert one != installs.digest([], ["a", "bc"])
    assert one == installs.digest([], ["ab", "c"])


def test_forget_drops_the_stamp_before_an_install(tmp_path: Path) -> None:
    venv, inputs = venv_with_inputs(tmp_path)
    stamp = installed(venv, inputs)
    stamp.forget()
    assert stamp.path is not None
    assert not stamp.path.exists()
    assert not stamp.is_current()
    stamp.forget()  # nothing to drop is not an error


def test_a_garbled_stamp_is_not_current(tmp_path: Path) -> None:
    venv, inputs = venv_with_inputs(tmp_path)
    stamp = installed(venv, inputs)
    assert stamp.path is not None
    stamp.path.write_bytes(b"\xff\xfe" + stamp.expected.encode())
    assert not stamp.is_current()


def test_without_a_venv_nothing_is_stamped_and_every_run_installs(tmp_path: Path) -> None:
    stamp = installs.Stamp.of(None, [tmp_path / "pyproject.toml"], REQUEST)
    assert stamp.path is None
    assert not stamp.is_current()
    stamp.forget()
    assert stamp.finish_command() == ("python", "-m", "harness.core.installs")


def test_the_last_step_compiles_then_stamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv, inputs = venv_with_inputs(tmp_path)
    stamp = installs.Stamp.of(str(venv), inputs, REQUEST)
    assert stamp.path is not None
    compiled: list[str] = []

    def compile_dir(path: str, **kwargs: object) -> bool:
        assert not stamp.path.exists(), "stamped before the compile finished"  # type: ignore[union-attr]
        compiled.append(path)
        return True

    monkeypatch.setattr(compileall, "compile_dir", compile_dir)
    command = stamp.finish_command()
    assert command[:3] == ("python", "-m", "harness.core.installs")
    assert installs.main(list(command[3:])) == 0
    assert len(compiled) == 1
    assert stamp.is_current()


def test_a_failed_compile_leaves_no_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    venv, inputs = venv_with_inputs(tmp_path)
    stamp = installs.Stamp.of(str(venv), inputs, REQUEST)
    monkeypatch.setattr(compileall, "compile_dir", lambda path, **kwargs: False)
    assert installs.main(list(stamp.finish_command()[3:])) == 1
    assert "not stamped" in capsys.readouterr().err
    assert not stamp.is_current()


def test_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert installs.main(["only-one"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_record_replaces_a_link_and_never_writes_through_it(tmp_path: Path) -> None:
    venv, inputs = venv_with_inputs(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the venv's\n", encoding="utf-8")
    stamp = installs.Stamp.of(str(venv), inputs, REQUEST)
    assert stamp.path is not None
    stamp.path.symlink_to(outside)
    installs.record(stamp.path, stamp.expected)
    assert outside.read_text(encoding="utf-8") == "not the venv's\n"
    assert not stamp.path.is_symlink()
    assert stamp.is_current()
    assert sorted(p.name for p in venv.iterdir()) == sorted(["pyvenv.cfg", installs.STAMP_NAME])
