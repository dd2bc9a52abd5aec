"""The install stamp: a reused venv skips its install only when nothing it read has changed."""

from __future__ import annotations

import compileall
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.core import installs


@dataclass
class Venv:
    location: str | None


@dataclass
class FakeSession:
    """nox's session as `installs.install` uses it; `no_install` stands for `nox -R`."""

    virtualenv: Venv
    no_install: bool = False
    installed: list[tuple[str, ...]] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    stamp_seen_during_install: list[bool] = field(default_factory=list)
    during_install: list[Callable[[], object]] = field(default_factory=list)  # run at each install
    ran: list[tuple[str, ...]] = field(default_factory=list)  # what run_install ran

    def install(self, *args: str) -> None:
        if self.no_install:
            return
        if not self.virtualenv.location:  # as nox refuses under --no-venv
            raise ValueError("session.install() is no longer allowed")
        for hook in self.during_install:
            hook()
        if self.virtualenv.location:
            stamp = Path(self.virtualenv.location) / installs.STAMP_NAME
            self.stamp_seen_during_install.append(stamp.exists())
        self.installed.append(args)

    def run_install(self, *args: str, silent: bool) -> object:
        assert silent
        if self.no_install:
            return None
        self.ran.append(args)
        assert args[:3] == ("python", "-m", "harness.core.installs")
        assert installs.main(list(args[3:])) == 0
        return ""

    def log(self, *args: object) -> None:
        self.logged.append(" ".join(map(str, args)))

    def warn(self, *args: object) -> None:
        self.warned.append(" ".join(map(str, args)))


