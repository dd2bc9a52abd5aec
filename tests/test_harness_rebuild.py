"""repro and verify: the rebuild's steps (against a stand-in runner) and the comparison."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import HarnessError
from harness.core.docker import Docker
from harness.image import archive, build, imaging, records
from harness.rebuild import __main__ as rebuild_main
from harness.rebuild import compare
from harness.rebuild.__main__ import check_builder, check_released
from harness.rebuild.compare import Source
from harness.stage import stage
from tests.archives import layer_tar, save_archive
from tests.fakedocker import FakeDocker, FakeRegistry, FakeSkopeo, image_manifest, sha256
from tests.gitrepo import git
from tests.test_harness_stage import make_wheel

BASE_LAYER = layer_tar({"etc/os-release": b"bookworm"})
APP_LAYER = layer_tar({"opt/venv/app.py": b"print(1)", "opt/venv/bin/deathstar": b"#!"})
DRIFTED = layer_tar(
    {"opt/venv/app.py": b"print(1)", "opt/venv/bin/deathstar": b"#!", "built-at": b"Sun"}
)
LABELS = {"org.opencontainers.image.version": "0.1.0"}


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def image(path: Path, *layers: bytes, labels: Mapping[str, str] = LABELS) -> archive.ImageArchive:
    config = {"config": {"Labels": dict(labels)}}
    save_archive(path, {digest(layer): layer for layer in layers}, config=config, oci=True)
    return archive.read_archive(path)


def identity_of(image: archive.ImageArchive) -> compare.Identity:
    return compare.Identity(
        image.manifest_digest, image.config_digest, image.diff_ids, image.config
    )


def test_an_identical_rebuild_has_no_differences(tmp_path: Path) -> None:
    original = image(tmp_path / "a.tar", BASE_LAYER, APP_LAYER)
    rebuilt = image(tmp_path / "b.tar", BASE_LAYER, APP_LAYER)
    assert compare.differences(identity_of(original), rebuilt, original) == []


def test_a_drifted_layer_is_named_with_its_files(tmp_path: Path) -> None:
    original = image(tmp_path / "a.tar", BASE_LAYER, APP_LAYER)
    rebuilt = image(tmp_path / "b.tar", BASE_LAYER, DRIFTED)
    lines = compare.differences(identity_of(original), rebuilt, original)
    assert lines[0].startswith("config: sha256:")
    assert lines[1] == f"layer 2 of 2: {digest(APP_LAYER)} -> {digest(DRIFTED)}"
    assert lines[2] == "  built-at: only in the rebuild"
    assert not any("etc/os-release" in line for line in lines)


def test_config_fields_that_differ_are_named(tmp_path: Path) -> None:
    original = image(tmp_path / "a.tar", BASE_LAYER, labels={"created": "2026-01-01"})
    rebuilt = image(tmp_path / "b.tar", BASE_LAYER, labels={"created": "2026-11-29"})
    lines = compare.differences(identity_of(original), rebuilt, original)
    assert "  config config.Labels.created: 2026-01-01 -> 2026-11-29" in lines
    assert not any(line.startswith("layer") for line in lines)


def test_without_the_original_layer_the_files_are_not_guessed(tmp_path: Path) -> None:
    original = image(tmp_path / "a.tar", BASE_LAYER, APP_LAYER)
    rebuilt = image(tmp_path / "b.tar", BASE_LAYER, DRIFTED, APP_LAYER)
    expected = compare.Identity("", original.config_digest, original.diff_ids)
    lines = compare.differences(expected, rebuilt)
    assert "layer 3 of 3: (none) -> " + digest(APP_LAYER) in lines
    assert "  (the files cannot be compared: no local copy of the original layer)" in lines
    assert not any(line.startswith("image ID") for line in lines)  # unknown: not compared


def builder_engine(*, store: bool = True, base: str = "sha256:" + "b" * 64) -> FakeDocker:
    status = '[["driver-type","io.containerd.snapshotter.v1"]]' if store else "[]"
    pin = f"deathstar-pinned-base:{base.removeprefix('sha256:')}"
    return FakeDocker(
        rules=[
            (["version", "--format", "{{.Server.Version}}"], "26.1.5", 0),
            (["buildx", "version"], "github.com/docker/buildx v0.13.1 x", 0),
            (["info", "--format", build.INFO_FORMAT], f"linux/x86_64 {status}", 0),
            (["login"], "Login Succeeded", 0),
            (["image", "inspect", "--format", "{{.Id}}", f"base:1@{base}"], base, 0),
            (["tag", f"base:1@{base}", pin], "", 0),
            (["buildx", "inspect"], "Name: default\nDriver: docker\n\nEndpoint: default", 0),
            (["context", "inspect"], "unix:///var/run/docker.sock", 0),
            (["image", "inspect", "--format", "{{.Id}}", pin], base, 0),
        ]
    )


def test_the_builder_must_reproduce_and_a_different_one_is_noted() -> None:
    with pytest.raises(HarnessError, match=r"cannot rebuild reproducibly: .*classic image store"):
        check_builder(Docker(builder_engine(store=False)), None)
    note = check_builder(Docker(builder_engine()), "docker 25.0.0, buildx 0.12, x")
    assert "built with docker 25.0.0" in note
    same = check_builder(
        Docker(builder_engine()),
        "docker 26.1.5, buildx v0.13.1, containerd image store, linux/x86_64",
    )
    assert same == ""


def test_the_base_must_be_here_by_its_digest() -> None:
    assert imaging.pin(Docker(builder_engine()), "base:1", "sha256:" + "b" * 64) == (
        "deathstar-pinned-base:" + "b" * 64
    )
    with pytest.raises(HarnessError, match=r"docker pull base:1@sha256:e+"):
        imaging.pin(Docker(builder_engine()), "base:1", "sha256:" + "e" * 64)


@pytest.mark.parametrize(
    "ref",
    [
        "deathstar:1",
        "ghcr.io/x",
        "ghcr.io/x:1 ; rm",
        "myregistry/x:1",
        "127.0.0.1:5000/X:1",
        "ghcr.io/x:1@latest",
        "ghcr.io/x@",
        "ghcr.io/x:1@",
    ],
)
def test_a_bad_reference_is_one_line(ref: str) -> None:
    with pytest.raises(HarnessError) as refused:
        compare.parse_reference(ref)
    assert "\n" not in str(refused.value)


def test_references_by_tag_and_by_digest() -> None:
    assert compare.parse_reference("127.0.0.1:5000/team/deathstar:1.2.3") == (
        "127.0.0.1:5000", "team/deathstar", "1.2.3",
    )  # fmt: skip
    pinned = "ghcr.io/tea-n-tech/deathstar@sha256:" + "a" * 64
    assert compare.parse_reference(pinned)[2] == "sha256:" + "a" * 64


class StandIn(FakeDocker):
    """git for real; python -m build, pip download and the BuildKit build write archives."""

    def __init__(self, layers: Sequence[bytes], labels: Mapping[str, str]) -> None:
        super().__init__(rules=builder_engine().rules)
        self.layers, self.labels = layers, labels
        self.staged = False  # whether the image's build context held the staged project

    def answer(self, args: list[str], *, cwd: Path | None, env: Mapping[str, str] | None) -> str:
        if args[0] == "git" and args[1] == "-C":
            return git(Path(args[2]), *args[3:]) + "\n"
        if args[0] == "git":
            return git(cwd or Path.cwd(), *args[1:]) + "\n"
        if args[:2] == ["uv", "build"] or args[1:3] == ["-m", "pip"]:
            return self.package(args, cwd)
        if args[1:3] == ["-m", "harness.stage"]:  # for real, in the clone's dist/
            assert cwd is not None
            assert (cwd / "harness" / "stage.py").is_file()  # the fresh clone's own module
            stage(cwd / args[3], cwd / args[4], within=cwd / "dist")
            return ""
        if args[:3] == ["docker", "buildx", "build"]:
            assert "--no-cache" in args
            assert not {"--cache-from", "--cache-to"} & set(args)
            staged = Path(args[-1]) / "dist/staging/metadata/opt/venv/bin/deathstar"
            self.staged = staged.is_file()
            dest = next(a for a in args if a.startswith("type=docker")).split("dest=")[1]
            image(Path(dest.split(",")[0]), *self.layers, labels=self.labels)
            return ""
        return super().answer(args, cwd=cwd, env=env)

    def package(self, args: list[str], cwd: Path | None) -> str:
        """The wheel through uv build (--out-dir); the wheelhouse (pip download) stays empty."""
        if args[:2] == ["uv", "build"]:
            make_wheel(Path(args[args.index("--out-dir") + 1]))
        return ""


def recorded_project(
    tmp_path: Path,
    original: archive.ImageArchive,
    *,
    dirty: bool = False,
    stages: bool = False,
) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "README").write_text("x")
    if stages:  # a commit whose build session stages the wheel on the host
        (root / "harness").mkdir()
        (root / "harness" / "stage.py").write_text("")
    git(root, "add", ".")
    git(root, "commit", "-qm", "x")
    head = git(root, "rev-parse", "HEAD")
    record = records.ImageRecord(
        image_id=original.manifest_digest, tags=["deathstar:0.1.0"], version="0.1.0",
        commit=head, revision=f"{head}-dirty" if dirty else head, base_image="base:1",
        size=2, base_size=1, config_digest=original.config_digest, diff_ids=original.diff_ids,
        base_digest="sha256:" + "b" * 64,
        builder="docker 26.1.5, buildx v0.13.1, containerd image store", reproducible=True,
    )  # fmt: skip
    records.save_image_record(record, records.image_record_path(root))
    original.path.rename(records.image_archive_path(root))
    return root


def run_main(
    root: Path,
    fake: FakeDocker,
    *args: str,
    env: Mapping[str, str] | None = None,
    skopeo: FakeSkopeo | None = None,
) -> tuple[int, str, list[str]]:
    printed: list[str] = []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = rebuild_main.main(
            list(args),
            env or {},
            root=root,
            runner=fake,
            out=printed.append,
            skopeo=skopeo or FakeSkopeo(FakeRegistry()),
        )
    return code, out.getvalue(), printed


def test_repro_passes_for_the_same_image_and_names_the_file_otherwise(tmp_path: Path) -> None:
    original = image(tmp_path / "a.tar", BASE_LAYER, APP_LAYER)
    root = recorded_project(tmp_path, original)
    code, out, errors = run_main(root, StandIn([BASE_LAYER, APP_LAYER], LABELS), "repro")
    assert (code, errors) == (0, [])
    assert "reproducible: " in out.splitlines()[-1]
    code, out, _ = run_main(root, StandIn([BASE_LAYER, DRIFTED], LABELS), "repro")
    assert code == 1
    assert "NOT reproducible" in out
    assert "  built-at: only in the rebuild" in out


def test_repro_never_takes_the_build_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEATHSTAR_BUILD_CACHE", "127.0.0.1:5000/cache")
    monkeypatch.setenv("DEATHSTAR_BUILD_CACHE_WRITE", "1")
    original = image(tmp_path / "a.tar", BASE_LAYER, APP_LAYER)
    root = recorded_project(tmp_path, original)
    fake = StandIn([BASE_LAYER, APP_LAYER], LABELS)  # refuses a build with cache flags
    assert run_main(root, fake, "repro")[0] == 0
    assert any(call.args[1:3] == ["buildx", "build"] for call in fake.calls)


def test_repro_stages_the_wheel_of_a_commit_that_does(tmp_path: Path) -> None:
    original = image(tmp_path / "a.tar", BASE_LAYER, APP_LAYER)
    root = recorded_project(tmp_path, original, stages=True)
    fake = StandIn([BASE_LAYER, APP_LAYER], LABELS)
    code, _, errors = run_main(root, fake, "repro")
    assert (code, errors) == (0, [])
    staging = [c for c in fake.calls if c.args[1:3] == ["-m", "harness.stage"]]
    wheel = "dist/deathstar-0.1.0-py3-none-any.whl"
    assert [c.args[3:] for c in staging] == [[wheel, "dist/staging"]]
    assert fake.staged
    # A commit from before the host staging installs its wheel in the Dockerfile: no staging.
    (tmp_path / "old").mkdir()
    plain = recorded_project(tmp_path / "old", image(tmp_path / "b.tar", BASE_LAYER, APP_LAYER))
    fake = StandIn([BASE_LAYER, APP_LAYER], LABELS)
    assert run_main(plain, fake, "repro")[0] == 0
    assert not [c for c in fake.calls if c.args[1:3] == ["-m", "harness.stage"]]
    assert not fake.staged


def test_repro_builds_the_wheel_with_uv_build_in_the_fresh_clone(tmp_path: Path) -> None:
    original = image(tmp_path / "a.tar", BASE_LAYER, APP_LAYER)
    root = recorded_project(tmp_path, original, stages=True)
    fake = StandIn([BASE_LAYER, APP_LAYER], LABELS)
    assert run_main(root, fake, "repro")[0] == 0
    (built,) = [c for c in fake.calls if c.args[:2] == ["uv", "build"]]
    assert built.cwd is not None
    assert built.cwd.name == "source"  # the clone, not the checkout
    assert built.args[built.args.index("--out-dir") + 1] == str(built.cwd / "dist")
    assert "--no-build-isolation" in built.args  # the backend pinned by the lock, no download
    assert built.env is not None
    assert built.env["SOURCE_DATE_EPOCH"] == git(root, "log", "-1", "--format=%ct")


def test_repro_refuses_a_dirty_or_unreproducible_record(tmp_path: Path) -> None:
    original = image(tmp_path / "a.tar", BASE_LAYER)
    root = recorded_project(tmp_path, original, dirty=True)
    code, _, errors = run_main(root, StandIn([BASE_LAYER], LABELS), "repro")
    assert code == 1
    assert errors == [
        "repro: the recorded image was built from a tree with uncommitted changes; commit, "
        "run `nox -s image`, then `nox -s repro`"
    ]


def labelled(labels: Mapping[str, object]) -> dict[str, object]:
    return {"config": {"Labels": dict(labels)}, "rootfs": {"diff_ids": ["sha256:" + "1" * 64]}}


def serving(config: Mapping[str, object]) -> FakeSkopeo:
    """skopeo reading a registry that serves ``config``'s image as team/deathstar:0.1.0."""
    registry = FakeRegistry()
    blob = registry.put_blob("team/deathstar", json.dumps(config).encode())
    registry.put("team/deathstar", "0.1.0", image_manifest(blob))
    return FakeSkopeo(registry)


