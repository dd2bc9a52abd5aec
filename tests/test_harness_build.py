"""Image build plans, records, the engine check and the testcontainers settings."""

from __future__ import annotations

import csv
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import HarnessError
from harness.core import process, provision
from harness.core.docker import Docker
from harness.image import archive, build, imaging, records
from tests.archives import layer_tar, save_archive
from tests.fakedocker import Answer, FakeDocker
from tests.gitrepo import EPOCH, git

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def plan(**overrides: object) -> build.BuildPlan:
    fields: dict[str, object] = {
        "version": "1.2.3",
        "commit": COMMIT,
        "dirty": False,
        "epoch": 1767323045,
        "base_image": "python:3.11-slim-bookworm",
    }
    fields.update(overrides)
    return build.BuildPlan(**fields)  # type: ignore[arg-type]


def test_plan_tags_revision_and_created() -> None:
    clean = plan()
    assert clean.tags == ["deathstar:1.2.3", "deathstar:sha-0123456"]
    assert clean.revision == COMMIT
    assert clean.created == "2026-01-02T03:04:05Z"
    assert plan(dirty=True).revision == f"{COMMIT}-dirty"


def test_build_command_is_offline_and_passes_metadata(tmp_path: Path) -> None:
    base = plan(base_image="example/base:1", base_digest="sha256:" + "b" * 64)
    command = base.build_command(tmp_path, ["x:1", "x:2"])
    assert command[:4] == ["docker", "build", "--network", "none"]
    assert command[-1] == str(tmp_path)
    assert option_values(command, "--build-arg") == [
        f"BASE_IMAGE=example/base:1@sha256:{'b' * 64}",  # pinned: what the tag names later
        f"BASE_NAME=example/base:1@sha256:{'b' * 64}",
        f"BASE_DIGEST=sha256:{'b' * 64}",
        "VERSION=1.2.3",
        f"REVISION={COMMIT}",
        f"SOURCE={build.SOURCE_URL}",
        "CREATED=2026-01-02T03:04:05Z",  # the commit's time, as a label
        "SOURCE_DATE_EPOCH=1",  # the files' time: a constant, so layers depend on content
    ]
    assert option_values(command, "--tag") == ["x:1", "x:2"]


def option_values(command: list[str], option: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == option]


def test_reproducible_build_command_exports_an_archive(tmp_path: Path) -> None:
    command = plan().build_command(tmp_path, ["x:1", "x:2"], archive=tmp_path / "i.tar")
    assert command[:4] == ["docker", "buildx", "build", "--network"]
    assert "--no-cache" not in command
    assert "--no-cache" in plan().build_command(tmp_path, ["x:1"], no_cache=True)
    assert "BASE_IMAGE=python:3.11-slim-bookworm" in option_values(command, "--build-arg")
    assert {"--provenance=false", "--sbom=false", "--pull=false"} <= set(command)
    assert option_values(command, "--output") == [
        f"type=docker,name=x:1,dest={tmp_path / 'i.tar'},rewrite-timestamp=true,"
        "compression=gzip,compression-level=9"
    ]
    assert option_values(command, "--tag") == []
    assert "SOURCE_DATE_EPOCH=1" in option_values(command, "--build-arg")


@pytest.mark.parametrize(
    ("engine", "buildx", "store", "why"),
    [
        ("26.1.5+dfsg1", "v0.13.1", True, ""),
        ("28.2.2", "v0.24.0", True, ""),
        ("20.10.24+dfsg1", "", False, "older than 25"),
        ("26.1.5", "", True, "buildx is not installed"),
        ("26.1.5", "v0.12.0", True, "older than 0.13"),
        ("26.1.5", "v0.13.1", False, "classic image store"),
    ],
)
def test_builder_says_whether_builds_are_reproducible(
    engine: str, buildx: str, store: bool, why: str
) -> None:
    status = '[["driver-type","io.containerd.snapshotter.v1"]]' if store else '[["Backing","x"]]'
    rules: list[tuple[list[str], Answer, int]] = [
        (["version", "--format", "{{.Server.Version}}"], engine, 0),
        (["info", "--format", build.INFO_FORMAT], f"linux/x86_64 {status}", 0),
    ]
    if buildx:
        rules.append((["buildx", "version"], f"github.com/docker/buildx {buildx} abc", 0))
    builder = build.Builder.detect(Docker(FakeDocker(rules=rules)))
    assert builder.reproducible is (why == "")
    assert why in builder.why_not_reproducible
    assert builder.description.startswith(f"docker {engine}, buildx {buildx or 'none'}")


