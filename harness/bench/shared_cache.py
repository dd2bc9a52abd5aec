"""P9: ``nox -s build image`` in a fresh clone on an empty engine, with the registry build cache
an earlier clone filled (``DEATHSTAR_BUILD_CACHE``) against the same without it. P10: lint and
the unit tests in a fresh clone whose passes a clone acting as CI pushed to a registry
(``DEATHSTAR_RESULTS_CACHE``). P11: the image a second engine builds through a docker context
against the local engine's. Each second dockerd has its own data, exec root, socket and bridge
(never ``--bridge=none``, which deletes the first engine's docker0) and is removed after; the
cache is a ``registry:2`` container of the first engine on loopback."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import NamedTuple

from harness import HarnessError
from harness.bench.engine import Engine
from harness.bench.options import Options
from harness.bench.pipeline import NOX_TIMEOUT, measure, outer_env
from harness.bench.report import Figure
from harness.core import checksums
from harness.core.process import CommandError
from harness.image import records, sharing

BRIDGE, BRIDGE_ADDRESS = "br-bench9", "10.231.0.1/24"
CONTEXT = "deathstar-bench-engine2"
REGISTRY_IMAGE = "registry:2"
# registry:2 listens where the bench's containers do, so Engine.container publishes it.
REGISTRY = ["/usr/bin/env", "REGISTRY_HTTP_ADDR=:8080", "/bin/registry", "serve",
            "/etc/docker/registry/config.yml"]  # fmt: skip
START_SECONDS = 60.0


def answers(engine: Engine, *command: str) -> bool:
    try:
        engine.run(command)
    except CommandError:
        return False
    return True


@contextmanager
def empty_engine(engine: Engine, base_archive: Path) -> Iterator[str]:
    """A second dockerd holding only the base image, removed on exit: its DOCKER_HOST."""
    root = Path(engine.work / "engine2")
    shutil.rmtree(root, ignore_errors=True)
    (root / "exec").mkdir(parents=True)
    (root / "daemon.json").write_text('{"features": {"containerd-snapshotter": true}}\n')
    host = f"unix://{root / 'docker.sock'}"
    engine.run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    daemon: subprocess.Popen[bytes] | None = None
    try:
        engine.run(["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE])
        engine.run(["ip", "link", "set", BRIDGE, "up"])
        daemon = subprocess.Popen(
            ["dockerd", "--config-file", str(root / "daemon.json"), "--data-root",
             str(root / "data"), "--exec-root", str(root / "exec"), "--host", host,
             "--pidfile", str(root / "docker.pid"), "--containerd-namespace", "moby-bench9",
             "--containerd-plugins-namespace", "plugins-moby-bench9", "--iptables=false",
             "--ip6tables=false", f"--bridge={BRIDGE}"],
            stdout=subprocess.DEVNULL, stderr=(root / "dockerd.log").open("wb"),
        )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while not answers(engine, "docker", "-H", host, "info", "--format", "{{.ID}}"):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"the second engine did not start; see {root}/dockerd.log")
            time.sleep(0.5)
        engine.run(["docker", "-H", host, "load", "--input", str(base_archive)], timeout=600)
        yield host
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=60)
        answers(engine, "ip", "link", "delete", BRIDGE)
        shutil.rmtree(root, ignore_errors=True)


class Built(NamedTuple):
    seconds: float
    image_id: str
    archive: str  # the sha256 of dist/image.tar
    builders: frozenset[str]  # the buildx instances its builds said they ran on


BUILDING_WITH = re.compile(r'^#0 building with "([^"]+)" instance', re.MULTILINE)


def build_in_clone(
    engine: Engine, options: Options, extra: Mapping[str, str], keep: Path | None = None
) -> Built:
    """``nox -s build image`` in a fresh clone with ``extra`` in its environment; its archive
    copied to ``keep``, if given."""
    clone = engine.clone("cache-clone")
    # The builder is what ``extra`` selects, not what the bench's caller did.
    env = sharing.without_selectors(outer_env(os.environ, sys.prefix)) | dict(extra)
    env["DEATHSTAR_CACHE"] = "off"  # the result cache would keep build's pass
    command = [options.nox_python, "-m", "nox", "-s", "build", "image"]
    output, spent = measure(
        lambda: engine.run(command, cwd=clone, env=env, timeout=NOX_TIMEOUT, merge=True)
    )
    image_id = records.load_image_record(records.image_record_path(clone)).image_id
    archive = checksums.sha256(records.image_archive_path(clone))
    if keep is not None:
        shutil.copyfile(records.image_archive_path(clone), keep)
    return Built(spent.wall, image_id, archive, frozenset(BUILDING_WITH.findall(output)))


def cached_builds(engine: Engine, options: Options, log: Callable[[str], None]) -> list[Figure]:
    fig = Figure("P9", "`nox -s build image`, fresh clone, empty engine, registry cache", "s",
                 at_most_ratio=0.5, baseline_name="no cache")  # fmt: skip
    if why := cannot_start_engine():
        fig.error = why
        return [fig]
    base_archive = saved_base(engine, options)
    ids: set[str] = set()
    with engine.container(REGISTRY_IMAGE, REGISTRY) as port:
        cache = {"DEATHSTAR_BUILD_CACHE": f"127.0.0.1:{port}/deathstar-cache"}
        with empty_engine(engine, base_archive) as host:  # the earlier clone, which fills it
            filled = {**cache, "DEATHSTAR_BUILD_CACHE_WRITE": "1", "DOCKER_HOST": host}
            ids.add(build_in_clone(engine, options, filled)[1])
        for run in range(1, options.pipeline_runs + 1):
            for side, env in (("no cache", {}), ("cache", cache)):
                with empty_engine(engine, base_archive) as host:
                    took, image_id, *_ = build_in_clone(
                        engine, options, {**env, "DOCKER_HOST": host}
                    )
                fig.add(took, baseline=side == "no cache")
                ids.add(image_id)
                log(f"bench: P9 run {run} {side}: {took:.1f} s, {image_id}")
    fig.note = f"image IDs: {', '.join(sorted(ids))}"
    if len(ids) != 1:
        fig.error = f"the cached and uncached builds gave {len(ids)} image IDs"
    return [fig]


def remote_builder(engine: Engine, options: Options, log: Callable[[str], None]) -> list[Figure]:
    """P11: fresh clones built by the local engine, then through a docker context by a second
    engine that holds only the base (``image`` builds there in one go and loads the archive
    here): the two image IDs side by side, which must be one; and whether the two archives are
    bit-identical, and if not where they first differ."""
    fig = Figure("P11", "`nox -s build image` on a second engine through a docker context", "s",
                 baseline_name="the local engine")  # fmt: skip
    if why := cannot_start_engine():
        fig.error = why
        return [fig]
    base_archive = saved_base(engine, options)
    # The context lives in the run's own docker config, never in the user's ~/.docker.
    config = {"DOCKER_CONFIG": str(engine.work / "docker-config")}
    built: dict[str, Built] = {}
    with empty_engine(engine, base_archive) as host:
        create = ["docker", "context", "create", CONTEXT, "--docker", f"host={host}"]
        engine.run(create, env={**os.environ, **config})
        for side, extra in (
            ("the local engine", {}),
            ("second engine", {"DOCKER_CONTEXT": CONTEXT}),
        ):
            keep = engine.work / f"p11-{len(built)}.tar"
            built[side] = made = build_in_clone(engine, options, {**config, **extra}, keep)
            fig.add(made.seconds, baseline=side == "the local engine")
            log(f"bench: P11 {side}: {made.seconds:.1f} s on {', '.join(sorted(made.builders))}, "
                f"{made.image_id}, archive sha256 {made.archive}")  # fmt: skip
    fig.note = "; ".join(f"{side}: {made.image_id}" for side, made in built.items())
    fig.details = {side: made._asdict() | {"builders": sorted(made.builders)}
                   for side, made in built.items()}  # fmt: skip
    local, second = built.values()
    if local.archive != second.archive:  # one image, written out differently: say where
        where = first_difference(engine.work / "p11-0.tar", engine.work / "p11-1.tar")
        fig.note += f"; the archives differ: {where}"
    if second.builders != {CONTEXT} or not local.builders or CONTEXT in local.builders:
        fig.error = f"the builds did not run where they should: {fig.details}"
    elif local.image_id != second.image_id:
        fig.error = "the second engine built another image than the local one"
    return [fig]


def first_difference(one: Path, other: Path) -> str:
    """Where two archives first differ: a member's name (their order), header or bytes."""
    with tarfile.open(one) as first, tarfile.open(other) as second:
        for a, b in itertools.zip_longest(first, second):
            if a is None or b is None:
                return f"only one has {(a or b).name}"
            if a.name != b.name:
                return f"member {a.name} against {b.name}"
            header = ("mode", "mtime", "uid", "gid", "uname", "gname", "size", "type")
            if [getattr(a, f) for f in header] != [getattr(b, f) for f in header]:
                return f"the header of {a.name}"
            if a.isfile() and digest(first, a) != digest(second, b):
                return f"the bytes of {a.name}"
    return "nowhere member by member"


