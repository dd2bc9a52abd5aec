"""Signing the pushed digest with cosign, attesting the SBOM and a SLSA provenance, reading back.
The key and its password reach only the cosign children that sign, in their environment."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.core import locks, process
from harness.core.references import is_loopback
from harness.core.untrusted import parse_json
from harness.image import records
from harness.release.gates import take_secrets

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
SBOM_TYPE, PROVENANCE_TYPE = "cyclonedx", "slsaprovenance1"
PREDICATE_TYPES = {
    SBOM_TYPE: "https://cyclonedx.org/bom",
    PROVENANCE_TYPE: "https://slsa.dev/provenance/v1",
}
BUILD_TYPE = "https://github.com/tea-n-tech/deathstar/blob/main/noxfile.py#image"
LOCAL_BUILDER = "https://github.com/tea-n-tech/deathstar/blob/main/noxfile.py"
SOURCE = "https://github.com/tea-n-tech/deathstar"
FLAGS = {  # (keyless, signing): cosign's own flags; keyless verification names the identity
    (False, True): ["--key", f"env://{KEY_VARIABLE}", "--tlog-upload=false", "--yes"],
    (True, True): ["--yes"],
    (False, False): ["--key", f"env://{PUBLIC_KEY_VARIABLE}", "--insecure-ignore-tlog=true"],
}


def workflow_identity(env: Mapping[str, str]) -> str:
    """$GITHUB_SERVER_URL/$GITHUB_WORKFLOW_REF on GitHub Actions, else ""."""
    workflow = env.get("GITHUB_WORKFLOW_REF", "")
    return f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{workflow}" if workflow else ""


@dataclass(frozen=True)
class Material:
    """What this process took out of its environment for cosign, and gives to no one else."""

    key: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    oidc: dict[str, str] = field(default_factory=dict, repr=False)
    workflow_identity: str = ""


def take_material(env: Mapping[str, str]) -> tuple[dict[str, str], Material]:
    """The signing secrets, taken out of the environment (:func:`take_secrets`)."""
    rest, taken = take_secrets(env, KEY_VARIABLE, PASSWORD_VARIABLE, *OIDC_VARIABLES)
    oidc = {name: taken[name] for name in OIDC_VARIABLES if taken[name]}
    return rest, Material(
        taken[KEY_VARIABLE], taken[PASSWORD_VARIABLE], oidc, workflow_identity(rest)
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
        how = f"the key in {KEY_VARIABLE} (no transparency log)"
        if self.keyless:
            how = f"keyless as {self.identity} (Fulcio certificate, public Rekor log)"
        return (
            f"signing:     {ref}@<pushed digest> with {how}; attests the SBOM ({SBOM_TYPE}) and a "
            f"SLSA provenance ({PROVENANCE_TYPE}), then verifies all three"
        )

    def child_env(self, docker_env: Mapping[str, str], *, signing: bool) -> dict[str, str]:
        """Only what cosign needs: the Docker login, and the secrets only when it signs."""
        env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH}
        if "DOCKER_CONFIG" in docker_env:
            env["DOCKER_CONFIG"] = docker_env["DOCKER_CONFIG"]
        if signing and not self.keyless:
            env |= {KEY_VARIABLE: self.material.key, PASSWORD_VARIABLE: self.material.password}
        elif signing:
            env.update(self.material.oidc)
        elif not self.keyless:
            env[PUBLIC_KEY_VARIABLE] = self.public_key
        return env

    def cosign(self, *args: str, env: Mapping[str, str]) -> str:
        try:
            return self.runner(["cosign", *args], env=env, timeout=COSIGN_TIMEOUT)
        except process.CommandError:
            raise
        except HarnessError as exc:  # not installed, or a timeout
            how = "`bash .ci/provision` installs it (Debian 13's)"
            raise HarnessError(str(exc).replace("install it and run again", how)) from None

    def flags(self, *, signing: bool) -> list[str]:
        """cosign's flags; plain http is for a registry on loopback only, as for the push."""
        plain = ["--allow-http-registry=true", "--allow-insecure-registry=true"]
        loopback = plain if is_loopback(self.registry) else []
        if self.keyless and not signing:
            identity = ["--certificate-identity", self.identity]
            return [*identity, "--certificate-oidc-issuer", GITHUB_ISSUER, *loopback]
        return [*FLAGS[self.keyless, signing], *loopback]

    def sign(
        self, image: str, sbom: Path, provenance: Mapping[str, Any], docker_env: Mapping[str, str]
    ) -> None:
        """Sign ``image`` (``repo@digest``), attach both attestations, then read all three back
        from the registry: each attestation must be about the digest and carry what was sent."""
        env, flags = self.child_env(docker_env, signing=True), self.flags(signing=True)
        self.cosign("sign", *flags, image, env=env)
        with tempfile.TemporaryDirectory(prefix="deathstar-provenance-") as scratch:
            predicate = Path(scratch) / "provenance.json"
            predicate.write_text(json.dumps(provenance, sort_keys=True), encoding="utf-8")
            for kind, path in ((SBOM_TYPE, sbom), (PROVENANCE_TYPE, predicate)):
                self.cosign(
                    "attest", *flags, "--replace", "--type", kind, "--predicate", str(path), image,
                    env=env,
                )  # fmt: skip
        sent = {SBOM_TYPE: json.loads(sbom.read_text("utf-8")), PROVENANCE_TYPE: provenance}
        env, flags = self.child_env(docker_env, signing=False), self.flags(signing=False)
        self.cosign("verify", *flags, image, env=env)
        digest = image.rpartition("@")[2]
        for kind, wanted in sent.items():
            out = self.cosign("verify-attestation", *flags, "--type", kind, image, env=env)
            found = attested(out, PREDICATE_TYPES[kind], digest)
            if not any(same(kind, predicate, wanted) for predicate in found):
                raise HarnessError(
                    f"the registry's {kind} attestation of {digest[:19]} is not what was attested"
                )


