"""``python -m harness.rebuild repro | verify REF``: is this image exactly its source? A clean
rebuild (a fresh clone at one commit, its staged wheel and wheelhouse, no cache) says."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from packaging.version import InvalidVersion, Version

from harness import ROOT, HarnessError
from harness.core import locks, process
from harness.core.docker import Docker
from harness.core.process import with_child_env
from harness.image import archive, build, imaging, records, sharing
from harness.rebuild.compare import Identity, Source, differences, read
from harness.registry import Skopeo, Stopped, run_skopeo, stopped_by_signals
from harness.release.gates import Release

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


def rebuild_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a rebuild's children get: never a credential of the caller's."""
    return {
        name: value
        for name, value in env.items()
        if _PASSED.fullmatch(name)
        and not _SECRET_NAME.search(name)
        and not _SECRET_URL.search(value)
    }


def check_released(repository: Path, source: Source, runner: process.Runner = process.run) -> str:
    """The release tag of ``source.version`` holding the commit, whose own code ``verify`` runs
    (never a PR head or a dangling commit the clone holds)."""
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


def check_builder(docker: Docker, recorded: str | None) -> str:
    """Refused when the local builder cannot reproduce; a note when it is not the recorded one."""
    builder = build.Builder.detect(docker)
    if not builder.reproducible:
        raise HarnessError(
            f"this machine cannot rebuild reproducibly: {builder.why_not_reproducible}"
        )
    if not recorded or recorded == builder.description:
        return ""
    return (
        f"the image was built with {recorded}, this rebuild uses {builder.description}: "
        "a builder of another version writes other history strings"
    )


def rebuild(
    repository: Path,
    source: Source,
    workdir: Path,
    *,
    runner: process.Runner = process.run,
    log: Callable[[str], None] = print,
) -> archive.ImageArchive:
    """Clone ``repository`` at the commit; build and stage its wheel, its wheelhouse, the image
    (on the selected builder, never with a build cache: see docs/sharing.md)."""
    # FROM a tag of the recorded digest on the builder's engine, first, so a missing base costs
    # no clone; by digest from a registry for a builder that reads no engine's images.
    buildx = sharing.BuildxBuilder.selected(Docker(runner), sharing.local_engine(runner))
    engine = Docker(runner) if buildx.local else buildx.engine(runner)
    base_tag = imaging.pin(engine, source.base_image, source.base_digest) if engine else ""
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
        source.version, source.commit, dirty=False, epoch=epoch, base_image=source.base_image,
        base_digest=source.base_digest, base_tag=base_tag,
    )  # fmt: skip
    target = workdir / "rebuild.tar"
    command = plan.build_command(checkout, plan.tags[:1], archive=target, no_cache=True)
    log("rebuild: the image, with no build cache")
    runner(command, timeout=BUILD_TIMEOUT, merge=True)
    return archive.read_archive(target)


def repro(root: Path, docker: Docker, runner: process.Runner) -> int:
    """Rebuild the commit dist/image.json records and compare with the record and archive."""
    record = records.load_image_record(records.image_record_path(root))
    if not record.reproducible:
        raise HarnessError(
            f"the recorded image was built with {record.builder}, which cannot build "
            "reproducibly; run `nox -s image` on an engine that can (`bash .ci/provision`)"
        )
    if record.revision != record.commit:
        raise HarnessError(
            "the recorded image was built from a tree with uncommitted changes; commit, "
            "run `nox -s image`, then `nox -s repro`"
        )
    path = records.image_archive_path(root)
    original = archive.read_archive(path) if path.is_file() else None
    config = original.config if original is not None else None
    expected = Identity(record.image_id, record.config_digest, record.diff_ids, config)
    source = Source(record.commit, record.version, record.base_image, record.base_digest)
    return compare(
        root, source, expected, docker, runner, original=original, builder=record.builder
    )


def verify(
    root: Path,
    ref: str,
    env: Mapping[str, str],
    docker: Docker,
    runner: process.Runner,
    *,
    skopeo: Skopeo = run_skopeo,
) -> int:
    """Rebuild the commit a registry image names and compare with what the registry serves."""
    served = read(ref, env, docker, skopeo)
    tag = check_released(root, served.source, runner)
    commit = served.source.commit[:12]
    print(f"verify: {ref} is {served.manifest_digest}, built from {commit} ({tag})")
    return compare(root, served.source, served.identity, docker, runner)


def compare(  # noqa: PLR0917 (what a rebuild is compared with, and how)
    root: Path,
    source: Source,
    expected: Identity,
    docker: Docker,
    runner: process.Runner,
    original: archive.ImageArchive | None = None,  # for a file-by-file diff
    builder: str | None = None,  # what built it, where recorded
) -> int:
    note = check_builder(docker, builder)
    workdir = Path(tempfile.mkdtemp(prefix="deathstar-rebuild-"))
    try:
        rebuilt = rebuild(root, source, workdir, runner=runner, log=print)
        problems = differences(expected, rebuilt, original)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    commit = source.commit[:12]
    if not problems:
        print(
            f"reproducible: {commit} rebuilt from nothing is {rebuilt.manifest_digest}, "
            f"config {rebuilt.config_digest}, {len(rebuilt.diff_ids)} identical layers"
        )
        return 0
    print(f"NOT reproducible: {commit} rebuilt differs in {len(problems)} ways (image -> rebuild):")
    print("\n".join(f"  {line}" for line in problems))
    if note:
        print(f"note: {note}")
    return 1


def main(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    root: Path = ROOT,
    runner: process.Runner = process.run,
    out: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    skopeo: Skopeo = run_skopeo,
) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.rebuild")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("repro", help="rebuild the recorded commit and compare")
    check = commands.add_parser("verify", help="rebuild what a registry image names and compare")
    check.add_argument("ref", help="registry/repository:tag or registry/repository@sha256:...")
    args = parser.parse_args(argv)
    runner = with_child_env(runner, rebuild_env)  # the rebuilt commit's own code runs in children
    docker = Docker(runner)
    try:
        with stopped_by_signals():  # verify's throwaway login is removed on a signal too
            if args.command == "repro":
                return repro(root, docker, runner)
            return verify(root, args.ref, env, docker, runner, skopeo=skopeo)
    except HarnessError as exc:
        out(f"{args.command}: {exc}")
        return 1
    except Stopped as exc:
        out(f"{args.command}: stopped by {exc}; nothing of the rebuild is kept")
        return 128 + exc.number


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
