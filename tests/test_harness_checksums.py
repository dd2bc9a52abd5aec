from __future__ import annotations

import hashlib
from pathlib import Path

from harness.core import checksums


def test_sha256sums_is_sorted_and_in_sha256sum_format(tmp_path: Path) -> None:
    (tmp_path / "b.whl").write_bytes(b"wheel")
    (tmp_path / "a.tar.gz").write_bytes(b"sdist")
    text = checksums.sha256sums([tmp_path / "b.whl", tmp_path / "a.tar.gz"])
    assert text == (
        f"{hashlib.sha256(b'sdist').hexdigest()}  a.tar.gz\n"
        f"{hashlib.sha256(b'wheel').hexdigest()}  b.whl\n"
    )


def test_write_writes_the_file(tmp_path: Path) -> None:
    artifact = tmp_path / "x.whl"
    artifact.write_bytes(b"\0" * (3 << 20))  # larger than one read chunk
    expected = f"{hashlib.sha256(artifact.read_bytes()).hexdigest()}  x.whl\n"
    assert checksums.write(tmp_path, [artifact]) == expected
    assert (tmp_path / "SHA256SUMS").read_text() == expected
