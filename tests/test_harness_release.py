"""The push gates against real throwaway git repositories, and the push itself against a
stand-in `docker` that records every call (the real registry path is in integration/)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from harness import HarnessError
from harness.core import records
from harness.core.docker import Docker
from harness.release import credentials, gates
from harness.release.__main__ import main
from harness.release.registry import Credentials, RegistryClient
from harness.release.tags import Release
from tests.fakedocker import FakeDocker
from tests.gitrepo import git

IMAGE_ID = "sha256:" + "ab" * 32
DIGEST = "sha256:" + "cd" * 32


@pytest.fixture
def docker() -> FakeDocker:
    return FakeDocker(rules=[(["image", "inspect"], IMAGE_ID, 0)])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A clean repository at a commit tagged v0.3.1 with a verified image recorded."""
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text('[project]\nname = "deathstar"\nversion = "0.3.1"\n')
    (repo / ".gitignore").write_text("dist/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "release")
    git(repo, "tag", "v0.3.1")
    head = git(repo, "rev-parse", "HEAD")
    record = records.ImageRecord(
        IMAGE_ID, ["deathstar:0.3.1"], "0.3.1", head, head, "b", 2, 1, IMAGE_ID, [], "", "", True
    )
    records.save_image_record(record, repo / "dist" / "image.json")
    records.record_verification(record, head, repo / "dist" / "verified.json")
    return repo


def args(project: Path, *extra: str) -> list[str]:
    return ["--project-dir", str(project), "--registry", "127.0.0.1:5999", *extra]


ENV = {"REGISTRY_USERNAME": "deploy", "REGISTRY_PASSWORD": "pw-not-in-logs"}


@pytest.fixture
def registry_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RegistryClient, "check_login", lambda self, repository: None)


def run(
    project: Path, env: dict[str, str], *extra: str, stdin: str = "", fake: FakeDocker | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    fake = fake or FakeDocker(rules=[(["image", "inspect"], IMAGE_ID, 0)])
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args(project, *extra), env, io.StringIO(stdin), Docker(fake))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.usefixtures("docker", "registry_accepts")
def test_dry_run_prints_the_plan_and_pushes_nothing(project: Path, docker: FakeDocker) -> None:
    code, out, err = run(project, ENV, fake=docker)
    assert (code, err) == (0, "")
    head = git(project, "rev-parse", "HEAD")
    for expected in ("0.3.1", "0.3", f"sha-{head[:7]}", "latest"):
        assert f"127.0.0.1:5999/tea-n-tech/deathstar:{expected}\n" in out
    assert ":0\n" not in out  # no bare major tag for 0.x
    assert f"commit:      {head} (v0.3.1)" in out
    assert IMAGE_ID in out
    assert "add --confirm to push" in out
    assert ENV["REGISTRY_PASSWORD"] not in out
    assert [c.args[1:][:2] for c in docker.calls] == [["image", "inspect"]]


def refused(
    project: Path,
    env: dict[str, str],
    *extra: str,
    prefix: str = "refused",
    fake: FakeDocker | None = None,
) -> str:
    code, out, err = run(project, env, *extra, fake=fake)
    assert code == 1
    if "--confirm" not in extra:
        assert out == ""  # a refusal in the checks prints no plan
    assert err.count("\n") == 1
    assert err.startswith(f"push {prefix}: ")
    return err


@pytest.mark.usefixtures("docker", "registry_accepts")
def test_dirty_tree_is_refused(project: Path) -> None:
    (project / "notes.txt").write_text("uncommitted")
    assert "uncommitted changes" in refused(project, ENV)


@pytest.mark.usefixtures("docker", "registry_accepts")
def test_untagged_head_is_refused(project: Path) -> None:
    git(project, "tag", "-d", "v0.3.1")
    assert "HEAD carries no release tag; tag the release commit: git tag v0.3.1" in refused(
        project, ENV
    )


@pytest.mark.usefixtures("docker", "registry_accepts")
def test_tag_differing_from_version_is_refused(project: Path) -> None:
    git(project, "tag", "-d", "v0.3.1")
    git(project, "tag", "v0.3.2")
    err = refused(project, ENV)
    assert "HEAD is tagged v0.3.2 but the package version is 0.3.1" in err


