"""What an image is (a record, or what a registry serves and the source its labels name), and
how a rebuild differs from it: identity first, then the layers and files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from harness import HarnessError
from harness import registry as reg
from harness.core import references as names
from harness.core.docker import Docker
from harness.image import archive, build

MAX_FILES = 25  # file lines shown per differing layer
MAX_CONFIG_LINES = 25  # config field lines shown


@dataclass(frozen=True)
class Source:
    """What an image says it was built from: enough to build it again."""

    commit: str
    version: str
    base_image: str
    base_digest: str


@dataclass(frozen=True)
class Identity:
    """What makes an image that image: its manifest (the image ID), config and layers."""

    image_id: str  # "" where unknown (a legacy archive, a registry that re-encodes)
    config_digest: str
    diff_ids: list[str]
    config: dict[str, Any] | None = None


def differences(
    expected: Identity, rebuilt: archive.ImageArchive, original: archive.ImageArchive | None = None
) -> list[str]:
    """Empty when the rebuild is the image; else lines a developer can act on."""
    lines: list[str] = []
    if expected.image_id and rebuilt.manifest_digest != expected.image_id:
        lines.append(f"image ID: {expected.image_id} -> {rebuilt.manifest_digest}")
    if rebuilt.config_digest != expected.config_digest:
        lines.append(f"config: {expected.config_digest} -> {rebuilt.config_digest}")
        if expected.config is not None:
            lines += [f"  config {x}" for x in config_changes(expected.config, rebuilt.config)]
    count = max(len(expected.diff_ids), len(rebuilt.diff_ids))
    pairs = zip_longest(expected.diff_ids, rebuilt.diff_ids, fillvalue="(none)")
    for index, (want, got) in enumerate(pairs, 1):
        if want != got:
            lines.append(f"layer {index} of {count}: {want} -> {got}")
            lines += [f"  {line}" for line in layer_changes(original, want, rebuilt, got)]
    return lines


def layer_changes(
    original: archive.ImageArchive | None, want: str, rebuilt: archive.ImageArchive, got: str
) -> list[str]:
    if original is None or want not in original.diff_ids or got not in rebuilt.diff_ids:
        return ["(the files cannot be compared: no local copy of the original layer)"]
    with archive.open_layer(original, want) as before, archive.open_layer(rebuilt, got) as after:
        changed = archive.differing_files(
            archive.layer_entries(before), archive.layer_entries(after)
        )
    more = [f"... and {len(changed) - MAX_FILES} more files"] if len(changed) > MAX_FILES else []
    return changed[:MAX_FILES] + more


def config_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The config's fields (rootfs aside) that differ, as dotted paths; untrusted, so escaped,
    short, and at most MAX_CONFIG_LINES of them."""
    old, new = _flatten(before), _flatten(after)
    keys = sorted(old.keys() | new.keys())
    changed = [k for k in keys if not k.startswith("rootfs.") and old.get(k) != new.get(k)]
    none, shown = "(none)", names.shown
    lines = [
        f"{shown(key, 120)}: {shown(old.get(key, none))} -> {shown(new.get(key, none))}"
        for key in changed[:MAX_CONFIG_LINES]
    ]
    if len(changed) > MAX_CONFIG_LINES:
        lines.append(f"... and {len(changed) - MAX_CONFIG_LINES} more fields")
    return lines


def _flatten(value: object) -> dict[str, object]:
    """Leaves by dotted path; a loop, not recursion: a config may nest as deep as JSON lets it."""
    flat: dict[str, object] = {}
    pending: list[tuple[str, object]] = [("", value)]
    while pending:
        prefix, item = pending.pop()
        if isinstance(item, dict | list):
            items = item.items() if isinstance(item, dict) else enumerate(item)
            pending += [(f"{prefix}{key}.", child) for key, child in items]
        else:
            flat[prefix.removesuffix(".")] = item
    return flat


BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
LINUX_AMD64 = {"os": "linux", "architecture": "amd64"}
MAX_LAYERS = 1000  # far beyond what an engine stacks (overlayfs: 128); refused beyond


@dataclass(frozen=True)
class Served:
    """A registry image: what it is, and the source its labels name."""

    manifest_digest: str  # the image manifest the reference names (an index is refused)
    identity: Identity
    source: Source


