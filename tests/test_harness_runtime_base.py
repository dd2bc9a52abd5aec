"""The runtime base: its key follows every input of its stage and nothing else; built once."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from harness import HarnessError
from harness.core.docker import Docker
from harness.image import build, runtime_base, sharing
from tests.fakedocker import FakeDocker

CURRENT = build.Builder("26.1.5", "v0.13.1", containerd_store=True)


def plan(**overrides: object) -> build.BuildPlan:
    fields: dict[str, object] = {
        "version": "1.2.3",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "dirty": False,
        "epoch": 1767323045,
        "base_image": "python:3.11-slim-bookworm",
        "base_digest": "sha256:" + "b" * 64,
    }
    fields.update(overrides)
    return build.BuildPlan(**fields)  # type: ignore[arg-type]


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM x AS runtime-base\n")
    (tmp_path / ".dockerignore").write_text("*\n")
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "runtime.txt").write_text("fastapi==1 --hash=sha256:00\n")
    wheelhouse = tmp_path / "dist" / "wheelhouse"
    wheelhouse.mkdir(parents=True)
    (wheelhouse / "fastapi-1-py3-none-any.whl").write_bytes(b"wheel")
    (tmp_path / "dist" / "staging").mkdir()
    (tmp_path / "dist" / "staging" / "app.py").write_text("print(1)\n")
    return tmp_path


def edit(path: Path) -> Callable[[Path], object]:
    return lambda root: (root / path).write_bytes((root / path).read_bytes() + b"#")


def link_instead(path: Path) -> None:
    """The file replaced by a link to a file outside the context (same name, no content)."""
    path.unlink()
    path.symlink_to("/etc/hostname")


CHANGES: dict[str, Callable[[Path], object]] = {
    "Dockerfile": edit(Path("Dockerfile")),
    "dockerignore": edit(Path(".dockerignore")),
    "lock": edit(Path("requirements/runtime.txt")),
    "wheel content": edit(Path("dist/wheelhouse/fastapi-1-py3-none-any.whl")),
    "wheel added": lambda root: (root / "dist/wheelhouse/extra-1-py3-none-any.whl").write_bytes(
        b""
    ),
    "wheel made executable": lambda root: (
        root / "dist/wheelhouse/fastapi-1-py3-none-any.whl"
    ).chmod(0o755),
    "wheel made a link": lambda root: link_instead(
        root / "dist/wheelhouse/fastapi-1-py3-none-any.whl"
    ),
    "lock removed": lambda root: (root / "requirements/runtime.txt").unlink(),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_the_key_follows_every_file_the_stage_can_see(
    context: Path, change: Callable[[Path], object]
) -> None:
    before = runtime_base.key(context, plan(), CURRENT)
    assert runtime_base.key(context, plan(), CURRENT) == before  # a digest, not a timestamp
    change(context)
    assert runtime_base.key(context, plan(), CURRENT) != before


def test_the_key_follows_the_base_and_the_builder_but_not_the_commit(context: Path) -> None:
    before = runtime_base.key(context, plan(), CURRENT)
    assert runtime_base.key(context, plan(base_digest="sha256:" + "c" * 64), CURRENT) != before
    newer = build.Builder("27.0.1", "v0.15.1", containerd_store=True)
    assert runtime_base.key(context, plan(), newer) != before
    # shared through a registry: an arm64 engine must not take an amd64 one of the same inputs
    arm = build.Builder("26.1.5", "v0.13.1", containerd_store=True, platform="linux/aarch64")
    amd = build.Builder("26.1.5", "v0.13.1", containerd_store=True, platform="linux/x86_64")
    assert runtime_base.key(context, plan(), arm) != runtime_base.key(context, plan(), amd)
    # What only the runtime stage sees: the commit, its labels, the staged project.
    later = plan(commit="f" * 40, dirty=True, epoch=1, version="9.9.9")
    (context / "dist" / "staging" / "app.py").write_text("print(2)\n")
    os.utime(context / "Dockerfile", (0, 0))
    assert runtime_base.key(context, later, CURRENT) == before


def test_the_stage_is_built_with_its_own_arguments_only(context: Path) -> None:
    command = plan().runtime_base_command(context, "deathstar-runtime-base:k", context / "b.tar")
    args = [command[i + 1] for i, arg in enumerate(command) if arg == "--build-arg"]
    assert args == [
        f"BASE_IMAGE=python:3.11-slim-bookworm@sha256:{'b' * 64}",
        "SOURCE_DATE_EPOCH=1",
    ]
    assert command[-3:] == ["--target", "runtime-base", str(context)]
    assert "rewrite-timestamp=true" in command[command.index("--output") + 1]


def test_built_once_then_taken_from_the_engine(context: Path) -> None:
    tag = f"deathstar-runtime-base:{runtime_base.key(context, plan(), CURRENT)}"
    archive = context / "base.tar"
    built: list[Sequence[str]] = []

    def run(command: Sequence[str]) -> None:
        built.append(command)
        archive.write_bytes(b"tar")

    fake = FakeDocker(rules=[(["load"], "Loaded image", 0)])
    made = runtime_base.ensure(
        plan(), CURRENT, Docker(fake), run, context=context, archive_path=archive
    )
    assert made == tag
    assert len(built) == 1
    assert ["load", "--input", str(archive)] in fake.docker_calls()
    assert not archive.exists(), "the archive is loaded, then removed"

    there = FakeDocker(rules=[(["image", "inspect", "--format", "{{.Id}}", tag], "sha256:rb", 0)])
    kept = runtime_base.ensure(
        plan(), CURRENT, Docker(there), run, context=context, archive_path=archive
    )
    assert kept == tag
    assert len(built) == 1, "built again although the engine has it"


def test_a_failed_build_leaves_no_archive(context: Path) -> None:
    archive = context / "base.tar"

    def run(command: Sequence[str]) -> None:
        archive.write_bytes(b"half")
        raise HarnessError("docker buildx build failed: no space left on device")

    with pytest.raises(HarnessError, match="no space left"):
        runtime_base.ensure(
            plan(), CURRENT, Docker(FakeDocker()), run, context=context, archive_path=archive
        )
    assert not archive.exists()


def test_a_checkout_removes_only_the_base_it_used_before(tmp_path: Path) -> None:
    state = tmp_path / ".nox" / "runtime-base"
    fake = FakeDocker(rules=[(["image", "rm"], "Untagged", 0)])
    docker = Docker(fake)
    assert runtime_base.prune(docker, "deathstar-runtime-base:aaa", state) == []
    assert fake.docker_calls() == []  # nothing noted yet: nothing of ours to remove
    assert runtime_base.prune(docker, "deathstar-runtime-base:aaa", state) == []
    assert fake.docker_calls() == []  # the same base again
    assert runtime_base.prune(docker, "deathstar-runtime-base:bbb", state) == []
    assert fake.docker_calls() == [["image", "rm", "deathstar-runtime-base:aaa"]]
    assert state.read_text() == "deathstar-runtime-base:bbb\n"


def test_a_base_that_cannot_go_is_one_line_and_a_foreign_note_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / "runtime-base"
    state.write_text("deathstar-runtime-base:aaa\n")
    busy = FakeDocker(rules=[(["image", "rm"], "Error: image is being used by a container", 1)])
    problems = runtime_base.prune(Docker(busy), "deathstar-runtime-base:bbb", state)
    assert len(problems) == 1
    assert "deathstar-runtime-base:aaa" in problems[0]
    assert "being used" in problems[0]
    state.write_text("python:3.11-slim-bookworm\n")  # not a runtime base: never removed
    other = FakeDocker()
    assert runtime_base.prune(Docker(other), "deathstar-runtime-base:bbb", state) == []
    assert other.docker_calls() == []


SHARED = sharing.BuildCache("127.0.0.1:5000/cache", write=False)
INSPECT_ID = ["image", "inspect", "--format", "{{.Id}}"]


def never_built(command: Sequence[str]) -> None:
    raise AssertionError(f"built although the build cache had it: {command}")


def names(context: Path) -> tuple[str, str, str]:
    """The runtime base's tag when built here, when pulled, and in the build cache."""
    digest = runtime_base.key(context, plan(), CURRENT)
    return (
        f"deathstar-runtime-base:{digest}",
        f"deathstar-runtime-base:pulled-{digest}",
        f"127.0.0.1:5000/cache:runtime-base-{digest}",
    )


