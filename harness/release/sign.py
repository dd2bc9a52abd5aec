"""Signing the pushed digest with cosign, attesting the SBOM and the provenance, reading back.

Two ways to sign:
- a key from the environment: ``COSIGN_KEY`` holds the private key's PEM and ``COSIGN_PASSWORD``
  its password; both are taken out of this process's environment at start, and only the cosign
  children that sign get them (cosign reads ``--key env://COSIGN_KEY`` and ``COSIGN_PASSWORD``
  from its own environment: never an argument, never a file). No transparency log: no Sigstore
  service is reachable where keys are used here.
- keyless (``--keyless``), in GitHub Actions: the workflow's OIDC token, Fulcio and the public
  Rekor log; the read-back checks the certificate names this workflow.

After signing, ``cosign verify`` and ``cosign verify-attestation`` (cyclonedx, slsaprovenance1)
must succeed against the registry with the public key (or the workflow identity), and each
attestation must be about the pushed digest and carry what was attested.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.core import process
from harness.core.untrusted import parse_json
from harness.registry import host_of, is_loopback

KEY_VARIABLE = "COSIGN_KEY"
PASSWORD_VARIABLE = "COSIGN_PASSWORD"  # noqa: S105 (the name of a variable)
PUBLIC_KEY_VARIABLE = "DEATHSTAR_COSIGN_PUBLIC_KEY"
OIDC_VARIABLES = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# What a cosign child may see of this process's environment, besides what it is given.
PASSED_THROUGH = (
    "PATH", "HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy",
)  # fmt: skip
COSIGN_TIMEOUT = 300.0
SBOM_TYPE = "cyclonedx"
PROVENANCE_TYPE = "slsaprovenance1"
PREDICATE_TYPES = {
    SBOM_TYPE: "https://cyclonedx.org/bom",
    PROVENANCE_TYPE: "https://slsa.dev/provenance/v1",
}


@dataclass(frozen=True)
class Material:
    """What this process took out of its environment for cosign, and gives to no one else."""

    key: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    oidc: dict[str, str] = field(default_factory=dict, repr=False)
    workflow_identity: str = ""  # $GITHUB_SERVER_URL/$GITHUB_WORKFLOW_REF on Actions


def take_material(env: Mapping[str, str]) -> tuple[dict[str, str], Material]:
    """The signing secrets, read once: gone from ``os.environ`` and from the mapping handed on."""
    rest = dict(env)
    taken = {name: rest.pop(name, "") for name in (KEY_VARIABLE, PASSWORD_VARIABLE)}
    oidc = {name: rest.pop(name) for name in OIDC_VARIABLES if name in rest}
    for name in (KEY_VARIABLE, PASSWORD_VARIABLE, *OIDC_VARIABLES):
        os.environ.pop(name, None)
    workflow = rest.get("GITHUB_WORKFLOW_REF", "")
    identity = f"{rest.get('GITHUB_SERVER_URL', 'https://github.com')}/{workflow}"
    return rest, Material(
        taken[KEY_VARIABLE], taken[PASSWORD_VARIABLE], oidc, identity if workflow else ""
    )


@dataclass(frozen=True)
class Signer:
    """cosign with a key (``public_key`` set) or keyless (``identity`` set), for one registry."""

    registry: str
    material: Material = field(repr=False)
    public_key: str = ""
    identity: str = ""
    runner: process.Runner = process.run

    @property
    def keyless(self) -> bool:
        return not self.public_key

    def describe(self, ref: str) -> str:
        how = (
            f"keyless as {self.identity} (Fulcio certificate, public Rekor log)"
            if self.keyless
            else f"the key in {KEY_VARIABLE} (no transparency log)"
        )
        return (
            f"signing:     {ref}@<pushed digest> with {how}; attests the SBOM ({SBOM_TYPE}) and a "
            f"SLSA provenance ({PROVENANCE_TYPE}), then verifies all three"
        )

    def registry_flags(self) -> list[str]:
        """Plain http is for a registry on loopback only, as for the push itself."""
        if is_loopback(host_of(self.registry)):
            return ["--allow-http-registry=true", "--allow-insecure-registry=true"]
        return []

    def child_env(self, docker_env: Mapping[str, str], *, signing: bool) -> dict[str, str]:
        """Only what cosign needs: the Docker login, and the secrets only when it signs."""
        env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH}
        if "DOCKER_CONFIG" in docker_env:
            env["DOCKER_CONFIG"] = docker_env["DOCKER_CONFIG"]
        if signing and not self.keyless:
            env[KEY_VARIABLE] = self.material.key
            env[PASSWORD_VARIABLE] = self.material.password
        elif signing:
            env.update(self.material.oidc)
        if not signing and not self.keyless:
            env[PUBLIC_KEY_VARIABLE] = self.public_key
        return env

    def cosign(self, *args: str, env: Mapping[str, str]) -> str:
        try:
            return self.runner(["cosign", *args], env=env, timeout=COSIGN_TIMEOUT)
        except process.CommandError:
            raise
        except HarnessError as exc:  # not installed, or a timeout
            raise HarnessError(
                str(exc).replace(
                    "cosign is not installed; install it",
                    "cosign is not installed; `bash .ci/provision` installs it (Debian 13's)",
                )
            ) from None

    def signing_flags(self) -> list[str]:
        if self.keyless:
            return ["--yes"]
        return ["--key", f"env://{KEY_VARIABLE}", "--tlog-upload=false", "--yes"]

    def verify_flags(self) -> list[str]:
        if self.keyless:
            return [
                "--certificate-identity", self.identity,
                "--certificate-oidc-issuer", GITHUB_ISSUER,
            ]  # fmt: skip
        return ["--key", f"env://{PUBLIC_KEY_VARIABLE}", "--insecure-ignore-tlog=true"]

    def sign(
        self, image: str, sbom: Path, provenance: Mapping[str, Any], docker_env: Mapping[str, str]
    ) -> None:
        """Sign ``image`` (``repo@digest``), attach both attestations, and verify all three."""
        env = self.child_env(docker_env, signing=True)
        flags = [*self.signing_flags(), *self.registry_flags()]
        self.cosign("sign", *flags, image, env=env)
        with tempfile.TemporaryDirectory(prefix="deathstar-provenance-") as scratch:
            predicate = Path(scratch) / "provenance.json"
            predicate.write_text(json.dumps(provenance, sort_keys=True), encoding="utf-8")
            for kind, path in ((SBOM_TYPE, sbom), (PROVENANCE_TYPE, predicate)):
                self.cosign(
                    "attest", *flags, "--replace", "--type", kind, "--predicate", str(path), image,
                    env=env,
                )  # fmt: skip
        self.verify(
            image,
            docker_env,
            sbom=json.loads(sbom.read_text(encoding="utf-8")),
            provenance=provenance,
        )

    def verify(
        self,
        image: str,
        docker_env: Mapping[str, str],
        *,
        sbom: Mapping[str, Any],
        provenance: Mapping[str, Any],
    ) -> None:
        """The read-back: the signature and both attestations, from the registry."""
        env = self.child_env(docker_env, signing=False)
        flags = [*self.verify_flags(), *self.registry_flags()]
        self.cosign("verify", *flags, image, env=env)
        digest = image.rpartition("@")[2]
        expected: dict[str, Callable[[Any], bool]] = {
            SBOM_TYPE: lambda p: p == sbom,
            PROVENANCE_TYPE: lambda p: same_source(p, provenance),
        }
        for kind, matches in expected.items():
            out = self.cosign("verify-attestation", *flags, "--type", kind, image, env=env)
            predicates = attested(out, PREDICATE_TYPES[kind], digest)
            if not any(matches(p) for p in predicates):
                raise HarnessError(
                    f"the registry's {kind} attestation of {digest[:19]} is not what was attested"
                )


def same_source(found: object, wanted: Mapping[str, Any]) -> bool:
    """The provenance names the same source and the same builder (cosign retypes the rest)."""

    def part(predicate: object, *path: str) -> object:
        for key in path:
            predicate = predicate.get(key) if isinstance(predicate, dict) else None
        return predicate

    source = ("buildDefinition", "externalParameters", "source")
    builder = ("runDetails", "builder")
    return part(found, *source) is not None and all(
        part(found, *path) == part(wanted, *path) for path in (source, builder)
    )


def attested(output: str, predicate_type: str, digest: str) -> list[Any]:
    """The predicates of ``predicate_type`` about ``digest`` in verify-attestation's output."""
    found = []
    algorithm, _, value = digest.partition(":")
    for line in output.splitlines():
        try:
            envelope = parse_json(line)
            statement = parse_json(base64.b64decode(envelope["payload"], validate=True))
            subjects = statement["subject"]
            about = any(s.get("digest", {}).get(algorithm) == value for s in subjects)
        except (ValueError, KeyError, TypeError, AttributeError):  # ValueError: not base64
            continue
        if about and statement.get("predicateType") == predicate_type:
            found.append(statement.get("predicate"))
    return found


