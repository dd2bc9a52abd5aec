"""Key parts: canonical digests, blob IDs of current bytes, the interpreter, the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import HarnessError
from harness.results import keys
from tests.gitrepo import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("ignored/\n*.log\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("a = 1\n")
    (tmp_path / "src" / "b.py").write_text("b = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def test_a_digest_is_canonical_json() -> None:
    assert keys.digest({"a": 1, "b": [1, 2]}) == keys.digest({"b": [1, 2], "a": 1})
    assert keys.digest({"a": 1}) != keys.digest({"a": "1"})
    assert len(keys.digest({})) == 64


def test_session_files_are_tracked_and_untracked_but_not_ignored(repo: Path) -> None:
    (repo / "src" / "new.py").write_text("")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "x.py").write_text("")
    (repo / "run.log").write_text("")
    (repo / "src" / "b.py").unlink()  # tracked, deleted: nobody reads it
    assert keys.session_files(repo) == [".gitignore", "src/a.py", "src/new.py"]
    assert keys.session_files(repo, ["src"]) == ["src/a.py", "src/new.py"]
    assert keys.session_files(repo, exclude=["src/new.py"]) == [".gitignore", "src/a.py"]


def test_file_digests_are_git_blob_ids_of_the_current_bytes(repo: Path) -> None:
    committed = keys.file_digests(repo, ["src/a.py"])["src/a.py"]
    assert committed == git(repo, "rev-parse", "HEAD:src/a.py")
    (repo / "src" / "a.py").write_text("a = 2\n")  # not staged, not committed
    (repo / "src" / "new.py").write_text("a = 2\n")  # untracked
    changed = keys.file_digests(repo, ["src/a.py", "src/new.py", "gone.py"])
    assert changed["src/a.py"] != committed
    assert changed["src/a.py"] == changed["src/new.py"]
    assert changed["gone.py"] == "absent"


def test_a_file_name_with_a_newline_is_refused(repo: Path) -> None:
    with pytest.raises(HarnessError, match="newline"):
        keys.file_digests(repo, ["a\nb"])


def test_the_interpreter_is_its_implementation_version_and_platform() -> None:
    facts = keys.interpreter(sys.executable)
    assert sys.version in facts
    assert sys.implementation.name in facts
    assert keys.interpreter("/no/such/python") == "missing:/no/such/python"


def test_the_interpreter_is_the_same_through_a_venv_in_another_clone(tmp_path: Path) -> None:
    venv = tmp_path / "elsewhere" / ".nox" / "test"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    assert keys.interpreter(str(venv / "bin" / "python")) == keys.interpreter(sys.executable)


def test_the_environment_keys_the_declared_passes_the_machine_and_withholds_the_rest() -> None:
    environ = {
        "PATH": "/bin",
        "HOME": "/home/a",
        "LANG": "C.UTF-8",
        "TERM": "xterm",
        "SSH_CONNECTION": "1.2.3.4",
        "GITHUB_RUN_ID": "42",
        "GITHUB_ACTIONS": "true",
        "GITHUB_TOKEN": "ghp_x",
        "REGISTRY_PASSWORD": "hunter2",
        "COSIGN_KEY": "k",
        "DEATHSTAR_CACHE_DIR": "/c",
        "DEATHSTAR_RESULTS_CACHE": "ghcr.io/o/r/results",
        "DEATHSTAR_IMAGE_TAG": "x",
        "PIP_CERT": "/etc/ca.pem",
        "UV_INDEX_URL": "https://user:hunter2@pypi.example/simple",
        "SOME_TOOL_SETTING": "on",
    }
    assert keys.environment(environ) == {
        "LANG": "C.UTF-8",
        "DEATHSTAR_IMAGE_TAG": "x",
        "UV_INDEX_URL": "https://pypi.example/simple",
    }
    # Undeclared: the tools never see it, so it cannot change a result it is not keyed on.
    assert keys.withheld(environ) == [
        "COSIGN_KEY", "GITHUB_TOKEN", "REGISTRY_PASSWORD", "SOME_TOOL_SETTING"
    ]  # fmt: skip


def test_another_machines_clone_keys_the_same_environment() -> None:
    laptop = {"PATH": "/usr/bin", "HOME": "/home/dev", "USER": "dev", "LANG": "C.UTF-8",
              "XDG_CACHE_HOME": "/home/dev/.c", "SHELL": "/bin/zsh", "EDITOR": "vim"}  # fmt: skip
    runner = {"PATH": "/opt/hostedtoolcache/bin:/usr/bin", "HOME": "/home/runner",
              "USER": "runner", "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true",
              "GITHUB_RUN_ID": "1234", "JAVA_HOME_17_X64": "/usr/lib/jvm",
              "DEATHSTAR_RESULTS_CACHE_WRITE": "1"}  # fmt: skip
    assert keys.environment(laptop) == keys.environment(runner) == {"LANG": "C.UTF-8"}
    assert "JAVA_HOME_17_X64" in keys.withheld(runner)  # hidden, so it need not be keyed
    assert keys.environment({**laptop, "PYTHONHASHSEED": "0"}) != keys.environment(laptop)


@pytest.mark.parametrize(
    "name",
    ["GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "API_KEY", "COSIGN_PASSWORD", "GPG_PASSPHRASE",
     "DOCKER_AUTH_CONFIG", "NPM_AUTH", "PYPI_CREDENTIALS", "SIGNING_PRIVATE_KEY", "db_password"],
)  # fmt: skip
def test_secret_names_are_recognised(name: str) -> None:
    assert keys.is_secret(name)


@pytest.mark.parametrize("name", ["PATH", "MONKEY", "KEYBOARD", "AUTHOR", "PWD", "PYENV_ROOT"])
def test_ordinary_names_are_not_secrets(name: str) -> None:
    assert not keys.is_secret(name)


def test_this_machines_environment_has_no_secret_value_in_a_key() -> None:
    kept = keys.environment(os.environ)
    assert not any(keys.is_secret(name) for name in kept)


def test_a_directory_git_does_not_know_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    with pytest.raises(HarnessError, match="git ls-files failed"):
        keys.session_files(tmp_path)
