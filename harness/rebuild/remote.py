"""What a registry serves under a reference, and the source its labels name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness import HarnessError
from harness.core.docker import Docker
from harness.image import build
from harness.rebuild.clean import Source
from harness.rebuild.compare import Identity
from harness.registry import (
    DIGEST,
    TAG,
    Credentials,
    Manifest,
    Registry,
    Skopeo,
    check_registry,
    login,
    run_skopeo,
    shown,
)

REVISION = "org.opencontainers.image.revision"
VERSION = "org.opencontainers.image.version"
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
_REFERENCE = re.compile(
    r"^(?P<registry>[^/]+)/(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class Served:
    """A registry image: what it is, and the source its labels name."""

    manifest_digest: str  # the image manifest the reference names (an index is refused)
    identity: Identity
    source: Source


def parse_reference(ref: str) -> tuple[str, str, str]:
    """``registry/repository:tag`` or ``...@sha256:...`` as (registry, repository, reference)."""
    match = _REFERENCE.match(ref)
    if match is None or not (match["tag"] or match["digest"]):
        raise HarnessError(
            f"{ref!r} is not a registry image reference: give host[:port]/repository:tag "
            "or host[:port]/repository@sha256:<digest>"
        )
    check_registry(match["registry"])
    return match["registry"], match["repository"], match["digest"] or match["tag"]


def credentials_from(env: Mapping[str, str]) -> Credentials | None:
    """Read access: REGISTRY_USERNAME and REGISTRY_PASSWORD when set, else anonymous."""
    username, password = env.get("REGISTRY_USERNAME", ""), env.get("REGISTRY_PASSWORD", "")
    return Credentials(username, password) if username and password else None


MAX_LAYERS = 1000  # far beyond what an engine stacks (overlayfs: 128); refused beyond


def read(ref: str, env: Mapping[str, str], docker: Docker, skopeo: Skopeo = run_skopeo) -> Served:
    """The image ``ref`` names, read with REGISTRY_USERNAME/PASSWORD's login, else docker's."""
    registry, repository, reference = parse_reference(ref)
    with login(registry, credentials_from(env), docker, env) as docker_env:
        reader = Registry.logged_in_as(registry, docker_env, skopeo)
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
    labels = _mapping(config.get("config"), ref, "config").get("Labels")
    labels = _mapping(labels, ref, "config.Labels")
    revision, version = _label(labels, REVISION), _label(labels, VERSION)
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        raise HarnessError(
            f"{ref} names no commit (label {REVISION}='{shown(revision, 60)}'); "
            "only images built from a clean commit can be verified"
        )
    if not TAG.fullmatch(version):
        # The version becomes the rebuild's tag, and that a field of buildx's --output.
        raise HarnessError(
            f"{ref} names no version a tag can carry (label {VERSION}='{shown(version, 60)}')"
        )
    base_name, base_digest = _label(labels, BASE_NAME), _label(labels, BASE_DIGEST)
    base_image, _, pinned = base_name.partition("@")
    if not DIGEST.fullmatch(base_digest) or pinned not in ("", base_digest):
        raise HarnessError(f"{ref} does not name its base image by digest; it cannot be rebuilt")
    if not build.is_image_name(base_image):
        # It reaches docker's argv and the terminal: only a docker image name passes.
        raise HarnessError(
            f"{ref} names a base image that is not a docker image name "
            f"(label {BASE_NAME}='{shown(base_name, 60)}')"
        )
    rootfs = _mapping(config.get("rootfs"), ref, "rootfs")
    diff_ids = rootfs.get("diff_ids") or []
    if (
        not isinstance(diff_ids, list)
        or len(diff_ids) > MAX_LAYERS
        or not all(isinstance(d, str) and DIGEST.fullmatch(d) for d in diff_ids)
    ):
        raise HarnessError(f"{ref}'s config has no list of sha256 layer digests (rootfs.diff_ids)")
    # A registry may re-encode the manifest: the config and the layers are the image.
    identity = Identity("", config_digest, diff_ids, config)
    return Served(manifest.digest, identity, Source(revision, version, base_image, base_digest))


def platform_image(index: Manifest) -> str:
    """The digest of an index's linux/amd64 entry, for the refusal to name; "?" without one."""
    entries = index.body.get("manifests")
    for entry in entries if isinstance(entries, list) else []:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(platform, dict) and (platform.get("os"), platform.get("architecture")) == (
            "linux",
            "amd64",
        ):
            digest = entry.get("digest")
            return digest if isinstance(digest, str) and DIGEST.fullmatch(digest) else "?"
    return "?"


def _mapping(value: object, ref: str, what: str) -> dict[str, Any]:
    """A config field that must be an object when present (absent reads as empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HarnessError(f"{ref}'s config is malformed: {what} is not an object")
    return value


def _label(labels: Mapping[str, Any], key: str) -> str:
    value = labels.get(key, "")
    return value if isinstance(value, str) else ""
