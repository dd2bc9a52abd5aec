"""The push's refusals, as a table: what each one does to a released clone, and what it says."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pushing import GOOD_CREDENTIALS, USERNAME, WRONG_PASSWORD, Project, git

# --- refusals: what each one does to the project -----------------------------------------------


def dirty_tree(project: Project) -> None:
    (project.path / "NOTES.txt").write_text("not committed\n", encoding="utf-8")


def untagged_head(project: Project) -> None:
    git("tag", "--delete", f"v{project.version}", cwd=project.path)


def other_version_tag(project: Project) -> None:
    untagged_head(project)
    git("tag", "--annotate", "v9.9.9", "--message", "not the package version", cwd=project.path)


def not_verified(project: Project) -> None:
    (project.dist / "verified.json").unlink()


def verified_other_image(project: Project) -> None:
    verified = json.loads((project.dist / "verified.json").read_text(encoding="utf-8"))
    project.write_json("verified.json", {**verified, "image_id": "sha256:" + "0" * 64})


def hand_written_verification(project: Project) -> None:
    """What a forger who skipped the integration run writes: the ID and HEAD, no suite."""
    project.write_json(
        "verified.json", {"image_id": project.record["image_id"], "commit": project.head}
    )


def built_elsewhere(project: Project) -> None:
    other = "f" * 40
    project.write_json("image.json", {**project.record, "commit": other, "revision": other})


def built_dirty(project: Project) -> None:
    dirty = {"commit": project.head, "revision": project.head + "-dirty"}
    project.write_json("image.json", {**project.record, **dirty})


def unchanged(project: Project) -> None:
    del project  # the gate under test is in the invocation, not in the project


@dataclass(frozen=True)
class Refusal:
    id: str
    keywords: tuple[str, ...]  # "{registry}" and "{version}" are filled in
    prepare: Callable[[Project], None] = unchanged
    credentials: Mapping[str, str] = field(default_factory=lambda: dict(GOOD_CREDENTIALS))
    dead_registry: bool = False


REFUSALS = [
    Refusal("dirty", ("working tree", "uncommitted changes"), dirty_tree),
    Refusal("untagged", ("no release tag", "git tag v{version}"), untagged_head),
    Refusal("other-tag", ("tagged v9.9.9", "package version is {version}"), other_version_tag),
    Refusal("unverified", ("no integration run", "nox -s integration"), not_verified),
    Refusal("other-image", ("has not passed", "nox -s integration"), verified_other_image),
    Refusal(
        "hand-written",
        ("does not name the integration suite", "nox -s integration"),
        hand_written_verification,
    ),
    Refusal("built-elsewhere", ("not from HEAD",), built_elsewhere),
    Refusal("built-dirty", ("with uncommitted changes", "not from HEAD"), built_dirty),
    Refusal("no-credentials", ("no credentials for {registry}",), credentials={}),
    Refusal("no-signing-key", ("no signing key", "COSIGN_KEY", "--unsigned")),
    Refusal(
        "half-credentials",
        ("REGISTRY_USERNAME and REGISTRY_PASSWORD",),
        credentials={"REGISTRY_USERNAME": USERNAME},
    ),
    Refusal(
        "wrong-password",
        ("docker login {registry} failed", "401 Unauthorized"),
        credentials={"REGISTRY_USERNAME": USERNAME, "REGISTRY_PASSWORD": WRONG_PASSWORD},
    ),
    Refusal(
        "no-registry", ("docker login {registry} failed", "connection refused"), dead_registry=True
    ),
]