def read(config: Mapping[str, object]) -> compare.Served:
    """What verify reads of the registry image, anonymously."""
    return compare.read(
        "127.0.0.1:5000/team/deathstar:0.1.0", {}, Docker(FakeDocker()), serving(config)
    )


GOOD_LABELS = {
    "org.opencontainers.image.revision": "c" * 40,
    "org.opencontainers.image.version": "0.1.0",
    "org.opencontainers.image.base.name": "python:3.11-slim-bookworm@sha256:" + "b" * 64,
    "org.opencontainers.image.base.digest": "sha256:" + "b" * 64,
}


def test_verify_reads_the_source_from_the_registry_images_labels() -> None:
    config = labelled(GOOD_LABELS)
    skopeo = serving(config)
    served = compare.read("127.0.0.1:5000/team/deathstar:0.1.0", {}, Docker(FakeDocker()), skopeo)
    manifest = skopeo.registry.manifests[("team/deathstar", "0.1.0")]
    assert [args[-1] for args, _ in skopeo.calls] == [
        "docker://127.0.0.1:5000/team/deathstar:0.1.0",  # the manifest the tag names, then
        f"docker://127.0.0.1:5000/team/deathstar@{sha256(manifest)}",  # its config, by digest
    ]
    assert served.manifest_digest == sha256(manifest)
    assert served.source == Source(
        "c" * 40, "0.1.0", "python:3.11-slim-bookworm", "sha256:" + "b" * 64
    )
    blob = json.dumps(config).encode()
    assert served.identity == compare.Identity("", sha256(blob), ["sha256:" + "1" * 64], config)


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("org.opencontainers.image.revision", "names no commit"),
        ("org.opencontainers.image.base.digest", "does not name its base image by digest"),
    ],
)
def test_verify_refuses_an_image_that_does_not_say_its_source(drop: str, message: str) -> None:
    labels = {k: v for k, v in GOOD_LABELS.items() if k != drop}
    with pytest.raises(HarnessError, match=message):
        read(labelled(labels))


