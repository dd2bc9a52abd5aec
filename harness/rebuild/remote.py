"""What a registry serves under a reference, and the source its labels name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from harness import HarnessError
from harness.rebuild.clean import Source
from harness.rebuild.compare import Identity
from harness.release.registry import Credentials, RegistryClient, check_registry

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

    manifest_digest: str  # what the reference names (an index, or the image's manifest)
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


def read(ref: str, env: Mapping[str, str]) -> Served:
    registry, repository, reference = parse_reference(ref)
    client = RegistryClient(registry, credentials_from(env))
    image = client.image(repository, reference)
    config = image.config
    labels = (config.get("config") or {}).get("Labels") or {}
    revision, version = str(labels.get(REVISION, "")), str(labels.get(VERSION, ""))
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        raise HarnessError(
            f"{ref} names no commit (label {REVISION}={revision[:60]!r}); "
            "only images built from a clean commit can be verified"
        )
    base_name, base_digest = str(labels.get(BASE_NAME, "")), str(labels.get(BASE_DIGEST, ""))
    base_image = base_name.split("@", 1)[0]
    if not base_image or not re.fullmatch(r"sha256:[0-9a-f]{64}", base_digest):
        raise HarnessError(f"{ref} does not name its base image by digest; it cannot be rebuilt")
    diff_ids = [str(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
    # A registry may re-encode the manifest: the config and the layers are the image.
    identity = Identity("", image.config_digest, diff_ids, config)
    return Served(
        image.manifest_digest, identity, Source(revision, version, base_image, base_digest)
    )