def parse_reference(ref: str) -> tuple[str, str, str]:
    """``registry/repository:tag`` or ``...@sha256:...`` as (registry, repository, reference)."""
    name, at, digest = ref.partition("@")
    registry, _, path = name.partition("/")
    repository, _, tag = path.partition(":")
    if not (reg.TAG.fullmatch(tag) if tag else at) or (at and not names.DIGEST.fullmatch(digest)):
        raise HarnessError(
            f"'{names.shown(ref)}' is not a registry image reference: give "
            "host[:port]/repository:tag or host[:port]/repository@sha256:<digest>"
        )
    names.check_registry(registry)
    names.check_repository(registry, repository)
    return registry, repository, digest or tag


def read(
    ref: str, env: Mapping[str, str], docker: Docker, skopeo: reg.Skopeo = reg.run_skopeo
) -> Served:
    """The image ``ref`` names, read with REGISTRY_USERNAME/PASSWORD's login, else docker's."""
    registry, repository, reference = parse_reference(ref)
    username, password = env.get("REGISTRY_USERNAME", ""), env.get("REGISTRY_PASSWORD", "")
    credentials = reg.Credentials(username, password) if username and password else None
    with reg.login(registry, credentials, docker, env) as docker_env:
        reader = reg.Registry.logged_in_as(registry, docker_env, skopeo)
        manifest = reader.manifest(repository, reference)
        if manifest is None:
            raise HarnessError(f"registry {registry} has no manifest {reference} in {repository}")
        if manifest.is_index:
            # A rebuild of one platform's image says nothing about the index or its other entries.
            raise HarnessError(
                f"{ref} is an image index ({manifest.digest}); a rebuild checks one image, not "
                "the index nor its other entries: verify its linux/amd64 image itself, "
                f"{registry}/{repository}@{platform_image(manifest)}"
            )
        config_digest, config = reader.config(repository, manifest)
    labels = _mapping(
        _mapping(config.get("config"), ref, "config").get("Labels"), ref, "config.Labels"
    )
    label = {
        key: value if isinstance(value := labels.get(key, ""), str) else ""
        for key in (reg.REVISION_LABEL, reg.VERSION_LABEL, BASE_NAME, BASE_DIGEST)
    }
    revision, version = label[reg.REVISION_LABEL], label[reg.VERSION_LABEL]
    base_name, base_digest = label[BASE_NAME], label[BASE_DIGEST]
    base_image, _, pinned = base_name.partition("@")
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        raise HarnessError(
            f"{ref} names no commit (label {reg.REVISION_LABEL}='{names.shown(revision, 60)}'); "
            "only images built from a clean commit can be verified"
        )
    if not reg.TAG.fullmatch(version):  # it becomes the rebuild's tag, a field of buildx's --output
        raise HarnessError(
            f"{ref} names no version a tag can carry "
            f"(label {reg.VERSION_LABEL}='{names.shown(version, 60)}')"
        )
    if not names.DIGEST.fullmatch(base_digest) or pinned not in ("", base_digest):
        raise HarnessError(f"{ref} does not name its base image by digest; it cannot be rebuilt")
    if not build.is_image_name(base_image):  # it reaches docker's argv and the terminal
        raise HarnessError(
            f"{ref} names a base image that is not a docker image name "
            f"(label {BASE_NAME}='{names.shown(base_name, 60)}')"
        )
    diff_ids = _mapping(config.get("rootfs"), ref, "rootfs").get("diff_ids") or []
    if (
        not isinstance(diff_ids, list)
        or len(diff_ids) > MAX_LAYERS
        or not all(isinstance(d, str) and names.DIGEST.fullmatch(d) for d in diff_ids)
    ):
        raise HarnessError(f"{ref}'s config has no list of sha256 layer digests (rootfs.diff_ids)")
    # A registry may re-encode the manifest: the config and the layers are the image.
    identity = Identity("", config_digest, diff_ids, config)
    return Served(manifest.digest, identity, Source(revision, version, base_image, base_digest))


def platform_image(index: reg.Manifest) -> str:
    """The digest of an index's linux/amd64 entry, for the refusal to name; "?" without one."""
    entries = index.body.get("manifests")
    for entry in entries if isinstance(entries, list) else []:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(platform, dict) and LINUX_AMD64.items() <= platform.items():
            digest = entry.get("digest")
            return digest if isinstance(digest, str) and names.DIGEST.fullmatch(digest) else "?"
    return "?"


def _mapping(value: object, ref: str, what: str) -> dict[str, Any]:
    """A config field that must be an object when present (absent reads as empty)."""
    if value is not None and not isinstance(value, dict):
        raise HarnessError(f"{ref}'s config is malformed: {what} is not an object")
    return value or {}