def test_a_runtime_base_in_the_build_cache_is_pulled_not_built(context: Path) -> None:
    _, pulled, remote = names(context)
    fake = FakeDocker(
        rules=[
            ([*INSPECT_ID, remote], "sha256:rb", 0),
            (["pull"], "", 0),
            (["tag"], "", 0),
            (["image", "rm"], "", 0),
        ]
    )
    said: list[str] = []
    made = runtime_base.ensure(
        plan(shared=SHARED), CURRENT, Docker(fake), never_built, context=context,
        archive_path=context / "base.tar", say=said.append,
    )  # fmt: skip
    assert made == pulled
    assert fake.docker_calls()[2:] == [
        ["pull", "--quiet", remote],
        [*INSPECT_ID, remote],
        ["tag", "sha256:rb", pulled],  # by ID: what was pulled, whatever the name says meanwhile
        ["image", "rm", remote],  # the registry's name goes; the image stays under its tag
    ]
    assert said == [f"pulled the runtime base from {remote}"]


def test_a_pulled_runtime_base_is_only_taken_by_a_build_that_reads_the_cache(
    context: Path,
) -> None:
    tag, pulled, _ = names(context)
    archive = context / "base.tar"
    fake = FakeDocker(rules=[([*INSPECT_ID, pulled], "sha256:rb", 0), (["load"], "", 0)])
    kept = runtime_base.ensure(
        plan(shared=SHARED), CURRENT, Docker(fake), never_built, context=context,
        archive_path=archive, say=print,
    )  # fmt: skip
    assert kept == pulled
    built: list[Sequence[str]] = []

    def run(command: Sequence[str]) -> None:
        built.append(command)
        archive.write_bytes(b"tar")

    made = runtime_base.ensure(
        plan(), CURRENT, Docker(fake), run, context=context, archive_path=archive, say=print
    )
    assert made == tag
    assert len(built) == 1, "without the cache, what a cache writer chose is not taken"