def signer_for(
    registry: str,
    material: Material,
    *,
    keyless: bool,
    unsigned: bool,
    runner: process.Runner,
) -> Signer | None:
    """The signer this push uses, checked before anything is pushed; None when --unsigned."""
    if unsigned:
        return None
    if keyless:
        if not material.oidc or not material.workflow_identity:
            raise HarnessError(
                "--keyless needs GitHub Actions' OIDC token (the job's `permissions: id-token: "
                "write`) and GITHUB_WORKFLOW_REF; use COSIGN_KEY elsewhere"
            )
        signer = Signer(registry, material, identity=material.workflow_identity, runner=runner)
        signer.cosign("version", env=signer.child_env({}, signing=False))
        return signer
    if not material.key:
        return None
    if "-----BEGIN" not in material.key:
        raise HarnessError(
            f"{KEY_VARIABLE} must hold the private key's PEM itself (cosign generate-key-pair "
            "writes it to cosign.key); a path or an env:// reference is not read"
        )
    probe = Signer(registry, material, public_key="-", runner=runner)
    try:
        public = probe.cosign(
            "public-key", "--key", f"env://{KEY_VARIABLE}", env=probe.child_env({}, signing=True)
        )
    except process.CommandError:
        raise HarnessError(
            f"cosign cannot open the key in {KEY_VARIABLE} with {PASSWORD_VARIABLE}: "
            "wrong password or not a cosign private key"
        ) from None
    if "-----BEGIN PUBLIC KEY-----" not in public:
        raise HarnessError(f"cosign gave no public key for the key in {KEY_VARIABLE}")
    return Signer(registry, material, public_key=public.strip() + "\n", runner=runner)
