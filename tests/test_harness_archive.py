"""Image archives: identity (config digest, diff IDs, labels) and what differs inside layers."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from harness import HarnessError
from harness.image import archive
from tests.archives import add_member, layer_tar, save_archive


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def image(path: Path, *layers: bytes, labels: dict[str, str] | None = None) -> Path:
    config = {"config": {"Labels": labels or {}}}
    return save_archive(path, {digest(layer): layer for layer in layers}, config=config, oci=True)


def test_read_archive_gives_the_identity_a_registry_shows(tmp_path: Path) -> None:
    base = layer_tar({"etc/os-release": b"bookworm"})
    app = layer_tar({"opt/venv/app.py": b"print(1)"})
    saved = archive.read_archive(image(tmp_path / "a.tar", base, app, labels={"x": "1"}))
    assert saved.diff_ids == [digest(base), digest(app)]
    assert saved.labels == {"x": "1"}
    with tarfile.open(saved.path) as tar:
        config = tar.extractfile("config.json")
        assert config is not None
        assert saved.config_digest == digest(config.read())
    # another label, the same layers: another config, so another identity
    other = archive.read_archive(image(tmp_path / "b.tar", base, app, labels={"x": "2"}))
    assert other.diff_ids == saved.diff_ids
    assert other.config_digest != saved.config_digest


def test_differing_files_names_each_file_and_what_differs(tmp_path: Path) -> None:
    before = layer_tar({"a": b"same", "b": b"old", "link": "a", "gone": b"x"})
    after = layer_tar({"a": b"same", "b": b"new!", "link": "b", "new": b"y"}, mtime=7)
    old = archive.read_archive(image(tmp_path / "old.tar", before))
    new = archive.read_archive(image(tmp_path / "new.tar", after))
    with archive.open_layer(old, old.diff_ids[0]) as stream:
        old_entries = archive.layer_entries(stream)
    with archive.open_layer(new, new.diff_ids[0]) as stream:
        new_entries = archive.layer_entries(stream)
    lines = archive.differing_files(old_entries, new_entries)
    assert lines[0] == "a: mtime 0 -> 7"
    assert lines[1].startswith("b: size 3 -> 4, mtime 0 -> 7, content ")
    assert lines[2:] == [
        "gone: only in the record",
        "link: mtime 0 -> 7, content a -> b",
        "new: only in the rebuild",
    ]
    assert archive.differing_files(old_entries, old_entries) == []
    assert (old_entries["a"].kind, old_entries["a"].mode) == ("file", 0o644)


def test_unreadable_archives_are_one_line(tmp_path: Path) -> None:
    not_tar = tmp_path / "x.tar"
    not_tar.write_text("hello")
    with pytest.raises(HarnessError, match="cannot read the image archive"):
        archive.read_archive(not_tar)
    with pytest.raises(HarnessError, match="cannot read the image archive"):
        archive.read_archive(tmp_path / "missing.tar")
    bad_config = tmp_path / "bad.tar"
    with tarfile.open(bad_config, "w") as tar:
        add_member(tar, "c.json", b"[1]")
        add_member(tar, "manifest.json", json.dumps([{"Config": "c.json", "Layers": []}]).encode())
    with pytest.raises(HarnessError, match="the image config is not readable"):
        archive.read_archive(bad_config)
    saved = archive.read_archive(image(tmp_path / "ok.tar", layer_tar({"a": b"1"})))
    with pytest.raises(HarnessError, match="has no layer sha256:nope"):
        saved.member_of("sha256:nope")


class Bounded(io.RawIOBase):
    """``size`` bytes of spaces (valid JSON whitespace), made as they are read."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = b" " * count
        self.left -= count
        return count


@pytest.mark.parametrize("member", ["manifest.json", "c.json", "index.json"])
def test_an_oversized_json_member_is_refused(tmp_path: Path, member: str) -> None:
    # A hostile archive: a JSON member over any real one is not read into memory whole.
    big = archive.JSON_LIMIT + 1024
    path = tmp_path / "big.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in [
            ("c.json", b'{"rootfs": {"diff_ids": []}}'),
            ("manifest.json", json.dumps([{"Config": "c.json", "Layers": []}]).encode()),
            ("index.json", b'{"manifests": []}'),
        ]:
            if name != member:
                add_member(tar, name, data)
        info = tarfile.TarInfo(member)
        info.size = big
        tar.addfile(info, io.BufferedReader(Bounded(big)))
    with pytest.raises(HarnessError, match=f"{member} is over {archive.JSON_LIMIT} bytes"):
        archive.read_archive(path)


def test_a_deeply_nested_manifest_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.tar"
    with tarfile.open(path, "w") as tar:
        add_member(tar, "manifest.json", b"[" * 100_000)
    with pytest.raises(HarnessError, match="not an image archive"):
        archive.read_archive(path)


HUGE = "1" + "0" * 5000  # more digits than CPython converts to an int


@pytest.mark.parametrize(
    "members",
    [
        {"manifest.json": f'[{{"Config": "c.json", "Layers": [], "n": {HUGE}}}]'},
        {
            "manifest.json": '[{"Config": "c.json", "Layers": []}]',
            "c.json": f'{{"rootfs": {{"diff_ids": []}}, "n": {HUGE}}}',
        },
        {
            "manifest.json": '[{"Config": "c.json", "Layers": []}]',
            "c.json": '{"rootfs": {"diff_ids": []}}',
            "index.json": f'{{"manifests": [], "n": {HUGE}}}',
        },
    ],
    ids=["manifest", "config", "index"],
)
def test_an_integer_python_will_not_convert_is_one_line(
    tmp_path: Path, members: dict[str, str]
) -> None:
    """PoC: more than 4,300 digits in a member raised CPython's ValueError, a traceback."""
    path = tmp_path / "huge.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            add_member(tar, name, data.encode())
    with pytest.raises(HarnessError, match=r"is not an image archive|config is not readable"):
        archive.read_archive(path)