def test_wheelhouse_command_is_hash_checked_binary_only(tmp_path: Path) -> None:
    command = build.wheelhouse_command(tmp_path / "runtime.txt", tmp_path / "wh")
    assert {"--require-hashes", "--no-deps", ":all:", "manylinux_2_17_x86_64"} <= set(command)
    assert command[command.index("--requirement") + 1] == str(tmp_path / "runtime.txt")


def test_require_engine_reports_version() -> None:
    fake = FakeDocker(rules=[(["version", "--format", "{{.Server.Version}}"], "28.2.2", 0)])
    assert Docker(fake).require_engine() == "28.2.2"


def test_require_engine_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere.sock")
    with pytest.raises(HarnessError) as caught:
        Docker(FakeDocker()).require_engine()
    message = str(caught.value)
    assert "no Docker engine answers at unix:///nowhere.sock" in message
    assert ".ci/provision" in message
    assert "\n" not in message


def test_missing_docker_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError, match="docker client is not installed"):
        Docker()("version")


def test_docker_error_is_its_last_output_line(tmp_path: Path) -> None:
    stand_in = tmp_path / "docker"
    stand_in.write_text(
        f"#!{sys.executable}\nimport sys\nprint('pulling', file=sys.stderr)\n"
        "print('Error: no such image', file=sys.stderr)\nsys.exit(1)\n"
    )
    stand_in.chmod(0o755)

    def runner(args: Sequence[str], **options: Any) -> str:
        return process.run([str(stand_in), *args[1:]], **options)

    docker = Docker(runner)
    with pytest.raises(HarnessError, match=r"^docker image inspect failed: Error: no such image$"):
        docker("image", "inspect", "nothing")
    assert docker.image_id("nothing") is None


INSPECT = ["image", "inspect", "--format"]


BASE = "python:3.11-slim-bookworm"
# The base's layers, labels and size, in the one inspect that reads them (imaging.BaseFacts).
FACTS = "{{json .RootFS.Layers}}\t{{json .Config.Labels}}\t{{.Size}}"


def engine_with_images(**extra: str) -> FakeDocker:
    return FakeDocker(
        rules=[
            ([*INSPECT, "{{.Id}}", "deathstar:1.2.3"], "sha256:abc", 0),
            ([*INSPECT, "{{.Size}}", "sha256:abc"], "186000000", 0),
            ([*INSPECT, "{{json .RootFS.Layers}}", "deathstar:1.2.3"], '["sha256:l1"]', 0),
            ([*INSPECT, "{{json .RepoDigests}}"], extra.get("repo_digests", "[]"), 0),
            ([*INSPECT, "{{.Id}}", "python:3.11-slim-bookworm"], "sha256:base", 0),
            (["load"], "Loaded image: deathstar:1.2.3", 0),
            (["tag"], "", 0),
            ([*INSPECT, "{{.Id}}", "deathstar-pinned-base:base"], "sha256:base", 0),
            ([*INSPECT, FACTS], f"[]\t{extra.get('base_labels', 'null')}\t169000000", 0),
        ]
    )


CLASSIC = build.Builder("20.10.24", "", containerd_store=False)
CURRENT = build.Builder("26.1.5", "v0.13.1", containerd_store=True)


def test_a_classic_build_is_recorded_from_the_engine(tmp_path: Path) -> None:
    fake = engine_with_images()
    ran: list[Sequence[str]] = []
    record = imaging.build_image(
        plan(dirty=True), CLASSIC, Docker(fake), ran.append, context=tmp_path,
        archive_path=tmp_path / "image.tar",
    )  # fmt: skip
    assert ran[0][:2] == ["docker", "build"]
    assert record.image_id == record.config_digest == "sha256:abc"
    assert record.diff_ids == ["sha256:l1"]
    assert record.revision.endswith("-dirty")
    assert not record.reproducible
    assert record.builder == "docker 20.10.24, buildx none, classic image store"
    assert record.summary() == (
        "sha256:abc deathstar:1.2.3 deathstar:sha-0123456: 186.0 MB, "
        "17.0 MB over python:3.11-slim-bookworm"
    )
    path = tmp_path / "dist" / "image.json"
    records.save_image_record(record, path)
    assert records.load_image_record(path) == record