@pytest.fixture(autouse=True)
def no_compile(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """compileall stands in: the tests' own site-packages stay as they are."""
    compiled: list[str] = []

    def compile_dir(path: str, **kwargs: object) -> bool:
        compiled.append(path)
        return True

    monkeypatch.setattr(compileall, "compile_dir", compile_dir)
    return compiled


@dataclass
class Project:
    root: Path
    venv: Path

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        return self.root / "pyproject.toml", self.root / "dev.txt", self.root / "runtime.txt"

    def inputs(self) -> installs.Inputs:
        return installs.Inputs.read(*self.paths)

    def steps(self, *requirements: str) -> list[list[str]]:
        _, dev, runtime = self.paths
        return [
            ["-c", str(dev), *requirements],
            ["-r", str(runtime)],
            ["--no-deps", "-e", str(self.root)],
        ]

    def session(self, *, no_install: bool = False) -> FakeSession:
        return FakeSession(Venv(str(self.venv)), no_install=no_install)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("version_info = 3.11.7\n", encoding="utf-8")
    for name, text in (("pyproject.toml", "[project]\n"), ("dev.txt", "pytest==9\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "runtime.txt").write_text("fastapi==1\n", encoding="utf-8")
    return Project(tmp_path, venv)


def test_the_first_run_installs_every_step_then_stamps(project: Project) -> None:
    session = project.session()
    installs.install(session, project.inputs(), project.steps("pytest>=8"))
    assert session.installed == [tuple(step) for step in project.steps("pytest>=8")]
    assert session.warned == []
    stamp = installs.Stamp.of(project.venv, project.inputs(), project.steps("pytest>=8"))
    assert stamp.is_current()


def test_a_run_with_nothing_changed_installs_nothing(project: Project) -> None:
    installs.install(project.session(), project.inputs(), project.steps())
    again = project.session()
    installs.install(again, project.inputs(), project.steps())
    assert again.installed == []
    assert again.logged == [
        "nothing to install: the venv was installed from these locks and pyproject"
    ]


@pytest.mark.parametrize("changed", ["pyproject.toml", "dev.txt", "runtime.txt", "venv/pyvenv.cfg"])
def test_any_changed_input_installs_again(project: Project, changed: str) -> None:
    installs.install(project.session(), project.inputs(), project.steps())
    with (project.root / changed).open("a", encoding="utf-8") as handle:
        handle.write("# one more line\n")
    again = project.session()
    installs.install(again, project.inputs(), project.steps())
    assert len(again.installed) == 3


def test_another_requirement_or_a_missing_input_installs_again(project: Project) -> None:
    installs.install(project.session(), project.inputs(), project.steps())
    again = project.session()
    installs.install(again, project.inputs(), project.steps("hypothesis>=6"))
    assert len(again.installed) == 3
    project.paths[2].unlink()
    third = project.session()
    installs.install(third, project.inputs(), project.steps("hypothesis>=6"))
    assert len(third.installed) == 3


def test_the_stamp_is_gone_while_an_install_runs(project: Project) -> None:
    installs.install(project.session(), project.inputs(), project.steps())
    (project.root / "dev.txt").write_text("pytest==10\n", encoding="utf-8")
    again = project.session()
    installs.install(again, project.inputs(), project.steps())
    assert again.stamp_seen_during_install == [False, False, False]


def test_a_file_changed_during_the_run_leaves_the_stamp_older_than_the_install(
    project: Project,
) -> None:
    """The inputs are read before the sessions: a later change can only cost one install more."""
    inputs = project.inputs()  # read when the noxfile loads
    (project.root / "dev.txt").write_text("pytest==10\n", encoding="utf-8")  # a git pull
    installs.install(project.session(), inputs, project.steps())
    again = project.session()
    installs.install(again, project.inputs(), project.steps())
    assert len(again.installed) == 3, "a stamp of the old lock passed for the new one"


def test_a_lock_changed_after_the_noxfile_loaded_is_installed(project: Project) -> None:
    """PoC: in `nox -s lock test` the test session compared the venv's stamp with the lock as
    read at load, skipped the install, and ran on the old pins."""
    installs.install(project.session(), project.inputs(), project.steps())  # stamped from A
    inputs = project.inputs()  # the noxfile loads: A
    (project.root / "dev.txt").write_text("pytest==10\n", encoding="utf-8")  # the lock session
    later = project.session()
    installs.install(later, inputs, project.steps())
    assert later.logged == []
    assert len(later.installed) == 3, "the venv kept the old pins"
    assert later.warned == [
        "pyproject.toml or a lock changed since the noxfile read them: the venv is not "
        "stamped, and the next run installs again"
    ]


def test_under_no_install_nothing_is_stamped_and_the_session_is_told(project: Project) -> None:
    skipped = project.session(no_install=True)
    installs.install(skipped, project.inputs(), project.steps())
    assert not (project.venv / installs.STAMP_NAME).exists()
    assert len(skipped.warned) == 1
    assert "run without -R" in skipped.warned[0]
    later = project.session()
    installs.install(later, project.inputs(), project.steps())
    assert len(later.installed) == 3


def test_without_a_venv_nothing_is_compiled_or_stamped(
    project: Project, no_compile: list[str]
) -> None:
    """Under nox --no-venv, nox refuses the install; under -R as well, nothing runs at all."""
    with pytest.raises(ValueError, match="no longer allowed"):
        installs.install(FakeSession(Venv(None)), project.inputs(), project.steps())
    skipped = FakeSession(Venv(None), no_install=True)
    installs.install(skipped, project.inputs(), project.steps())
    assert skipped.ran == []
    assert skipped.warned == []
    assert no_compile == []
    assert sorted(p.name for p in project.venv.iterdir()) == ["pyvenv.cfg"]


def test_a_lock_changed_while_installing_leaves_the_venv_unstamped(
    project: Project, no_compile: list[str]
) -> None:
    """Read at load as A, installed from B, A again by the next run: that run must install."""
    dev = project.paths[1]
    inputs = project.inputs()  # A, when the noxfile loaded
    session = project.session()
    session.during_install.append(lambda: dev.write_text("pytest==10\n", encoding="utf-8"))
    installs.install(session, inputs, project.steps())
    assert session.warned == [
        "pyproject.toml or a lock changed since the noxfile read them: the venv is not "
        "stamped, and the next run installs again"
    ]
    assert len(no_compile) == 1, "the venv is still compiled"
    dev.write_text("pytest==9\n", encoding="utf-8")  # back to A
    again = project.session()
    installs.install(again, project.inputs(), project.steps())
    assert len(again.installed) == 3


def test_a_file_the_steps_read_must_be_hashed(project: Project) -> None:
    pyproject, dev, runtime = project.paths
    without_runtime = installs.Inputs.read(pyproject, dev)
    with pytest.raises(ValueError, match=f"reads {re.escape(str(runtime))}, which its stamp"):
        installs.install(project.session(), without_runtime, project.steps())
    without_pyproject = installs.Inputs.read(dev, runtime)
    with pytest.raises(ValueError, match=r"pyproject\.toml, which"):
        installs.install(project.session(), without_pyproject, project.steps())


def test_the_inputs_are_the_bytes_read_once(project: Project) -> None:
    pyproject = project.paths[0]
    inputs = project.inputs()
    pyproject.write_text("[project]\nname = 'later'\n", encoding="utf-8")
    assert inputs.text(pyproject) == "[project]\n"
    with pytest.raises(FileNotFoundError, match="not there when the noxfile loaded"):
        installs.Inputs.read(project.root / "gone").text(project.root / "gone")


def test_the_digest_tells_steps_apart_however_they_split() -> None:
    one = installs.digest([], [["ab", "c"]])
    assert one != installs.digest([], [["a", "bc"]])
    assert one != installs.digest([], [["ab"], ["c"]])
    assert one == installs.digest([], [["ab", "c"]])
    path = Path("/x")
    assert installs.digest([(path, b"")], []) != installs.digest([(path, None)], [])


def test_a_garbled_stamp_is_not_current(project: Project) -> None:
    installs.install(project.session(), project.inputs(), project.steps())
    stamp = installs.Stamp.of(project.venv, project.inputs(), project.steps())
    stamp.path.write_bytes(b"\xff\xfe" + stamp.expected.encode())
    assert not stamp.is_current()


def test_a_failed_compile_leaves_no_stamp(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stamp = installs.Stamp.of(project.venv, project.inputs(), project.steps())
    monkeypatch.setattr(compileall, "compile_dir", lambda path, **kwargs: False)
    assert installs.main(list(stamp.finish_command()[3:])) == 1
    assert "not stamped" in capsys.readouterr().err
    assert not stamp.is_current()


def test_the_last_step_compiles_before_it_stamps(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp_file = project.venv / installs.STAMP_NAME
    compiled: list[tuple[str, bool]] = []

    def compile_dir(path: str, **kwargs: object) -> bool:
        compiled.append((path, stamp_file.exists()))
        return True

    monkeypatch.setattr(compileall, "compile_dir", compile_dir)
    installs.install(project.session(), project.inputs(), project.steps())
    assert len(compiled) == 1
    path, stamped_already = compiled[0]
    assert path.endswith("site-packages")
    assert not stamped_already
    assert stamp_file.exists()


@pytest.mark.parametrize(
    "step",
    [
        ["-r", "{f}"],
        ["--requirement", "{f}"],
        ["--requirement={f}"],
        ["-c", "{f}"],
        ["--constraint={f}"],
    ],
)
def test_a_file_named_in_any_flag_form_must_be_hashed(project: Project, step: list[str]) -> None:
    unlisted = project.root / "extra.txt"
    unlisted.write_text("x==1\n", encoding="utf-8")
    named = [arg.format(f=unlisted) for arg in step]
    assert installs.unhashed_files(project.inputs(), [named]) == [str(unlisted)]
    with_it = installs.Inputs.read(*project.paths, unlisted)
    assert installs.unhashed_files(with_it, [named]) == []


def test_an_editable_in_any_flag_form_needs_its_pyproject_hashed(project: Project) -> None:
    other = project.root / "other"
    for step in (["-e", str(other)], ["--editable", str(other)], [f"--editable={other}"]):
        assert installs.unhashed_files(project.inputs(), [step]) == [str(other / "pyproject.toml")]
    assert installs.unhashed_files(project.inputs(), [["-e", str(project.root)]]) == []


def test_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert installs.main(["only-one"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_record_replaces_a_link_and_never_writes_through_it(project: Project) -> None:
    outside = project.root / "outside.txt"
    outside.write_text("not the venv's\n", encoding="utf-8")
    stamp = installs.Stamp.of(project.venv, project.inputs(), project.steps())
    stamp.path.symlink_to(outside)
    installs.record(stamp.path, stamp.expected)
    assert outside.read_text(encoding="utf-8") == "not the venv's\n"
    assert not stamp.path.is_symlink()
    assert stamp.is_current()
    assert sorted(p.name for p in project.venv.iterdir()) == sorted(
        ["pyvenv.cfg", installs.STAMP_NAME]
    )
