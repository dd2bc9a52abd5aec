"""Image build plans, records and the engine check; a stand-in `docker` on PATH plays the engine."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from harness import HarnessError, images
from tests.gitrepo import EPOCH, git

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def plan(**overrides: object) -> images.BuildPlan:
    fields: dict[str, object] = {
        "version": "1.2.3",
        "commit": COMMIT,
        "dirty": False,
        "epoch": 1767323045,
        "base_image": "python:3.11-slim-bookworm",
    }
    fields.update(overrides)
    return images.BuildPlan(**fields)  # type: ignore[arg-type]


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `docker` that prints canned answers from answers.json, keyed by its arguments."""
    answers = tmp_path / "answers.json"
    answers.write_text("{}")
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"answers = json.load(open({str(answers)!r}))\n"
        "key = ' '.join(sys.argv[1:])\n"
        "if key not in answers:\n"
        "    print('Error: Cannot connect to the Docker daemon', file=sys.stderr)\n"
        "    sys.exit(1)\n"
        "print(answers[key])\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return answers


def test_plan_tags_revision_and_created() -> None:
    clean = plan()
    assert clean.tags == ["deathstar:1.2.3", "deathstar:sha-0123456"]
    assert clean.revision == COMMIT
    assert clean.created == "2026-01-02T03:04:05Z"
    assert plan(dirty=True).revision == f"{COMMIT}-dirty"


def test_build_command_is_offline_and_passes_metadata(tmp_path: Path) -> None:
    command = plan(base_image="example/base:1").build_command(tmp_path)
    assert command[:4] == ["docker", "build", "--network", "none"]
    assert command[-1] == str(tmp_path)
    build_args = dict(
        command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "--build-arg"
    )
    assert build_args == {
        "BASE_IMAGE": "example/base:1",
        "VERSION": "1.2.3",
        "REVISION": COMMIT,
        "CREATED": "2026-01-02T03:04:05Z",
        "SOURCE_DATE_EPOCH": "1767323045",
        "SOURCE": images.SOURCE_URL,
    }
    tags = [command[i + 1] for i, arg in enumerate(command) if arg == "--tag"]
    assert tags == ["deathstar:1.2.3", "deathstar:sha-0123456"]


def test_wheelhouse_command_is_hash_checked_binary_only(tmp_path: Path) -> None:
    command = images.wheelhouse_command(tmp_path / "runtime.txt", tmp_path / "wh")
    assert {"--require-hashes", "--no-deps", ":all:", "manylinux_2_17_x86_64"} <= set(command)
    assert command[command.index("--requirement") + 1] == str(tmp_path / "runtime.txt")


def test_require_engine_reports_version(fake_docker: Path) -> None:
    fake_docker.write_text(json.dumps({"version --format {{.Server.Version}}": "28.2.2"}))
    assert images.require_engine() == "28.2.2"


def test_require_engine_says_how_to_get_one(
    fake_docker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere.sock")
    with pytest.raises(HarnessError) as caught:
        images.require_engine()
    message = str(caught.value)
    assert "no Docker engine answers at unix:///nowhere.sock" in message
    assert ".ci/provision" in message
    assert "\n" not in message


def test_missing_docker_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError, match="docker client is not installed"):
        images.docker("version")


def test_docker_error_is_its_last_stderr_line(fake_docker: Path) -> None:
    with pytest.raises(HarnessError, match="docker image inspect failed: Error: Cannot connect"):
        images.docker("image", "inspect", "nothing")


def test_image_record_round_trip(fake_docker: Path, tmp_path: Path) -> None:
    fake_docker.write_text(
        json.dumps(
            {
                "image inspect --format {{.Id}} deathstar:1.2.3": "sha256:abc",
                "image inspect --format {{.Size}} sha256:abc": "186000000",
                "image inspect --format {{.Size}} python:3.11-slim-bookworm": "169000000",
            }
        )
    )
    record = images.ImageRecord.from_plan(plan(dirty=True))
    assert record.image_id == "sha256:abc"
    assert record.revision.endswith("-dirty")
    assert record.summary() == (
        "sha256:abc deathstar:1.2.3 deathstar:sha-0123456: 186.0 MB, "
        "17.0 MB over python:3.11-slim-bookworm"
    )
    path = tmp_path / "dist" / "image.json"
    images.save_image_record(record, path)
    assert images.load_image_record(path) == record


