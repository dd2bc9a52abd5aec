"""Which layers of an image are new after a change, and how many bytes a registry receives.

A registry stores layers by digest: a push uploads only layers it does not have. After a
rebuild, the layers to upload are those whose diff-id (``docker image inspect --format
'{{json .RootFS.Layers}}'``) the previous image did not have. Their sizes come from ``docker
save``: its ``manifest.json`` lists the layer tarballs in the order of the config's
``rootfs.diff_ids``, in both the legacy layout (``<id>/layer.tar``) and the OCI layout that
newer engines write (``blobs/sha256/<digest>``). Docker pushes layers gzip-compressed, so the
gzip size is what travels: the stored blob itself where the engine keeps layers compressed (the
containerd image store), else the tarball at gzip level 6, Docker's default.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.image import archive

GZIP_LEVEL = 6
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20


def new_layers(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """The diff-ids of ``after`` that ``before`` lacks, in order, each once."""
    known = set(before)
    fresh: list[str] = []
    for layer in after:
        if layer not in known and layer not in fresh:
            fresh.append(layer)
    return fresh


@dataclass(frozen=True)
class LayerBytes:
    """One layer's tarball size and the size of its gzip compression."""

    diff_id: str
    size: int
    gzip_size: int


def stream_sizes(stream: IO[bytes]) -> tuple[int, int]:
    """Bytes read from ``stream`` and the size of their gzip compression."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    raw = packed = 0
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        raw += len(chunk)
        packed += len(compressor.compress(chunk))
    return raw, packed + len(compressor.flush())


def gzip_stream_sizes(stream: IO[bytes]) -> tuple[int, int]:
    """A gzip-compressed layer: its tarball's size, and its own size (what is pushed)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    raw = packed = 0
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        packed += len(chunk)
        raw += len(decompressor.decompress(chunk))
    return raw + len(decompressor.flush()), packed


def measure_saved(path: Path, wanted: Iterable[str]) -> list[LayerBytes]:
    """Sizes of the ``wanted`` layers (diff-ids) in the ``docker save`` archive at ``path``."""
    image = archive.read_archive(path)
    measured = []
    for layer in wanted:
        with archive.open_layer(image, layer) as handle:
            gzipped = handle.peek(2)[:2] == GZIP_MAGIC  # type: ignore[attr-defined]
            sizes = gzip_stream_sizes(handle) if gzipped else stream_sizes(handle)
            measured.append(LayerBytes(layer, *sizes))
    return measured
