"""The pinned base: built FROM a local tag of the resolved digest, checked before and after."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness import HarnessError
from harness.core.docker import Docker
from harness.image import imaging, sharing
from harness.image.records import ImageRecord
from tests.archives import layer_tar, save_archive
from tests.fakedocker import FakeDocker
from tests.test_harness_build import BASE, CURRENT, FACTS, engine_with_images, plan

INSPECT = ["image", "inspect", "--format"]
PIN = "deathstar-pinned-base:base"


def built_with(
    tmp_path: Path,
    fake: FakeDocker,
    buildx: sharing.BuildxBuilder | None = None,
    *,
    shared: sharing.BuildCache | None = None,
    records: list[ImageRecord] | None = None,
) -> list[Sequence[str]]:
    """Run a reproducible build of ``plan()`` on ``fake`` (and ``buildx``); its build commands,
    and the record appended to ``records``."""
    layer = layer_tar({"app.py": b"print(1)"})
    built: list[Sequence[str]] = []

    def build_it(command: Sequence[str]) -> None:
        built.append(command)
        fields = command[list(command).index("--output") + 1].split(",")
        dest = Path(next(f for f in fields if f.startswith("dest="))[5:])
        save_archive(dest, {"sha256:" + "a" * 64: layer})

    record = imaging.build_image(
        plan(base_digest="sha256:base", shared=shared), CURRENT, Docker(fake), build_it,
        context=tmp_path, archive_path=tmp_path / "image.tar", buildx=buildx, say=lambda _: None,
    )  # fmt: skip
    if records is not None:
        records.append(record)
    return built


def test_every_reproducible_build_is_from_a_local_tag_of_the_digest(tmp_path: Path) -> None:
    fake = engine_with_images()
    built = built_with(tmp_path, fake)
    assert ["tag", f"{BASE}@sha256:base", PIN] in fake.docker_calls()
    for command in built:  # the runtime base, then the image
        assert f"BASE_IMAGE={PIN}" in command
        assert not any(arg.startswith(f"BASE_IMAGE={BASE}") for arg in command)
    assert f"BASE_NAME={BASE}@sha256:base" in built[-1]  # the label names the real base


def test_a_base_the_engine_lacks_is_one_line(tmp_path: Path) -> None:
    fake = engine_with_images()
    fake.rules.insert(0, (["tag", f"{BASE}@sha256:base"], "Error: No such image", 1))
    with pytest.raises(HarnessError, match=rf"base image {BASE}@sha256:base is not in the local"):
        built_with(tmp_path, fake)


def test_a_pin_that_names_another_image_is_refused(tmp_path: Path) -> None:
    fake = engine_with_images()
    fake.rules.insert(0, ([*INSPECT, "{{.Id}}", PIN], "sha256:other", 0))
    with pytest.raises(HarnessError, match=rf"{PIN} does not name {BASE}@sha256:base"):
        built_with(tmp_path, fake)


def test_an_image_not_built_on_the_pinned_base_is_refused(tmp_path: Path) -> None:
    fake = engine_with_images()
    fake.rules.insert(0, ([*INSPECT, FACTS, f"{BASE}@sha256:base"], '["sha256:x"]\tnull\t1', 0))
    with pytest.raises(HarnessError, match=rf"not built on {BASE}@sha256:base"):
        built_with(tmp_path, fake)


def test_an_unresolved_base_is_never_built_from() -> None:
    with pytest.raises(HarnessError, match=r"was not resolved to a digest"):
        imaging.pin_base(plan(), Docker(engine_with_images()))


def test_what_a_provisioned_base_was_made_from_is_recorded(tmp_path: Path) -> None:
    labels = {
        "org.deathstar.base.suite": "bookworm",
        "org.deathstar.base.archive-date": "2026-07-11T10:16:37Z",
        "org.deathstar.base.made-by": "mmdebstrap (.ci/provision)",
        "other": "x",
    }
    docker = Docker(engine_with_images(base_labels=json.dumps(labels)))
    assert imaging.BaseFacts.read(docker, BASE).origin == {
        "suite": "bookworm",
        "archive_date": "2026-07-11T10:16:37Z",
        "made_by": "mmdebstrap (.ci/provision)",
    }
    assert imaging.BaseFacts.read(Docker(engine_with_images()), BASE).origin == {}
    with pytest.raises(HarnessError, match=r"is no longer in the local engine"):
        imaging.BaseFacts.read(Docker(FakeDocker()), BASE)