def test_missing_corrupt_or_foreign_record(tmp_path: Path) -> None:
    path = tmp_path / "image.json"
    with pytest.raises(HarnessError, match=r"no image recorded .*run `nox -s image` first"):
        images.load_image_record(path)
    path.write_text("{not json")
    with pytest.raises(HarnessError, match=r"is corrupt; run `nox -s image` first"):
        images.load_image_record(path)
    path.write_text('{"something": "else"}')
    with pytest.raises(HarnessError, match="is not an image record"):
        images.load_image_record(path)


def make_record(commit: str = COMMIT) -> images.ImageRecord:
    return images.ImageRecord(
        image_id="sha256:abc",
        tags=["deathstar:1.2.3"],
        version="1.2.3",
        commit=commit,
        revision=commit,
        base_image="python:3.11-slim-bookworm",
        size=2,
        base_size=1,
    )


def test_verification_is_recorded_for_the_image_at_head(tmp_path: Path) -> None:
    path = tmp_path / "verified.json"
    images.record_verification(make_record(), COMMIT, path)
    verified = images.load_verification(path)
    assert verified["image_id"] == "sha256:abc"
    assert verified["commit"] == COMMIT


def test_verification_refused_when_head_moved(tmp_path: Path) -> None:
    path = tmp_path / "verified.json"
    with pytest.raises(HarnessError, match=r"built at 0123456 but HEAD is fedcba9"):
        images.record_verification(make_record(), "fedcba9876", path)
    assert not path.exists()
    with pytest.raises(HarnessError, match="run `nox -s integration` first"):
        images.load_verification(path)


def test_testcontainers_env_defaults_to_loopback(tmp_path: Path) -> None:
    env = images.testcontainers_env({}, tmp_path / "absent.env")
    assert env == {"TC_HOST": "127.0.0.1", "TESTCONTAINERS_CONNECTION_MODE": "docker_host"}


def test_testcontainers_env_reads_provision_file_and_caller_wins(tmp_path: Path) -> None:
    provision = tmp_path / "provision.env"
    provision.write_text(
        "# written by .ci/provision\nTESTCONTAINERS_RYUK_DISABLED=true\n\nnot a setting\n"
    )
    env = images.testcontainers_env(
        {"TC_HOST": "localhost", "TESTCONTAINERS_RYUK_DISABLED": "false", "HOME": "/root"},
        provision,
    )
    assert env == {
        "TC_HOST": "localhost",
        "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
        "TESTCONTAINERS_RYUK_DISABLED": "false",
    }


def test_provision_env_path() -> None:
    assert images.provision_env_path({"DEATHSTAR_PROVISION_ENV": "/x/p.env"}) == Path("/x/p.env")
    assert images.provision_env_path({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path(
        "/s/deathstar/provision.env"
    )
    assert images.provision_env_path({"HOME": "/h"}) == Path(
        "/h/.local/state/deathstar/provision.env"
    )


def test_plan_for_checkout_reads_git_and_base_override(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "x")
    head = git(tmp_path, "rev-parse", "HEAD")
    built = images.BuildPlan.for_checkout(tmp_path, "1.0.0", {"DEATHSTAR_BASE_IMAGE": "b:1"})
    assert built == images.BuildPlan("1.0.0", head, False, EPOCH, "b:1")
    (tmp_path / "new.txt").write_text("x")
    dirty = images.BuildPlan.for_checkout(tmp_path, "1.0.0", {})
    assert dirty.dirty
    assert dirty.base_image == images.DEFAULT_BASE_IMAGE
