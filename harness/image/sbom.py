"""The image's SBOM: CycloneDX JSON of its Python environment and its Debian packages.

``cyclonedx-py requirements --output-reproducible`` (cyclonedx-bom, in the image session's venv)
describes ``requirements/runtime.txt``: the lock the Dockerfile installs into ``/opt/venv`` with
``--require-hashes`` from a wheelhouse, and nothing else. That is only honest while it is true,
so it is checked against the image: the distributions in the archive's ``/opt/venv`` must be
exactly the lock's plus the project. The Debian packages come from the image's own
``/var/lib/dpkg/status``, read from the archive's layers in order (whiteouts applied).
No clock and no random serial number enter: a rebuild of a commit writes the same bytes.
"""

from __future__ import annotations

import email.parser
import hashlib
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
from harness.core import locks
from harness.core.docker import Docker
from harness.image import archive, build
from harness.image.records import DIST, ImageRecord, image_archive_path

DPKG_STATUS = "var/lib/dpkg/status"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
SITE_PACKAGES = re.compile(r"opt/venv/lib/python[^/]+/site-packages/[^/]+\.dist-info/METADATA")
IMAGE_REF = "deathstar-image"
PROJECT_REF = "deathstar-project"
SAVE_TIMEOUT = 600.0
ENVIRONMENT_NOTE = (
    "/opt/venv holds exactly requirements/runtime.txt (installed with pip --require-hashes "
    "--no-index from the build's wheelhouse) plus the project wheel; checked against the "
    "image's dist-info directories when this SBOM was written"
)


def sbom_path(root: Path) -> Path:
    return root / DIST / "sbom.cdx.json"


def python_sbom_command(lock: Path, output: Path) -> list[str]:
    """cyclonedx-py's SBOM of the lock: no timestamp unless SOURCE_DATE_EPOCH, no serial."""
    return [
        "cyclonedx-py", "requirements", "--output-reproducible", "--spec-version", "1.6",
        "--output-format", "JSON", "--output-file", str(output), str(lock),
    ]  # fmt: skip


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
        if distro:
            qualifiers += f"&distro={quote(distro, safe='')}"
        name, version = quote(self.name, safe=""), quote(self.version, safe="")
        return f"pkg:deb/debian/{name}@{version}?{qualifiers}"


def parse_dpkg_status(text: str) -> list[DebPackage]:
    """The installed packages of a dpkg status file, sorted."""
    packages = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] not in ("", " ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Status", "").split()[-1:] == ["installed"] and "Package" in fields:
            packages.append(
                DebPackage(
                    fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")
                )
            )
    return sorted(packages)


def distro_of(os_release: str) -> str:
    """``debian-12`` from an os-release file; empty when it names no ID and VERSION_ID."""
    pairs = (line.partition("=") for line in os_release.splitlines())
    fields = {key: value.strip().strip('"') for key, _, value in pairs}
    ident, version = fields.get("ID", ""), fields.get("VERSION_ID", "")
    return f"{ident}-{version}" if ident and version else ""


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
                if path.name == ".wh..wh..opq":
                    gone = f"{path.parent}/"
                    files = {k: v for k, v in files.items() if not k.startswith(gone)}
                elif path.name.startswith(".wh."):
                    gone = str(path.parent / path.name.removeprefix(".wh."))
                    files = {
                        k: v for k, v in files.items() if k != gone and not k.startswith(f"{gone}/")
                    }
                elif member.isfile() and wanted(str(path)):
                    handle = layer.extractfile(member)
                    files[str(path)] = handle.read() if handle is not None else b""
    return files


@dataclass(frozen=True)
class ImageContents:
    debs: list[DebPackage]
    distro: str
    python: dict[str, str]  # normalized distribution name -> version, from /opt/venv


def read_contents(image: archive.ImageArchive) -> ImageContents:
    files = final_files(
        image, lambda p: p == DPKG_STATUS or p in OS_RELEASE or bool(SITE_PACKAGES.fullmatch(p))
    )
    if DPKG_STATUS not in files:
        raise HarnessError(f"{image.path} has no {DPKG_STATUS}: not a Debian-based image")
    os_release = next((files[p] for p in OS_RELEASE if p in files), b"")
    python = {}
    for path, content in files.items():
        if SITE_PACKAGES.fullmatch(path):
            metadata = email.parser.BytesHeaderParser().parsebytes(content)
            python[normalized(str(metadata["Name"]))] = str(metadata["Version"])
    return ImageContents(
        debs=parse_dpkg_status(files[DPKG_STATUS].decode("utf-8", "replace")),
        distro=distro_of(os_release.decode("utf-8", "replace")),
        python=python,
    )


