"""harness.image.sessions: the build, image and integration sessions' steps with a stand-in
nox session; and the audit as ``python -m harness.core.audit`` runs it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness import HarnessError
from harness.core import audit, checksums
from harness.core.docker import Docker
from harness.image import build, records, sbom, sessions
from tests.fakedocker import FakeDocker
from tests.gitrepo import EPOCH, git
from tests.test_harness_build import INSPECT, engine_with_images


class Session:
    def __init__(self, posargs: list[str] | None = None) -> None:
        self.posargs = posargs or []
        self.runs: list[tuple[tuple[str, ...], Mapping[str, str] | None]] = []
        self.logs: list[str] = []
        self.warnings: list[str] = []

    def run(self, *args: str, env: Mapping[str, str] | None = None, external: bool = False) -> Any:
        self.runs.append((args, env))
        if args[:2] == ("uv", "build"):
            outdir = Path(args[args.index("--out-dir") + 1])
            (outdir / "deathstar-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
            (outdir / "deathstar-0.1.0.tar.gz").write_bytes(b"sdist")
        if "download" in args:
            dest = Path(args[args.index("--dest") + 1])
            dest.mkdir(parents=True)
            (dest / "fastapi-1-py3-none-any.whl").write_bytes(b"x")
        return ""

    def log(self, message: str) -> None:
        self.logs.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "x")
    return tmp_path


def test_build_makes_dist_in_order_at_the_commits_epoch(checkout: Path) -> None:
    (checkout / "dist").mkdir()
    (checkout / "dist" / "stale.whl").write_bytes(b"old")
    session = Session()
    made = sessions.build_dist(checkout, "0.1.0", session)
    commands = [args[:2] for args, _ in session.runs]
    assert commands == [("uv", "build"), ("twine", "check"), ("python", "-m"), ("python", "-m")]
    assert session.runs[0][1] == {"SOURCE_DATE_EPOCH": str(EPOCH)}
    wheel = "dist/deathstar-0.1.0-py3-none-any.whl"
    assert session.runs[2][0][2:] == ("harness.stage", wheel, "dist/staging")
    assert not (checkout / "dist" / "stale.whl").exists()
    sums = (checkout / "dist" / "SHA256SUMS").read_text()
    sdist = checkout / "dist" / "deathstar-0.1.0.tar.gz"
    assert f"{checksums.sha256(sdist)}  deathstar-0.1.0.tar.gz\n" in sums
    assert session.logs[-1].startswith("downloaded 1 wheels")
    assert made.summary == "deathstar-0.1.0-py3-none-any.whl deathstar-0.1.0.tar.gz"


def test_the_image_is_built_recorded_and_described(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = engine_with_images()
    fake.rules[:0] = [
        (["version", "--format", "{{.Server.Version}}"], "20.10.24", 0),
        (["buildx", "version"], "", 1),
        (["info", "--format", build.INFO_FORMAT], "linux/x86_64 []", 0),
        ([*INSPECT, "{{.Id}}", "deathstar:0.1.0"], "sha256:abc", 0),
        ([*INSPECT, "{{json .RootFS.Layers}}", "deathstar:0.1.0"], '["sha256:l1"]', 0),
    ]
    described: list[records.ImageRecord] = []

    def describe(record: records.ImageRecord, root: Path, *_: object) -> Path:
        described.append(record)
        return root / "dist" / "s"

    monkeypatch.setattr(sbom, "write", describe)
    session = Session()
    made = sessions.build_image(
        checkout, sessions.plan_image(checkout, "0.1.0", session, Docker(fake)), session
    )
    assert "will not be reproducible" in session.warnings[0]
    record = records.load_image_record(records.image_record_path(checkout))
    assert described == [record]
    assert record.image_id == "sha256:abc"
    assert made.facts == {"image_id": "sha256:abc", "tags": " ".join(record.tags)}
    assert session.logs == ["Docker engine 20.10.24", record.summary(), "wrote dist/s"]


def test_a_bad_build_cache_is_refused_before_the_engine(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEATHSTAR_BUILD_CACHE", "cache")
    fake = FakeDocker()
    with pytest.raises(HarnessError, match="DEATHSTAR_BUILD_CACHE is not REGISTRY/REPOSITORY"):
        sessions.plan_image(checkout, "0.1.0", Session(), Docker(fake))
    assert fake.calls == []


def test_no_engine_is_one_line(checkout: Path) -> None:
    with pytest.raises(HarnessError, match="no Docker engine answers"):
        sessions.plan_image(checkout, "0.1.0", Session(), Docker(FakeDocker(rules=[([], "", 1)])))


def test_the_audit_prints_its_report_or_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(audit, "audit", lambda lock, bin_dir: f"clean {lock.name}")
    assert audit.main() == 0
    assert capsys.readouterr().out == "clean runtime.txt\n"

    def refuse(lock: Path, bin_dir: str) -> str:
        raise HarnessError("could not be audited")

    monkeypatch.setattr(audit, "audit", refuse)
    assert audit.main() == 1
    assert capsys.readouterr().err == "audit: error: could not be audited\n"
