"""The registry build cache's flags and the buildx builder a build runs on (sharing)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from harness import HarnessError
from harness.core.docker import Docker
from harness.image import build, sharing
from harness.image.records import ImageRecord
from tests.fakedocker import FakeDocker
from tests.gitrepo import git
from tests.test_harness_base_pin import built_with
from tests.test_harness_build import engine_with_images, plan

CACHE = "127.0.0.1:5000/team/cache"


def cache_flags(environ: dict[str, str], branch: str | None) -> list[str]:
    """BuildKit's flags for the cache ``environ`` names, as a plan gets them; [] without one."""
    cache = sharing.BuildCache.configured(environ)
    return build.BuildPlan("1", "c" * 40, False, 1, "b", shared=cache, branch=branch).cache_flags()


def test_without_the_variable_there_is_no_cache() -> None:
    assert cache_flags({}, "feature") == []
    assert cache_flags({"DEATHSTAR_BUILD_CACHE_WRITE": "1"}, "feature") == []


def test_the_branch_and_main_are_read_and_only_written_when_asked() -> None:
    env = {"DEATHSTAR_BUILD_CACHE": "ghcr.io/team/cache"}
    assert cache_flags(env, "feature/x") == [
        *(
            "--cache-from",
            "type=registry,ref=ghcr.io/team/cache:feature-x-" + digest12("feature/x"),
        ),
        *("--cache-from", "type=registry,ref=ghcr.io/team/cache:main"),
    ]
    written = cache_flags({**env, "DEATHSTAR_BUILD_CACHE_WRITE": "1"}, "feature/x")
    assert written == [  # a writer reads nothing: a bad entry is never written back
        "--cache-to",
        "type=registry,ref=ghcr.io/team/cache:feature-x-" + digest12("feature/x") + ",mode=max",
    ]


def test_plain_http_only_on_loopback_and_a_detached_head_reads_main_only() -> None:
    flags = cache_flags({"DEATHSTAR_BUILD_CACHE": CACHE}, None)
    assert flags == ["--cache-from", f"type=registry,ref={CACHE}:main,registry.insecure=true"]


@pytest.mark.parametrize(
    "value",
    ["ghcr.io", "myregistry/cache", "ghcr.io/Team", "ghcr.io/team:tag", "ghcr.io/x,mode=max"],
)
def test_a_bad_value_is_one_line(value: str) -> None:
    with pytest.raises(
        HarnessError, match=r"^DEATHSTAR_BUILD_CACHE is not REGISTRY/REPOSITORY"
    ) as e:
        cache_flags({"DEATHSTAR_BUILD_CACHE": value}, "main")
    assert "\n" not in str(e.value)
    with pytest.raises(HarnessError, match="DEATHSTAR_BUILD_CACHE_WRITE is 'yes'"):
        cache_flags({"DEATHSTAR_BUILD_CACHE": CACHE, "DEATHSTAR_BUILD_CACHE_WRITE": "yes"}, "main")


def digest12(branch: str) -> str:
    return hashlib.sha256(branch.encode()).hexdigest()[:12]


def test_a_branch_name_becomes_a_tag_of_its_own() -> None:
    assert sharing.cache_tag("main") == "main"
    assert sharing.cache_tag("feature/ü x") == f"feature---x-{digest12('feature/ü x')}"
    assert sharing.cache_tag("..-x") == f"x-{digest12('..-x')}"
    assert len(sharing.cache_tag("b" * 300)) == 113
    # Never main's tag, and never another branch's (review: 'ümain' wrote REPO:main).
    tags = [
        sharing.cache_tag(b) for b in ("ümain", "日本", "ü/main", "-", "feature/x", "feature-x")
    ]
    assert "main" not in tags
    assert len(set(tags)) == len(tags)


def test_the_branch_is_read_from_git_and_none_when_detached(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "topic/a")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "x")
    assert sharing.branch(tmp_path) == "topic/a"
    git(tmp_path, "checkout", "-q", "--detach")
    assert sharing.branch(tmp_path) is None


def test_only_an_archive_build_takes_the_cache_and_never_with_no_cache(tmp_path: Path) -> None:
    flags = ("--cache-from", "type=registry,ref=x.io/c:main")
    cached = plan(shared=sharing.BuildCache("x.io/c", write=False))
    command = cached.build_command(tmp_path, ["x:1"], archive=tmp_path / "a")
    assert " ".join(flags) in " ".join(command)
    assert "--cache-from" in cached.runtime_base_command(tmp_path, "b:1", tmp_path / "b")
    assert "--cache-from" not in cached.build_command(tmp_path, ["x:1"])
    uncached = cached.build_command(tmp_path, ["x:1"], archive=tmp_path / "a", no_cache=True)
    assert "--cache-from" not in uncached