@pytest.mark.parametrize("write", [False, True])
def test_a_runtime_base_the_build_cache_lacks_is_built_and_pushed_only_when_writing(
    context: Path, write: bool
) -> None:
    tag, _, remote = names(context)
    archive = context / "base.tar"
    fake = FakeDocker(
        rules=[
            (["pull"], "manifest unknown", 1),
            (["load"], "", 0),
            (["tag"], "", 0),
            (["push"], "", 0),
            (["image", "rm"], "", 0),
        ]
    )
    built: list[Sequence[str]] = []

    def run(command: Sequence[str]) -> None:
        built.append(command)
        archive.write_bytes(b"tar")

    said: list[str] = []
    shared = sharing.BuildCache(SHARED.repository, write=write)
    made = runtime_base.ensure(
        plan(shared=shared), CURRENT, Docker(fake), run, context=context, archive_path=archive,
        say=said.append,
    )  # fmt: skip
    assert made == tag
    assert len(built) == 1
    calls = fake.docker_calls()
    assert any(call[0] == "pull" for call in calls) is not write, "a writer never pulls"
    pushes = [call for call in calls if call[0] in ("tag", "push")]
    assert pushes == ([["tag", tag, remote], ["push", "--quiet", remote]] if write else [])
    assert calls[-1] == (["image", "rm", remote] if write else ["load", "--input", str(archive)])
    assert said[-1] == (
        f"pushed the runtime base to {remote}"
        if write
        else "no runtime base from the build cache, building it: docker pull --quiet failed: "
        "manifest unknown"
    )


def test_a_writer_pushes_the_runtime_base_the_engine_has(context: Path) -> None:
    tag, _, remote = names(context)
    fake = FakeDocker(
        rules=[
            ([*INSPECT_ID, tag], "sha256:rb", 0),
            (["tag"], "", 0),
            (["push"], "", 0),
            (["image", "rm"], "", 0),
        ]
    )
    writer = plan(shared=sharing.BuildCache(SHARED.repository, write=True))
    made = runtime_base.ensure(
        writer, CURRENT, Docker(fake), never_built, context=context,
        archive_path=context / "base.tar", say=print,
    )  # fmt: skip
    assert made == tag
    assert ["push", "--quiet", remote] in fake.docker_calls()  # an earlier push may have failed


def test_a_failed_push_of_the_runtime_base_fails_and_leaves_no_registry_name(
    context: Path,
) -> None:
    archive = context / "base.tar"
    fake = FakeDocker(
        rules=[
            (["load"], "", 0),
            (["tag"], "", 0),
            (["push"], "denied: requested access to the resource is denied", 1),
            (["image", "rm"], "", 0),
        ]
    )
    writer = plan(shared=sharing.BuildCache(SHARED.repository, write=True))
    with pytest.raises(HarnessError, match="docker push --quiet failed: denied"):
        runtime_base.ensure(
            writer, CURRENT, Docker(fake), lambda c: archive.write_bytes(b"t"),
            context=context, archive_path=archive, say=lambda _: None,
        )  # fmt: skip
    assert fake.docker_calls()[-1][:2] == ["image", "rm"]


def test_the_key_ignores_the_umask(context: Path) -> None:
    wheel = context / "dist/wheelhouse/fastapi-1-py3-none-any.whl"
    before = runtime_base.key(context, plan(), CURRENT)
    wheel.chmod(0o664)  # Ubuntu's umask 0002 against CI's 0022: the same base
    (context / "Dockerfile").chmod(0o600)
    assert runtime_base.key(context, plan(), CURRENT) == before
