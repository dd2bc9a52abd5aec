"""The session cache: each input kind changes the key, outputs must be intact, hits replay.

Every ``*_is_a_miss`` test changes one input and nothing else; each fails when that input is
left out of the key (the lookups use a narrow file set, so a common file counts only through
the common part of the key).
"""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import ROOT
from harness.image import build
from harness.results import keys, sessions
from harness.results.sessions import Cached, FileSet, Results
from harness.results.store import Store
from tests.gitrepo import git

SOURCES = FileSet(include=("src",))  # not the common files: they count through COMMON_FILES
ENVIRON = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "TERM": "xterm", "GITHUB_TOKEN": "ghp_x"}


@dataclass
class FakeSession:
    name: str = "lint"
    posargs: list[str] = field(default_factory=list)
    python: object = "3.11"
    env: dict[str, str | None] = field(default_factory=dict)
    logged: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)

    def log(self, *args: object, **kwargs: object) -> None:
        self.logged.append(" ".join(map(str, args)))

    def warn(self, *args: object, **kwargs: object) -> None:
        self.warned.append(" ".join(map(str, args)))


@dataclass(frozen=True)
class Plan:
    commit: str = "c" * 40
    dirty: bool = False
    epoch: int = 1
    base_image: str = "python:3.11-slim-bookworm"
    base_digest: str = "sha256:" + "b" * 64