@pytest.mark.usefixtures("docker", "registry_accepts")
def test_pre_release_tag_matches_its_pep440_version(project: Path) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "d"\nversion = "2.0.0rc1"\n')
    git(project, "commit", "-qam", "rc")
    git(project, "tag", "v2.0.0-rc.1")
    assert gates.release_at_head(["v2.0.0-rc.1"], "2.0.0rc1") == Release(2, 0, 0, "rc.1", None)
    # the image recorded is from the previous commit now
    assert "not from HEAD" in refused(project, ENV)


@pytest.mark.usefixtures("docker", "registry_accepts")
def test_unverified_or_other_image_is_refused(project: Path) -> None:
    verified = project / "dist" / "verified.json"
    data = json.loads(verified.read_text())
    verified.write_text(json.dumps({**data, "image_id": "sha256:" + "ee" * 32}))
    assert "has not passed `nox -s integration`" in refused(project, ENV)
    verified.unlink()
    assert "run `nox -s integration` first" in refused(project, ENV)


@pytest.mark.usefixtures("registry_accepts")
def test_image_gone_from_the_engine_is_refused(project: Path, docker: FakeDocker) -> None:
    docker.rules = []
    assert "no longer in the local Docker engine" in refused(project, ENV, fake=docker)


@pytest.mark.usefixtures("docker", "registry_accepts")
def test_dirty_built_image_is_refused(project: Path) -> None:
    record = records.load_image_record(project / "dist" / "image.json")
    dirty = records.ImageRecord(**{**record.__dict__, "revision": record.commit + "-dirty"})
    records.save_image_record(dirty, project / "dist" / "image.json")
    assert "was built from " in refused(project, ENV)


@pytest.mark.usefixtures("docker", "registry_accepts")
def test_missing_credentials_are_refused(project: Path, tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "empty")}
    assert "no credentials for 127.0.0.1:5999" in refused(project, env)
    assert "set both REGISTRY_USERNAME and REGISTRY_PASSWORD" in refused(
        project, {"REGISTRY_USERNAME": "deploy", **env}
    )


def test_credentials_from_stdin_and_docker_config(tmp_path: Path) -> None:
    creds, source = credentials.credentials(
        "r.example", {"REGISTRY_USERNAME": "u"}, password_stdin=True, stdin=io.StringIO("pw\n")
    )
    assert creds == Credentials("u", "pw")
    assert source == "u (REGISTRY_USERNAME, stdin)"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"r.example": {"auth": "dTpwdw=="}}}))  # u:pw
    env = {"DOCKER_CONFIG": str(tmp_path)}
    creds, source = credentials.credentials(
        "r.example", env, password_stdin=False, stdin=io.StringIO()
    )
    assert creds == Credentials("u", "pw")
    assert source == "u (existing docker login)"
    config.write_text(json.dumps({"credHelpers": {"r.example": "deathstar-test"}}))
    assert credentials.credentials("r.example", env, password_stdin=False, stdin=io.StringIO()) == (
        None,
        "existing docker login (credential helper)",
    )


def test_credentials_from_a_credential_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = tmp_path / "docker-credential-deathstar-test"
    helper.write_text(
        "#!/bin/sh\n"
        'read -r server; [ "$1" = get ] && [ "$server" = r.example ] || exit 1\n'
        'echo \'{"ServerURL": "r.example", "Username": "bot", "Secret": "tok"}\'\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"r.example": {}}, "credsStore": "deathstar-test"})
    )
    env = {"DOCKER_CONFIG": str(tmp_path)}
    creds, source = credentials.credentials(
        "r.example", env, password_stdin=False, stdin=io.StringIO()
    )
    assert creds == Credentials("bot", "tok")
    assert source == "bot (existing docker login)"
    # a registry the store has nothing for: logged in per config, credentials unknown
    (tmp_path / "config.json").write_text(
        json.dumps({"credHelpers": {"o.example": "deathstar-test"}})
    )
    assert credentials.docker_config_credentials("o.example", env) == (True, None)


def test_registry_failure_is_refused(project: Path, docker: FakeDocker) -> None:
    err = refused(project, ENV)  # nothing listens on 127.0.0.1:5999
    assert "registry 127.0.0.1:5999 does not answer" in err


