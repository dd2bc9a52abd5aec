"""Image tags for a release, following docker/metadata-action's semver rules.

For a git tag ``v1.2.3``: ``1.2.3`` and ``sha-<7 hex>``, and the floating tags of a stable
release, each only when it is the highest stable release of the tag's line among the
repository's release tags: ``1.2`` (of 1.2.*), ``1`` (of 1.*.*), ``latest`` (of all). So a
backport (v1.2.4 while v1.3.0 exists) moves ``1.2`` but not ``1`` or ``latest``.
A ``0.x`` release gets no bare major tag; a pre-release gets only its own tag and ``sha-``.
Build metadata (``+build.5``) is ignored for precedence, and docker tags cannot hold ``+``, so
it is sanitised to ``-`` as metadata-action does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness import HarnessError
from harness.registry import TAG

# The regular expression semver.org suggests, with the leading "v" our git tags carry.
SEMVER_TAG = re.compile(
    r"^v(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@dataclass(frozen=True, order=False)
class Release:
    major: int
    minor: int
    patch: int
    pre: str | None
    build: str | None

    @classmethod
    def parse(cls, tag: str) -> Release | None:
        match = SEMVER_TAG.match(tag)
        if match is None:
            return None
        return cls(
            int(match["major"]),
            int(match["minor"]),
            int(match["patch"]),
            match["pre"],
            match["build"],
        )

    @property
    def stable(self) -> bool:
        return self.pre is None

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def version(self) -> str:
        """The semver string without the leading v."""
        text = ".".join(map(str, self.core))
        if self.pre:
            text += f"-{self.pre}"
        if self.build:
            text += f"+{self.build}"
        return text


def release_tags(repo_tags: list[str]) -> list[Release]:
    return [r for r in map(Release.parse, repo_tags) if r is not None]


def image_tags(release: Release, commit: str, repo_tags: list[str]) -> list[str]:
    """The tags to push, immutable ones first so that moving tags never point ahead of them."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        raise HarnessError(f"{commit!r} is not a git commit sha")
    tags = [release.version.replace("+", "-"), f"sha-{commit[:7]}"]
    if not TAG.fullmatch(tags[0]):
        raise HarnessError(f"v{release.version} makes no docker tag (at most 128 characters)")
    if not release.stable:
        return tags
    stable = [r.core for r in release_tags(repo_tags) if r.stable]

    def leads(line: int) -> bool:
        """Highest among the stable releases that share this one's first ``line`` numbers."""
        peers = [core for core in stable if core[:line] == release.core[:line]]
        return release.core >= max(peers, default=release.core)

    if leads(2):
        tags.append(f"{release.major}.{release.minor}")
    if release.major > 0 and leads(1):
        tags.append(str(release.major))
    if leads(0):
        tags.append("latest")
    return tags
