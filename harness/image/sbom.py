"""The image's SBOM (CycloneDX JSON): cyclonedx-py's of the runtime lock, checked against the
image's /opt/venv, plus the project wheel and the Debian packages of the image's dpkg status.
No clock and no serial number enter: a rebuild of a commit writes the same bytes."""

from __future__ import annotations

import email.parser
import json
import re
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from harness import HarnessError
from harness.core import checksums, locks
from harness.core.docker import Docker
from harness.image import archive, build
from harness.image.records import DIST, ImageRecord, image_archive_path, read_json

DPKG_STATUS = "var/lib/dpkg/status"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
SITE_PACKAGES = re.compile(r"opt/venv/lib/python[^/]+/site-packages/[^/]+\.dist-info/METADATA")
IMAGE_REF, PROJECT_REF = "deathstar-image", "deathstar-project"
SAVE_TIMEOUT = 600.0
ENVIRONMENT_NOTE = (
    "/opt/venv holds exactly requirements/runtime.txt (installed with pip --require-hashes "
    "--no-index from the build's wheelhouse) plus the project wheel; checked against the "
    "image's dist-info directories when this SBOM was written"
)


def sbom_path(root: Path) -> Path:
    return root / DIST / "sbom.cdx.json"


def normalized(name: str) -> str:
    """PEP 503's name normalization: what makes `Typing_Extensions` `typing-extensions`."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, order=True)
class DebPackage:
    name: str
    version: str
    arch: str

    def purl(self, distro: str) -> str:
        qualifiers = f"arch={quote(self.arch, safe='')}"
        qualifiers += f"&distro={quote(distro, safe='')}" if distro else ""
        name, version = quote(self.name, safe=""), quote(self.version, safe="")
        return f"pkg:deb/debian/{name}@{version}?{qualifiers}"


def parse_dpkg_status(text: str) -> list[DebPackage]:
    """The installed packages of a dpkg status file, sorted."""
    packages = []
    for stanza in re.split(r"\n\s*\n", text):
        lines = (line.partition(":") for line in stanza.splitlines() if line[:1] not in " \t")
        fields = {key: value.strip() for key, colon, value in lines if colon}
        if fields.get("Status", "").split()[-1:] == ["installed"] and "Package" in fields:
            version, arch = fields.get("Version", ""), fields.get("Architecture", "")
            packages.append(DebPackage(fields["Package"], version, arch))
    return sorted(packages)


def final_files(image: archive.ImageArchive, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The ``wanted`` regular files of the image's filesystem: layers in order, whiteouts too."""
    files: dict[str, bytes] = {}
    for diff_id in image.diff_ids:
        with (
            archive.open_layer(image, diff_id) as stream,
            tarfile.open(fileobj=stream, mode="r|*") as layer,
        ):
            for member in layer:
                path = PurePosixPath(member.name.removeprefix("./"))
                if path.name.startswith(".wh."):  # a whiteout; .wh..wh..opq empties its folder
                    gone = str(path.parent / path.name.removeprefix(".wh."))
                    gone = f"{path.parent}/" if path.name == ".wh..wh..opq" else gone
                    under = gone.rstrip("/") + "/"
                    files = {
                        k: v for k, v in files.items() if k != gone and not k.startswith(under)
                    }
                elif member.isfile() and wanted(str(path)):
                    handle = layer.extractfile(member)
                    files[str(path)] = handle.read() if handle is not None else b""
    return files


@dataclass(frozen=True)
class ImageContents:
    debs: list[DebPackage]
    distro: str  # "debian-12" from os-release; "" when it names no ID and VERSION_ID
    python: dict[str, str]  # normalized distribution name -> version, from /opt/venv


def read_contents(image: archive.ImageArchive) -> ImageContents:
    files = final_files(
        image, lambda p: p == DPKG_STATUS or p in OS_RELEASE or bool(SITE_PACKAGES.fullmatch(p))
    )
    if DPKG_STATUS not in files:
        raise HarnessError(f"{image.path} has no {DPKG_STATUS}: not a Debian-based image")
    os_release = next((files[p] for p in OS_RELEASE if p in files), b"").decode("utf-8", "replace")
    pairs = (line.partition("=") for line in os_release.splitlines())
    fields = {key: value.strip().strip('"') for key, _, value in pairs}
    ident, version = fields.get("ID", ""), fields.get("VERSION_ID", "")
    python = {}
    for path, content in files.items():
        if SITE_PACKAGES.fullmatch(path):
            metadata = email.parser.BytesHeaderParser().parsebytes(content)
            python[normalized(str(metadata["Name"]))] = str(metadata["Version"])
    return ImageContents(
        debs=parse_dpkg_status(files[DPKG_STATUS].decode("utf-8", "replace")),
        distro=f"{ident}-{version}" if ident and version else "",
        python=python,
    )


