"""How the sdist, the wheel, the wheelhouse and the image are built: names, commands, plans."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness import HarnessError
from harness.core import git
from harness.core.docker import Docker
from harness.image.records import DIST
from harness.image.sharing import BuildCache

IMAGE_NAME = "deathstar"
# The Dockerfile's BASE_IMAGE default and .ci/provision's say the same; a unit test checks.
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
BASE_IMAGE_VARIABLE = "DEATHSTAR_BASE_IMAGE"
# The image's platform, CPython 3.11 on glibc x86_64: the wheelhouse's and the venv's.
IMAGE_PYTHON = "3.11"
WHEEL_PLATFORM = (
    *("--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64"),
    *("--implementation", "cp", "--python-version", IMAGE_PYTHON),
)
# The image's venv, and where the build session lays the project wheel out at its image paths
# (the Dockerfile copies that tree as the project layer).
IMAGE_VENV = "/opt/venv"
STAGING = DIST / "staging"
SOURCE_URL = "https://github.com/tea-n-tech/deathstar"
# No network (the wheelhouse has everything), and no registry asked for the resolved base.
OFFLINE_BUILD = ("docker", "build", "--network", "none", "--pull=false")
# BuildKit through buildx; no attestations, whose timestamps differ on every build.
REPRODUCIBLE_BUILD = (
    "docker", "buildx", "build", "--network", "none", "--pull=false",
    "--provenance=false", "--sbom=false",
)  # fmt: skip
# The files' SOURCE_DATE_EPOCH: a constant (as Jib and ko do), so a layer's bytes depend on its
# content only; the commit time goes into the created label instead.
IMAGE_EPOCH = 1
GZIP_LEVEL = 9
RUNTIME_BASE_TARGET = "runtime-base"  # the Dockerfile's stage below the project layers
MIN_ENGINE, MIN_BUILDX = (25, 0), (0, 13)
INFO_FORMAT = "{{.OSType}}/{{.Architecture}} {{json .DriverStatus}}"
# An image name as docker reads it (distribution/reference), ASCII only: [host[:port]/]path[:tag].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:.]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*)(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?",
    re.ASCII,
)


def is_image_name(name: str) -> bool:
    """``[host[:port]/]path[:tag]`` and nothing else: no digest, option, space or quote."""
    match = _IMAGE_NAME.fullmatch(name) if len(name) <= 255 + 129 else None
    return match is not None and len(match["name"]) <= 255


def base_image(environ: Mapping[str, str]) -> str:
    """DEATHSTAR_BASE_IMAGE, else the default; by name (the build pins the digest itself)."""
    name = environ.get(BASE_IMAGE_VARIABLE) or DEFAULT_BASE_IMAGE
    if not is_image_name(name):
        raise HarnessError(
            f"{BASE_IMAGE_VARIABLE}={name!r} is not an image name [host[:port]/]path[:tag] "
            "(without @sha256:...: the build resolves and pins the digest itself)"
        )
    return name


def csv_field(field: str) -> str:
    """One field of a buildx CSV option (``--output``): quoted when it holds , " or a newline."""
    if any(c in field for c in ',"\r\n') or field != field.strip():
        return '"' + field.replace('"', '""') + '"'
    return field


def wheel_build_command(outdir: Path, python: str | None = None) -> list[str]:
    """``uv build`` of sdist and wheel with the backend of ``python``'s environment (default:
    the session's); the caller sets SOURCE_DATE_EPOCH."""
    interpreter = ["--python", python] if python else []
    return [
        "uv", "build", *interpreter, "--sdist", "--wheel", "--no-build-isolation",
        "--out-dir", str(outdir), "--quiet",
    ]  # fmt: skip


def staging_command(wheel: Path, dest: Path, python: str = "python") -> list[str]:
    """``python -m harness.stage``: the wheel laid out at its image paths under ``dest``."""
    return [python, "-m", "harness.stage", str(wheel), str(dest)]