def same(kind: str, found: object, wanted: Any) -> bool:  # noqa: ANN401 (JSON)
    """The SBOM as sent; a provenance with its source and builder (cosign retypes the rest)."""
    if kind == SBOM_TYPE:
        return bool(found == wanted)

    def part(value: object, *path: str) -> object:
        return reduce(lambda v, key: v.get(key) if isinstance(v, dict) else None, path, value)

    paths = (("buildDefinition", "externalParameters", "source"), ("runDetails", "builder"))
    return part(found, *paths[0]) is not None and all(
        part(found, *path) == part(wanted, *path) for path in paths
    )


def attested(output: str, predicate_type: str, digest: str) -> list[Any]:
    """The predicates of ``predicate_type`` about ``digest`` in verify-attestation's output."""
    found = []
    algorithm, _, value = digest.partition(":")
    for line in output.splitlines():
        try:
            envelope = parse_json(line)
            statement = parse_json(base64.b64decode(envelope["payload"], validate=True))
            about = any(s.get("digest", {}).get(algorithm) == value for s in statement["subject"])
        except (ValueError, KeyError, TypeError, AttributeError):  # ValueError: not base64
            continue
        if about and statement.get("predicateType") == predicate_type:
            found.append(statement.get("predicate"))
    return found


def signer_for(
    registry: str, material: Material, *, keyless: bool, unsigned: bool, runner: process.Runner
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


def provenance(project: Path, version: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The SLSA Provenance v1 predicate of the image recorded (and verified) in ``project``'s
    dist/: what the records and the checkout say, and no clock of the push."""
    record = records.load_image_record(records.image_record_path(project))
    verified = records.load_verification(records.verified_record_path(project))
    pyproject = locks.load_pyproject(project / "pyproject.toml")
    source = str(pyproject.get("project", {}).get("urls", {}).get("Source", SOURCE))
    release = {"uri": f"git+{source}@refs/tags/v{version}", "digest": {"gitCommit": record.commit}}
    algorithm, _, base_digest = record.base_digest.partition(":")
    locked = [project / "uv.lock", *(project / "requirements").glob("*.txt")]
    dependencies: list[dict[str, Any]] = [
        release,
        {
            "uri": f"docker-image:{record.base_image}",
            "digest": {algorithm: base_digest} if base_digest else {},
        },
        *(
            {
                "uri": f"git+{source}@{record.commit}#{path.relative_to(project)}",
                "digest": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
            }
            for path in sorted(locked)
            if path.is_file()
        ),
    ]
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "source": release,
                "entryPoint": "nox -s image integration",
                "baseImage": record.base_image,
                "version": version,
            },
            "internalParameters": {
                "builder": record.builder,
                "reproducible": record.reproducible,
                "imageRecord": asdict(record),
                "verified": verified,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {"builder": {"id": workflow_identity(env) or LOCAL_BUILDER}},
    }
