"""Building the image as `nox -s image` does, and recording what was built."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness import HarnessError
from harness.core import archive, runtime_base
from harness.core.build import Builder, BuildPlan, base_image
from harness.core.docker import Docker
from harness.core.records import ImageRecord

DOCKER_LOAD_TIMEOUT = 600.0


def resolve_base(docker: Docker, ref: str) -> str:
    """The base image's digest: its registry digest when it came from one, else its local ID."""
    try:
        pulled = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref))
        image_id = docker("image", "inspect", "--format", "{{.Id}}", ref)
    except (HarnessError, json.JSONDecodeError):
        raise HarnessError(
            f"the base image {ref} is not in the local engine: pull it "
            "(or run `bash .ci/provision` where no registry is reachable)"
        ) from None
    for repo_digest in pulled or []:
        if isinstance(repo_digest, str) and "@sha256:" in repo_digest:
            return repo_digest.split("@", 1)[1]
    return image_id


def plan_for(
    root: Path, version: str, environ: Mapping[str, str], docker: Docker
) -> tuple[BuildPlan, Builder]:
    """The plan for HEAD, its base resolved to a digest, and the builder that will run it."""
    builder = Builder.detect(docker)
    base = resolve_base(docker, base_image(environ))
    return BuildPlan.for_checkout(root, version, environ, base), builder


def build_image(
    plan: BuildPlan,
    builder: Builder,
    docker: Docker,
    run: Callable[[Sequence[str]], object],
    *,
    context: Path,
    archive_path: Path,
    tags: Sequence[str] | None = None,
) -> ImageRecord:
    """Build with ``run`` (which shows the build's output), tag, and record the image.

    A reproducible build starts FROM the runtime base of its inputs (made first if the engine
    lacks it) and goes through an archive, then ``docker load``; the archive stays for
    ``repro`` to compare with. Elsewhere the engine's own builder tags the image directly.
    """
    tags = list(tags or plan.tags)
    archive_path.unlink(missing_ok=True)
    base = ""
    if builder.reproducible:
        base_archive = archive_path.with_name(f"runtime-base-{archive_path.name}")
        base, _ = runtime_base.ensure(
            plan, builder, docker, run, context=context, archive_path=base_archive
        )
        run(plan.build_command(context, tags, archive=archive_path, runtime_base=base))
        docker("load", "--input", str(archive_path), timeout=DOCKER_LOAD_TIMEOUT)
        for tag in tags[1:]:
            docker("tag", tags[0], tag)
        built = archive.read_archive(archive_path)
        config_digest, diff_ids = built.config_digest, built.diff_ids
    else:
        run(plan.build_command(context, tags))
        # Docker's classic store names an image by its config digest.
        config_digest = docker("image", "inspect", "--format", "{{.Id}}", tags[0])
        diff_ids = json.loads(
            docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", tags[0])
        )
    image_id = docker("image", "inspect", "--format", "{{.Id}}", tags[0])
    return ImageRecord(
        image_id=image_id,
        tags=tags,
        version=plan.version,
        commit=plan.commit,
        revision=plan.revision,
        base_image=plan.base_image,
        size=docker.image_size(image_id),
        base_size=docker.image_size(plan.base_image),
        config_digest=config_digest,
        diff_ids=diff_ids,
        base_digest=plan.base_digest,
        builder=builder.description,
        reproducible=builder.reproducible,
        runtime_base=base,
    )