def compose(
    python_bom: dict[str, Any], contents: ImageContents, record: ImageRecord, wheel: Path
) -> dict[str, Any]:
    """cyclonedx-py's SBOM of the lock, with the image, the project and the Debian packages;
    refused when the image's /opt/venv is not exactly the lock and the project."""
    bom: dict[str, Any] = json.loads(json.dumps(python_bom))  # a copy
    expected = {
        normalized(str(c["name"])): str(c["version"])
        for c in bom.get("components", [])
        if str(c.get("purl", "")).startswith("pkg:pypi/")
    } | {"deathstar": record.version}
    if expected != contents.python:
        differing = sorted(
            f"{name} {expected.get(name, '-')} (lock) != {contents.python.get(name, '-')} (image)"
            for name in expected.keys() | contents.python.keys()
            if expected.get(name) != contents.python.get(name)
        )
        why = "; ".join(differing)
        raise HarnessError(f"the image's /opt/venv is not the runtime lock plus the project: {why}")
    project = {
        "type": "application", "bom-ref": PROJECT_REF, "name": "deathstar",
        "version": record.version, "purl": f"pkg:pypi/deathstar@{quote(record.version, safe='')}",
        "hashes": [{"alg": "SHA-256", "content": checksums.sha256(wheel)}],
        "description": f"the project wheel {wheel.name}, installed into /opt/venv with --no-deps",
    }  # fmt: skip
    debs = [
        {"type": "library", "bom-ref": deb.purl(contents.distro), "name": deb.name,
         "version": deb.version, "purl": deb.purl(contents.distro)}
        for deb in contents.debs
    ]  # fmt: skip
    bom["components"] = [project, *bom.get("components", []), *debs]
    refs = [str(c["bom-ref"]) for c in bom["components"]]
    bom["dependencies"] = [{"ref": IMAGE_REF, "dependsOn": refs}, *({"ref": ref} for ref in refs)]
    metadata = bom.setdefault("metadata", {})
    metadata["component"] = {
        "type": "container", "bom-ref": IMAGE_REF, "name": "deathstar", "version": record.version,
    }  # fmt: skip
    properties = {
        "commit": record.commit, "image:config-digest": record.config_digest,
        "image:base": record.base_image, "image:base-digest": record.base_digest,
        "python-environment": ENVIRONMENT_NOTE,
    }  # fmt: skip
    metadata["properties"] = sorted(
        [
            *metadata.get("properties", []),
            *({"name": f"deathstar:{k}", "value": v} for k, v in properties.items()),
        ],
        key=lambda p: (p["name"], p["value"]),
    )
    return bom


def write(
    record: ImageRecord,
    root: Path,
    docker: Docker,
    run: Callable[[list[str], dict[str, str]], object],
    epoch: int,
) -> Path:
    """The image's SBOM in dist/: cyclonedx-py (through ``run``, in a venv that has it) on the
    runtime lock; its timestamp is the commit's, so a rebuild writes the same bytes."""
    with tempfile.TemporaryDirectory(prefix="deathstar-sbom-") as scratch:
        python_bom = Path(scratch) / "python.cdx.json"
        command = [
            "cyclonedx-py", "requirements", "--output-reproducible", "--spec-version", "1.6",
            "--output-format", "JSON", "--output-file", str(python_bom), str(locks.RUNTIME.path),
        ]  # fmt: skip
        run(command, {"SOURCE_DATE_EPOCH": str(epoch)})
        return write_image_sbom(record, root, python_bom, docker, Path(scratch))


def write_image_sbom(
    record: ImageRecord, root: Path, python_bom: Path, docker: Docker, scratch: Path
) -> Path:
    """Compose the recorded image's SBOM into dist/ from the build's archive, else from a
    ``docker save`` into ``scratch``."""
    lock_bom = read_json(python_bom, missing=f"cyclonedx-py wrote no SBOM at {python_bom}")
    image_archive = image_archive_path(root)
    if not (record.reproducible and image_archive.exists()):
        image_archive = scratch / "image.tar"
        docker("save", "--output", str(image_archive), record.image_id, timeout=SAVE_TIMEOUT)
    contents = read_contents(archive.read_archive(image_archive))
    bom = compose(lock_bom, contents, record, build.project_wheel(root / DIST, record.version))
    output = sbom_path(root)
    output.write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return output


def sbom_config_digest(path: Path) -> str:
    """The config digest an SBOM written here names: which image it describes."""
    again = "run `nox -s image`"
    properties = read_json(path, missing=f"no SBOM at {path}; {again}").get("metadata", {})
    for prop in properties.get("properties", []) if isinstance(properties, dict) else []:
        if isinstance(prop, dict) and prop.get("name") == "deathstar:image:config-digest":
            return str(prop.get("value"))
    raise HarnessError(f"{path} is not an SBOM that `nox -s image` wrote; {again} again")
