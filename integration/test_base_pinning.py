"""The pinned base reaches BuildKit without a registry, on an engine that never built FROM it.

BuildKit resolves ``FROM name@sha256:...`` through the name's registry until some build has
used ``name`` by its tag; an engine that provision just filled has no such build. A name made
for this test has none either, so the build below passes only if the harness hands BuildKit the
base by a local tag of its digest instead of leaving the digest to a registry that is not
there.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.core import process
from harness.core.docker import Docker
from harness.image import archive, build, imaging
from harness.image.records import ImageRecord

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 600.0
STAGE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS runtime-base
ARG SOURCE_DATE_EPOCH
RUN ["python3", "-c", "open('/pinned', 'w').close()"]
"""


def test_the_runtime_base_builds_from_a_base_no_build_has_named(
    record: ImageRecord, docker_client: Any, tmp_path: Path
) -> None:
    docker = Docker()
    builder = build.Builder.detect(docker)
    if not builder.reproducible:
        pytest.skip(f"no reproducible builds on this engine: {builder.why_not_reproducible}")
    repository = f"deathstar-test-base-{uuid.uuid4().hex[:12]}"
    base = docker_client.images.get(f"{record.base_image}@{record.base_digest}")
    base.tag(repository, "1")
    try:
        plan = replace(
            build.BuildPlan.for_checkout(ROOT, record.version, {}),
            base_image=f"{repository}:1",
            base_digest=record.base_digest,
        )
        plan = imaging.pin_base(plan, docker)
        # The harness's own build command and arguments on a context whose runtime-base stage
        # is only FROM the base: what is tested is where the base comes from, not pip.
        context = tmp_path / "context"
        context.mkdir()
        (context / "Dockerfile").write_text(STAGE)
        target = tmp_path / "runtime-base.tar"
        command = plan.runtime_base_command(context, f"{repository}-rb:1", target)
        process.run(command, timeout=BUILD_TIMEOUT, merge=True)
        built = archive.read_archive(target)
        base_layers = base.attrs["RootFS"]["Layers"]
        assert built.diff_ids[: len(base_layers)] == base_layers
    finally:
        docker_client.images.remove(f"{repository}:1")
