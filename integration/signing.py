"""Helpers of test_push's signing test: a throwaway cosign key pair, cosign's verifications.

cosign must be installed (``bash .ci/provision`` installs Debian 13's): without it the test
fails, it does not skip. The key pair is made by ``cosign generate-key-pair`` in a temporary
directory; its password is random per run, and the test checks that neither it nor the private
key shows in the push's output.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pushing import Project

from harness import ROOT
from harness.image.sbom import sbom_path

COSIGN_PASSWORD = secrets.token_urlsafe(24)
COSIGN_TIMEOUT = 300


def cosign() -> str:
    path = shutil.which("cosign")
    if path is None:
        pytest.fail(
            "cosign is not installed; `bash .ci/provision` installs it (Debian 13's cosign)"
        )
    return path


@dataclass(frozen=True)
class KeyPair:
    private_pem: str = field(repr=False)
    public: Path  # cosign.pub: all a verifier gets

    @property
    def env(self) -> dict[str, str]:
        """What the release manager exports: the key itself, and its password."""
        return {"COSIGN_KEY": self.private_pem, "COSIGN_PASSWORD": COSIGN_PASSWORD}


def key_pair(directory: Path) -> KeyPair:
    directory.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "COSIGN_PASSWORD": COSIGN_PASSWORD}
    done = subprocess.run(
        [cosign(), "generate-key-pair"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    private = directory / "cosign.key"
    pem = private.read_text(encoding="utf-8")
    private.unlink()  # the push gets the key from its environment, never from a file
    return KeyPair(pem, directory / "cosign.pub")


def verify(
    public_key: Path, image: str, docker_config: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """``cosign verify|verify-attestation`` with the public key and a registry login only."""
    command = [
        cosign(), *args, "--key", str(public_key), "--insecure-ignore-tlog=true",
        "--allow-http-registry=true", image,
    ]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", ""), "DOCKER_CONFIG": str(docker_config)}
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=COSIGN_TIMEOUT, check=False
    )


VERIFICATIONS = (
    ("verify",),
    ("verify-attestation", "--type", "cyclonedx"),
    ("verify-attestation", "--type", "slsaprovenance1"),
)


def fabricated_sbom(project: Project) -> None:
    """The SBOM `nox -s image` wrote, made to name the relabelled image the project pushes.

    FABRICATED like the project's records: only so that the signing mechanics can run.
    """
    source = sbom_path(ROOT)
    assert source.exists(), f"no {source}: `nox -s image` writes it"
    bom = json.loads(source.read_text(encoding="utf-8"))
    for prop in bom["metadata"]["properties"]:
        if prop["name"] == "deathstar:image:config-digest":
            prop["value"] = project.record["config_digest"]
    (project.dist / source.name).write_text(json.dumps(bom, indent=2), encoding="utf-8")
