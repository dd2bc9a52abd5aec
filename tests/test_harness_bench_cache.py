"""P9 and P11 (harness.bench.shared_cache): what they compare, and when they do not measure."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from harness.bench import shared_cache
from harness.bench.engine import Engine
from harness.bench.options import Options


def built(
    seconds: float, image_id: str = "sha256:a", archive: str = "t", on: str = "default"
) -> shared_cache.Built:
    return shared_cache.Built(seconds, image_id, archive, frozenset([on]))


class StandIn:
    """The bench engine's part P9 uses: a scratch directory, docker save, a registry container."""

    def __init__(self, work: Path) -> None:
        self.work = work

    def docker(self, *args: str, **options: Any) -> str:
        return ""

    @contextmanager
    def container(self, image: str, argv: object) -> Iterator[int]:
        yield 5000


def run_row(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    builds: list[shared_cache.Built],
    row: Callable[[Engine, Options, Callable[[str], None]], list[Any]],
) -> tuple[list[Any], list[dict[str, str]]]:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")

    @contextmanager
    def empty_engine(engine: object, base: Path) -> Iterator[str]:
        yield "unix:///engine2.sock"

    envs: list[dict[str, str]] = []

    def build_in_clone(
        engine: object, options: object, env: Mapping[str, str], keep: Path | None = None
    ) -> shared_cache.Built:
        envs.append(dict(env))
        made = builds[len(envs) - 1]
        if keep is not None:  # an archive whose one member holds what the Built names
            with tarfile.open(keep, "w") as archive:
                member = tarfile.TarInfo("index.json")
                member.size = len(made.archive)
                archive.addfile(member, io.BytesIO(made.archive.encode()))
        return made

    monkeypatch.setattr(shared_cache, "empty_engine", empty_engine)
    monkeypatch.setattr(shared_cache, "build_in_clone", build_in_clone)
    return row(cast(Engine, StandIn(tmp_path)), Options(), print), envs


def test_the_cached_fresh_build_is_compared_with_the_uncached_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    builds = [built(50.0), built(40.0), built(20.0)]
    (fig,), envs = run_row(monkeypatch, tmp_path, builds, shared_cache.cached_builds)
    cache, host = "127.0.0.1:5000/deathstar-cache", {"DOCKER_HOST": "unix:///engine2.sock"}
    assert envs == [
        {"DEATHSTAR_BUILD_CACHE": cache, "DEATHSTAR_BUILD_CACHE_WRITE": "1", **host},  # filling
        {**host},
        {"DEATHSTAR_BUILD_CACHE": cache, **host},
    ]
    assert (fig.baseline_runs, fig.runs, fig.verdict, fig.error) == ([40.0], [20.0], True, "")


def test_another_image_id_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    builds = [built(50.0), built(40.0), built(20.0, "sha256:b")]
    (fig,), _ = run_row(monkeypatch, tmp_path, builds, shared_cache.cached_builds)
    assert fig.error == "the cached and uncached builds gave 2 image IDs"


def test_without_root_p9_is_not_measured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    (fig,) = shared_cache.cached_builds(cast(Engine, StandIn(tmp_path)), Options(), print)
    assert fig.error == "not measured: a second engine needs root, dockerd and ip"


class ContextEngine(StandIn):
    """The stand-in engine, recording the commands the row runs itself (the context's)."""

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.commands: list[tuple[list[str], dict[str, str]]] = []

    def run(self, command: list[str], env: Mapping[str, str]) -> str:
        self.commands.append((command, dict(env)))
        return ""


