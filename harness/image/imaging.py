"""Building the image as `nox -s image` does, and recording what was built."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness import HarnessError
from harness.core.docker import Docker
from harness.image import archive, runtime_base
from harness.image.build import Builder, BuildPlan
from harness.image.records import ImageRecord
from harness.image.sharing import BuildxBuilder

# Local tags of base digests, one per digest: what a reproducible build's FROM names.
PINNED_BASE = "deathstar-pinned-base"
# The labels .ci/provision puts on a base it makes from Debian's archive (.ci/base/Dockerfile).
ORIGIN_LABELS = {
    "suite": "org.deathstar.base.suite",
    "archive_date": "org.deathstar.base.archive-date",
    "made_by": "org.deathstar.base.made-by",
}


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


def pin(docker: Docker, name: str, digest: str) -> str:
    """A local tag, named after the digest, of exactly ``name@digest``: BuildKit resolves
    ``FROM name@sha256:...`` through the registry, a local tag in the engine."""
    if not digest:
        raise HarnessError(f"the base image {name} was not resolved to a digest")
    ref, tag = f"{name}@{digest}", f"{PINNED_BASE}:{digest.removeprefix('sha256:')}"
    try:
        docker("tag", ref, tag)
    except HarnessError:
        raise HarnessError(
            f"the base image {ref} is not in the local engine; pull it (`docker pull {ref}`), "
            "or run `bash .ci/provision` where no registry is reachable"
        ) from None
    if docker.image_id(tag) != digest:  # the containerd store's ID is the digest
        raise HarnessError(f"{tag} does not name {ref}; it was retagged meanwhile")
    return tag


def pin_base(plan: BuildPlan, docker: Docker) -> BuildPlan:
    """The plan building FROM the local tag of its resolved base digest (see :func:`pin`)."""
    return replace(plan, base_tag=pin(docker, plan.base_image, plan.base_digest))


@dataclass(frozen=True)
class BaseFacts:
    """What the record and the checks need of the pinned base, read in one docker call."""

    layers: list[str]
    origin: dict[str, str]  # what a provisioned base was made from (its labels), else {}
    size: int

    @classmethod
    def read(cls, docker: Docker, ref: str) -> BaseFacts:
        fields = "{{json .RootFS.Layers}}\t{{json .Config.Labels}}\t{{.Size}}"
        try:
            layers, labels, size = docker("image", "inspect", "--format", fields, ref).split("\t")
            parsed = json.loads(layers), json.loads(labels), int(size)
        except (HarnessError, ValueError):
            raise HarnessError(f"the base image {ref} is no longer in the local engine") from None
        found, labelled, bytes_ = parsed
        if not isinstance(found, list) or not all(isinstance(d, str) for d in found):
            raise HarnessError(f"the base image {ref} has no list of layers")
        labelled = labelled if isinstance(labelled, dict) else {}
        origin = {key: labelled.get(label) for key, label in ORIGIN_LABELS.items()}
        kept = {key: value for key, value in origin.items() if isinstance(value, str) and value}
        return cls(found, kept, bytes_)

    def check_under(self, ref: str, diff_ids: Sequence[str]) -> None:
        """The image's first layers must be the base's: proof of what it was built FROM."""
        if list(diff_ids[: len(self.layers)]) != self.layers:
            raise HarnessError(
                f"the image was not built on {ref}: its first layers are not the base's"
            )


def build_image(
    plan: BuildPlan,
    builder: Builder,
    docker: Docker,
    run: Callable[[Sequence[str]], object],
    *,
    context: Path,
    archive_path: Path,
    tags: Sequence[str] | None = None,
    buildx: BuildxBuilder | None = None,
    say: Callable[[str], object] = print,
) -> ImageRecord:
    """Build with ``run`` (which shows the build's output), tag, and record the image. A
    reproducible build starts FROM its runtime base and goes through an archive (kept for
    ``repro``) and ``docker load``; elsewhere the engine's builder tags the image directly.
    A ``buildx`` builder that is not the local engine's builds in one go, FROM the base pinned
    on its own engine or by digest from a registry, and its archive is loaded here. ``say``
    tells where the runtime base came from."""
    tags = list(tags or plan.tags)
    archive_path.unlink(missing_ok=True)
    base = ""
    remote = buildx if buildx is not None and not buildx.local else None
    if remote:  # FROM the base its own engine holds, or by digest from a registry
        engine = remote.engine(docker.runner)
        plan = pin_base(plan, engine) if engine else plan
        run(plan.build_command(context, tags, archive=archive_path))
    elif builder.reproducible:
        plan = pin_base(plan, docker)
        base_archive = archive_path.with_name(f"runtime-base-{archive_path.name}")
        base = runtime_base.ensure(
            plan, builder, docker, run, context=context, archive_path=base_archive, say=say
        )
        # One cache ref keeps one build's cache: the runtime base's, the build that costs.
        uncached = replace(plan, shared=None)
        run(uncached.build_command(context, tags, archive=archive_path, runtime_base=base))
    if remote or builder.reproducible:
        docker.load(archive_path)
        for tag in tags[1:]:
            docker("tag", tags[0], tag)
        built = archive.read_archive(archive_path)
        config_digest, diff_ids = built.config_digest, built.diff_ids
        facts = BaseFacts.read(docker, plan.pinned_base)
        facts.check_under(plan.pinned_base, diff_ids)
    else:
        run(plan.build_command(context, tags))
        # Docker's classic store names an image by its config digest.
        config_digest = docker("image", "inspect", "--format", "{{.Id}}", tags[0])
        diff_ids = json.loads(
            docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", tags[0])
        )
        facts = BaseFacts.read(docker, plan.base_image)
    image_id = docker("image", "inspect", "--format", "{{.Id}}", tags[0])
    return ImageRecord(
        image_id, tags, plan.version, plan.commit, plan.revision, plan.base_image,
        docker.image_size(image_id), facts.size, config_digest, diff_ids, plan.base_digest,
        builder.description, builder.reproducible, base, facts.origin,
        plan.shared.repository if plan.shared else "",
    )  # fmt: skip
