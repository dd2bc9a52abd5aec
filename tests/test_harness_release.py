"""The push gates against real throwaway git repositories, and the push itself against a
stand-in engine that records every call and a stand-in registry on 127.0.0.1 (both in
tests/fakedocker.py; the real registry path is in integration/)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT, HarnessError
from harness import registry as registry_module
from harness.core.docker import Docker
from harness.image import records
from harness.registry import Credentials
from harness.release import gates
from harness.release.__main__ import main
from harness.release.gates import Release
from tests.fakedocker import FakeEngine, FakeRegistry, FakeSkopeo, image_manifest, sha256
from tests.gitrepo import git

IMAGE_ID = "sha256:" + "ab" * 32
EVIL = "sha256:" + "ee" * 32  # another image the engine holds
REPOSITORY = "tea-n-tech/deathstar"
PASSWORD = "s3cret"  # noqa: S105 (the fake registry's)
ENV = {"REGISTRY_USERNAME": "deploy", "REGISTRY_PASSWORD": PASSWORD}
PUSHED = sha256(image_manifest(IMAGE_ID))  # the manifest docker makes for the verified image


def verify(project: Path, **fields: str) -> None:
    """What `nox -s integration` records, with the integration suite's tree at HEAD."""
    head = git(project, "rev-parse", "HEAD")
    record = {
        "image_id": IMAGE_ID,
        "commit": head,
        "revision": head,
        "integration_tree": git(project, "rev-parse", "HEAD:integration"),
        "verified_at": "2026-01-02T03:04:05Z",
    }
    records.write_json(records.verified_record_path(project), {**record, **fields})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A clean repository at a commit tagged v0.3.1 with a verified image recorded."""
    repo = tmp_path / "project"
    (repo / "integration").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text('[project]\nname = "deathstar"\nversion = "0.3.1"\n')
    (repo / ".gitignore").write_text("dist/\n")
    (repo / "integration" / "test_api.py").write_text("def test_api() -> None: ...\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "release")
    git(repo, "tag", "v0.3.1")
    head = git(repo, "rev-parse", "HEAD")
    record = records.ImageRecord(
        IMAGE_ID, ["deathstar:0.3.1"], "0.3.1", head, head, "b", 2, 1, IMAGE_ID, [], "", "", True
    )
    records.save_image_record(record, repo / "dist" / "image.json")
    verify(repo)
    return repo


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def engine(project: Path, registry: FakeRegistry) -> FakeEngine:
    """The verified image, labelled as `nox -s image` labels it, and another one; a push puts
    the image its ref names at that moment into the registry."""
    labels = {
        "org.opencontainers.image.revision": git(project, "rev-parse", "HEAD"),
        "org.opencontainers.image.version": "0.3.1",
    }
    fake = FakeEngine(labels={IMAGE_ID: labels, EVIL: labels})

    def pushed(ref: str, image: str) -> str:
        return registry.put(REPOSITORY, ref.rsplit(":", 1)[1], image_manifest(image))

    fake.pushed = pushed
    return fake


def run(
    project: Path,
    registry: FakeRegistry,
    engine: FakeEngine,
    env: dict[str, str] | os._Environ[str],
    *extra: str,
    stdin: str = "",
    skopeo: FakeSkopeo | None = None,
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--project-dir", str(project), "--registry", registry.address, *extra]
    skopeo = skopeo or FakeSkopeo(registry)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv, env, io.StringIO(stdin), Docker(engine), skopeo)
    return code, out.getvalue(), err.getvalue()


COMMIT_DIRTY = "<the recorded commit>-dirty"


def refused(
    project: Path,
    registry: FakeRegistry,
    engine: FakeEngine,
    env: dict[str, str] | None = None,
    *extra: str,
    prefix: str = "refused",
) -> str:
    """The one line of a refusal (or, with ``prefix="failed"``, of a failed push)."""
    code, out, err = run(project, registry, engine, ENV if env is None else env, *extra)
    assert code == 1
    if "--confirm" not in extra:
        assert out == ""  # a refusal in the checks prints no plan
    assert "all resolve to" not in out
    assert err.count("\n") == 1, err
    assert err.startswith(f"push {prefix}: ")
    assert "Traceback" not in err
    assert PASSWORD not in out + err
    return err.removesuffix("\n")


def pushes(engine: FakeEngine) -> list[str]:
    return [c[1] for c in engine.docker_calls() if c[0] == "push"]


def test_dry_run_prints_the_plan_and_pushes_nothing(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    code, out, err = run(project, registry, engine, ENV)
    assert (code, err) == (0, "")
    head = git(project, "rev-parse", "HEAD")
    for expected in ("0.3.1", "0.3", f"sha-{head[:7]}", "latest"):
        assert f"{registry.address}/tea-n-tech/deathstar:{expected}\n" in out
    assert ":0\n" not in out  # no bare major tag for 0.x
    assert f"commit:      {head} (v0.3.1)" in out
    assert IMAGE_ID in out
    assert "add --confirm to push" in out
    assert PASSWORD not in out
    calls = [c[:2] for c in engine.docker_calls()]
    assert calls == [["image", "inspect"], ["image", "inspect"], ["login", registry.address]]
    assert registry.tags(REPOSITORY) == []


# --- the gates ---------------------------------------------------------------------------------


def test_dirty_tree_is_refused(project: Path, registry: FakeRegistry, engine: FakeEngine) -> None:
    (project / "notes.txt").write_text("uncommitted")
    assert "uncommitted changes" in refused(project, registry, engine)


def test_untagged_head_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    git(project, "tag", "-d", "v0.3.1")
    assert "HEAD carries no release tag; tag the release commit: git tag v0.3.1" in refused(
        project, registry, engine
    )


def test_tag_differing_from_version_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    git(project, "tag", "-d", "v0.3.1")
    git(project, "tag", "v0.3.2")
    err = refused(project, registry, engine)
    assert "HEAD is tagged v0.3.2 but the package version is 0.3.1" in err


def test_pre_release_tag_matches_its_pep440_version(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "d"\nversion = "2.0.0rc1"\n')
    git(project, "commit", "-qam", "rc")
    git(project, "tag", "v2.0.0-rc.1")
    assert gates.release_at_head(["v2.0.0-rc.1"], "2.0.0rc1") == Release((2, 0, 0), "rc.1", None)
    # the image recorded is from the previous commit now
    assert "not from HEAD" in refused(project, registry, engine)


def test_unverified_or_other_image_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    verify(project, image_id=EVIL)
    assert "has not passed `nox -s integration`" in refused(project, registry, engine)
    records.verified_record_path(project).unlink()
    assert "run `nox -s integration` first" in refused(project, registry, engine)


def test_a_hand_written_verification_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    """PoC: image_id and commit were all a forged record needed."""
    head = git(project, "rev-parse", "HEAD")
    records.write_json(
        records.verified_record_path(project), {"image_id": IMAGE_ID, "commit": head}
    )
    tree = git(project, "rev-parse", "HEAD:integration")
    assert refused(project, registry, engine) == (
        "push refused: the recorded verification does not name the integration suite at HEAD "
        f"(tree {tree[:12]}); run `nox -s integration` on this commit"
    )
    verify(project, integration_tree="0" * 40)  # a verification by another suite
    assert "does not name the integration suite" in refused(project, registry, engine)
    assert engine.docker_calls() == []  # refused before asking the engine anything


def test_a_project_without_an_integration_suite_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    git(project, "rm", "-rq", "integration")
    git(project, "commit", "-qm", "no suite")
    git(project, "tag", "-f", "v0.3.1")
    head = git(project, "rev-parse", "HEAD")
    record = records.load_image_record(records.image_record_path(project))
    records.save_image_record(
        records.ImageRecord(**{**record.__dict__, "commit": head, "revision": head}),
        records.image_record_path(project),
    )
    records.write_json(
        records.verified_record_path(project), {"image_id": IMAGE_ID, "commit": head}
    )
    err = refused(project, registry, engine)
    assert err.endswith("HEAD has no integration/ suite, so nothing can have verified the image")


@pytest.mark.parametrize(
    ("labels", "refusal"),
    [
        ({"org.opencontainers.image.version": "0.3.1"}, "image.revision='', not "),
        (
            {
                "org.opencontainers.image.revision": "f" * 40,
                "org.opencontainers.image.version": "0.3.1",
            },
            f"image.revision='{'f' * 40}', not ",
        ),
        ({"org.opencontainers.image.version": "9.9.9"}, "image.revision"),
        ({}, "image.revision='', not "),
    ],
)
def test_image_labels_must_name_this_release(
    project: Path,
    registry: FakeRegistry,
    engine: FakeEngine,
    labels: dict[str, str],
    refusal: str,
) -> None:
    engine.labels[IMAGE_ID] = labels
    err = refused(project, registry, engine)
    assert refusal in err
    assert "it was not built from this release: run `nox` again" in err


def test_image_version_label_must_be_the_package_version(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    engine.labels[IMAGE_ID] = {
        **engine.labels[IMAGE_ID],
        "org.opencontainers.image.version": "0.3.0",
    }
    assert "labelled org.opencontainers.image.version='0.3.0', not 0.3.1" in refused(
        project, registry, engine
    )


def test_image_gone_from_the_engine_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    del engine.labels[IMAGE_ID]
    assert "no longer in the local Docker engine" in refused(project, registry, engine)


@pytest.mark.parametrize(
    "case",
    [
        ("revision", COMMIT_DIRTY, "was built from "),
        ("build_cache", "ghcr.io/team/cache", "was built with the build cache ghcr.io/team/cache"),
        ("config_digest", "latest", "names no sha256 image ID and config digest"),
    ],
)
def test_a_record_of_an_image_push_must_not_ship_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine, case: tuple[str, str, str]
) -> None:
    field, value, refusal = case
    record = records.load_image_record(records.image_record_path(project))
    value = record.commit + "-dirty" if value == COMMIT_DIRTY else value
    changed = records.ImageRecord(**{**record.__dict__, field: value})
    records.save_image_record(changed, records.image_record_path(project))
    assert refusal in refused(project, registry, engine)


def test_a_verification_that_is_not_an_object_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    records.verified_record_path(project).write_text("[]\n")
    assert refused(project, registry, engine) == (
        f"push refused: {records.verified_record_path(project)} is corrupt; "
        "run `nox -s integration` first"
    )


@pytest.mark.parametrize(
    ("option", "refusal"),
    [
        (("--registry", "myregistry"), "registry 'myregistry' is not a registry host[:port]"),
        (("--registry", "127.0.0.1:5000/x"), "is not a registry host[:port]"),
        (("--repository", "Tea/Deathstar"), "repository 'Tea/Deathstar' is not a docker repo"),
        (("--repository", "a/../b"), "is not a docker repository name"),
    ],
)
def test_registry_and_repository_must_be_docker_references(
    project: Path,
    registry: FakeRegistry,
    engine: FakeEngine,
    option: tuple[str, str],
    refusal: str,
) -> None:
    assert refusal in refused(project, registry, engine, ENV, *option)
    assert engine.calls == []


# --- credentials ----------------------------------------------------------------------------


def test_missing_credentials_are_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine, tmp_path: Path
) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "empty")}
    assert f"no credentials for {registry.address}" in refused(project, registry, engine, env)
    assert "set both REGISTRY_USERNAME and REGISTRY_PASSWORD" in refused(
        project, registry, engine, {"REGISTRY_USERNAME": "deploy", **env}
    )


def test_an_existing_docker_login_is_used(
    project: Path, registry: FakeRegistry, engine: FakeEngine, tmp_path: Path
) -> None:
    auth = base64.b64encode(f"deploy:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry.address: {"auth": auth}}}))
    skopeo = FakeSkopeo(registry)
    env = {"DOCKER_CONFIG": str(tmp_path)}
    code, out, err = run(project, registry, engine, env, skopeo=skopeo)
    assert (code, err) == (0, "")
    assert "credentials: existing docker login" in out
    assert not [c for c in engine.docker_calls() if c[0] == "login"]
    # the registry is read with docker's own login, which no code of ours decodes
    for args, _ in skopeo.calls:
        assert args[args.index("--authfile") + 1] == str(tmp_path / "config.json")


@pytest.mark.parametrize(
    "config",
    [
        {"auths": {"r.example": {"auth": "dTpwdw=="}}},
        {"credHelpers": {"r.example": "deathstar-test"}},
    ],
)
def test_docker_s_own_login_is_used_and_never_read(tmp_path: Path, config: object) -> None:
    creds, source = gates.credentials(
        "r.example",
        {"REGISTRY_USERNAME": "u"},
        password="",
        password_stdin=True,
        stdin=io.StringIO("pw\n"),
    )
    assert (creds, source) == (Credentials("u", "pw"), "u (REGISTRY_USERNAME, stdin)")
    env = {"DOCKER_CONFIG": str(tmp_path)}
    with pytest.raises(HarnessError, match=r"no credentials for r.example"):
        gates.credentials("r.example", env, password="", password_stdin=False, stdin=io.StringIO())
    (tmp_path / "config.json").write_text(json.dumps(config))
    found = gates.credentials(
        "r.example", env, password="", password_stdin=False, stdin=io.StringIO()
    )
    assert found == (None, "existing docker login")


def test_the_password_reaches_only_docker_login_and_only_on_stdin(
    project: Path, registry: FakeRegistry, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PoC: REGISTRY_PASSWORD was in the environment of every docker child."""
    monkeypatch.setenv("REGISTRY_USERNAME", "deploy")
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    skopeo = FakeSkopeo(registry)
    code, out, err = run(
        project, registry, engine, os.environ, "--confirm", "--unsigned", skopeo=skopeo
    )
    assert (code, err) == (0, ""), err
    assert skopeo.calls
    for args, env in skopeo.calls:  # skopeo reads with the login docker wrote, nothing else
        assert PASSWORD not in " ".join(args) + "".join(env.values())
        assert not any("PASSWORD" in name or "USERNAME" in name for name in env)
    assert "REGISTRY_PASSWORD" not in os.environ  # read once, then gone
    assert PASSWORD not in out
    for call in engine.calls:
        assert call.env is not None, f"{call.args[:3]} inherits the environment"
        assert "REGISTRY_PASSWORD" not in call.env, call.args[:3]
        assert PASSWORD not in " ".join(call.args)
        assert PASSWORD not in "".join(call.env.values())
    logins = [c for c in engine.calls if c.args[1] == "login"]  # the check's, the push's
    assert [c.stdin for c in engine.calls if PASSWORD in (c.stdin or "")] == [PASSWORD] * 2
    assert [c.stdin for c in logins] == [PASSWORD] * 2
    for login in logins:
        assert not Path((login.env or {})["DOCKER_CONFIG"]).exists()  # the throwaway is gone