def test_the_second_engine_builds_through_a_context_of_the_runs_own_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = ContextEngine(tmp_path)
    builds = [built(30.0), built(40.0, on=shared_cache.CONTEXT)]
    (fig,), envs = run_row(
        monkeypatch,
        tmp_path,
        builds,
        lambda _, o, log: shared_cache.remote_builder(cast(Engine, engine), o, log),
    )
    config = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    assert envs == [config, {**config, "DOCKER_CONTEXT": shared_cache.CONTEXT}]
    ((create, env),) = engine.commands
    assert create == ["docker", "context", "create", shared_cache.CONTEXT, "--docker",
                      "host=unix:///engine2.sock"]  # fmt: skip
    assert env["DOCKER_CONFIG"] == config["DOCKER_CONFIG"]  # not the user's ~/.docker
    assert (fig.baseline_runs, fig.runs, fig.error) == ([30.0], [40.0], "")
    assert fig.note == "the local engine: sha256:a; second engine: sha256:a"


@pytest.mark.parametrize(
    ("other", "error"),
    [
        (built(40.0, "sha256:b", on=shared_cache.CONTEXT), "built another image"),
        (built(40.0), "did not run where they should"),  # DOCKER_CONTEXT was not taken
    ],
)
def test_another_image_or_archive_or_a_build_elsewhere_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, other: shared_cache.Built, error: str
) -> None:
    engine = ContextEngine(tmp_path)
    builds = [built(30.0), other]
    (fig,), _ = run_row(
        monkeypatch,
        tmp_path,
        builds,
        lambda _, o, log: shared_cache.remote_builder(cast(Engine, engine), o, log),
    )
    assert error in fig.error


def test_a_local_build_that_names_no_builder_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = ContextEngine(tmp_path)
    silent = shared_cache.Built(30.0, "sha256:a", "t", frozenset())
    (fig,), _ = run_row(
        monkeypatch, tmp_path, [silent, built(40.0, on=shared_cache.CONTEXT)],
        lambda _, o, log: shared_cache.remote_builder(cast(Engine, engine), o, log),
    )  # fmt: skip
    assert "did not run where they should" in fig.error


def test_the_builder_is_read_from_buildx_progress() -> None:
    output = (
        "nox > docker buildx build --network none .\n"
        '#0 building with "deathstar-bench-engine2" instance using docker driver\n'
        "#1 [internal] load build definition from Dockerfile\n"
        '#0 building with "default" instance using docker driver\n'
    )
    assert shared_cache.BUILDING_WITH.findall(output) == ["deathstar-bench-engine2", "default"]


def test_one_image_in_two_different_archives_passes_and_says_where_they_differ(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = ContextEngine(tmp_path)
    builds = [built(30.0), built(40.0, archive="u", on=shared_cache.CONTEXT)]
    (fig,), _ = run_row(
        monkeypatch, tmp_path, builds,
        lambda _, o, log: shared_cache.remote_builder(cast(Engine, engine), o, log),
    )  # fmt: skip
    assert fig.error == ""
    assert fig.note.endswith("; the archives differ: the bytes of index.json")


def test_the_first_difference_of_two_archives_is_named(tmp_path: Path) -> None:
    def archive(name: str, members: list[tuple[str, bytes, int]]) -> Path:
        path = tmp_path / name
        with tarfile.open(path, "w") as out:
            for member_name, data, mtime in members:
                member = tarfile.TarInfo(member_name)
                member.size, member.mtime = len(data), mtime
                out.addfile(member, io.BytesIO(data))
        return path

    a = archive("a.tar", [("index.json", b"{}", 1), ("blobs/x", b"x", 1)])
    assert shared_cache.first_difference(a, a) == "nowhere member by member"
    swapped = archive("b.tar", [("blobs/x", b"x", 1), ("index.json", b"{}", 1)])
    assert shared_cache.first_difference(a, swapped) == "member index.json against blobs/x"
    later = archive("c.tar", [("index.json", b"{}", 2), ("blobs/x", b"x", 1)])
    assert shared_cache.first_difference(a, later) == "the header of index.json"
    short = archive("d.tar", [("index.json", b"{}", 1)])
    assert shared_cache.first_difference(a, short) == "only one has blobs/x"