HOSTILE_LABELS = [
    # The version becomes buildx's --output name=...: a comma would add exporter fields.
    ({"org.opencontainers.image.version": "1,type=image,push=true,name=evil.example/x"}, "version"),
    ({"org.opencontainers.image.version": '1"'}, "version"),
    ({"org.opencontainers.image.version": ""}, "version"),
    # The base name reaches docker's argv (an option) and the terminal (escapes, newlines).
    ({"org.opencontainers.image.base.name": "--format=x"}, "not a docker image name"),
    ({"org.opencontainers.image.base.name": "py thon:1\n\x1b[2J"}, "not a docker image name"),
    ({"org.opencontainers.image.base.name": "python:3.11@sha256:" + "e" * 64}, "by digest"),
    ({"org.opencontainers.image.base.digest": "sha256:" + "B" * 64}, "by digest"),
    ({"org.opencontainers.image.revision": ["c" * 40]}, "names no commit"),
]


@pytest.mark.parametrize(("change", "message"), HOSTILE_LABELS)
def test_verify_refuses_labels_that_would_inject_or_mislead(
    change: Mapping[str, object], message: str
) -> None:
    with pytest.raises(HarnessError, match=message) as refused:
        read(labelled({**GOOD_LABELS, **change}))
    assert "\n" not in str(refused.value)
    assert "\x1b" not in str(refused.value)


