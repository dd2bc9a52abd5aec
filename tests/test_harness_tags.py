"""docker/metadata-action's semver rules as a table."""

from __future__ import annotations

import pytest

from harness import HarnessError
from harness.release.gates import Release, image_tags

SHA = "abcdef0123456789abcdef0123456789abcdef01"


@pytest.mark.parametrize(
    ("tag", "repo_tags", "expected"),
    [
        # stable and the highest: every tag including latest
        ("v1.2.3", ["v1.0.0", "v1.2.3"], ["1.2.3", "sha-abcdef0", "1.2", "1", "latest"]),
        # 0.x: no bare major tag
        ("v0.4.1", ["v0.4.0", "v0.4.1"], ["0.4.1", "sha-abcdef0", "0.4", "latest"]),
        # a patch of an older line while 2.0.0 exists: no latest
        ("v1.2.4", ["v1.2.4", "v2.0.0"], ["1.2.4", "sha-abcdef0", "1.2", "1"]),
        # pre-release: only its own tag and the sha, even when it is the newest tag
        ("v2.0.0-rc.1", ["v1.2.3", "v2.0.0-rc.1"], ["2.0.0-rc.1", "sha-abcdef0"]),
        # a pre-release of a higher version does not stop a stable release being latest
        ("v1.3.0", ["v1.3.0", "v2.0.0-rc.1"], ["1.3.0", "sha-abcdef0", "1.3", "1", "latest"]),
        # build metadata: sanitised own tag, ignored for precedence
        (
            "v1.2.3+build.5",
            ["v1.2.3+build.5"],
            ["1.2.3-build.5", "sha-abcdef0", "1.2", "1", "latest"],
        ),
        # a re-release of the highest version is still latest (idempotent push)
        (
            "v3.0.0",
            ["v3.0.0", "v3.0.0-rc.2", "not-a-release", "v2.9.9"],
            ["3.0.0", "sha-abcdef0", "3.0", "3", "latest"],
        ),
        # no release tags at all besides this one
        ("v0.1.0", [], ["0.1.0", "sha-abcdef0", "0.1", "latest"]),
        # backports: a floating tag moves only to the highest stable release of its line
        ("v1.2.4", ["v1.2.3", "v1.2.4", "v1.3.0"], ["1.2.4", "sha-abcdef0", "1.2"]),
        ("v1.2.4", ["v1.2.4", "v1.2.5", "v1.3.0"], ["1.2.4", "sha-abcdef0"]),
        ("v1.2.4", ["v1.2.4", "v1.2.5"], ["1.2.4", "sha-abcdef0"]),
        ("v1.2.4", ["v1.2.4", "v1.3.0", "v2.0.0"], ["1.2.4", "sha-abcdef0", "1.2"]),
        ("v1.3.1", ["v1.3.1", "v1.2.9", "v2.0.0"], ["1.3.1", "sha-abcdef0", "1.3", "1"]),
        ("v0.4.2", ["v0.4.2", "v0.5.0"], ["0.4.2", "sha-abcdef0", "0.4"]),
        # pre-releases of the line do not hold its floating tags back
        (
            "v1.2.4",
            ["v1.2.4", "v1.2.5-rc.1", "v1.3.0-beta"],
            ["1.2.4", "sha-abcdef0", "1.2", "1", "latest"],
        ),
        # a pre-release backport still gets only its own tag and the sha
        ("v1.2.5-rc.1", ["v1.2.4", "v1.2.5-rc.1"], ["1.2.5-rc.1", "sha-abcdef0"]),
    ],
)
def test_image_tags(tag: str, repo_tags: list[str], expected: list[str]) -> None:
    release = Release.parse(tag)
    assert release is not None
    assert image_tags(release, SHA, repo_tags) == expected


@pytest.mark.parametrize(
    "tag", ["1.2.3", "v1.2", "v01.2.3", "v1.2.3-", "v1.2.3+", "v1.2.3-01", "release-1", "v1.2.3 "]
)
def test_non_release_tags_do_not_parse(tag: str) -> None:
    assert Release.parse(tag) is None


def test_parse_fields() -> None:
    assert Release.parse("v10.20.30-alpha.1+exp.sha.5114f85") == Release(
        (10, 20, 30), "alpha.1", "exp.sha.5114f85"
    )


def test_a_version_too_long_for_a_docker_tag_is_refused() -> None:
    release = Release.parse("v1.0.0-" + "a" * 130)
    assert release is not None
    with pytest.raises(HarnessError, match="makes no docker tag"):
        image_tags(release, SHA, [])


def test_commit_must_be_a_sha() -> None:
    release = Release.parse("v1.0.0")
    assert release is not None
    with pytest.raises(HarnessError, match="is not a git commit sha"):
        image_tags(release, "HEAD", [])
