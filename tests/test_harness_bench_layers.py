"""harness.bench.images: the sizes of layers in a `docker save` archive, as a push sends them."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from harness import HarnessError
from harness.bench import images
from tests.archives import add_member as _add
from tests.archives import save_archive


def test_a_plain_layer_is_counted_raw_and_gzip_compressed() -> None:
    data = b"deathstar " * 5000
    raw, packed = images.layer_sizes(io.BufferedReader(io.BytesIO(data)))
    assert raw == len(data)
    assert packed == len(gzip.compress(data, compresslevel=6))


@pytest.mark.parametrize("oci", [False, True])
def test_measure_saved_sizes_the_wanted_layers(tmp_path: Path, oci: bool) -> None:
    layers = {"sha256:aa": b"a" * 3000, "sha256:bb": b"b" * 700, "sha256:cc": b"c" * 10}
    archive = save_archive(tmp_path / "save.tar", layers, oci=oci)
    measured = images.measure_saved(archive, ["sha256:bb", "sha256:cc"])
    assert [raw for raw, _ in measured] == [700, 10]
    assert all(packed > 0 for _, packed in measured)


def test_measure_saved_follows_linked_layers(tmp_path: Path) -> None:
    layers = {"sha256:aa": b"a" * 1000, "sha256:dd": b""}
    archive = save_archive(tmp_path / "save.tar", layers, link_last=True)
    assert images.measure_saved(archive, ["sha256:dd"])[0][0] == 1000


def test_measure_saved_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    archive = save_archive(tmp_path / "save.tar", {"sha256:aa": b"a"})
    with pytest.raises(HarnessError, match="has no layer sha256:zz"):
        images.measure_saved(archive, ["sha256:zz"])
    broken = tmp_path / "broken.tar"
    with tarfile.open(broken, "w") as tar:
        _add(tar, "manifest.json", b"[]")
    with pytest.raises(HarnessError, match="is not an image archive"):
        images.measure_saved(broken, [])
    uneven = tmp_path / "uneven.tar"
    with tarfile.open(uneven, "w") as tar:
        _add(tar, "c.json", json.dumps({"rootfs": {"diff_ids": ["sha256:a", "sha256:b"]}}).encode())
        _add(tar, "manifest.json", json.dumps([{"Config": "c.json", "Layers": ["x"]}]).encode())
    with pytest.raises(HarnessError, match="1 layer files for 2 diff IDs"):
        images.measure_saved(uneven, [])
    directory = tmp_path / "dir.tar"
    with tarfile.open(directory, "w") as tar:
        tar.addfile(_dir("layer"))
        _add(tar, "c.json", json.dumps({"rootfs": {"diff_ids": ["sha256:a"]}}).encode())
        _add(tar, "manifest.json", json.dumps([{"Config": "c.json", "Layers": ["layer"]}]).encode())
    with pytest.raises(HarnessError, match="is not a file"):
        images.measure_saved(directory, ["sha256:a"])
    nameless = tmp_path / "nameless.tar"
    with tarfile.open(nameless, "w") as tar:
        tar.addfile(_dir("manifest.json"))
    with pytest.raises(HarnessError, match=r"has no file manifest\.json"):
        images.measure_saved(nameless, [])


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_a_compressed_layer_is_measured_as_it_travels(tmp_path: Path) -> None:
    # The containerd image store saves layers as the gzip blobs it pushes: the pushed size is
    # the blob's own, the tarball's size is what it unpacks to.
    tarball = b"deathstar " * 5000
    blob = gzip.compress(tarball, mtime=0)
    archive = save_archive(tmp_path / "save.tar", {"sha256:aa": blob}, oci=True)
    assert images.measure_saved(archive, ["sha256:aa"]) == [(len(tarball), len(blob))]
