"""A clean rebuild: a fresh clone at one commit, its wheel (staged) and wheelhouse, no cache."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

from packaging.version import InvalidVersion, Version

from harness import ROOT, HarnessError
from harness.core import locks, process
from harness.core.docker import Docker
from harness.image import archive, build, imaging
from harness.release.tags import Release

BUILD_TIMEOUT = 1800.0
STAGE_MODULE = Path("harness/stage.py")
# What a rebuild's children see of this environment: the commit's own code runs there, so only
# the settings its tools need (locale, CA bundles, pip's indexes, which engine), and of those
# nothing that names a credential or is a URL with a password in it.
_PASSED = re.compile(
    r"PATH|HOME|LANG|LC_\w+|TZ|TMPDIR|TERM|\w*CA_BUNDLE|\w*SSL_CERT_\w+|PIP_\w+|UV_\w+|"
    r"PYTHON\w*|PYENV_\w+|DOCKER_(?:HOST|CONTEXT|CONFIG|CERT_PATH|TLS_VERIFY)|BUILDKIT_\w+|"
    r"BUILDX_\w+|(?:HTTPS?|NO)_PROXY|(?:https?|no)_proxy|SOURCE_DATE_EPOCH",
    re.ASCII,
)
_SECRET_NAME = re.compile(r"PASSW|SECRET|TOKEN|CREDENTIAL|AUTH|KEY", re.IGNORECASE)
_SECRET_URL = re.compile(r"://[^/@\s]*:[^/@\s]*@")


@dataclass(frozen=True)
class Source:
    """What an image says it was built from: enough to build it again."""

    commit: str
    version: str
    base_image: str
    base_digest: str


def rebuild_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a rebuild's children get: never a credential of the caller's."""
    return {
        name: value
        for name, value in env.items()
        if _PASSED.fullmatch(name)
        and not _SECRET_NAME.search(name)
        and not _SECRET_URL.search(value)
    }


def without_credentials(runner: process.Runner) -> process.Runner:
    """``runner`` whose every child gets :func:`rebuild_env` of what it would have had."""

    def run(args: Sequence[str], **options: Unpack[process.RunOptions]) -> str:
        env = options.get("env")
        options["env"] = rebuild_env(os.environ if env is None else env)
        return runner(args, **options)

    return run


def check_released(repository: Path, source: Source, runner: process.Runner = process.run) -> str:
    """The release tag of ``source.version`` that contains the commit, or a refusal.

    ``verify`` runs the named commit's own build code: only a commit released under the version
    the image claims qualifies, never any object the clone holds (a fetched PR head, a dangling
    commit).
    """
    contains = ["tag", "--list", "v*", "--contains", source.commit]
    try:
        wanted = Version(source.version)
        listed = runner(["git", "-C", str(repository), *contains])
    except (InvalidVersion, process.CommandError):  # no such version, or no such commit
        listed = ""
    for tag in listed.split():
        release = Release.parse(tag)
        if release is not None and Version(release.version) == wanted:
            return tag
    raise HarnessError(
        f"commit {source.commit[:12]} is in no release tag of version {source.version} in "
        f"{repository} (`git fetch --tags` if the tag is missing); only a released commit's "
        "code is rebuilt"
    )


def check_builder(docker: Docker, recorded: str | None) -> tuple[build.Builder, str]:
    """The local builder, refused when it cannot reproduce; a note when it is not the recorded."""
    builder = build.Builder.detect(docker)
    if not builder.reproducible:
        raise HarnessError(
            f"this machine cannot rebuild reproducibly: {builder.why_not_reproducible}"
        )
    note = ""
    if recorded and recorded != builder.description:
        note = (
            f"the image was built with {recorded}, this rebuild uses {builder.description}: "
            "a builder of another version writes other history strings"
        )
    return builder, note


def rebuild(
    repository: Path,
    source: Source,
    workdir: Path,
    *,
    runner: process.Runner = process.run,
    log: Callable[[str], None] = print,
) -> archive.ImageArchive:
    """Clone ``repository`` at the commit, build and stage its wheel, its wheelhouse, then the
    image."""
    # FROM a local tag of the recorded digest; first, so a missing base costs no clone.
    base_tag = imaging.pin(Docker(runner), source.base_image, source.base_digest)
    checkout = workdir / "source"
    try:
        runner(["git", "clone", "--quiet", "--no-checkout", str(repository), str(checkout)])
        runner(["git", "-C", str(checkout), "checkout", "--quiet", "--detach", source.commit])
    except process.CommandError:
        raise HarnessError(
            f"commit {source.commit[:12]} is not in {repository}; `git fetch` it and run again"
        ) from None
    log_epoch = ["git", "-C", str(checkout), "log", "-1", "--format=%ct", "HEAD"]
    epoch = int(runner(log_epoch))
    dist = checkout / "dist"
    log(f"rebuild: wheel, staging and wheelhouse of {source.commit[:12]} in a fresh clone")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    # Every commit's sdist and wheel are the backend's bytes, whichever frontend called it.
    wheel = build.wheel_build_command(dist, python=sys.executable)
    runner(wheel, cwd=checkout, env=env, timeout=BUILD_TIMEOUT, merge=True)
    if (checkout / STAGE_MODULE).is_file():
        # The project layer, staged by the commit's own module as its build session does; a
        # commit from before it installs its wheel in the Dockerfile instead.
        project_wheel = build.project_wheel(dist, source.version).relative_to(checkout)
        stage = build.staging_command(project_wheel, build.STAGING, python=sys.executable)
        runner(stage, cwd=checkout, timeout=BUILD_TIMEOUT, merge=True)
    lock = checkout / locks.RUNTIME.path.relative_to(ROOT)
    wheelhouse = build.wheelhouse_command(lock, dist / "wheelhouse")
    runner([sys.executable, *wheelhouse[1:]], cwd=checkout, timeout=BUILD_TIMEOUT, merge=True)
    plan = build.BuildPlan(
        version=source.version,
        commit=source.commit,
        dirty=False,
        epoch=epoch,
        base_image=source.base_image,
        base_digest=source.base_digest,
        base_tag=base_tag,
    )
    target = workdir / "rebuild.tar"
    command = plan.build_command(checkout, plan.tags[:1], archive=target, no_cache=True)
    log("rebuild: the image, with no build cache")
    runner(command, timeout=BUILD_TIMEOUT, merge=True)
    return archive.read_archive(target)
