"""Signing with cosign, against a stand-in cosign on the one fake runner (tests/fakedocker.py):
which commands run, with which flags, and who gets the key, the password and the OIDC token."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import HarnessError
from harness.core import process
from harness.release import sign
from tests.fakedocker import FakeDocker

PEM = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END"
PASSWORD = "pw-1234567"  # noqa: S105 (a test's)
PUBLIC = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"
DIGEST = "sha256:" + "d" * 64
IMAGE = f"127.0.0.1:5000/team/app@{DIGEST}"
LOGIN = "/run/deathstar-test/docker-config"  # a throwaway login's DOCKER_CONFIG
SBOM = {"bomFormat": "CycloneDX", "components": []}
V1 = "https://slsa.dev/provenance/v1"
PROVENANCE = {
    "buildDefinition": {
        "externalParameters": {"source": {"uri": "git+x", "digest": {"gitCommit": "f" * 40}}},
    },
    "runDetails": {"builder": {"id": "https://example.invalid/builder"}},
}


def envelope(predicate_type: str, predicate: object, digest: str = DIGEST) -> str:
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": "127.0.0.1:5000/team/app", "digest": {"sha256": digest[7:]}}],
        "predicate": predicate,
    }
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": payload})


@dataclass
class FakeCosign(FakeDocker):
    """cosign: ``public-key`` opens the key only with the right password; the attestations it
    stores are what ``verify-attestation`` answers, unless a test changes ``attested``."""

    attested: dict[str, str] = field(default_factory=dict)
    failing: str = ""  # a subcommand that fails

    def answer(self, args: list[str], *, cwd: Path | None, env: Mapping[str, str] | None) -> str:
        if args[0] != "cosign":
            return super().answer(args, cwd=cwd, env=env)
        env = env or {}
        command = args[1]
        if command == self.failing:
            reason = "Error: no matching signatures"
            raise process.CommandError(f"`cosign {command}` failed: {reason}", reason, 1)
        if command == "public-key":
            if env.get("COSIGN_PASSWORD") != PASSWORD:
                raise process.CommandError("cosign failed", "Error: decryption failed", 1)
            return PUBLIC + "\n"
        if command == "attest":
            kind = args[args.index("--type") + 1]
            predicate = json.loads(Path(args[args.index("--predicate") + 1]).read_text())
            digest = args[-1].rpartition("@")[2]  # cosign attests what the digest names
            self.attested.setdefault(kind, envelope(sign.PREDICATE_TYPES[kind], predicate, digest))
            return ""
        if command == "verify-attestation":
            return self.attested.get(args[args.index("--type") + 1], "") + "\n"
        return ""

    def cosign_calls(self) -> list[list[str]]:
        return [c.args[1:] for c in self.calls if c.args[0] == "cosign"]


MATERIAL = sign.Material(PEM, PASSWORD)


def signer(fake: FakeCosign, material: sign.Material = MATERIAL) -> sign.Signer:
    found = sign.signer_for("127.0.0.1:5000", material, keyless=False, unsigned=False, runner=fake)
    assert found is not None
    return found


def signed(tmp_path: Path, fake: FakeCosign, s: sign.Signer | None = None) -> None:
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_text(json.dumps(SBOM))
    (s or signer(fake)).sign(IMAGE, sbom, PROVENANCE, {"DOCKER_CONFIG": LOGIN})


def test_the_secrets_leave_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_KEY", PEM)
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-token")
    rest, material = sign.take_material(dict(os.environ))
    assert (material.key, material.password) == (PEM, PASSWORD)
    assert material.oidc == {"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "oidc-token"}
    for name in ("COSIGN_KEY", "COSIGN_PASSWORD", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        assert name not in os.environ
        assert name not in rest
    assert PEM not in repr(material)
    assert PASSWORD not in repr(material)


def test_sign_attest_and_verify_with_the_key(tmp_path: Path) -> None:
    fake = FakeCosign()
    signed(tmp_path, fake)
    calls = fake.cosign_calls()
    assert [c[0] for c in calls] == [
        "public-key", "sign", "attest", "attest", "verify", "verify-attestation",
        "verify-attestation",
    ]  # fmt: skip
    http = ["--allow-http-registry=true", "--allow-insecure-registry=true"]
    key = ["--key", "env://COSIGN_KEY", "--tlog-upload=false", "--yes", *http]
    assert calls[1] == ["sign", *key, IMAGE]
    assert calls[2][:-3] == ["attest", *key, "--replace", "--type", "cyclonedx"]
    assert calls[3][: len(key) + 4] == ["attest", *key, "--replace", "--type", "slsaprovenance1"]
    public = ["--key", "env://DEATHSTAR_COSIGN_PUBLIC_KEY", "--insecure-ignore-tlog=true", *http]
    assert calls[4] == ["verify", *public, IMAGE]
    assert calls[5] == ["verify-attestation", *public, "--type", "cyclonedx", IMAGE]
    assert calls[6] == ["verify-attestation", *public, "--type", "slsaprovenance1", IMAGE]


def test_only_signing_children_get_the_key_and_none_gets_it_in_argv(tmp_path: Path) -> None:
    fake = FakeCosign()
    signed(tmp_path, fake)
    for call in fake.calls:
        env = call.env or {}
        assert PEM not in " ".join(call.args)
        assert PASSWORD not in " ".join(call.args)
        signing = call.args[1] in ("public-key", "sign", "attest")
        assert ("COSIGN_KEY" in env) == signing, call.args[:2]
        assert ("COSIGN_PASSWORD" in env) == signing, call.args[:2]
        assert set(env) <= {*sign.PASSED_THROUGH, "DOCKER_CONFIG", "COSIGN_KEY", "COSIGN_PASSWORD",
                            "DEATHSTAR_COSIGN_PUBLIC_KEY"}  # fmt: skip
        if not signing:
            assert env["DEATHSTAR_COSIGN_PUBLIC_KEY"] == PUBLIC + "\n"
    sign_call = next(c for c in fake.calls if c.args[1] == "sign")
    assert (sign_call.env or {})["DOCKER_CONFIG"] == LOGIN


def test_a_wrong_password_is_refused_before_anything_is_signed() -> None:
    fake = FakeCosign()
    with pytest.raises(HarnessError) as refused:
        signer(fake, sign.Material(PEM, "wrong"))
    assert str(refused.value) == (
        "cosign cannot open the key in COSIGN_KEY with COSIGN_PASSWORD: wrong password or not a "
        "cosign private key"
    )
    assert [c[0] for c in fake.cosign_calls()] == ["public-key"]


def test_a_key_path_is_refused() -> None:
    with pytest.raises(HarnessError, match="must hold the private key's PEM itself"):
        signer(FakeCosign(), sign.Material("cosign.key", PASSWORD))


def test_no_key_and_unsigned_give_no_signer() -> None:
    fake = FakeCosign()
    assert sign.signer_for("r", sign.Material(), keyless=False, unsigned=False, runner=fake) is None
    assert sign.signer_for("r", MATERIAL, keyless=False, unsigned=True, runner=fake) is None
    assert fake.calls == []


def test_missing_cosign_says_how_to_install_it() -> None:
    class NoCosign(FakeCosign):
        def answer(self, args: list[str], **_: Any) -> str:
            raise HarnessError("cosign is not installed; install it and run again")

    with pytest.raises(HarnessError, match=r"`bash \.ci/provision` installs it"):
        signer(NoCosign())


def test_a_failed_verification_fails_the_signing(tmp_path: Path) -> None:
    fake = FakeCosign(failing="verify")
    with pytest.raises(HarnessError, match="no matching signatures"):
        signed(tmp_path, fake)


def huge_envelope() -> str:
    """A statement holding an integer of more digits than CPython converts."""
    statement = envelope("https://slsa.dev/provenance/v0.2", "HUGE")
    payload = json.loads(statement)["payload"]
    inner = base64.b64decode(payload).replace(b'"HUGE"', b"1" + b"0" * 5000)
    return json.dumps({"payload": base64.b64encode(inner).decode()})


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("cyclonedx", envelope("https://cyclonedx.org/bom", {"other": "sbom"})),
        ("cyclonedx", envelope("https://cyclonedx.org/bom", SBOM, "sha256:" + "e" * 64)),
        ("slsaprovenance1", envelope("https://slsa.dev/provenance/v0.2", PROVENANCE)),
        ("slsaprovenance1", envelope(V1, {**PROVENANCE, "runDetails": {"builder": {"id": "x"}}})),
        ("slsaprovenance1", envelope(V1, {**PROVENANCE, "buildDefinition": {}})),
        ("slsaprovenance1", "not json"),
        ("slsaprovenance1", '{"payload": 1' + "0" * 5000 + "}"),
        ("slsaprovenance1", huge_envelope()),
        ("slsaprovenance1", '{"payload": "\u00e9"}'),
    ],
    ids=[
        "other-sbom",
        "other-digest",
        "v0.2-provenance",
        "other-builder",
        "no-source",
        "garbage",
        "huge",
        "huge-inner",
        "b64",
    ],
)
def test_an_attestation_that_is_not_ours_fails_the_read_back(
    tmp_path: Path, kind: str, answer: str
) -> None:
    fake = FakeCosign(attested={kind: answer})
    with pytest.raises(HarnessError) as failed:
        signed(tmp_path, fake)
    assert str(failed.value) == (
        f"the registry's {kind} attestation of {DIGEST[:19]} is not what was attested"
    )


def test_keyless_signs_with_the_oidc_token_and_checks_the_workflow_identity(
    tmp_path: Path,
) -> None:
    identity = "https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1.0.0"
    material = sign.Material(
        oidc={"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"}, workflow_identity=identity
    )
    fake = FakeCosign()
    found = sign.signer_for("ghcr.io", material, keyless=True, unsigned=False, runner=fake)
    assert found is not None
    assert "keyless as " + identity in found.describe("ghcr.io/o/r")
    signed(tmp_path, fake, found)
    calls = fake.cosign_calls()
    assert calls[1] == ["sign", "--yes", IMAGE]  # the public log, https only
    verify = ["--certificate-identity", identity, "--certificate-oidc-issuer", sign.GITHUB_ISSUER]
    assert calls[4] == ["verify", *verify, IMAGE]
    for call in fake.calls:
        assert ("ACTIONS_ID_TOKEN_REQUEST_TOKEN" in (call.env or {})) == (
            call.args[1] in ("sign", "attest")
        )


def test_keyless_outside_github_actions_is_refused() -> None:
    with pytest.raises(HarnessError, match="--keyless needs GitHub Actions' OIDC token"):
        sign.signer_for(
            "ghcr.io", sign.Material(), keyless=True, unsigned=False, runner=FakeCosign()
        )
