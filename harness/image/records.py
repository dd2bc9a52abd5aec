"""dist/image.json (which image ``nox -s image`` built from which commit) and dist/verified.json
(``nox -s integration`` passed against that image ID): the push trusts nothing else."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.core.untrusted import parse_json

DIST = Path("dist")
# The suite a verification record names by its tree hash: what passed, not only that it did.
INTEGRATION_SUITE = "integration"


def image_record_path(root: Path) -> Path:
    return root / DIST / "image.json"


def verified_record_path(root: Path) -> Path:
    return root / DIST / "verified.json"


def image_archive_path(root: Path) -> Path:  # a reproducible build's: what `repro` compares with
    return root / DIST / "image.tar"


@dataclass(frozen=True)
class ImageRecord:
    """What `nox -s image` built: the local image ID, and the digests a registry will show
    (``config_digest`` as a manifest's ``config.digest``, and ``diff_ids``)."""

    image_id: str
    tags: list[str]
    version: str
    commit: str
    revision: str
    base_image: str
    size: int
    base_size: int
    config_digest: str
    diff_ids: list[str]  # the layers' digests, uncompressed, base first
    base_digest: str  # what base_image named when the image was built
    builder: str  # engine and BuildKit versions: inputs of the build like the lock
    reproducible: bool  # built so that a rebuild of the commit gives the same image
    runtime_base: str = ""  # the image of the runtime-base stage it was built FROM, if any
    # What a provisioned base was made from (Debian suite, archive date); empty for a pulled one.
    base_origin: dict[str, str] = field(default_factory=dict)
    build_cache: str = ""  # the DEATHSTAR_BUILD_CACHE repository the build read, if any

    def summary(self) -> str:
        mb = 1_000_000
        return (
            f"{self.image_id[:19]} {' '.join(self.tags)}: {self.size / mb:.1f} MB, "
            f"{(self.size - self.base_size) / mb:.1f} MB over {self.base_image}"
        )


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path, *, missing: str) -> dict[str, Any]:
    """The JSON object at ``path``; ``missing`` says why there is none and what to run."""
    try:
        data = parse_json(path.read_bytes())
    except FileNotFoundError:
        raise HarnessError(missing) from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path} is corrupt; {missing.split(';', 1)[-1].strip()}")
    return data


def save_image_record(record: ImageRecord, path: Path) -> None:
    write_json(path, asdict(record))


def load_image_record(path: Path) -> ImageRecord:
    data = read_json(path, missing=f"no image recorded in {path}; run `nox -s image` first")
    try:
        return ImageRecord(**data)
    except TypeError:
        raise HarnessError(f"{path} is not an image record; run `nox -s image` again") from None


def record_verification(record: ImageRecord, head: str, path: Path, integration_tree: str) -> None:
    if record.commit != head:
        raise HarnessError(
            f"the image was built at {record.commit[:7]} but HEAD is {head[:7]}; "
            "run `nox -s image integration` again"
        )
    verified_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"image_id": record.image_id, "commit": record.commit, "revision": record.revision}
    write_json(path, {**fields, "integration_tree": integration_tree, "verified_at": verified_at})


def load_verification(path: Path) -> dict[str, Any]:
    return read_json(path, missing="no integration run is recorded; run `nox -s integration` first")
