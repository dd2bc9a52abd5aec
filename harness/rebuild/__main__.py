"""``python -m harness.rebuild repro | verify REF``: is this image exactly its source?"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT, HarnessError
from harness.core import process
from harness.core.docker import Docker
from harness.image import archive, records
from harness.rebuild import remote
from harness.rebuild.clean import (
    Source,
    check_builder,
    check_released,
    rebuild,
    without_credentials,
)
from harness.rebuild.compare import Identity, differences
from harness.registry import Skopeo, Stopped, run_skopeo, stopped_by_signals


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
    original_path = records.image_archive_path(root)
    original = archive.read_archive(original_path) if original_path.is_file() else None
    expected = Identity(record.image_id, record.config_digest, record.diff_ids)
    if original is not None:
        expected = Identity(record.image_id, record.config_digest, record.diff_ids, original.config)
    source = Source(record.commit, record.version, record.base_image, record.base_digest)
    return _rebuild_and_compare(
        root, Claim(source, expected, original, record.builder), docker, runner
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
    served = remote.read(ref, env, docker, skopeo)
    tag = check_released(root, served.source, runner)
    print(
        f"verify: {ref} is {served.manifest_digest}, built from {served.source.commit[:12]} ({tag})"
    )
    return _rebuild_and_compare(root, Claim(served.source, served.identity), docker, runner)


@dataclass(frozen=True)
class Claim:
    """An image that says it is ``source``: what a rebuild of that source must be."""

    source: Source
    expected: Identity
    original: archive.ImageArchive | None = None  # for a file-by-file diff
    builder: str | None = None  # what built it, where recorded


def _rebuild_and_compare(root: Path, claim: Claim, docker: Docker, runner: process.Runner) -> int:
    _, note = check_builder(docker, claim.builder)
    commit = claim.source.commit[:12]
    workdir = Path(tempfile.mkdtemp(prefix="deathstar-rebuild-"))
    try:
        rebuilt = rebuild(root, claim.source, workdir, runner=runner, log=print)
        problems = differences(claim.expected, rebuilt, claim.original)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not problems:
        print(
            f"reproducible: {commit} rebuilt from nothing is {rebuilt.manifest_digest}, "
            f"config {rebuilt.config_digest}, {len(rebuilt.diff_ids)} identical layers"
        )
        return 0
    print(f"NOT reproducible: {commit} rebuilt differs in {len(problems)} ways (image -> rebuild):")
    for line in problems:
        print(f"  {line}")
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
    runner = without_credentials(runner)  # the rebuilt commit's own code runs in children
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
