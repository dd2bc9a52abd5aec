"""The SLSA Provenance v1 predicate (cosign's ``slsaprovenance1``) of the released image.

It says what the records and the checkout say: the release tag and its commit, the hashes of
the lock and its exports, the base image's digest, the builder's versions, the image record
and the verification ``nox -s integration`` recorded. Nothing in it is a clock of the push.
The tests check it against in-toto's own model of the format (in-toto-attestation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.core import locks
from harness.image import records

BUILD_TYPE = "https://github.com/tea-n-tech/deathstar/blob/main/noxfile.py#image"
LOCAL_BUILDER = "https://github.com/tea-n-tech/deathstar/blob/main/noxfile.py"
SOURCE = "https://github.com/tea-n-tech/deathstar"


def lock_digests(project: Path) -> dict[str, str]:
    """sha256 of uv.lock and of every requirements file exported from it, by repository path."""
    found = sorted([project / "uv.lock", *(project / "requirements").glob("*.txt")])
    found = [path for path in found if path.is_file()]
    return {
        str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in found
    }


def builder_id(env: Mapping[str, str]) -> str:
    """The release workflow at its ref on GitHub Actions; the harness's noxfile elsewhere."""
    workflow = env.get("GITHUB_WORKFLOW_REF", "")
    if workflow:
        return f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{workflow}"
    return LOCAL_BUILDER


def predicate(project: Path, version: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The provenance predicate for the image recorded (and verified) in ``project``'s dist/."""
    record = records.load_image_record(records.image_record_path(project))
    verified = records.load_verification(records.verified_record_path(project))
    source = str(
        locks.load_pyproject(project / "pyproject.toml")
        .get("project", {})
        .get("urls", {})
        .get("Source", SOURCE)
    )
    release = {"uri": f"git+{source}@refs/tags/v{version}", "digest": {"gitCommit": record.commit}}
    dependencies: list[dict[str, Any]] = [
        release,
        {"uri": f"docker-image:{record.base_image}", "digest": digest_of(record.base_digest)},
        *(
            {"uri": f"git+{source}@{record.commit}#{path}", "digest": {"sha256": digest}}
            for path, digest in lock_digests(project).items()
        ),
    ]
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "source": release,
                "entryPoint": "nox -s image integration",
                "baseImage": record.base_image,
                "version": version,
            },
            "internalParameters": {
                "builder": record.builder,
                "reproducible": record.reproducible,
                "imageRecord": asdict(record),
                "verified": verified,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {"builder": {"id": builder_id(env)}},
    }


def digest_of(digest: str) -> dict[str, str]:
    """``sha256:<hex>`` as an in-toto digest set."""
    algorithm, _, value = digest.partition(":")
    return {algorithm: value} if value else {}
