"""Image archives for tests: what `docker save` and BuildKit's docker exporter write."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def save_archive(
    path: Path,
    layers: Mapping[str, bytes],
    *,
    oci: bool = False,
    link_last: bool = False,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """A `docker save` archive: legacy layout (<n>/layer.tar) or OCI (blobs/sha256/<hex>)."""
    names = [
        f"blobs/sha256/{diff.removeprefix('sha256:')}" if oci else f"{n}/layer.tar"
        for n, diff in enumerate(layers)
    ]
    blob = json.dumps({**(config or {}), "rootfs": {"type": "layers", "diff_ids": list(layers)}})
    manifest = json.dumps([{"Config": "config.json", "Layers": names}]).encode()
    with tarfile.open(path, "w") as archive:
        for n, (name, data) in enumerate(zip(names, layers.values(), strict=True)):
            if link_last and n == len(names) - 1:
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, f"../{names[0]}"
                archive.addfile(info)
            else:
                add_member(archive, name, data)
        add_member(archive, "config.json", blob.encode())
        add_member(archive, "manifest.json", manifest)
    return path


def layer_tar(files: Mapping[str, bytes | str], *, mtime: int = 0) -> bytes:
    """A layer: regular files (bytes) and symlinks (str, the target), in this order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as layer:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                layer.addfile(info)
            else:
                info.size = len(content)
                layer.addfile(info, io.BytesIO(content))
    return out.getvalue()
