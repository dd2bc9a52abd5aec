"""The image SBOM: Debian packages and /opt/venv read from archive layers, composed, checked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness import HarnessError
from harness.core.docker import Docker
from harness.image import sbom
from harness.image.archive import read_archive
from harness.image.records import ImageRecord
from tests.archives import layer_tar, save_archive
from tests.fakedocker import FakeDocker

STATUS = """Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.2.13.dfsg-1
Description: compression library
 a continuation line: Package: not-a-package

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u10
"""
SITE = "opt/venv/lib/python3.11/site-packages"
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
CONFIG = "sha256:" + "c" * 64


def metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n".encode()


def record(**fields: Any) -> ImageRecord:
    base = ImageRecord(
        "sha256:" + "a" * 64, ["deathstar:0.1.0"], "0.1.0", "f" * 40, "f" * 40,
        "python:3.11-slim-bookworm", 2, 1, CONFIG, [], "sha256:" + "b" * 64, "docker 26", True,
    )  # fmt: skip
    return ImageRecord(**{**base.__dict__, **fields})


def image(tmp_path: Path, *top: Mapping[str, bytes | str]) -> Path:
    """A base layer with dpkg, an os-release link, a venv layer; then ``top`` layers."""
    layers = {
        "sha256:01": layer_tar(
            {
                "var/lib/dpkg/status": STATUS.encode(),
                "usr/lib/os-release": OS_RELEASE,
                "etc/os-release": "../usr/lib/os-release",
            }
        ),
        "sha256:02": layer_tar(
            {
                f"{SITE}/Typing_Extensions-4.16.0.dist-info/METADATA": metadata(
                    "Typing_Extensions", "4.16.0"
                ),
                f"{SITE}/deathstar-0.1.0.dist-info/METADATA": metadata("deathstar", "0.1.0"),
                f"{SITE}/typing_extensions.py": b"",
            }
        ),
    }
    for n, files in enumerate(top):
        layers[f"sha256:1{n}"] = layer_tar(files)
    return save_archive(tmp_path / "image.tar", layers)


def python_bom() -> dict[str, Any]:
    """What cyclonedx-py writes for a lock holding typing-extensions alone (abridged)."""
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "metadata": {"properties": [{"name": "cdx:reproducible", "value": "true"}]},
        "components": [
            {
                "bom-ref": "requirements-L3",
                "name": "typing-extensions",
                "version": "4.16.0",
                "purl": "pkg:pypi/typing-extensions@4.16.0",
                "type": "library",
            }
        ],
        "dependencies": [{"ref": "requirements-L3"}],
    }


def test_dpkg_status_gives_the_installed_packages_sorted() -> None:
    debs = sbom.parse_dpkg_status(STATUS)
    assert [d.name for d in debs] == ["libc6", "zlib1g"]
    assert debs[1].purl("debian-12") == (
        "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12"
    )
    assert debs[0].purl("") == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64"


def test_contents_follow_the_layers_and_their_whiteouts(tmp_path: Path) -> None:
    contents = sbom.read_contents(read_archive(image(tmp_path)))
    assert contents.distro == "debian-12"
    assert contents.python == {"typing-extensions": "4.16.0", "deathstar": "0.1.0"}
    assert [d.name for d in contents.debs] == ["libc6", "zlib1g"]
    # a later layer deletes a distribution (whiteout) and empties site-packages (opaque)
    gone = image(tmp_path, {f"{SITE}/.wh.deathstar-0.1.0.dist-info": b""})
    assert sbom.read_contents(read_archive(gone)).python == {"typing-extensions": "4.16.0"}
    emptied = image(tmp_path, {f"{SITE}/.wh..wh..opq": b""})
    assert sbom.read_contents(read_archive(emptied)).python == {}


def test_an_image_without_dpkg_is_refused(tmp_path: Path) -> None:
    bare = save_archive(tmp_path / "bare.tar", {"sha256:01": layer_tar({"etc/hostname": b"x"})})
    with pytest.raises(HarnessError, match="has no var/lib/dpkg/status"):
        sbom.read_contents(read_archive(bare))


def write_sbom(tmp_path: Path, archive: Path, **fields: Any) -> dict[str, Any]:
    root = tmp_path / "root"
    (root / "dist").mkdir(parents=True, exist_ok=True)
    archive.replace(root / "dist" / "image.tar")
    (root / "dist" / "deathstar-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    lock_bom = tmp_path / "python.cdx.json"
    lock_bom.write_text(json.dumps(python_bom()))
    written = sbom.write_image_sbom(
        record(**fields), root, lock_bom, Docker(FakeDocker()), tmp_path
    )
    assert written == sbom.sbom_path(root)
    result: dict[str, Any] = json.loads(written.read_text())
    return result


def test_the_sbom_has_the_image_the_project_the_lock_and_the_debs(tmp_path: Path) -> None:
    bom = write_sbom(tmp_path, image(tmp_path))
    names = [(c["name"], c["version"]) for c in bom["components"]]
    assert names == [
        ("deathstar", "0.1.0"),
        ("typing-extensions", "4.16.0"),
        ("libc6", "2.36-9+deb12u10"),
        ("zlib1g", "1:1.2.13.dfsg-1"),
    ]
    wheel_hash = hashlib.sha256(b"wheel").hexdigest()
    assert bom["components"][0]["hashes"] == [{"alg": "SHA-256", "content": wheel_hash}]
    assert bom["metadata"]["component"]["type"] == "container"
    properties = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert properties["deathstar:image:config-digest"] == CONFIG
    assert "exactly requirements/runtime.txt" in properties["deathstar:python-environment"]
    assert "serialNumber" not in bom
    assert bom["dependencies"][0]["ref"] == sbom.IMAGE_REF
    assert sbom.sbom_config_digest(sbom.sbom_path(tmp_path / "root")) == CONFIG


def test_the_sbom_is_the_same_bytes_on_a_rebuild(tmp_path: Path) -> None:
    first = write_sbom(tmp_path / "a", image(mkdir(tmp_path / "a")))
    second = write_sbom(tmp_path / "b", image(mkdir(tmp_path / "b")))
    assert json.dumps(first) == json.dumps(second)


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_an_image_whose_venv_is_not_the_lock_is_refused(tmp_path: Path) -> None:
    extra = {f"{SITE}/evil-1.0.dist-info/METADATA": metadata("evil", "1.0")}
    with pytest.raises(HarnessError) as refused:
        write_sbom(tmp_path, image(tmp_path, extra))
    assert str(refused.value) == (
        "the image's /opt/venv is not the runtime lock plus the project: "
        "evil - (lock) != 1.0 (image)"
    )


def test_a_non_reproducible_image_is_saved_from_the_engine(tmp_path: Path) -> None:
    archive = image(tmp_path)
    saved: list[list[str]] = []

    class Engine(FakeDocker):
        def answer(self, args: list[str], **_: Any) -> str:
            saved.append(args)
            Path(args[3]).write_bytes(archive.read_bytes())
            return ""

    root = tmp_path / "root"
    (root / "dist").mkdir(parents=True)
    (root / "dist" / "deathstar-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    lock_bom = tmp_path / "python.cdx.json"
    lock_bom.write_text(json.dumps(python_bom()))
    sbom.write_image_sbom(record(reproducible=False), root, lock_bom, Docker(Engine()), tmp_path)
    assert saved == [
        ["docker", "save", "--output", str(tmp_path / "image.tar"), "sha256:" + "a" * 64]
    ]


def test_an_sbom_that_names_no_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no SBOM at"):
        sbom.sbom_config_digest(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"metadata": {}}')
    with pytest.raises(HarnessError, match="is not an SBOM that `nox -s image` wrote"):
        sbom.sbom_config_digest(tmp_path / "other.json")
