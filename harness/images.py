"""Building the image and the records that tie it to a commit.

``dist/image.json`` says which image ``nox -s image`` built from which commit;
``dist/verified.json`` says that ``nox -s integration`` passed against that image ID. The push
session trusts nothing else. Standard library only: the noxfile imports this module.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import HarnessError, gitinfo

IMAGE_NAME = "deathstar"
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
# The image's platform: CPython 3.11 on glibc x86_64 (bookworm has glibc 2.36).
WHEEL_PLATFORM = (
    *("--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64"),
    *("--implementation", "cp", "--python-version", "3.11"),
)
SOURCE_URL = "https://github.com/tea-n-tech/deathstar"
DOCKER_TIMEOUT = 30


def docker(
    *args: str, timeout: float = DOCKER_TIMEOUT, env: Mapping[str, str] | None = None
) -> str:
    return docker_with_input(None, *args, timeout=timeout, env=env)


def docker_with_input(
    stdin: str | None,
    *args: str,
    timeout: float = DOCKER_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run the docker client; secrets go through ``stdin``, never through ``args``."""
    try:
        result = subprocess.run(
            ["docker", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=None if env is None else dict(env),
        )
    except FileNotFoundError:
        raise HarnessError("the docker client is not installed; install Docker") from None
    except subprocess.TimeoutExpired:
        raise HarnessError(f"docker {args[0]} did not answer within {timeout:g} s") from None
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise HarnessError(f"docker {' '.join(args[:2])} failed: {lines[-1] if lines else '?'}")
    return result.stdout.strip()


def require_engine() -> str:
    """The engine's version, or one line on how to get an engine."""
    try:
        return docker("version", "--format", "{{.Server.Version}}", timeout=10)
    except HarnessError:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise HarnessError(
            f"no Docker engine answers at {where}: start Docker "
            "(on a machine without one, `bash .ci/provision` installs and starts it)"
        ) from None


def wheel_build_command(outdir: Path) -> list[str]:
    """sdist and wheel as the build session makes them.

    --no-isolation: the backend comes from the dev lock (the same poetry-core on every rebuild,
    and no build env to create); the caller sets SOURCE_DATE_EPOCH.
    """
    return ["python", "-m", "build", "--no-isolation", "--outdir", str(outdir)]


def wheelhouse_command(lock: Path, dest: Path) -> list[str]:
    """pip download of the locked runtime wheels, hash-checked, for the image's platform."""
    return [
        "python", "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps",
        "--only-binary", ":all:", *WHEEL_PLATFORM, "--requirement", str(lock),
        "--dest", str(dest),
    ]  # fmt: skip


@dataclass(frozen=True)
class BuildPlan:
    version: str
    commit: str
    dirty: bool
    epoch: int
    base_image: str

    @classmethod
    def for_checkout(cls, root: Path, version: str, environ: Mapping[str, str]) -> BuildPlan:
        """The plan for HEAD of ``root``; DEATHSTAR_BASE_IMAGE overrides the base image."""
        return cls(
            version=version,
            commit=gitinfo.head_commit(root),
            dirty=gitinfo.is_dirty(root),
            epoch=gitinfo.commit_epoch(root),
            base_image=environ.get("DEATHSTAR_BASE_IMAGE", DEFAULT_BASE_IMAGE),
        )

    @property
    def revision(self) -> str:
        return f"{self.commit}-dirty" if self.dirty else self.commit

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def tags(self) -> list[str]:
        return [f"{IMAGE_NAME}:{self.version}", f"{IMAGE_NAME}:sha-{self.commit[:7]}"]

    def build_command(self, context: Path) -> list[str]:
        args = {
            "BASE_IMAGE": self.base_image,
            "VERSION": self.version,
            "REVISION": self.revision,
            "CREATED": self.created,
            "SOURCE_DATE_EPOCH": str(self.epoch),
            "SOURCE": SOURCE_URL,
        }
        command = ["docker", "build", "--network", "none", "--pull=false"]
        for key, value in args.items():
            command += ["--build-arg", f"{key}={value}"]
        for tag in self.tags:
            command += ["--tag", tag]
        return [*command, str(context)]


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    tags: list[str]
    version: str
    commit: str
    revision: str
    base_image: str
    size: int
    base_size: int

    @classmethod
    def from_plan(cls, plan: BuildPlan) -> ImageRecord:
        image_id = docker("image", "inspect", "--format", "{{.Id}}", plan.tags[0])
        size = int(docker("image", "inspect", "--format", "{{.Size}}", image_id))
        base_size = int(docker("image", "inspect", "--format", "{{.Size}}", plan.base_image))
        return cls(
            image_id=image_id,
            tags=plan.tags,
            version=plan.version,
            commit=plan.commit,
            revision=plan.revision,
            base_image=plan.base_image,
            size=size,
            base_size=base_size,
        )

    def summary(self) -> str:
        mb = 1_000_000
        return (
            f"{self.image_id[:19]} {' '.join(self.tags)}: {self.size / mb:.1f} MB, "
            f"{(self.size - self.base_size) / mb:.1f} MB over {self.base_image}"
        )


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path, *, missing: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(missing) from None
    except json.JSONDecodeError:
        raise HarnessError(f"{path} is corrupt; {missing.split(';', 1)[-1].strip()}") from None
    return data


def save_image_record(record: ImageRecord, path: Path) -> None:
    write_json(path, asdict(record))


def load_image_record(path: Path) -> ImageRecord:
    data = read_json(path, missing=f"no image recorded in {path}; run `nox -s image` first")
    try:
        return ImageRecord(**data)
    except TypeError:
        raise HarnessError(f"{path} is not an image record; run `nox -s image` again") from None


def provision_env_path(environ: Mapping[str, str]) -> Path:
    """Where .ci/provision writes what it learned about this machine, as KEY=VALUE lines."""
    if "DEATHSTAR_PROVISION_ENV" in environ:
        return Path(environ["DEATHSTAR_PROVISION_ENV"])
    state = environ.get("XDG_STATE_HOME") or str(
        Path(environ.get("HOME", "/root")) / ".local/state"
    )
    return Path(state) / "deathstar" / "provision.env"


def testcontainers_env(environ: Mapping[str, str], provision_env: Path) -> dict[str, str]:
    """testcontainers settings for the integration tests; the caller's environment wins.

    Tests reach containers only through 127.0.0.1 and the mapped port. testcontainers would
    otherwise guess another address wherever ``/.dockerenv`` exists (it then believes it runs
    inside a container and uses the bridge gateway). ``.ci/provision`` may add more, such as
    disabling Ryuk where its image cannot be pulled; it writes them to ``provision_env``.
    """
    env = {"TC_HOST": "127.0.0.1", "TESTCONTAINERS_CONNECTION_MODE": "docker_host"}
    if provision_env.is_file():
        for line in provision_env.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key and not key.startswith("#"):
                env[key] = value
    env.update({k: v for k, v in environ.items() if k in env})
    return env


def record_verification(record: ImageRecord, head: str, path: Path) -> None:
    if record.commit != head:
        raise HarnessError(
            f"the image was built at {record.commit[:7]} but HEAD is {head[:7]}; "
            "run `nox -s image integration` again"
        )
    write_json(
        path,
        {
            "image_id": record.image_id,
            "commit": record.commit,
            "revision": record.revision,
            "verified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )


def load_verification(path: Path) -> dict[str, Any]:
    return read_json(path, missing="no integration run is recorded; run `nox -s integration` first")
