"""P9 (harness.bench.shared_cache): what it compares, and when it does not measure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from harness.bench import shared_cache
from harness.bench.engine import Engine
from harness.bench.options import Options


class StandIn:
    """The bench engine's part P9 uses: a scratch directory, docker save, a registry container."""

    def __init__(self, work: Path) -> None:
        self.work = work

    def docker(self, *args: str, **options: Any) -> str:
        return ""

    @contextmanager
    def container(self, image: str, argv: object) -> Iterator[int]:
        yield 5000


def run_p9(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, builds: list[tuple[float, str]]
) -> tuple[list[Any], list[dict[str, str]]]:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")

    @contextmanager
    def empty_engine(engine: object, base: Path) -> Iterator[str]:
        yield "unix:///engine2.sock"

    envs: list[dict[str, str]] = []

    def build_in_clone(
        engine: object, options: object, host: str, env: Mapping[str, str]
    ) -> tuple[float, str]:
        envs.append(dict(env))
        return builds[len(envs) - 1]

    monkeypatch.setattr(shared_cache, "empty_engine", empty_engine)
    monkeypatch.setattr(shared_cache, "build_in_clone", build_in_clone)
    figures = shared_cache.cached_builds(cast(Engine, StandIn(tmp_path)), Options(), print)
    return figures, envs


def test_the_cached_fresh_build_is_compared_with_the_uncached_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    builds = [(50.0, "sha256:a"), (40.0, "sha256:a"), (20.0, "sha256:a")]
    (fig,), envs = run_p9(monkeypatch, tmp_path, builds)
    cache = "127.0.0.1:5000/deathstar-cache"
    assert envs == [
        {"DEATHSTAR_BUILD_CACHE": cache, "DEATHSTAR_BUILD_CACHE_WRITE": "1"},  # the earlier clone
        {},
        {"DEATHSTAR_BUILD_CACHE": cache},
    ]
    assert (fig.baseline_runs, fig.runs, fig.verdict, fig.error) == ([40.0], [20.0], True, "")


def test_another_image_id_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    builds = [(50.0, "sha256:a"), (40.0, "sha256:a"), (20.0, "sha256:b")]
    (fig,), _ = run_p9(monkeypatch, tmp_path, builds)
    assert fig.error == "the cached and uncached builds gave 2 image IDs"


def test_without_root_p9_is_not_measured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    (fig,) = shared_cache.cached_builds(cast(Engine, StandIn(tmp_path)), Options(), print)
    assert fig.error == "not measured: a second engine needs root, dockerd and ip"