def digest(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    handle, hashed = archive.extractfile(member), hashlib.sha256()
    while handle is not None and (chunk := handle.read(1 << 20)):
        hashed.update(chunk)
    return hashed.hexdigest()


def cannot_start_engine() -> str:
    if os.geteuid() != 0 or not (shutil.which("dockerd") and shutil.which("ip")):
        return "not measured: a second engine needs root, dockerd and ip"
    return ""


def saved_base(engine: Engine, options: Options) -> Path:
    """The base image as an archive, which each second engine loads."""
    path = engine.work / "base.tar"
    if not path.exists():
        engine.docker("save", "--output", str(path), options.base_image, timeout=600)
    return path


SHARED_SESSIONS = ("lint", "test")  # every test-X.Y the machine has
REMOTE_HIT = "cached pass from CI run"


def shared_results(engine: Engine, options: Options, log: Callable[[str], None]) -> list[Figure]:
    """P10: a clone acting as CI runs lint and the unit tests and pushes their passes; a fresh
    clone with an empty .nox and an empty local store then runs the same, from the registry."""
    fig = Figure("P10", "`nox -s lint test`, fresh clone, results CI pushed to a registry", "s",
                 at_most=10.0, baseline_name="CI's cold run")  # fmt: skip
    if not shutil.which("oras"):
        fig.error = "not measured: oras is not installed (`bash .ci/provision`)"
        return [fig]
    with engine.container(REGISTRY_IMAGE, REGISTRY) as port:
        shared = {"DEATHSTAR_RESULTS_CACHE": f"127.0.0.1:{port}/deathstar/results"}
        ci = {**shared, "DEATHSTAR_RESULTS_CACHE_WRITE": "1", "GITHUB_RUN_ID": "1"}
        for run in range(1, options.pipeline_runs + 1):
            for side, extra in (("CI", ci), ("fresh clone", shared)):
                clone = engine.clone(f"results-{side.replace(' ', '-')}")
                env = {**outer_env(os.environ, sys.prefix), **extra}
                env["DEATHSTAR_CACHE_DIR"] = str(engine.work / f"results-{side}-{run}")
                env.pop("DEATHSTAR_CACHE", None)
                command = [options.nox_python, "-m", "nox", "-s", *SHARED_SESSIONS,
                           "--no-error-on-missing-interpreters"]  # fmt: skip
                nox = partial(engine.run, command, cwd=clone, env=env, timeout=NOX_TIMEOUT)
                try:
                    output, spent = measure(partial(nox, merge=True))
                except CommandError as exc:  # the end of nox's output says which session, why
                    tail = "\n".join(exc.output.strip().splitlines()[-15:])
                    log(f"bench: P10 run {run} {side} failed; the end of its output:\n{tail}")
                    raise
                fig.add(spent.wall, baseline=side == "CI")
                ran = [
                    line for line in output.splitlines() if "Session " in line and " was " in line
                ]
                hits = [line for line in output.splitlines() if REMOTE_HIT in line]
                log(f"bench: P10 run {run} {side}: {spent.wall:.1f} s, {len(hits)} remote hits")
                if side == "fresh clone" and len(hits) < len(ran):
                    fig.error = f"run {run}: {len(ran) - len(hits)} of {len(ran)} sessions ran"
                if side == "CI" and run == 1:
                    fig.note = f"the sessions: {len(ran)}"
    return [fig]
