"""The push's signing, end to end through ``main`` against the stand-in engine, registry and
cosign; and the release's vulnerability audit against a stand-in pip-audit."""

# The release tests' fixtures are imported by name, and the tests' parameters name them again.
# ruff: noqa: F811

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import HarnessError
from harness.core import audit, process
from harness.image import records
from harness.image.sbom import sbom_path
from tests.fakedocker import FakeDocker, FakeEngine, FakeRegistry
from tests.test_harness_release import (  # the release tests' fixtures and helpers  # noqa: F401 (fixtures)
    ENV,
    IMAGE_ID,
    PUSHED,
    REPOSITORY,
    engine,
    project,
    pushes,
    refused,
    registry,
    run,
)
from tests.test_harness_sign import PASSWORD, PEM, FakeCosign

KEYED = {**ENV, "COSIGN_KEY": PEM, "COSIGN_PASSWORD": PASSWORD}


@dataclass
class SigningEngine(FakeCosign, FakeEngine):
    """The stand-in engine that also answers as cosign."""


@pytest.fixture
def signing(engine: FakeEngine, project: Path) -> SigningEngine:
    both = SigningEngine(labels=engine.labels, pushed=engine.pushed)
    sbom = {"metadata": {"properties": [{"name": "deathstar:image:config-digest", "value": ""}]}}
    sbom["metadata"]["properties"][0]["value"] = IMAGE_ID  # the fixture's config digest
    sbom_path(project).write_text(json.dumps(sbom))
    return both


def test_confirm_without_a_key_is_refused_before_any_push(
    project: Path,
    registry: FakeRegistry,
    signing: SigningEngine,
) -> None:
    err = refused(project, registry, signing, ENV, "--confirm")
    assert err == (
        "push refused: no signing key: set COSIGN_KEY (the private key's PEM) and "
        "COSIGN_PASSWORD, or pass --keyless in GitHub Actions, or --unsigned to push without "
        "a signature"
    )
    assert pushes(signing) == []


def test_the_dry_run_says_what_would_be_signed(
    project: Path,
    registry: FakeRegistry,
    signing: SigningEngine,
) -> None:
    code, out, _ = run(project, registry, signing, ENV)
    assert code == 0
    assert "signing:     none: no COSIGN_KEY; --confirm refuses unless given --unsigned" in out
    code, out, _ = run(project, registry, signing, KEYED)
    assert code == 0
    assert (
        f"signing:     {registry.address}/{REPOSITORY}@<pushed digest> with the key in "
        "COSIGN_KEY (no transparency log)"
    ) in out
    assert [c[0] for c in signing.cosign_calls()] == ["public-key"]  # the key opens
    assert pushes(signing) == []


def test_a_confirmed_push_is_signed_attested_and_verified(
    project: Path,
    registry: FakeRegistry,
    signing: SigningEngine,
) -> None:
    code, out, err = run(project, registry, signing, KEYED, "--confirm")
    assert (code, err) == (0, ""), err
    assert out.endswith(f"all resolve to {PUSHED}, signed and attested (verified)\n")
    image = f"{registry.address}/{REPOSITORY}@{PUSHED}"
    calls = signing.cosign_calls()
    assert [c[-1] for c in calls[1:]] == [image] * 6
    assert PEM not in out
    assert PASSWORD not in out


def test_an_sbom_of_another_image_is_refused_before_any_push(
    project: Path,
    registry: FakeRegistry,
    signing: SigningEngine,
) -> None:
    records.write_json(sbom_path(project), {"metadata": {"properties": []}})
    err = refused(project, registry, signing, KEYED, "--confirm")
    assert "dist/sbom.cdx.json is not an SBOM that `nox -s image` wrote" in err
    other = {"name": "deathstar:image:config-digest", "value": "sha256:" + "9" * 64}
    records.write_json(sbom_path(project), {"metadata": {"properties": [other]}})
    err = refused(project, registry, signing, KEYED, "--confirm")
    assert "describes image config sha256:999999999999, not the verified image's" in err
    assert pushes(signing) == []


def test_a_failed_verification_fails_the_push_in_one_line(
    project: Path,
    registry: FakeRegistry,
    signing: SigningEngine,
) -> None:
    signing.failing = "verify"
    err = refused(project, registry, signing, KEYED, "--confirm", prefix="failed")
    assert err.startswith("push failed: `cosign verify` failed: Error: no matching signatures; ")
    assert f"the registry holds the tags at {PUSHED}" in err


# --- the audit -----------------------------------------------------------------------------------


@dataclass
class FakeAudit(FakeDocker):
    output: str = ""
    code: int = 0

    def answer(self, args: list[str], **_: object) -> str:
        if self.code:
            raise process.CommandError("`pip-audit` failed", self.output, self.code)
        return self.output


LOCK = Path("requirements/runtime.txt")


def test_a_clean_audit_passes() -> None:
    fake = FakeAudit(output="No known vulnerabilities found\n")
    assert audit.audit(LOCK, "/venv/bin", fake) == "No known vulnerabilities found"
    assert fake.calls[0].args == [
        "/venv/bin/pip-audit", "--strict", "--require-hashes", "--disable-pip",
        "--progress-spinner", "off", "--desc", "off", "--requirement", str(LOCK),
    ]  # fmt: skip


def test_unreachable_vulnerability_data_fails_closed() -> None:
    out = (
        "ERROR:pip_audit._cli:annotated-doc: Dependency not found on PyPI and could not be "
        "audited: annotated-doc (0.0.7)\n"
    )
    with pytest.raises(HarnessError) as failed:
        audit.audit(LOCK, "/venv/bin", FakeAudit(output=out, code=1))
    assert str(failed.value) == (
        "runtime.txt could not be audited: pip-audit cannot reach PyPI's vulnerability data here "
        f"({out.strip()}); not cleared, so no release from here"
    )


def test_known_vulnerabilities_fail_with_their_ids() -> None:
    out = "Name    Version ID             Fix Versions\nurllib3 1.26.0  PYSEC-2021-108 1.26.5\n"
    with pytest.raises(
        HarnessError, match=r"known vulnerabilities in runtime\.txt: PYSEC-2021-108"
    ):
        audit.audit(LOCK, "/venv/bin", FakeAudit(output=out, code=1))
    with pytest.raises(HarnessError, match=r"pip-audit failed on runtime\.txt: boom"):
        audit.audit(LOCK, "/venv/bin", FakeAudit(output="boom", code=2))