def test_a_reproducible_build_is_recorded_from_its_archive(tmp_path: Path) -> None:
    fake = engine_with_images()
    layer = layer_tar({"app.py": b"print(1)"})
    diff_id = f"sha256:{hashlib.sha256(layer).hexdigest()}"
    archive_path = tmp_path / "image.tar"
    archive_path.write_text("stale")

    built: list[Sequence[str]] = []

    def build_it(command: Sequence[str]) -> None:
        assert not archive_path.exists()  # never a stale archive taken for this build's
        built.append(command)
        fields = command[list(command).index("--output") + 1].split(",")
        dest = Path(next(f for f in fields if f.startswith("dest="))[5:])
        save_archive(dest, {diff_id: layer}, config={"config": {"Labels": {"a": "b"}}})

    record = imaging.build_image(
        plan(base_digest="sha256:base"), CURRENT, Docker(fake), build_it, context=tmp_path,
        archive_path=archive_path,
    )  # fmt: skip
    # First the runtime base (the engine has none), then the image FROM it.
    assert built[0][-3:-1] == ["--target", "runtime-base"]
    assert record.runtime_base.startswith("deathstar-runtime-base:")
    assert f"RUNTIME_BASE={record.runtime_base}" in built[1]
    assert not list(tmp_path.glob("runtime-base-*")), "the runtime base's archive was left"
    saved = archive.read_archive(archive_path)
    assert record.config_digest == saved.config_digest != record.image_id
    assert record.diff_ids == [diff_id]
    assert record.reproducible
    assert record.base_digest == "sha256:base"
    calls = fake.docker_calls()
    assert ["load", "--input", str(archive_path)] in calls
    assert ["tag", "deathstar:1.2.3", "deathstar:sha-0123456"] in calls


def test_the_base_digest_is_the_registry_digest_when_there_is_one() -> None:
    local = Docker(engine_with_images())
    assert imaging.resolve_base(local, "python:3.11-slim-bookworm") == "sha256:base"
    pulled = Docker(engine_with_images(repo_digests=f'["python@sha256:{"d" * 64}"]'))
    assert imaging.resolve_base(pulled, "python:3.11-slim-bookworm") == f"sha256:{'d' * 64}"
    with pytest.raises(HarnessError, match=r"the base image nope:1 is not in the local engine"):
        imaging.resolve_base(Docker(FakeDocker()), "nope:1")


def test_missing_corrupt_or_foreign_record(tmp_path: Path) -> None:
    path = tmp_path / "image.json"
    with pytest.raises(HarnessError, match=r"no image recorded .*run `nox -s image` first"):
        records.load_image_record(path)
    path.write_text("{not json")
    with pytest.raises(HarnessError, match=r"is corrupt; run `nox -s image` first"):
        records.load_image_record(path)
    path.write_text('{"something": "else"}')
    with pytest.raises(HarnessError, match="is not an image record"):
        records.load_image_record(path)


def make_record(commit: str = COMMIT) -> records.ImageRecord:
    return records.ImageRecord(
        image_id="sha256:abc",
        tags=["deathstar:1.2.3"],
        version="1.2.3",
        commit=commit,
        revision=commit,
        base_image="python:3.11-slim-bookworm",
        size=2,
        base_size=1,
        config_digest="sha256:abc",
        diff_ids=["sha256:l1"],
        base_digest="sha256:base",
        builder="docker 26.1.5, buildx v0.13.1, containerd image store",
        reproducible=True,
    )


def test_verification_is_recorded_for_the_image_at_head(tmp_path: Path) -> None:
    path = tmp_path / "verified.json"
    records.record_verification(make_record(), COMMIT, path, "t" * 40)
    verified = records.load_verification(path)
    assert verified["image_id"] == "sha256:abc"
    assert verified["commit"] == COMMIT
    assert verified["integration_tree"] == "t" * 40


def test_verification_refused_when_head_moved(tmp_path: Path) -> None:
    path = tmp_path / "verified.json"
    with pytest.raises(HarnessError, match=r"built at 0123456 but HEAD is fedcba9"):
        records.record_verification(make_record(), "fedcba9876", path, "t" * 40)
    assert not path.exists()
    with pytest.raises(HarnessError, match="run `nox -s integration` first"):
        records.load_verification(path)