def test_a_failed_login_does_not_show_the_password(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    engine.rules = [(["login"], "Error response from daemon: unauthorized", 1)]
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned")
    assert "docker login 127.0.0.1" in err
    assert err.endswith("unauthorized")
    assert pushes(engine) == []


def test_registry_failure_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    registry.canned[f"/v2/{REPOSITORY}/tags/list"] = (500, {}, b"")
    err = refused(project, registry, engine)
    assert f"could not list tags from registry {registry.address}" in err
    assert "500" in err


# --- the push -------------------------------------------------------------------------------


def test_confirmed_push(project: Path, registry: FakeRegistry, engine: FakeEngine) -> None:
    skopeo = FakeSkopeo(registry)
    code, out, err = run(project, registry, engine, ENV, "--confirm", "--unsigned", skopeo=skopeo)
    assert (code, err) == (0, "")
    assert out.endswith(f"pushed 4 tags, all resolve to {PUSHED}, unsigned\n")
    login = [c for c in engine.calls if c.args[1] == "login"][-1]  # the push's own login
    assert login.args[1:] == ["login", registry.address, "--username", "deploy", "--password-stdin"]
    head = git(project, "rev-parse", "HEAD")
    repo = f"{registry.address}/{REPOSITORY}"
    refs = [f"{repo}:0.3.1", f"{repo}:sha-{head[:7]}", f"{repo}:0.3", f"{repo}:latest"]
    assert pushes(engine) == refs
    checked = [
        c[4] for c in engine.docker_calls() if c[:4] == ["image", "inspect", "--format", "{{.Id}}"]
    ]
    assert checked == [IMAGE_ID, *refs]  # each ref checked before its push
    config = (login.env or {}).get("DOCKER_CONFIG")
    pushed = [c for c in engine.calls if c.args[1] == "push"]
    assert {(c.env or {}).get("DOCKER_CONFIG") for c in pushed} == {config}  # the throwaway login
    removed = [c[2] for c in engine.docker_calls() if c[:2] == ["image", "rm"]]
    assert removed == refs
    assert engine.refs == {}
    assert registry.tags(REPOSITORY) == sorted(r.rsplit(":", 1)[1] for r in refs)
    # the read-back asked the registry for every tag's manifest, with the throwaway login
    read = [args for args, _ in skopeo.calls if args[0] == "inspect"]
    assert {args[-1].rsplit(":", 1)[1] for args in read} == {r.rsplit(":", 1)[1] for r in refs}
    assert {args[args.index("--authfile") + 1] for args in read} == {f"{config}/config.json"}


def test_a_ref_retargeted_before_its_push_is_not_pushed(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    """PoC: retarget the tag between the check and the push; it was pushed and reported."""

    def retarget(argv: list[str]) -> None:
        if argv[0] == "tag":
            engine.refs[argv[2]] = EVIL

    engine.after = retarget
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned")
    assert err == (
        f"push refused: {registry.address}/{REPOSITORY}:0.3.1 names {EVIL} now, not the verified "
        f"image {IMAGE_ID}; something retargeted it, so it was not pushed; nothing was pushed"
    )
    assert pushes(engine) == []
    assert registry.tags(REPOSITORY) == []
    assert engine.refs == {}  # our registry tags are removed again


def test_a_ref_retargeted_after_its_check_fails_the_read_back(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    """The race the check cannot close (docker push resolves the ref itself): the registry's
    manifests must name the verified image's config, or the push is not reported as done."""

    def retarget(argv: list[str]) -> None:
        if argv[:2] == ["image", "inspect"] and argv[-1].startswith(registry.address):
            engine.refs[argv[-1]] = EVIL

    engine.after = retarget
    code, out, err = run(project, registry, engine, ENV, "--confirm", "--unsigned")
    assert code == 1
    assert "all resolve to" not in out
    assert err == (
        f"push failed: registry tag 0.3.1 names image config {EVIL}, not the verified image's "
        f"{IMAGE_ID}: the registry holds another image; do not use it\n"
    )


def test_a_manifest_that_is_not_json_fails_the_read_back(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    registry.canned[f"/v2/{REPOSITORY}/manifests/latest"] = (200, {}, b"<html>")
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned", prefix="failed")
    assert err == (
        f"push failed: registry {registry.address}'s manifest latest is not a JSON object; "
        "the push is not confirmed"
    )


def test_a_tag_missing_after_the_push_fails_the_read_back(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    engine.pushed = None  # docker says it pushed; the registry has nothing
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned", prefix="failed")
    assert err.startswith("push failed: the registry has no 0.3.1, sha-")


def test_tags_naming_different_manifests_fail_the_read_back(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    def pushed(ref: str, image: str) -> str:
        tag = ref.rsplit(":", 1)[1]
        body = image_manifest(image)
        return registry.put(REPOSITORY, tag, body + b" " * (tag == "latest"))  # other bytes

    engine.pushed = pushed
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned", prefix="failed")
    assert "push failed: the tags name 2 different manifests: " in err


def index_of(*manifests: tuple[bytes, str]) -> bytes:
    entries = [
        {"digest": sha256(body), "platform": {"os": "linux", "architecture": arch}}
        for body, arch in manifests
    ]
    return json.dumps({"schemaVersion": 2, "manifests": entries}).encode()


def test_a_tag_moved_to_an_index_holding_the_image_is_not_signed(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    """PoC: after the push every tag was moved to an index of the verified amd64 image and an
    arm64 one; the push reported the index's digest as verified and signed it."""
    other = registry.put(REPOSITORY, "other", image_manifest("sha256:" + "99" * 32))
    hostile = index_of((image_manifest(IMAGE_ID), "amd64"), (registry.manifests[
        (REPOSITORY, other)], "arm64"))  # fmt: skip

    def pushed(ref: str, image: str) -> str:
        written = registry.put(REPOSITORY, ref.rsplit(":", 1)[1], image_manifest(image))
        if ref.endswith(":latest"):  # the last push: move every tag
            for tag in registry.tags(REPOSITORY):
                registry.put(REPOSITORY, tag, hostile)
        return written

    engine.pushed = pushed
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned", prefix="failed")
    assert err == moved_after_the_push(sha256(hostile))


def moved_after_the_push(found: str) -> str:
    """The one line of a read-back that finds tag 0.3.1 naming ``found``, not what was pushed."""
    return (
        f"push failed: registry tag 0.3.1 names {found}, not {PUSHED}, which the push wrote: "
        "someone moved the tag after the push; nothing was signed, do not use it"
    )


def test_an_index_the_push_wrote_must_be_the_verified_image_itself(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    """An engine that wraps the verified manifest in an index pushes something integration did
    not verify by that ID; an index whose digest is the image ID is the verified image."""
    wrapped = index_of((image_manifest(IMAGE_ID), "amd64"))

    def pushed(ref: str, image: str) -> str:
        registry.put(REPOSITORY, f"m-{ref.rsplit(':', 1)[1]}", image_manifest(image))
        return registry.put(REPOSITORY, ref.rsplit(":", 1)[1], wrapped)

    engine.pushed = pushed
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned", prefix="failed")
    assert err == (
        f"push failed: the push of 0.3.1 wrote an image index ({sha256(wrapped)}), not the "
        f"verified image {IMAGE_ID}; nothing was signed, do not use it"
    )


def test_a_tag_moved_to_another_manifest_of_the_image_is_refused(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    """The same config in other manifest bytes is still not what the push wrote."""
    moved = image_manifest(IMAGE_ID) + b"\n"

    def move(argv: list[str]) -> None:
        if argv[0] == "push":
            registry.put(REPOSITORY, "0.3.1", moved)

    engine.after = move
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned", prefix="failed")
    assert err == moved_after_the_push(sha256(moved))


def test_a_push_that_reports_no_digest_is_not_confirmed(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    engine.rules = [(["push"], "pushed, somehow", 0)]
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned", prefix="failed")
    assert err.startswith(
        f"push failed: docker push {registry.address}/{REPOSITORY}:0.3.1 reported no manifest "
        "digest for 0.3.1; the registry already holds"
    )


def test_failed_push_removes_local_tags_and_reports(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    engine.rules = [(["push"], "denied: requested access to the resource is denied", 1)]
    err = refused(project, registry, engine, ENV, "--confirm", "--unsigned")
    assert f"docker push {registry.address}/tea-n-tech/deathstar:0.3.1 failed: denied" in err
    tagged = [c[2] for c in engine.docker_calls() if c[0] == "tag"]
    removed = [c[2] for c in engine.docker_calls() if c[:2] == ["image", "rm"]]
    assert tagged == removed
    assert len(tagged) == 4


def test_bad_version_is_one_line() -> None:
    with pytest.raises(HarnessError, match="not a valid version"):
        gates.release_at_head(["v1.0.0"], "not-a-version")


def test_partial_push_says_what_the_registry_holds(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    engine.rules = [
        (["push", f"{registry.address}/{REPOSITORY}:0.3.1"], f"0.3.1: digest: {PUSHED} size: 1", 0),
        (["push"], "connection reset by peer", 1),
        (["image", "rm"], "conflict: unable to remove", 1),  # cleanup trouble stays a warning
    ]
    code, _, err = run(project, registry, engine, ENV, "--confirm", "--unsigned")
    lines = err.splitlines()
    assert code == 1
    assert lines[-1].startswith(
        f"push failed: docker push {registry.address}/tea-n-tech/deathstar:sha-"
    )
    assert "the registry already holds 0.3.1 (immutable tags first)" in lines[-1]
    assert "run the push again: it is idempotent" in lines[-1]
    assert sum(line.startswith("warning: could not remove the local tag") for line in lines) == 4


def test_labels_that_are_not_json_are_no_labels(
    project: Path, registry: FakeRegistry, engine: FakeEngine
) -> None:
    engine.rules = [(["image", "inspect", "--format", "{{json .Config.Labels}}"], "<no value>", 0)]
    assert "image.revision='', not " in refused(project, registry, engine)


# --- a signal during the push -----------------------------------------------------------------

STOPPED_PUSH = """
import base64, io, json, os, signal, sys
from pathlib import Path
from harness.core.docker import Docker
from harness.release.__main__ import main
from tests.fakedocker import FakeEngine, FakeRegistry, FakeSkopeo

project, log, image_id, labels, number, at = sys.argv[1:]
engine = FakeEngine(labels={image_id: json.loads(labels)})

def after(argv):
    call = engine.calls[-1]
    if argv[0] == "login":  # what docker login writes: the password, in the throwaway config
        auth = base64.b64encode(b"deploy:" + call.stdin.encode()).decode()
        config = Path(call.env["DOCKER_CONFIG"], "config.json")
        config.write_text(json.dumps({"auths": {argv[1]: {"auth": auth}}}))
    with open(log, "a") as out:
        out.write(json.dumps({"argv": argv, "config": (call.env or {}).get("DOCKER_CONFIG")}))
        out.write("\\n")
    if argv[0] == at:  # the first login is the checks', before anything is tagged
        os.kill(os.getpid(), int(number))

engine.after = after
registry = FakeRegistry()
argv = ["--project-dir", project, "--registry", registry.address, "--confirm", "--unsigned"]
env = {"REGISTRY_USERNAME": "deploy", "REGISTRY_PASSWORD": "s3cret"}
sys.exit(main(argv, env, io.StringIO(), Docker(engine), FakeSkopeo(registry)))
"""


@pytest.mark.parametrize("at", ["push", "login"])
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_the_push_leaves_no_credential_or_tag_behind(
    project: Path, tmp_path: Path, stop: signal.Signals, at: str
) -> None:
    """PoC: SIGTERM during `docker push` left user:password in the throwaway docker config
    under /tmp, and the registry-qualified tags in the engine; so did a SIGTERM during the
    checks' login, before the push began."""
    log, scratch = tmp_path / "calls.jsonl", tmp_path / "tmp"
    scratch.mkdir()
    labels = json.dumps({
        "org.opencontainers.image.revision": git(project, "rev-parse", "HEAD"),
        "org.opencontainers.image.version": "0.3.1",
    })  # fmt: skip
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            STOPPED_PUSH,
            str(project),
            str(log),
            IMAGE_ID,
            labels,
            str(stop),
            at,
        ],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 128 + stop, result.stderr
    assert result.stderr == (
        f"push stopped by {stop.name}: the throwaway login and the local registry tags are "
        "removed; the registry may hold some tags, unsigned: run the push again\n"
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    config = next(c["config"] for c in calls if c["argv"][0] == "login")
    assert config.startswith(str(scratch))
    assert not Path(config).exists()
    assert list(scratch.iterdir()) == []  # nothing of the push is left on disk
    tagged = [c["argv"][2] for c in calls if c["argv"][0] == "tag"]
    removed = [c["argv"][2] for c in calls if c["argv"][:2] == ["image", "rm"]]
    assert len(tagged) == (4 if at == "push" else 0)
    assert removed == tagged


def test_a_signal_is_an_exception_only_while_the_push_runs() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(registry_module.Stopped) as stopped, registry_module.stopped_by_signals():
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs as os.kill returns
    assert stopped.value.number == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handlers are back
