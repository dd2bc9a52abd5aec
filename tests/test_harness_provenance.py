"""The release's SLSA Provenance v1 predicate, read by in-toto's own model of the format."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

from harness.image import records
from harness.release import sign
from tests.test_harness_build import make_record

BASE = "sha256:" + "b" * 64


@pytest.fixture
def project(tmp_path: Path) -> Path:
    record = make_record()
    record = records.ImageRecord(**{**record.__dict__, "base_digest": BASE})
    records.save_image_record(record, records.image_record_path(tmp_path))
    records.write_json(
        records.verified_record_path(tmp_path),
        {"image_id": record.image_id, "commit": record.commit, "integration_tree": "t"},
    )
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.urls]\nSource = "https://example.org/x"\n'
    )
    (tmp_path / "uv.lock").write_text("version = 1\n")
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "runtime.txt").write_text("a==1\n")
    return tmp_path


def parsed(predicate: dict[str, Any]) -> Any:
    """The predicate as in-toto's model reads it: an unknown or misplaced field fails."""
    return json_format.ParseDict(predicate, provenance_pb2.Provenance())


def test_the_predicate_is_slsa_provenance_v1(project: Path) -> None:
    predicate = sign.provenance(project, "1.2.3", {})
    model = parsed(json.loads(json.dumps(predicate)))
    definition = model.build_definition
    assert definition.build_type == sign.BUILD_TYPE
    assert model.run_details.builder.id == sign.LOCAL_BUILDER
    record = records.load_image_record(records.image_record_path(project))
    dependencies = {d.uri: dict(d.digest) for d in definition.resolved_dependencies}
    assert dependencies["git+https://example.org/x@refs/tags/v1.2.3"] == {
        "gitCommit": record.commit
    }
    assert dependencies[f"docker-image:{record.base_image}"] == {"sha256": "b" * 64}
    lock = hashlib.sha256(b"version = 1\n").hexdigest()
    assert dependencies[f"git+https://example.org/x@{record.commit}#uv.lock"] == {"sha256": lock}
    assert f"git+https://example.org/x@{record.commit}#requirements/runtime.txt" in dependencies
    assert definition.external_parameters["version"] == "1.2.3"
    assert definition.internal_parameters["verified"]["integration_tree"] == "t"


def test_on_actions_the_builder_is_the_release_workflow(project: Path) -> None:
    env = {"GITHUB_WORKFLOW_REF": "o/r/.github/workflows/release.yml@refs/tags/v1.2.3"}
    model = parsed(sign.provenance(project, "1.2.3", env))
    assert model.run_details.builder.id == (
        "https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1.2.3"
    )


def test_nothing_in_it_is_a_clock_of_the_push(project: Path) -> None:
    first = sign.provenance(project, "1.2.3", {})
    assert "metadata" not in first["runDetails"]  # no startedOn or finishedOn
    assert sign.provenance(project, "1.2.3", {}) == first


def test_the_model_refuses_the_v0_2_shape() -> None:
    with pytest.raises(json_format.ParseError):
        parsed({"builder": {"id": "x"}, "buildType": "y", "materials": []})