def check_environment(
    locked: dict[str, str], project: tuple[str, str], image: dict[str, str]
) -> None:
    """The image's /opt/venv must hold exactly the lock and the project, or the SBOM would lie."""
    expected = {**locked, normalized(project[0]): project[1]}
    if expected != image:
        differing = sorted(
            f"{name} {expected.get(name, '-')} (lock) != {image.get(name, '-')} (image)"
            for name in expected.keys() | image.keys()
            if expected.get(name) != image.get(name)
        )
        raise HarnessError(
            "the image's /opt/venv is not the runtime lock plus the project: "
            + "; ".join(differing)
        )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compose(
    python_bom: dict[str, Any], contents: ImageContents, record: ImageRecord, wheel: Path
) -> dict[str, Any]:
    """cyclonedx-py's SBOM of the lock, with the image, the project and the Debian packages."""
    bom: dict[str, Any] = json.loads(json.dumps(python_bom))  # a copy
    locked = {
        normalized(str(c["name"])): str(c["version"])
        for c in bom.get("components", [])
        if str(c.get("purl", "")).startswith("pkg:pypi/")
    }
    check_environment(locked, ("deathstar", record.version), contents.python)
    project = {
        "type": "application", "bom-ref": PROJECT_REF, "name": "deathstar",
        "version": record.version, "purl": f"pkg:pypi/deathstar@{quote(record.version, safe='')}",
        "hashes": [{"alg": "SHA-256", "content": file_sha256(wheel)}],
        "description": f"the project wheel {wheel.name}, installed into /opt/venv with --no-deps",
    }  # fmt: skip
    debs = [
        {"type": "library", "bom-ref": deb.purl(contents.distro), "name": deb.name,
         "version": deb.version, "purl": deb.purl(contents.distro)}
        for deb in contents.debs
    ]  # fmt: skip
    bom["components"] = [project, *bom.get("components", []), *debs]
    refs = [str(c["bom-ref"]) for c in bom["components"]]
    bom["dependencies"] = [
        {"ref": IMAGE_REF, "dependsOn": refs},
        *({"ref": ref} for ref in refs),
    ]
    metadata = bom.setdefault("metadata", {})
    metadata["component"] = {
        "type": "container", "bom-ref": IMAGE_REF, "name": "deathstar", "version": record.version,
    }  # fmt: skip
    metadata["properties"] = sorted(
        [
            *metadata.get("properties", []),
            {"name": "deathstar:commit", "value": record.commit},
            {"name": "deathstar:image:config-digest", "value": record.config_digest},
            {"name": "deathstar:image:base", "value": record.base_image},
            {"name": "deathstar:image:base-digest", "value": record.base_digest},
            {"name": "deathstar:python-environment", "value": ENVIRONMENT_NOTE},
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
    runtime lock, composed with the project wheel and the image's Debian packages."""
    with tempfile.TemporaryDirectory(prefix="deathstar-sbom-") as scratch:
        python_bom = Path(scratch) / "python.cdx.json"
        # The SBOM's own timestamp: the commit's, so a rebuild writes the same bytes.
        command = python_sbom_command(locks.RUNTIME.path, python_bom)
        run(command, {"SOURCE_DATE_EPOCH": str(epoch)})
        return write_image_sbom(record, root, python_bom, docker, Path(scratch))


def write_image_sbom(
    record: ImageRecord, root: Path, python_bom: Path, docker: Docker, scratch: Path
) -> Path:
    """Compose the SBOM of the recorded image and write it to dist/; return its path.

    The archive is the build's (``dist/image.tar``) when the build was reproducible, else a
    ``docker save`` of the image into ``scratch``.
    """
    try:
        lock_bom = json.loads(python_bom.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"cyclonedx-py wrote no readable SBOM at {python_bom}: {exc}") from None
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
    try:
        bom = json.loads(path.read_text(encoding="utf-8"))
        properties = bom["metadata"]["properties"]
        return next(
            str(p["value"]) for p in properties if p["name"] == "deathstar:image:config-digest"
        )
    except FileNotFoundError:
        raise HarnessError(f"no SBOM at {path}; run `nox -s image`") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError, StopIteration):
        raise HarnessError(
            f"{path} is not an SBOM that `nox -s image` wrote; run it again"
        ) from None