def project_wheel(dist: Path, version: str) -> Path:
    wheels = sorted(dist.glob(f"deathstar-{version}-*.whl"))
    if len(wheels) != 1:
        raise HarnessError(
            f"{dist} holds {len(wheels)} deathstar {version} wheels, not one; run `nox -s build`"
        )
    return wheels[0]


def wheelhouse_command(lock: Path, dest: Path) -> list[str]:
    """pip download of the locked runtime wheels, hash-checked, for the image's platform."""
    return [
        "python", "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps",
        "--only-binary", ":all:", *WHEEL_PLATFORM, "--requirement", str(lock),
        "--dest", str(dest),
    ]  # fmt: skip


def version_tuple(text: str) -> tuple[int, ...]:
    """``26.1.5+dfsg1`` -> (26, 1, 5); () when it does not start with a number."""
    match = re.match(r"v?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(part) for part in match[1].split(".")) if match else ()


@dataclass(frozen=True)
class Builder:
    """The engine and builder; reproducible takes buildx's BuildKit (``rewrite-timestamp``) on
    the containerd image store (Docker's classic store silently ignores the option)."""

    engine: str
    buildx: str  # "" without the buildx plugin
    containerd_store: bool
    platform: str = ""  # the engine's OS/architecture: what a runtime base is built for

    @classmethod
    def detect(cls, docker: Docker) -> Builder:
        engine = docker.server_version()
        try:
            buildx = docker("buildx", "version").split()[1]
        except (HarnessError, IndexError):
            buildx = ""
        platform, _, driver_status = docker("info", "--format", INFO_FORMAT).partition(" ")
        return cls(engine, buildx, "io.containerd.snapshotter" in driver_status, platform)

    @property
    def why_not_reproducible(self) -> str:
        """Empty when builds here are reproducible; else the reason, as a sentence's end."""
        if version_tuple(self.engine) < MIN_ENGINE:
            return f"Docker engine {self.engine} is older than 25 (`bash .ci/provision` upgrades)"
        if not self.buildx:
            return "docker buildx is not installed"
        if version_tuple(self.buildx) < MIN_BUILDX:
            return f"docker buildx {self.buildx} is older than 0.13"
        if not self.containerd_store:
            return (
                "the engine uses Docker's classic image store, which ignores rewrite-timestamp "
                '(set {"features": {"containerd-snapshotter": true}} in daemon.json)'
            )
        return ""

    @property
    def reproducible(self) -> bool:
        return not self.why_not_reproducible

    @property
    def description(self) -> str:
        """Recorded with the image: BuildKit versions write different history strings."""
        store = "containerd image store" if self.containerd_store else "classic image store"
        on = f", {self.platform}" if self.platform else ""
        return f"docker {self.engine}, buildx {self.buildx or 'none'}, {store}{on}"


# What neither the dist nor the image is made from, nor integration reads: docs, benchmarks,
# CI and lint configuration, unit test modules (harness.results keys build, image and
# integration on everything else; tests/test_results_sessions.py checks the claim).
NOT_SHIPPED = ("docs", "bench", ".github", ".pre-commit-config.yaml", "tests/test_*.py")


@dataclass(frozen=True)
class BuildPlan:
    version: str
    commit: str
    dirty: bool
    epoch: int
    base_image: str
    base_digest: str = ""  # the base image's digest, resolved before the build
    base_tag: str = ""  # a local tag of exactly that digest, what FROM reads (imaging.pin_base)
    shared: BuildCache | None = None  # DEATHSTAR_BUILD_CACHE, for a reproducible build
    branch: str | None = None  # whose cache it reads and writes (main's too)

    @classmethod
    def for_checkout(
        cls, root: Path, version: str, environ: Mapping[str, str], base_digest: str = ""
    ) -> BuildPlan:
        """The plan for HEAD of ``root``; DEATHSTAR_BASE_IMAGE overrides the base image."""
        commit, epoch = git.head_commit(root), git.commit_epoch(root)
        dirty = git.is_dirty(root, exclude=NOT_SHIPPED)  # an edited test does not change it
        return cls(version, commit, dirty, epoch, base_image(environ), base_digest)

    @property
    def revision(self) -> str:
        return git.revision_of(self.commit, dirty=self.dirty)

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def tags(self) -> list[str]:
        return [f"{IMAGE_NAME}:{self.version}", f"{IMAGE_NAME}:sha-{self.commit[:7]}"]

    def cache_flags(self) -> list[str]:
        return self.shared.flags(self.branch) if self.shared else []

    @property
    def pinned_base(self) -> str:
        """The base image by digest once resolved: a build never takes what a tag names later."""
        return f"{self.base_image}@{self.base_digest}" if self.base_digest else self.base_image

    @property
    def from_image(self) -> str:
        return self.base_tag or self.pinned_base

    def base_args(self) -> dict[str, str]:
        """What the runtime-base stage may see: the base image and the files' epoch."""
        return {"BASE_IMAGE": self.from_image, "SOURCE_DATE_EPOCH": str(IMAGE_EPOCH)}

    def build_command(
        self,
        context: Path,
        tags: Sequence[str],
        *,
        archive: Path | None = None,
        no_cache: bool = False,
        runtime_base: str | None = None,
    ) -> list[str]:
        """``docker build`` tagging ``tags``; with ``archive``, a reproducible BuildKit build that
        writes an archive (named after the first tag) for ``docker load`` and for comparing.
        ``runtime_base`` names an image of the runtime-base stage to start FROM."""
        args = {
            "BASE_IMAGE": self.from_image, "BASE_NAME": self.pinned_base,
            "BASE_DIGEST": self.base_digest, "VERSION": self.version, "REVISION": self.revision,
            "SOURCE": SOURCE_URL, "CREATED": self.created,  # the commit's time, a label
            "SOURCE_DATE_EPOCH": str(IMAGE_EPOCH),
        }  # fmt: skip
        if runtime_base is not None:
            if not is_image_name(runtime_base):
                raise HarnessError(f"{runtime_base!r} is not an image name for RUNTIME_BASE")
            args["RUNTIME_BASE"] = runtime_base
        return self._command(context, tags, args, archive=archive, no_cache=no_cache)

    def runtime_base_command(self, context: Path, tag: str, archive: Path) -> list[str]:
        """The reproducible build of the runtime-base stage alone, with only its arguments."""
        command = self._command(context, [tag], self.base_args(), archive=archive)
        return [*command[:-1], "--target", RUNTIME_BASE_TARGET, command[-1]]

    def _command(
        self,
        context: Path,
        tags: Sequence[str],
        args: Mapping[str, str],
        *,
        archive: Path | None,
        no_cache: bool = False,
    ) -> list[str]:
        if not is_image_name(self.base_image):
            raise HarnessError(f"the base image {self.base_image!r} is not an image name")
        command = [*(OFFLINE_BUILD if archive is None else REPRODUCIBLE_BUILD)]
        command += ["--no-cache"] if no_cache else self.cache_flags() if archive else []
        for key, value in args.items():
            command += ["--build-arg", f"{key}={value}"]
        if archive is None:
            return [*command, *(arg for tag in tags for arg in ("--tag", tag)), str(context)]
        if not is_image_name(tags[0]):
            raise HarnessError(f"{tags[0]!r} is not an image name to tag the archive with")
        fields = [
            "type=docker", f"name={tags[0]}", f"dest={archive}", "rewrite-timestamp=true",
            # gzip at its best for the layers we make: each push and pull ships them.
            "compression=gzip", f"compression-level={GZIP_LEVEL}",
        ]  # fmt: skip
        return [*command, "--output", ",".join(csv_field(f) for f in fields), str(context)]