def test_testcontainers_env_defaults_to_loopback(tmp_path: Path) -> None:
    env = provision.testcontainers_env({}, tmp_path / "absent.env")
    assert env == {
        "TC_HOST": "127.0.0.1",
        "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def test_testcontainers_env_reads_provision_file_and_caller_wins(tmp_path: Path) -> None:
    settings = tmp_path / "provision.env"
    settings.write_text(
        "# written by .ci/provision\nTESTCONTAINERS_RYUK_DISABLED=true\n\nnot a setting\n"
    )
    env = provision.testcontainers_env(
        {"TC_HOST": "localhost", "TESTCONTAINERS_RYUK_DISABLED": "false", "HOME": "/root"},
        settings,
    )
    assert env == {
        "TC_HOST": "localhost",
        "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
        "TESTCONTAINERS_RYUK_DISABLED": "false",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        ("", "127.0.0.1,localhost"),
        ("example.com, .corp", "example.com,.corp,127.0.0.1,localhost"),
        ("localhost,127.0.0.1", "localhost,127.0.0.1"),
    ],
)
def test_testcontainers_env_keeps_the_callers_no_proxy_and_adds_loopback(
    tmp_path: Path, theirs: str, ours: str
) -> None:
    env = provision.testcontainers_env(
        {"NO_PROXY": theirs, "no_proxy": theirs, "HTTP_PROXY": "http://proxy:3128"},
        tmp_path / "absent.env",
    )
    assert env["NO_PROXY"] == env["no_proxy"] == ours
    assert "HTTP_PROXY" not in env  # the caller's proxy stays as it is, for everything else


def test_provision_env_path() -> None:
    assert provision.provision_env_path({"DEATHSTAR_PROVISION_ENV": "/x/p.env"}) == Path("/x/p.env")
    assert provision.provision_env_path({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path(
        "/s/deathstar/provision.env"
    )
    assert provision.provision_env_path({"HOME": "/h"}) == Path(
        "/h/.local/state/deathstar/provision.env"
    )


def test_plan_for_checkout_reads_git_and_base_override(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "x")
    head = git(tmp_path, "rev-parse", "HEAD")
    built = build.BuildPlan.for_checkout(tmp_path, "1.0.0", {"DEATHSTAR_BASE_IMAGE": "b:1"})
    assert built == build.BuildPlan("1.0.0", head, False, EPOCH, "b:1")
    (tmp_path / "new.txt").write_text("x")
    dirty = build.BuildPlan.for_checkout(tmp_path, "1.0.0", {})
    assert dirty.dirty
    assert dirty.base_image == build.DEFAULT_BASE_IMAGE


def test_the_archive_output_is_one_csv_value_whatever_the_path(tmp_path: Path) -> None:
    # buildx reads --output as CSV: a comma or quote in the path must not add or break fields.
    odd = tmp_path / 'my,project "x"' / "image.tar"
    command = plan().build_command(tmp_path, ["x:1"], archive=odd)
    (output,) = option_values(command, "--output")
    fields = next(csv.reader([output]))
    assert fields == [
        "type=docker", "name=x:1", f"dest={odd}", "rewrite-timestamp=true",
        "compression=gzip", "compression-level=9",
    ]  # fmt: skip
    plain = plan().build_command(tmp_path, ["x:1"], archive=tmp_path / "i.tar")
    assert option_values(plain, "--output") == [
        f"type=docker,name=x:1,dest={tmp_path / 'i.tar'},rewrite-timestamp=true,"
        "compression=gzip,compression-level=9"
    ]


@pytest.mark.parametrize(
    "name", ["--format={{.Id}}", "py thon:1", "x:1,push=true", "a\nb", "x@sha256:" + "b" * 64]
)
def test_a_base_image_or_tag_that_is_not_an_image_name_is_refused(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(HarnessError, match="not an image name"):
        build.base_image({build.BASE_IMAGE_VARIABLE: name})
    with pytest.raises(HarnessError, match="not an image name"):
        plan(base_image=name).build_command(tmp_path, ["x:1"])
    with pytest.raises(HarnessError, match="not an image name"):
        plan().build_command(tmp_path, [name], archive=tmp_path / "i.tar")
    assert build.base_image({build.BASE_IMAGE_VARIABLE: "127.0.0.1:5000/py/base:3.11"})