@pytest.mark.parametrize(
    "config",
    [
        {"config": ["Labels"]},
        {"config": {"Labels": "x"}},
        {"config": {"Labels": GOOD_LABELS}, "rootfs": []},
        {"config": {"Labels": GOOD_LABELS}, "rootfs": {"diff_ids": "sha256:x"}},
        {"config": {"Labels": GOOD_LABELS}, "rootfs": {"diff_ids": ["\x1b]52;c;eA==\x07"]}},
        {"config": {"Labels": GOOD_LABELS}, "rootfs": {"diff_ids": ["sha256:" + "a" * 64] * 1001}},
    ],
)
def test_verify_refuses_a_malformed_config_in_one_line(config: dict[str, object]) -> None:
    with pytest.raises(HarnessError, match="config") as refused:
        read(config)
    assert "\x1b" not in str(refused.value)


def test_config_changes_are_escaped_bounded_and_survive_deep_nesting() -> None:
    deep: object = "leaf"
    for _ in range(5000):
        deep = [deep]
    served = {
        "config": {"Labels": {"x\x1b[2J\nreproducible: yes": "\x1b]0;owned\x07" + "v" * 10_000}},
        "deep": deep,
        **{f"k{n}": n for n in range(100)},
    }
    lines = compare.config_changes(served, {"config": {"Labels": {}}})
    assert all("\x1b" not in line and "\n" not in line and len(line) < 300 for line in lines)
    assert len(lines) == compare.MAX_CONFIG_LINES + 1
    assert lines[-1] == f"... and {102 - compare.MAX_CONFIG_LINES} more fields"
    assert any(line.startswith("config.Labels.x\\u001b[2J\\nreproducible") for line in lines)