def inspected(driver: str, endpoint: str, hosts: dict[str, str]) -> FakeDocker:
    out = f"Name:   b\nDriver: {driver}\n\nNodes:\nName: b0\nEndpoint: {endpoint}\n"
    host = ["context", "inspect", "--format", "{{.Endpoints.docker.Host}}"]
    rules = [([*host, name], answer, 0) for name, answer in hosts.items()]
    rules += [(host, hosts["default"], 0), (["--context"], "", 0)]
    return FakeDocker(rules=[(["buildx", "inspect"], out, 0), *rules])


def test_the_builder_is_local_only_when_it_builds_in_the_local_engine() -> None:
    hosts = {"default": "unix:///var/run/docker.sock", "d2": "unix:///run/d2.sock"}
    fake = inspected("docker", "default", hosts)
    selected = sharing.BuildxBuilder.selected(Docker(fake), Docker(fake))
    assert selected == sharing.BuildxBuilder("b", "docker", "default", local=True)
    fake = inspected("docker", "d2", hosts)
    other = sharing.BuildxBuilder.selected(Docker(fake), Docker(fake))
    assert not other.local
    engine = other.engine(sharing.local_engine(fake).runner)  # --context outlives the stripping
    assert engine is not None
    engine("buildx", "inspect")
    assert fake.calls[-1].args == ["docker", "--context", "d2", "buildx", "inspect"]
    fake = inspected("docker-container", "unix:///var/run/docker.sock", hosts)
    container = sharing.BuildxBuilder.selected(Docker(fake), Docker(fake))
    assert not container.local
    assert container.engine(fake) is None  # it reads no engine's images


def test_the_local_engine_is_docker_without_the_builder_selectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_CONTEXT", "d2")
    monkeypatch.setenv("BUILDX_BUILDER", "k8s")
    fake = FakeDocker(rules=[(["ps"], "", 0)])
    sharing.local_engine(fake)("ps")
    env = fake.calls[0].env or {}
    assert "PATH" in env
    assert not {"DOCKER_CONTEXT", "BUILDX_BUILDER"} & set(env)


def test_a_builder_that_sees_no_local_image_builds_from_the_digest_and_loads_here(
    tmp_path: Path,
) -> None:
    fake = engine_with_images()
    remote = sharing.BuildxBuilder("k8s", "kubernetes", "", local=False)
    built = built_with(tmp_path, fake, remote)
    assert len(built) == 1, "one build, with no runtime base the builder could not see"
    assert f"BASE_IMAGE={build.DEFAULT_BASE_IMAGE}@sha256:base" in built[0]
    assert not any(arg.startswith("RUNTIME_BASE=") for arg in built[0])
    calls = fake.docker_calls()
    assert ["load", "--input", str(tmp_path / "image.tar")] in calls
    assert not any(call[0] == "tag" and "deathstar-pinned-base" in call[-1] for call in calls)


def test_the_runtime_base_and_a_one_go_build_take_the_cache_the_project_layers_not(
    tmp_path: Path,
) -> None:
    shared = sharing.BuildCache("x.io/c", write=False)
    runtime_base, image = built_with(tmp_path, engine_with_images(), shared=shared)
    assert "--cache-from" in runtime_base
    assert "--cache-from" not in image  # it would replace the runtime base's cache in the ref
    remote = sharing.BuildxBuilder("k8s", "kubernetes", "", local=False)
    (one_go,) = built_with(tmp_path, engine_with_images(), remote, shared=shared)
    assert "--cache-from" in one_go


@pytest.mark.parametrize("name", ["main", "runtime-base-" + "a" * 24, "runtime-base", "-" * 5])
def test_a_runtime_base_is_shared_under_a_tag_no_branch_cache_can_have(name: str) -> None:
    cache = sharing.BuildCache.configured({"DEATHSTAR_BUILD_CACHE": CACHE})
    assert cache is not None
    assert not cache.write
    shared = cache.runtime_base("a" * 24)
    assert shared == f"{CACHE}:runtime-base-{'a' * 24}"
    assert f"{CACHE}:{sharing.cache_tag(name)}" != shared


def test_an_image_built_with_the_build_cache_says_so_in_its_record(tmp_path: Path) -> None:
    made: list[ImageRecord] = []
    built_with(tmp_path, engine_with_images(), records=made)
    shared = sharing.BuildCache(CACHE, write=False)
    built_with(tmp_path, engine_with_images(), shared=shared, records=made)
    assert [record.build_cache for record in made] == ["", CACHE]  # push refuses the second
