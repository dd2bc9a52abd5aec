"""The v2 API operations: login check, tag list, manifests, an image's config; an index is
followed to its linux/amd64 entry, and every manifest and blob is checked against its digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from harness import HarnessError
from harness.release.registry.auth import AuthTransport
from harness.release.registry.names import DIGEST, TAG, check_repository, shown
from harness.release.registry.transport import CONFIG_LIMIT, Answer, json_object

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
PLATFORM = ("linux", "amd64")  # the platform the image is built for


def sha256(body: bytes) -> str:
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


def platform_entry(entries: object) -> str | None:
    """The digest of an index's linux/amd64 entry, or of its only entry; None if it names none."""
    listed = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    platform = [
        e
        for e in listed
        if isinstance(e.get("platform"), dict)
        and (e["platform"].get("os"), e["platform"].get("architecture")) == PLATFORM
    ]
    chosen = platform if len(platform) == 1 else listed if len(listed) == 1 else []
    digest = chosen[0].get("digest") if chosen else None
    return digest if isinstance(digest, str) and DIGEST.fullmatch(digest) else None


@dataclass(frozen=True)
class RemoteImage:
    """One image as a registry serves it, every part checked against its digest."""

    manifest_digest: str  # of the manifest the reference names: for an index, the index's
    image_digest: str  # of the linux/amd64 image manifest: the index's entry, or manifest_digest
    config_digest: str  # the image manifest's config.digest, the sha256 of the config's bytes
    config: dict[str, Any] = field(repr=False)  # the config JSON: config.Labels, rootfs.diff_ids


class RegistryClient(AuthTransport):
    """A registry's v2 API for one registry host; each public operation within its deadline."""

    def check_login(self, repository: str) -> None:
        """Refuse early, with nothing pushed, when the registry is down or refuses us."""
        self._bounded("answer /v2/", lambda: self._check_login(repository))

    def tags(self, repository: str) -> list[str]:
        return self._bounded("list tags", lambda: self._tags(repository))

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest of the manifest ``tag`` names (the sha256 of its bytes), or None."""
        found = self._bounded(f"read manifest {tag}", lambda: self._manifest(repository, tag))
        return None if found is None else found[0]

    def image_config(self, repository: str, tag: str) -> tuple[str, str, str] | None:
        """(manifest digest of ``tag``, digest of its linux/amd64 image manifest: the same
        unless ``tag`` names an index, ``config.digest`` of that image), or None."""
        return self._bounded(f"read manifest {tag}", lambda: self._image(repository, tag))

    def image(self, repository: str, reference: str) -> RemoteImage:
        """The linux/amd64 image ``reference`` (a tag or a sha256 digest) names, with its config.

        The config blob is read within the same bounds; a blob redirected to another host
        (a registry's storage) is fetched there without credentials.
        """
        check_repository(self.registry, repository)
        if not (TAG.fullmatch(reference) or DIGEST.fullmatch(reference)):
            raise HarnessError(f"'{shown(reference)}' is neither a tag nor a sha256 digest")
        return self._bounded(f"read image {reference}", lambda: self._remote(repository, reference))

    # --- the operations -------------------------------------------------------------------------

    def _check_login(self, repository: str) -> None:
        answer = self._send("GET", "/v2/", f"repository:{repository}:pull,push", what="answer /v2/")
        if answer.status in (401, 403):
            raise HarnessError(
                f"registry {self.registry} refused the credentials ({answer.status}); "
                "check REGISTRY_USERNAME and REGISTRY_PASSWORD"
            )
        if answer.status != 200:
            raise HarnessError(
                f"registry {self.registry} answered {answer.status} on /v2/; "
                "is it a container registry?"
            )

    def _tags(self, repository: str) -> list[str]:
        path = f"/v2/{repository}/tags/list"
        answer = self._send("GET", path, f"repository:{repository}:pull", what="list tags")
        if answer.status == 404:
            return []  # the repository does not exist yet
        self._expect_ok(answer, "list tags")
        tags = json_object(answer.body, f"registry {self.registry}'s tag list").get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise HarnessError(f"registry {self.registry}'s tag list is not a list of names")
        return sorted(tags)

    def _manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]] | None:
        """(sha256 of the manifest's bytes, the manifest) for a tag or digest; None if absent."""
        what = f"read manifest {reference}"
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Accept": MANIFEST_TYPES}
        answer = self._send("GET", path, f"repository:{repository}:pull", headers, what=what)
        if answer.status == 404:
            return None
        self._expect_ok(answer, what)
        digest = sha256(answer.body)
        claimed = answer.headers.get("Docker-Content-Digest", digest)
        if claimed.startswith("sha256:") and claimed != digest:
            raise HarnessError(
                f"registry {self.registry} answered manifest {reference} with bytes that do not "
                f"match its Docker-Content-Digest {shown(claimed)}"
            )
        manifest = json_object(answer.body, f"registry {self.registry}'s manifest {reference}")
        return digest, manifest

    def _image(self, repository: str, reference: str) -> tuple[str, str, str] | None:
        """(digest of what ``reference`` names, of its linux/amd64 image manifest, of that
        image's config), or None if the registry has no such manifest."""
        found = self._manifest(repository, reference)
        if found is None:
            return None
        digest, manifest = found
        if DIGEST.fullmatch(reference) and digest != reference:
            raise HarnessError(
                f"registry {self.registry} answered manifest {reference} with bytes whose "
                f"sha256 is {digest}"
            )
        image_digest = digest
        if "manifests" in manifest:  # an index / manifest list: follow the platform's image
            entry = platform_entry(manifest.get("manifests"))
            if entry is None:
                raise HarnessError(
                    f"registry {self.registry}'s index {reference} names no single "
                    f"{'/'.join(PLATFORM)} image by sha256 digest"
                )
            image = self._manifest(repository, entry)
            if image is None or image[0] != entry:
                raise HarnessError(
                    f"registry {self.registry} does not serve {entry}, which index {reference} "
                    "names"
                )
            image_digest, manifest = image
        config = manifest.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str) or not DIGEST.fullmatch(config_digest):
            raise HarnessError(
                f"registry {self.registry}'s manifest {reference} names no sha256 config digest"
            )
        return digest, image_digest, config_digest

    def _remote(self, repository: str, reference: str) -> RemoteImage:
        found = self._image(repository, reference)
        if found is None:
            raise HarnessError(
                f"registry {self.registry} has no manifest {reference} in {repository}"
            )
        digest, image_digest, config_digest = found
        config = self._config(repository, config_digest)
        return RemoteImage(digest, image_digest, config_digest, config)

    def _config(self, repository: str, digest: str) -> dict[str, Any]:
        """The config blob ``digest`` names, checked against it; storage may be elsewhere."""
        what = f"read config {digest}"
        path = f"/v2/{repository}/blobs/{digest}"
        scope = f"repository:{repository}:pull"
        answer = self._send("GET", path, scope, what=what, limit=CONFIG_LIMIT, elsewhere=True)
        self._expect_ok(answer, what)
        if sha256(answer.body) != digest:
            raise HarnessError(
                f"registry {self.registry} answered config {digest} with bytes whose sha256 is "
                f"{sha256(answer.body)}; refusing it"
            )
        return json_object(answer.body, f"registry {self.registry}'s config {digest}")

    def _expect_ok(self, answer: Answer, what: str) -> None:
        if answer.status != 200:
            raise HarnessError(f"registry {self.registry} could not {what}: {answer.status}")