# --- verify end to end: a registry (tests/fakedocker.py), a clone, a stand-in builder ---------

REGISTRY_ENV = {"REGISTRY_USERNAME": "deploy", "REGISTRY_PASSWORD": "s3cret"}


@dataclass
class Released:
    """A clone whose commit is tagged v0.1.0, and a registry serving the image it builds."""

    root: Path
    registry: FakeRegistry
    labels: dict[str, str]
    manifest: bytes

    def ref(self, reference: str = ":0.1.0") -> str:
        return f"{self.registry.address}/team/deathstar{reference}"

    def builder(self) -> StandIn:
        return StandIn([BASE_LAYER, APP_LAYER], self.labels)

    def verify(
        self, builder: StandIn, reference: str = ":0.1.0", env: Mapping[str, str] = REGISTRY_ENV
    ) -> tuple[int, str, list[str]]:
        """``verify REF`` of this clone, skopeo reading this registry."""
        skopeo = FakeSkopeo(self.registry)
        return run_main(self.root, builder, "verify", self.ref(reference), env=env, skopeo=skopeo)


@pytest.fixture
def released(tmp_path: Path) -> Released:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "README").write_text("x")
    git(root, "add", ".")
    git(root, "commit", "-qm", "release")
    git(root, "tag", "v0.1.0")
    labels = {**GOOD_LABELS, "org.opencontainers.image.revision": git(root, "rev-parse", "HEAD")}
    labels["org.opencontainers.image.base.name"] = "base:1"
    diff_ids = [digest(BASE_LAYER), digest(APP_LAYER)]
    # The config bytes the stand-in builder writes (tests/archives.py): a faithful rebuild.
    config = json.dumps(
        {"config": {"Labels": labels}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    registry = FakeRegistry()
    manifest = image_manifest(registry.put_blob("team/deathstar", config))
    registry.put("team/deathstar", "0.1.0", manifest)
    return Released(root, registry, labels, manifest)


def test_verify_rebuilds_a_released_image_and_finds_it_reproducible(released: Released) -> None:
    code, out, errors = released.verify(released.builder())
    assert (code, errors) == (0, [])
    assert "(v0.1.0)" in out
    assert out.splitlines()[-1].startswith("reproducible: ")


def test_verify_refuses_an_index_whose_other_entries_it_cannot_rebuild(
    released: Released,
) -> None:
    """PoC: an index of the rebuilt amd64 image and any arm64 image was called reproducible."""
    arm = image_manifest("sha256:" + "99" * 32)
    released.registry.put("team/deathstar", "arm", arm)
    entries = [
        {"digest": sha256(released.manifest), "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": sha256(arm), "platform": {"os": "linux", "architecture": "arm64"}},
    ]
    index = json.dumps({"schemaVersion": 2, "manifests": entries}).encode()
    released.registry.put("team/deathstar", "multi", index)
    builder = released.builder()
    code, out, errors = released.verify(builder, ":multi")
    assert code == 1
    assert "reproducible" not in out
    assert errors == [
        f"verify: {released.ref(':multi')} is an image index ({sha256(index)}); a rebuild "
        "checks one image, not the index nor its other entries: verify its linux/amd64 image "
        f"itself, {released.ref('@' + sha256(released.manifest))}"
    ]
    assert not [c for c in builder.calls if c.args[:2] == ["git", "clone"]]


def test_verify_rebuilds_only_a_commit_its_release_tag_contains(released: Released) -> None:
    """PoC: any commit object in the clone (a fetched PR head) was checked out and its build
    code run."""
    git(released.root, "checkout", "-qb", "pr")
    (released.root / "harness").mkdir()
    (released.root / "harness" / "package.py").write_text("import os  # runs in the rebuild\n")
    git(released.root, "add", ".")
    git(released.root, "commit", "-qm", "a pull request")
    unreleased = git(released.root, "rev-parse", "HEAD")
    released.labels["org.opencontainers.image.revision"] = unreleased
    config = json.dumps({"config": {"Labels": released.labels}, "rootfs": {"diff_ids": []}})
    blob = released.registry.put_blob("team/deathstar", config.encode())
    released.registry.put("team/deathstar", "pr", image_manifest(blob))
    builder = released.builder()
    code, _, errors = released.verify(builder, ":pr")
    assert code == 1
    assert errors == [
        f"verify: commit {unreleased[:12]} is in no release tag of version 0.1.0 in "
        f"{released.root} (`git fetch --tags` if the tag is missing); only a released "
        "commit's code is rebuilt"
    ]
    assert not [c for c in builder.calls if c.args[:2] == ["git", "clone"]]
    git(released.root, "tag", "v0.2.0")  # another version's tag does not vouch for it
    assert released.verify(builder, ":pr")[0]


def test_the_rebuild_gets_none_of_the_callers_credentials(
    released: Released, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PoC: the commit's build code ran with the caller's whole environment, REGISTRY_PASSWORD
    included."""
    secrets = {
        **REGISTRY_ENV,
        "GITHUB_TOKEN": "ghp-secret",
        "COSIGN_PASSWORD": "cosign-secret",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "oidc-secret",
        "PIP_INDEX_URL": "https://user:pip-secret@pypi.example/simple",
        "PIP_FIND_LINKS": "/wheels",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    builder = released.builder()
    code, _, errors = released.verify(builder, env=dict(os.environ))
    assert (code, errors) == (0, [])
    children = [c for c in builder.calls if c.args[0] != "docker" or c.args[1] == "buildx"]
    assert any(c.args[:2] == ["git", "clone"] for c in children)
    for call in children:
        assert call.env is not None, f"{call.args[:3]} inherits the whole environment"
        shown = " ".join(f"{k}={v}" for k, v in call.env.items())
        for name in ("REGISTRY_PASSWORD", "REGISTRY_USERNAME", "GITHUB_TOKEN", "COSIGN_PASSWORD"):
            assert name not in call.env, call.args[:3]
        assert "secret" not in shown, call.args[:3]
        assert call.env.get("PIP_FIND_LINKS") == "/wheels"  # the tools' settings pass


@pytest.mark.parametrize(
    ("commit", "version"), [("d" * 40, "0.1.0"), ("HEAD", "latest"), ("HEAD", "0.1.0")]
)
def test_an_unknown_commit_or_a_version_no_tag_can_carry_is_not_rebuilt(
    released: Released, commit: str, version: str
) -> None:
    head = git(released.root, "rev-parse", "HEAD")
    if (commit, version) == ("HEAD", "0.1.0"):  # released, but the tag is not in this clone
        git(released.root, "tag", "-d", "v0.1.0")
    source = Source(head if commit == "HEAD" else commit, version, "base:1", "sha256:" + "b" * 64)
    with pytest.raises(HarnessError, match=f"is in no release tag of version {version} in "):
        check_released(released.root, source)
