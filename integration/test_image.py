"""The image itself: its metadata and what its filesystem holds (and must not hold)."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import docker.errors
import pytest
from containers import Lab

from harness import ROOT
from harness.image.records import ImageRecord

OCI = "org.opencontainers.image."
VENV = PurePosixPath("/opt/venv")
# What the runtime stage may add to its base: the venv, /data, and the files groupadd and
# useradd leave in /etc (they also change /etc/passwd and /etc/group, which the base has).
ALLOWED_ADDITIONS = {"/data", "/etc/gshadow-", "/etc/shadow-", "/etc/group-", "/etc/passwd-"}
# Names that betray a build context or build stage copied into the image.
JUNK_NAMES = {".git", "tests", "dist", "wheelhouse", "requirements", "src", "staging", "tools"}
BUILD_TOOLS = {"pip", "setuptools", "wheel", "distribute", "uv"}
# Lists the filesystem as root (so nothing is hidden by permissions) and facts about python3,
# which resolves to the venv's interpreter through the image's PATH. One path a line keeps
# every log line short.
INVENTORY = r"""
import importlib.metadata, json, os, sys, sysconfig
try:
    own = sorted(str(f) for f in importlib.metadata.files("deathstar") or ())
except importlib.metadata.PackageNotFoundError:  # the base image
    own = None
for root, dirs, files in os.walk("/"):
    if root in ("/proc", "/sys", "/dev"):
        dirs[:] = []
        continue
    for name in dirs + files:
        print("path", os.path.join(root, name))
facts = {
    "prefix": sys.prefix,
    "purelib": sysconfig.get_paths()["purelib"],
    "distributions": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
    "deathstar_files": own,
}
print("facts", json.dumps(facts))
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def inventory(lab: Lab, image: str) -> tuple[set[str], dict[str, Any]]:
    output = lab.run(image, ["python3", "-c", INVENTORY], user="0:0")  # exits 0, or fails
    paths: set[str] = set()
    facts: dict[str, Any] = {}
    for line in output.splitlines():
        kind, _, value = line.partition(" ")
        if kind == "path":
            paths.add(value)
        elif kind == "facts":
            facts = json.loads(value)
    assert facts, f"no facts in the inventory's output:\n{output[-2000:]}"
    assert len(paths) > 1000, "the inventory saw too little of the filesystem"
    return paths, facts


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def test_oci_labels(
    record: ImageRecord, image_attrs: dict[str, Any], pyproject: dict[str, Any]
) -> None:
    labels = image_attrs["Config"]["Labels"] or {}
    oci = {key.removeprefix(OCI): value for key, value in labels.items() if key.startswith(OCI)}
    required = {"title", "description", "version", "revision", "created", "source", "licenses"}
    assert required <= set(oci), f"missing labels: {sorted(required - set(oci))}"
    assert oci["title"] == "deathstar"
    assert oci["version"] == record.version
    assert oci["revision"] == record.revision
    assert oci["revision"].startswith(record.commit)
    assert oci["source"] == pyproject["project"]["urls"]["Source"]
    assert oci["licenses"] == "MIT" == pyproject["project"]["license"]
    assert oci["description"].strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", oci["created"]), oci["created"]
    created = datetime.strptime(oci["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert created <= datetime.now(UTC), "created lies in the future"


def test_runtime_configuration(image_attrs: dict[str, Any]) -> None:
    config = image_attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["deathstar", "api"]  # exec form: the server is PID 1
    assert not config["Cmd"]
    assert config["Healthcheck"]["Test"] == ["CMD", "deathstar", "healthcheck"]  # exec, no curl
    assert "8080/tcp" in config["ExposedPorts"]
    assert "/data" in config["Volumes"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["DEATHSTAR_DATABASE"].startswith("/data/")
    assert env["PATH"].startswith(f"{VENV}/bin:")


def test_no_build_junk_in_the_image(
    record: ImageRecord, image_attrs: dict[str, Any], docker_client: Any, lab: Lab
) -> None:
    # What the image adds is what it holds beyond the base it was built FROM: that base must
    # still be here, under its name, with the very layers the image starts with.
    try:
        base_layers = docker_client.images.get(record.base_image).attrs["RootFS"]["Layers"]
    except docker.errors.ImageNotFound:
        pytest.fail(f"the base image {record.base_image} is not in the local engine")
    layers = image_attrs["RootFS"]["Layers"]
    assert layers[: len(base_layers)] == base_layers, (
        f"{record.base_image} is no longer the base the image was built from; rebuild it"
    )
    ours, facts = inventory(lab, record.image_id)
    base, _ = inventory(lab, record.base_image)

    added = sorted(ours - base)
    outside_venv = [p for p in added if not PurePosixPath(p).is_relative_to(VENV)]
    assert set(outside_venv) <= ALLOWED_ADDITIONS, f"unexpected additions: {outside_venv}"
    junk = [p for p in added if JUNK_NAMES & set(PurePosixPath(p).parts)]
    assert junk == [], f"build leftovers in the image: {junk[:20]}"
    assert [p for p in added if p.endswith((".whl", ".tar.gz"))] == []
    for gone in ("/src", "/staging", "/opt/tools", "/.git", "/tests", "/dist"):
        assert gone not in ours, gone

    assert facts["prefix"] == str(VENV)
    venv_bin = sorted(
        PurePosixPath(p).name for p in ours if PurePosixPath(p).parent == VENV / "bin"
    )
    assert [n for n in venv_bin if n.startswith(("pip", "easy_install", "wheel"))] == []
    purelib = PurePosixPath(facts["purelib"])
    top_level = {PurePosixPath(p).name for p in ours if PurePosixPath(p).parent == purelib}
    tools = {"pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth"}
    assert top_level & tools == set()

    # The venv holds exactly the locked runtime dependencies and the project: nothing else.
    installed = {canonical(name) for name in facts["distributions"]}
    assert installed & BUILD_TOOLS == set()
    lock = (ROOT / "requirements" / "runtime.txt").read_text(encoding="utf-8")
    locked = {canonical(m) for m in re.findall(r"^([A-Za-z0-9._-]+)==", lock, re.MULTILINE)}
    assert installed == locked | {"deathstar"}

    # The project's own files: the package, its metadata and its script; no tests.
    outside = [
        f
        for f in facts["deathstar_files"]
        if not f.startswith(("deathstar/", "deathstar-")) and f != "../../../bin/deathstar"
    ]
    assert outside == [], outside