@dataclass(frozen=True)
class Record:
    image_id: str = "sha256:" + "1" * 64
    builder: str = "engine 26.1.5, buildx 0.13.1"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    files = {
        ".gitignore": "dist/\n*.log\n",
        "noxfile.py": "# sessions\n",
        "pyproject.toml": "[project]\n",
        "uv.lock": "version = 1\n",
        "harness/core.py": "x = 1\n",
        "src/app.py": "app = 1\n",
        "tests/test_app.py": "t = 1\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "dist" / "staging").mkdir(parents=True)
    (root / "dist" / "staging" / "app.py").write_text("app = 1\n")
    (root / "dist" / "wheelhouse").mkdir()
    (root / "dist" / "image.json").write_text("{}\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "one")
    return root


@pytest.fixture(autouse=True)
def fixed_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    # One interpreter and one uv for every lookup, unless a test changes them.
    monkeypatch.setattr(keys, "interpreter", lambda python: f"cpython {python}")
    monkeypatch.setattr(sessions, "tool_versions", lambda run=None: {"uv": "uv 0.9.0"})


def results(repo: Path, environ: Mapping[str, str] = ENVIRON) -> Results:
    return Results(repo, Store(repo.parent / "store", 1_000_000), environ)


def passes(repo: Path, session: FakeSession | None = None, **options: Any) -> Cached:
    """Look up (a miss), then record the pass: what the next lookup should find."""
    cached = results(repo).lookup(session or FakeSession(), SOURCES, **options)
    assert not cached.hit
    cached.record("3 passed")
    return cached


def looks_up(
    repo: Path,
    session: FakeSession | None = None,
    environ: Mapping[str, str] = ENVIRON,
    **options: Any,
) -> Cached:
    return results(repo, environ).lookup(session or FakeSession(), SOURCES, **options)


# --- a pass is found again, and replayed ---------------------------------------------------


def test_a_recorded_pass_is_a_hit_that_says_so(repo: Path) -> None:
    recorded = passes(repo)
    session = FakeSession()
    cached = looks_up(repo, session)
    assert cached.hit
    assert cached.key == recorded.key
    assert len(session.logged) == 1
    line = session.logged[0]
    assert line.startswith("lint: cached pass from 20")
    assert line.endswith(f"(3 passed, key {recorded.key[:6]}…)")


def test_a_hit_is_not_recorded_again(repo: Path) -> None:
    recorded = passes(repo)
    path = results(repo).store
    assert path is not None
    before = path.path(recorded.key).read_bytes()
    hit = looks_up(repo)
    hit.clock = lambda: datetime(2030, 1, 1, tzinfo=UTC)
    hit.record("other")
    assert path.path(recorded.key).read_bytes() == before


def test_nothing_is_looked_up_or_recorded_when_the_cache_is_off(repo: Path) -> None:
    off = Results(repo, None, ENVIRON)
    cached = off.lookup(FakeSession(), SOURCES)
    cached.record("3 passed")
    assert not cached.hit
    assert not (repo.parent / "store").exists()


def test_a_run_with_arguments_is_not_cached_where_the_session_says_so(repo: Path) -> None:
    session = FakeSession(posargs=["-k", "api"])
    cached = results(repo).lookup(session, SOURCES, with_posargs=False)
    cached.record("1 passed")
    assert not (repo.parent / "store").exists()


def test_secret_named_variables_never_reach_a_cached_session(repo: Path) -> None:
    session = FakeSession()
    passes(repo, session)
    assert session.env == {"GITHUB_TOKEN": None}  # nox removes a None variable from its runs
    store = results(repo).store
    assert store is not None
    for entry in store.root.iterdir():
        assert b"ghp_x" not in entry.read_bytes()


def test_a_key_that_cannot_be_computed_is_a_miss_with_a_warning(repo: Path) -> None:
    def broken() -> dict[str, str]:
        raise OSError("no engine")

    session = FakeSession()
    cached = results(repo).lookup(session, SOURCES, inputs=broken)
    cached.record()
    assert not cached.hit
    assert session.warned == ["results cache: no engine; lint runs and is not recorded"]
    assert not (repo.parent / "store").exists()


# --- one input kind at a time: a change is a miss -------------------------------------------


def test_the_same_inputs_are_a_hit(repo: Path) -> None:
    # The baseline every miss below is measured against.
    passes(repo)
    assert looks_up(repo).hit


def test_another_session_name_is_a_miss(repo: Path) -> None:
    passes(repo)
    assert not looks_up(repo, FakeSession(name="build")).hit


def test_other_arguments_are_a_miss(repo: Path) -> None:
    passes(repo)
    assert not looks_up(repo, FakeSession(posargs=["ruff-check"])).hit


def test_another_interpreter_is_a_miss(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passes(repo)
    monkeypatch.setattr(keys, "interpreter", lambda python: f"cpython {python}, another build")
    assert not looks_up(repo).hit


def test_the_sessions_python_names_the_interpreter(repo: Path) -> None:
    passes(repo)
    assert not looks_up(repo, FakeSession(python="3.12")).hit


def test_the_interpreter_is_the_venvs_not_the_one_on_path(tmp_path: Path) -> None:
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)

    @dataclass
    class WithVenv(FakeSession):
        bin: str = str(venv)

    assert sessions.python_of(WithVenv()) == str(venv / "python")
    assert sessions.python_of(FakeSession()) == "python3.11"  # no venv: PATH's, as nox's


def test_without_a_venv_no_file_named_python_in_the_cwd_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "python").write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    assert sessions.python_of(FakeSession()) == "python3.11"


def test_another_uv_is_a_miss(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passes(repo)
    monkeypatch.setattr(sessions, "tool_versions", lambda run=None: {"uv": "uv 0.10.0"})
    assert not looks_up(repo).hit


@pytest.mark.parametrize(
    "changed", ["uv.lock", "pyproject.toml", "noxfile.py", "harness/core.py", "src/app.py"]
)
def test_a_changed_file_is_a_miss_committed_or_not(repo: Path, changed: str) -> None:
    passes(repo)
    (repo / changed).write_text((repo / changed).read_text() + "# edited\n")
    assert not looks_up(repo).hit


def test_a_new_harness_module_is_a_miss(repo: Path) -> None:
    passes(repo)
    (repo / "harness" / "new.py").write_text("")  # untracked, not ignored
    assert not looks_up(repo).hit


def test_a_new_untracked_file_the_session_reads_is_a_miss(repo: Path) -> None:
    passes(repo)
    (repo / "src" / "new.py").write_text("")
    assert not looks_up(repo).hit


def test_files_the_session_does_not_read_do_not_count(repo: Path) -> None:
    passes(repo)
    (repo / "tests" / "test_app.py").write_text("t = 2\n")  # outside SOURCES
    (repo / "src" / "run.log").write_text("ignored\n")
    assert looks_up(repo).hit


def test_a_changed_variable_is_a_miss(repo: Path) -> None:
    passes(repo)
    assert not looks_up(repo, environ={**ENVIRON, "LANG": "de_DE.UTF-8"}).hit
    assert not looks_up(repo, environ={**ENVIRON, "PYTHONHASHSEED": "0"}).hit


def test_volatile_and_secret_variables_do_not_count(repo: Path) -> None:
    passes(repo)
    assert looks_up(repo, environ={**ENVIRON, "TERM": "dumb", "GITHUB_TOKEN": "ghp_y"}).hit


def test_changed_session_inputs_are_a_miss(repo: Path) -> None:
    passes(repo, inputs={"epoch": 1})
    assert looks_up(repo, inputs={"epoch": 1}).hit
    assert not looks_up(repo, inputs={"epoch": 2}).hit


def image_inputs(repo: Path, plan: Plan, builder: str = "26.1.5/0.13.1") -> Any:
    return lambda: sessions.image_inputs(repo, plan, builder)


def test_image_another_base_digest_is_a_miss(repo: Path) -> None:
    passes(repo, inputs=image_inputs(repo, Plan()))
    moved = replace(Plan(), base_digest="sha256:" + "c" * 64)
    assert looks_up(repo, inputs=image_inputs(repo, Plan())).hit
    assert not looks_up(repo, inputs=image_inputs(repo, moved)).hit


def test_image_another_builder_is_a_miss(repo: Path) -> None:
    passes(repo, inputs=image_inputs(repo, Plan()))
    assert not looks_up(repo, inputs=image_inputs(repo, Plan(), "26.1.5/0.14.0")).hit


def test_image_another_commit_or_dirt_is_a_miss(repo: Path) -> None:
    passes(repo, inputs=image_inputs(repo, Plan()))
    assert not looks_up(repo, inputs=image_inputs(repo, replace(Plan(), dirty=True))).hit


def test_image_changed_build_outputs_in_its_context_are_a_miss(repo: Path) -> None:
    passes(repo, inputs=image_inputs(repo, Plan()))
    (repo / "dist" / "wheelhouse" / "x.whl").write_bytes(b"wheel")
    assert not looks_up(repo, inputs=image_inputs(repo, Plan())).hit


class Engine:
    """The engine as integration's key asks it: its version."""

    def __init__(self, version: str) -> None:
        self.version = version

    def server_version(self) -> str:
        return self.version


def integration_inputs(
    repo: Path,
    record: Record | None = None,
    engine: str = "26.1.5",
    testcontainers: Mapping[str, str] | None = None,
) -> Callable[[], dict[str, Any]]:
    return lambda: sessions.integration_inputs(
        repo, record or Record(),
        {"TC_HOST": "127.0.0.1"} if testcontainers is None else testcontainers,
        Engine(engine),  # type: ignore[arg-type]
    )  # fmt: skip


def test_integration_another_image_id_is_a_miss(repo: Path) -> None:
    passes(repo, inputs=integration_inputs(repo))
    other = Record(image_id="sha256:" + "2" * 64)
    assert looks_up(repo, inputs=integration_inputs(repo)).hit
    assert not looks_up(repo, inputs=integration_inputs(repo, other)).hit


def test_integration_another_engine_is_a_miss(repo: Path) -> None:
    passes(repo, inputs=integration_inputs(repo))
    assert not looks_up(repo, inputs=integration_inputs(repo, engine="27.0.1")).hit


def test_integration_other_testcontainers_settings_are_a_miss(repo: Path) -> None:
    passes(repo, inputs=integration_inputs(repo))
    settings = {"TC_HOST": "127.0.0.1", "TESTCONTAINERS_RYUK_DISABLED": "true"}
    assert not looks_up(repo, inputs=integration_inputs(repo, testcontainers=settings)).hit


def test_integration_another_head_is_a_miss(repo: Path) -> None:
    passes(repo, inputs=integration_inputs(repo))
    git(repo, "commit", "-q", "--allow-empty", "-m", "another")
    assert not looks_up(repo, inputs=integration_inputs(repo)).hit


def test_integration_a_changed_image_output_is_a_miss_its_own_record_is_not(repo: Path) -> None:
    passes(repo, inputs=integration_inputs(repo))
    (repo / "dist" / "verified.json").write_text("{}\n")  # what integration itself writes
    assert looks_up(repo, inputs=integration_inputs(repo)).hit
    (repo / "dist" / "image.json").write_text('{"image_id": "other"}\n')
    assert not looks_up(repo, inputs=integration_inputs(repo)).hit


# --- outputs: present and intact, or a miss ------------------------------------------------


def record_outputs(repo: Path) -> None:
    cached = results(repo).lookup(FakeSession(name="build"), SOURCES)
    cached.record("built", [repo / "dist" / "staging", repo / "dist" / "image.json"])


def test_intact_outputs_are_a_hit(repo: Path) -> None:
    record_outputs(repo)
    assert looks_up(repo, FakeSession(name="build")).hit


@pytest.mark.parametrize(
    "damage",
    [
        lambda dist: (dist / "image.json").write_text('{"image_id": "x"}\n'),
        lambda dist: (dist / "image.json").unlink(),
        lambda dist: (dist / "staging" / "app.py").write_text("app = 2\n"),
        lambda dist: (dist / "staging" / "extra.py").write_text(""),  # added to a recorded tree
        lambda dist: (dist / "staging" / "app.py").unlink(),
    ],
)
def test_changed_missing_or_added_outputs_are_a_miss(
    repo: Path, damage: Callable[[Path], object]
) -> None:
    record_outputs(repo)
    damage(repo / "dist")
    assert not looks_up(repo, FakeSession(name="build")).hit


def test_an_output_the_engine_no_longer_has_is_a_miss(repo: Path) -> None:
    image_id = "sha256:" + "1" * 64
    cached = results(repo).lookup(FakeSession(name="image"), SOURCES)
    cached.record("image", image_id=image_id, tags="deathstar:0.1.0 deathstar:sha-abcdef0")
    engine = {image_id: image_id, "deathstar:0.1.0": image_id, "deathstar:sha-abcdef0": image_id}
    present = sessions.image_present(engine.get)
    assert looks_up(repo, FakeSession(name="image"), present=present).hit
    engine["deathstar:0.1.0"] = "sha256:" + "2" * 64  # a tag moved
    assert not looks_up(repo, FakeSession(name="image"), present=present).hit
    del engine[image_id]
    assert not looks_up(repo, FakeSession(name="image"), present=present).hit


def test_recorded_refs_that_are_not_image_names_are_a_miss(repo: Path) -> None:
    image_id = "sha256:" + "1" * 64
    cached = results(repo).lookup(FakeSession(name="image"), SOURCES)
    cached.record("image", image_id=image_id, tags="--format={{.Os}}")
    asked: list[str] = []

    def engine(ref: str) -> str:
        asked.append(ref)
        return image_id

    present = sessions.image_present(engine)
    assert not looks_up(repo, FakeSession(name="image"), present=present).hit
    assert asked == []  # docker was never given the option


def test_a_link_in_a_recorded_tree_counts_by_its_target(repo: Path) -> None:
    (repo / "elsewhere").mkdir()
    (repo / "dist" / "staging" / "lib").symlink_to(repo / "src")
    record_outputs(repo)
    assert looks_up(repo, FakeSession(name="build")).hit
    (repo / "dist" / "staging" / "lib").unlink()
    (repo / "dist" / "staging" / "lib").symlink_to(repo / "elsewhere")
    assert not looks_up(repo, FakeSession(name="build")).hit


def test_the_hit_line_prints_only_a_printable_summary() -> None:
    entry = {"recorded_at": "2026-12-04T17:01:00Z", "summary": "3 passed"}
    key = "3f2a9c" + "0" * 58
    assert sessions.hit_line("lint", key, entry).endswith("(3 passed, key 3f2a9c…)")
    assert sessions.hit_line("lint", key, {**entry, "summary": ""}).endswith("(key 3f2a9c…)")
    hostile = {**entry, "summary": "ok\x1b]0;pwned\x07"}
    assert sessions.hit_line("lint", key, hostile).endswith("(key 3f2a9c…)")
    assert "cached pass from ? " in sessions.hit_line("lint", key, {"recorded_at": "x"})


def test_an_entry_naming_outputs_outside_the_checkout_is_a_miss(repo: Path) -> None:
    for outside in ("../store", "/etc/hostname", ""):
        assert not sessions.intact(repo, {"output_paths": [outside], "outputs": {}})
    assert not sessions.intact(repo, {"output_paths": "dist", "outputs": {}})
    assert sessions.intact(repo, {"output_paths": [], "outputs": {}})


def test_the_summary_of_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite tests="10" failures="0" errors="0" skipped="2"/>'
        '<testsuite tests="3" failures="0" errors="0" skipped="0"/></testsuites>'
    )
    assert sessions.junit_summary(report) == "11 passed, 2 skipped"
    assert sessions.junit_summary(tmp_path / "absent.xml") == ""


# --- the file sets are complete for what the sessions read ----------------------------------


def test_the_package_takes_nothing_from_the_files_build_does_not_key_on() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    poetry = pyproject["tool"]["poetry"]
    assert poetry["packages"] == [{"include": "deathstar"}]
    assert set(poetry) == {"packages"}  # no `include`: only the package, README, LICENSE
    shipped = [pyproject["project"]["readme"], *pyproject["project"]["license-files"]]
    assert not [name for name in shipped if is_unkeyed(name)]


def test_the_image_context_takes_nothing_from_the_files_image_does_not_key_on() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    assert "*" in lines  # an allow-list: nothing else is in the context
    assert not [name for name in allowed if is_unkeyed(name)]
    assert sorted(name for name in allowed if name.startswith("dist/")) == sorted(
        sessions.IMAGE_READS
    )


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def is_unkeyed(path: str) -> bool:
    """A file the pipeline sessions do not key on (git pathspecs, fnmatch-style)."""
    return any(fnmatch.fnmatch(path, f"{s}/*") or fnmatch.fnmatch(path, s)
               for s in build.NOT_SHIPPED)  # fmt: skip


def test_the_integration_suite_imports_no_unit_test_module() -> None:
    readers = [*(ROOT / "integration").glob("*.py"), *(ROOT / "tests").glob("*.py")]
    for path in readers:
        if is_unkeyed(path.relative_to(ROOT).as_posix()):
            continue  # a unit test module: integration does not import it (checked here)
        for name in imported(path):
            module = name.replace(".", "/") + ".py"
            assert not is_unkeyed(module), f"{path.relative_to(ROOT)} imports {name}"


def test_the_unkeyed_files_are_the_unit_test_modules_not_their_helpers() -> None:
    assert is_unkeyed("tests/test_app.py")
    assert is_unkeyed("docs/caching.md")
    assert not is_unkeyed("tests/api_checks.py")
    assert not is_unkeyed("deathstar/app.py")


def test_every_cached_session_records_only_as_its_last_step() -> None:
    # A failed command or a refusal raises before the record: only a pass is recorded.
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for name in ("lint", "build", "image", "integration"):
        calls = [
            node for node in ast.walk(functions[name])
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "cached.record"
        ]  # fmt: skip
        assert len(calls) == 1, name
        last = functions[name].body[-1]
        assert isinstance(last, ast.Expr), name
        assert last.value is calls[0], name
    for name in ("push", "audit", "repro", "verify", "bench", "lock_session", "install"):
        assert "RESULTS" not in ast.unparse(functions[name]), name


# --- what may not be recorded (review findings) ----------------------------------------------


def test_an_input_changed_while_the_session_ran_is_not_recorded(repo: Path) -> None:
    cached = results(repo).lookup(FakeSession(), SOURCES)
    (repo / "src" / "app.py").write_text("app = 2\n")  # saved while the session ran
    cached.record("3 passed")
    assert not looks_up(repo).hit
    (repo / "src" / "app.py").write_text("app = 1\n")
    assert not looks_up(repo).hit  # nothing was recorded under the key it was looked up with


def test_a_pass_withdrawn_from_recording_is_not_recorded(repo: Path) -> None:
    cached = results(repo).lookup(FakeSession(), SOURCES)
    cached.withdrawn = "its venv is not what uv.lock says (nox -R skips installs)"
    cached.record("3 passed")
    assert not looks_up(repo).hit


def test_a_link_to_a_folder_cannot_be_keyed_so_the_session_runs_unrecorded(
    repo: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside").mkdir()
    (repo / "src" / "data").symlink_to(tmp_path / "outside")
    session = FakeSession()
    cached = results(repo).lookup(session, SOURCES)
    assert not cached.hit
    assert "links to a folder" in session.warned[0]
    cached.record("3 passed")
    assert not looks_up(repo).hit


def test_the_venv_check_asks_uv_about_the_sessions_venv_as_nox_does(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A UV_PYTHON from the caller (nox sets it for its own session) must not make uv judge
    # a 3.12 venv against another interpreter: the bench's nox saw every 3.12 pass withdrawn.
    monkeypatch.setenv("UV_PYTHON", "/elsewhere/venv")
    seen: list[dict[str, str]] = []

    def run(command: list[str], **options: Any) -> Any:
        seen.append(options["env"])
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(subprocess, "run", run)
    assert sessions.venv_matches_lock(repo, "/nox/test-3-12", ["--group=test"])
    assert seen[0]["UV_PYTHON"] == seen[0]["UV_PROJECT_ENVIRONMENT"] == "/nox/test-3-12"