@pytest.mark.usefixtures("registry_accepts")
def test_confirmed_push(project: Path, docker: FakeDocker, monkeypatch: pytest.MonkeyPatch) -> None:
    docker.rules = [
        (["image", "inspect"], IMAGE_ID, 0),
        (["push"], f"latest: digest: {DIGEST} size: 1234", 0),
        ([], "", 0),  # login, tag, image rm
    ]
    read: list[str] = []

    def manifest_digest(self: RegistryClient, repository: str, tag: str) -> str:
        read.append(f"{repository}:{tag}")
        return DIGEST

    monkeypatch.setattr(RegistryClient, "manifest_digest", manifest_digest)
    code, out, err = run(project, ENV, "--confirm", fake=docker)
    assert (code, err) == (0, "")
    assert out.endswith(f"pushed 4 tags, all resolve to {DIGEST}\n")
    calls = docker.calls
    login = next(c for c in calls if c.args[1:][0] == "login")
    assert login.args[1:] == ["login", "127.0.0.1:5999", "--username", "deploy", "--password-stdin"]
    assert login.stdin == ENV["REGISTRY_PASSWORD"]
    assert all(ENV["REGISTRY_PASSWORD"] not in " ".join(c.args[1:]) for c in calls)
    pushes = [c for c in calls if c.args[1:][0] == "push"]
    refs = [c.args[1:][1] for c in pushes]
    head = git(project, "rev-parse", "HEAD")
    repo = "127.0.0.1:5999/tea-n-tech/deathstar"
    assert refs == [f"{repo}:0.3.1", f"{repo}:sha-{head[:7]}", f"{repo}:0.3", f"{repo}:latest"]
    config = (login.env or {}).get("DOCKER_CONFIG")
    assert {(c.env or {}).get("DOCKER_CONFIG") for c in pushes} == {config}  # the throwaway login
    assert not Path(str(config)).exists()  # and it is gone
    removed = [c.args[1:][2] for c in calls if c.args[1:][:2] == ["image", "rm"]]
    assert removed == refs
    assert read == [f"tea-n-tech/deathstar:{ref.rsplit(':', 1)[1]}" for ref in refs]


@pytest.mark.usefixtures("registry_accepts")
def test_failed_push_removes_local_tags_and_reports(project: Path, docker: FakeDocker) -> None:
    docker.rules = [
        (["image", "inspect"], IMAGE_ID, 0),
        (["push"], "denied: requested access to the resource is denied", 1),
        ([], "", 0),
    ]
    err = refused(project, ENV, "--confirm", fake=docker)
    assert "docker push 127.0.0.1:5999/tea-n-tech/deathstar:0.3.1 failed: denied" in err
    calls = docker.calls
    tagged = [c.args[1:][2] for c in calls if c.args[1:][0] == "tag"]
    removed = [c.args[1:][2] for c in calls if c.args[1:][:2] == ["image", "rm"]]
    assert tagged == removed
    assert len(tagged) == 4


@pytest.mark.usefixtures("registry_accepts")
def test_read_back_mismatch_is_an_error(
    project: Path, docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker.rules = [
        (["image", "inspect"], IMAGE_ID, 0),
        (["push"], f"x: digest: {DIGEST} size: 1", 0),
        ([], "", 0),
    ]
    monkeypatch.setattr(
        RegistryClient,
        "manifest_digest",
        lambda self, repository, tag: None if tag == "latest" else DIGEST,
    )
    assert "do not all resolve to" in refused(
        project, ENV, "--confirm", prefix="failed", fake=docker
    )


def test_bad_version_is_one_line() -> None:
    with pytest.raises(HarnessError, match="not a valid version"):
        gates.release_at_head(["v1.0.0"], "not-a-version")


@pytest.mark.usefixtures("registry_accepts")
def test_partial_push_says_what_the_registry_holds(project: Path, docker: FakeDocker) -> None:
    docker.rules = [
        (["image", "inspect"], IMAGE_ID, 0),
        (["push", "127.0.0.1:5999/tea-n-tech/deathstar:0.3.1"], f"d: digest: {DIGEST}", 0),
        (["push"], "connection reset by peer", 1),
        (["image", "rm"], "conflict: unable to remove", 1),  # cleanup trouble stays a warning
        ([], "", 0),
    ]
    code, _, err = run(project, ENV, "--confirm", fake=docker)
    lines = err.splitlines()
    assert code == 1
    assert lines[-1].startswith("push failed: docker push 127.0.0.1:5999/tea-n-tech/deathstar:sha-")
    assert "the registry already holds 0.3.1 (immutable tags first)" in lines[-1]
    assert "run the push again: it is idempotent" in lines[-1]
    assert sum(line.startswith("warning: could not remove the local tag") for line in lines) == 4
