"""Image tags for a release, following docker/metadata-action's semver rules.

For a git tag ``v1.2.3``: ``1.2.3``, ``1.2``, ``1``, ``sha-<7 hex>``, and ``latest`` only when
this is a stable release and the highest stable version among the repository's release tags.
A ``0.x`` release gets no bare major tag; a pre-release gets only its own tag and ``sha-``.
Build metadata (``+build.5``) is ignored for precedence, and docker tags cannot hold ``+``, so
it is sanitised to ``-`` as metadata-action does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness import HarnessError

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
    if not release.stable:
        return tags
    tags.append(f"{release.major}.{release.minor}")
    if release.major > 0:
        tags.append(str(release.major))
    highest = max((r.core for r in release_tags(repo_tags) if r.stable), default=release.core)
    if release.core >= highest:
        tags.append("latest")
    return tags
