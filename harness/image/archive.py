"""Reading an image archive (``docker save``'s, BuildKit's docker exporter's, legacy or OCI
layout): its config digest and diff IDs, which two archives of one image agree on."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness import HarnessError
from harness.core import checksums
from harness.core.untrusted import parse_json

# Bytes of one JSON member read into memory: real ones are a few KiB; registries allow 4 MiB.
JSON_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class ImageArchive:
    """The identity of the image in an archive: config digest, config and layers."""

    path: Path
    config_digest: str
    config: dict[str, Any]
    diff_ids: list[str]
    layer_members: list[str]  # archive member of each layer, in diff-ID order
    manifest_digest: str  # the image ID under the containerd store; "" in a legacy archive

    @property
    def labels(self) -> dict[str, str]:
        labels = (self.config.get("config") or {}).get("Labels") or {}
        return {str(k): str(v) for k, v in labels.items()}

    def member_of(self, diff_id: str) -> str:
        try:
            return self.layer_members[self.diff_ids.index(diff_id)]
        except ValueError:
            raise HarnessError(f"{self.path} has no layer {diff_id}") from None


def _read_member(archive: tarfile.TarFile, name: str, path: Path) -> bytes:
    try:
        handle = archive.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise HarnessError(f"{path} has no file {name}; is it an image archive?")
    with handle:
        data = handle.read(JSON_LIMIT + 1)
    if len(data) > JSON_LIMIT:
        raise HarnessError(f"{path}: {name} is over {JSON_LIMIT} bytes; not an image archive")
    return data


def read_archive(path: Path) -> ImageArchive:
    """The image in the archive at ``path`` (the first, if it holds several)."""
    try:
        with tarfile.open(path) as archive:
            manifest = parse_json(_read_member(archive, "manifest.json", path))
            entry = manifest[0]
            raw_config = _read_member(archive, entry["Config"], path)
            members = [str(m) for m in entry["Layers"]]
            manifest_digest = _manifest_digest(archive, path)
    except (OSError, tarfile.TarError) as exc:
        raise HarnessError(f"cannot read the image archive {path}: {exc}") from None
    except (KeyError, IndexError, TypeError):  # unreadable JSON is None: a TypeError here
        raise HarnessError(f"{path} is not an image archive (no usable manifest.json)") from None
    try:
        config = parse_json(raw_config)
        diff_ids = [str(d) for d in config["rootfs"]["diff_ids"]]
    except (KeyError, TypeError):
        raise HarnessError(f"{path}: the image config is not readable") from None
    if len(diff_ids) != len(members):
        raise HarnessError(f"{path}: {len(members)} layer files for {len(diff_ids)} diff IDs")
    config_digest = f"sha256:{hashlib.sha256(raw_config).hexdigest()}"
    return ImageArchive(path, config_digest, config, diff_ids, members, manifest_digest)


def _manifest_digest(archive: tarfile.TarFile, path: Path) -> str:
    """The digest of the OCI layout's first manifest, checked against its bytes."""
    try:
        archive.getmember("index.json")
    except KeyError:
        return ""  # a legacy `docker save` archive has no index
    index = parse_json(_read_member(archive, "index.json", path))
    digest = str(index["manifests"][0]["digest"])
    blob = _read_member(archive, f"blobs/sha256/{digest.removeprefix('sha256:')}", path)
    if f"sha256:{hashlib.sha256(blob).hexdigest()}" != digest:
        raise HarnessError(f"{path}: the manifest does not match its digest {digest}")
    return digest


@contextmanager
def open_layer(image: ImageArchive, diff_id: str) -> Iterator[IO[bytes]]:
    """The stored tar stream of one layer (possibly compressed: readers auto-detect)."""
    with tarfile.open(image.path) as archive:
        # extractfile follows the links the legacy layout uses for repeated layers.
        handle = archive.extractfile(image.member_of(diff_id))
        if handle is None:
            raise HarnessError(f"{image.path}: layer {diff_id} is not a file")
        with handle:
            yield handle


FIELDS = ("kind", "mode", "owner", "size", "mtime", "content")
KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
}  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One file of a layer as far as its bytes in the layer go."""

    kind: str
    mode: int
    owner: str
    size: int
    mtime: int
    content: str  # sha256 of a file's bytes, a link's target, or ""


def layer_entries(stream: IO[bytes]) -> dict[str, Entry]:
    """Every entry of a layer tar stream, by path, with what makes its bytes."""
    entries: dict[str, Entry] = {}
    with tarfile.open(fileobj=stream, mode="r|*") as layer:
        for member in layer:
            handle = layer.extractfile(member) if member.isfile() else None
            content = member.linkname if member.issym() or member.islnk() else ""
            content = checksums.sha256_of(handle) if handle is not None else content
            entries[member.name.removeprefix("./")] = Entry(
                KINDS.get(member.type, f"type {member.type!r}"), member.mode,
                f"{member.uid}:{member.gid}", member.size, int(member.mtime), content,
            )  # fmt: skip
    return entries


def differing_files(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """One line per path that is missing from one side or differs (``before -> after``)."""
    lines = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None or new is None:
            lines.append(f"{name}: only in the {'rebuild' if old is None else 'record'}")
        else:
            fields = [
                f"{field} {getattr(old, field)!s:.19} -> {getattr(new, field)!s:.19}"
                for field in FIELDS
                if getattr(old, field) != getattr(new, field)
            ]
            lines.append(f"{name}: {', '.join(fields)}")
    return lines
