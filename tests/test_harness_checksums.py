from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from harness.core import checksums


def test_sha256sums_is_sorted_and_in_sha256sum_format(tmp_path: Path) -> None:
    (tmp_path / "b.whl").write_bytes(b"wheel")
    (tmp_path / "a.tar.gz").write_bytes(b"sdist")
    text = checksums.sha256sums([tmp_path / "b.whl", tmp_path / "a.tar.gz"])
    assert text == (
        f"{hashlib.sha256(b'sdist').hexdigest()}  a.tar.gz\n"
        f"{hashlib.sha256(b'wheel').hexdigest()}  b.whl\n"
    )


def test_main_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact = tmp_path / "x.whl"
    artifact.write_bytes(b"\0" * (3 << 20))  # larger than one read chunk
    assert checksums.main([str(tmp_path), str(artifact)]) == 0
    expected = f"{hashlib.sha256(artifact.read_bytes()).hexdigest()}  x.whl\n"
    assert (tmp_path / "SHA256SUMS").read_text() == expected
    assert capsys.readouterr().out == expected


def test_main_without_files_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert checksums.main(["dist"]) == 2
    assert "usage:" in capsys.readouterr().err
