"""harness.registry: skopeo under docker's login, and the checks on what it returns."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Unpack

import pytest

from harness import HarnessError
from harness import registry as reg
from harness.core import process
from harness.core.docker import Docker
from tests.fakedocker import FakeRegistry, FakeSkopeo, image_manifest, sha256

REPO = "team/app"


@pytest.fixture
def store() -> FakeRegistry:
    registry = FakeRegistry()
    config = registry.put_blob(REPO, b'{"config": {"Labels": {"a": "b"}}}')
    registry.put(REPO, "1.0", image_manifest(config))
    return registry


def reader(store: FakeRegistry, host: str = "127.0.0.1:5000", **kwargs: object) -> reg.Registry:
    return reg.Registry(host, skopeo=FakeSkopeo(store), **kwargs)  # type: ignore[arg-type]


def test_a_manifest_is_the_sha256_of_the_bytes_served(store: FakeRegistry) -> None:
    manifest = reader(store).manifest(REPO, "1.0")
    assert manifest is not None
    assert manifest.digest == sha256(store.manifests[(REPO, "1.0")])
    assert not manifest.is_index
    digest, config = reader(store).config(REPO, manifest)
    assert digest == manifest.config_digest
    assert config == {"config": {"Labels": {"a": "b"}}}
    assert reader(store).manifest(REPO, "2.0") is None  # manifest unknown: none, not an error


def test_bytes_that_are_not_what_a_digest_names_are_refused(store: FakeRegistry) -> None:
    body = store.manifests[(REPO, "1.0")]
    wrong = "sha256:" + "0" * 64
    store.manifests[(REPO, wrong)] = body  # a registry answering a digest with other bytes
    with pytest.raises(HarnessError, match=r"with bytes whose sha256 is"):
        reader(store).manifest(REPO, wrong)
    manifest = reader(store).manifest(REPO, "1.0")
    assert manifest is not None
    store.blobs[(REPO, manifest.config_digest)] = b'{"config": {"Labels": {"evil": "x"}}}'
    with pytest.raises(HarnessError, match=r"answered config sha256:\w+ with bytes whose"):
        reader(store).config(REPO, manifest)


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b"not json", b'{"a": 1' + b"0" * 5000 + b"}", b"\xff\xfe"],
    ids=["list", "garbage", "huge-int", "not-utf8"],
)
def test_a_manifest_that_is_not_a_json_object_is_one_line(store: FakeRegistry, body: bytes) -> None:
    store.manifests[(REPO, "odd")] = body
    with pytest.raises(HarnessError, match=r"manifest odd is not a JSON object"):
        reader(store).manifest(REPO, "odd")


def test_an_index_is_known_as_one(store: FakeRegistry) -> None:
    entries = [{"digest": sha256(store.manifests[(REPO, "1.0")]), "platform": {"os": "linux",
               "architecture": "amd64"}}]  # fmt: skip
    store.put(REPO, "multi", json.dumps({"schemaVersion": 2, "manifests": entries}).encode())
    index = reader(store).manifest(REPO, "multi")
    assert index is not None
    assert index.is_index
    assert index.config_digest == ""


def test_tags_of_a_repository_that_does_not_exist_are_none(store: FakeRegistry) -> None:
    assert reader(store).tags(REPO) == ["1.0"]
    assert reader(store).tags("team/none") == []
    store.canned[f"/v2/{REPO}/tags/list"] = (500, {}, b"")
    with pytest.raises(HarnessError, match=r"could not list tags from registry 127.0.0.1:5000"):
        reader(store).tags(REPO)


@pytest.mark.parametrize("ref", ["--format=x", "a b", "Team/App", "x" * 300])
def test_a_name_that_is_no_docker_name_never_reaches_skopeo(store: FakeRegistry, ref: str) -> None:
    skopeo = FakeSkopeo(store)
    with pytest.raises(HarnessError, match=r"not a docker repository name"):
        reg.Registry("127.0.0.1:5000", skopeo=skopeo).manifest(ref, "1.0")
    with pytest.raises(HarnessError, match=r"neither a tag nor a sha256 digest"):
        reg.Registry("127.0.0.1:5000", skopeo=skopeo).manifest(REPO, "-" + ref)
    assert skopeo.calls == []


def test_plain_http_only_on_loopback_and_only_dockers_login(
    store: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_PASSWORD", "s3cret")
    auth = tmp_path / "config.json"
    auth.write_text("{}")
    for host, plain in [("127.0.0.1:5000", True), ("localhost:5000", True), ("ghcr.io", False)]:
        skopeo = FakeSkopeo(store)
        reg.Registry(host, auth, skopeo).tags(REPO)
        ((args, env),) = skopeo.calls
        assert ("--tls-verify=false" in args) is plain
        assert args[args.index("--authfile") + 1] == str(auth)
        assert "REGISTRY_PASSWORD" not in env
        assert set(env) <= {
            "PATH",
            "HOME",
            "TMPDIR",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "DOCKER_CONFIG",
        }
    skopeo = FakeSkopeo(store)
    reg.Registry("ghcr.io", tmp_path / "absent.json", skopeo).tags(REPO)
    assert "--authfile" not in skopeo.calls[0][0]


def test_whether_docker_holds_a_login_skopeo_can_use(tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert not reg.logged_in("r.example", env)
    for config in (
        "[]",
        '{"auths": {"other.example": {"auth": "x"}}}',
        '{"auths": {"r.example": {}}, "credsStore": "desktop"}',  # skopeo reads no credsStore
        "\xff",
    ):
        (tmp_path / "config.json").write_text(config, errors="surrogateescape")
        assert not reg.logged_in("r.example", env)
    (tmp_path / "config.json").write_text('{"auths": {"r.example": {"auth": "x"}}}')
    assert reg.logged_in("r.example", env)
    assert reg.docker_auth_file({"HOME": "/h"}) == Path("/h/.docker/config.json")
    assert reg.docker_auth_file({}) is None


def fake_skopeo(tmp_path: Path, script: str) -> dict[str, str]:
    tool = tmp_path / "bin" / "skopeo"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)
    return {"PATH": f"{tool.parent}{os.pathsep}{os.environ['PATH']}"}


def test_skopeo_s_output_is_bytes_and_its_failure_one_line(tmp_path: Path) -> None:
    env = fake_skopeo(
        tmp_path, 'printf "{\\r\\n}"; [ "$1" = inspect ] || { echo "fatal: $1" >&2; exit 1; }'
    )
    assert reg.run_skopeo(["inspect", "x"], env) == b"{\r\n}"  # not newline-translated
    with pytest.raises(HarnessError, match=r"skopeo list-tags failed") as failed:
        reg.run_skopeo(["list-tags", "x"], env)
    assert "fatal: list-tags" in failed.value.output  # type: ignore[attr-defined]


def test_skopeo_that_runs_too_long_or_says_too_much_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = tmp_path / "finished"
    script = (
        f'[ "$1" = big ] && {{ head -c 2000 /dev/zero; sleep 5; touch {done}; }}; '
        '[ "$1" = slow ] && sleep 5; true'
    )
    env = fake_skopeo(tmp_path, script)
    monkeypatch.setattr(reg, "OUTPUT_LIMIT", 1000)
    with pytest.raises(HarnessError, match=r"returned more than 1000 bytes"):
        reg.run_skopeo(["big"], env)
    assert not done.exists(), "skopeo went on after the limit (a paginated tag list has none)"
    monkeypatch.setattr(reg, "SKOPEO_TIMEOUT", 0.2)
    with pytest.raises(HarnessError, match=r"did not finish within 0.2 s"):
        reg.run_skopeo(["slow"], env)
    with pytest.raises(HarnessError, match=r"skopeo is not installed"):
        reg.run_skopeo(["x"], {"PATH": str(tmp_path / "nowhere")})


def test_the_throwaway_login_keeps_the_password_out_of_a_credential_store(tmp_path: Path) -> None:
    """PoC: in an empty DOCKER_CONFIG docker hands the password to a default credential store
    (a keyring that outlives the directory), where skopeo cannot read it."""
    seen: list[object] = []

    def docker_login(args: Sequence[str], **options: Unpack[process.RunOptions]) -> str:
        env = options.get("env") or {}
        seen.append(json.loads(Path(env["DOCKER_CONFIG"], "config.json").read_text()))
        assert options.get("stdin") == "s3cret"
        assert "s3cret" not in " ".join(args)
        return "Login Succeeded"

    docker = Docker(docker_login)
    with reg.login("r.example", reg.Credentials("u", "s3cret"), docker, {}) as env:
        config_dir = Path(env["DOCKER_CONFIG"])
    assert seen == [{"auths": {"r.example": {}}}]  # docker keeps the login in this file
    assert not config_dir.exists()
