#!/usr/bin/env python3
# /// script
# requires-python = ">=3.11"
# dependencies = ["nox[uv]>=2025.5.1"]
# ///
"""The deathstar harness: every step from lint to release, the same on a laptop and in CI.

`nox -l` lists the sessions. Logic that needs tests lives in the typed `harness` package;
each session here stays a few lines that say what happens, in order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))

from harness import HarnessError
from harness.core import interpreters, locks
from harness.image import sessions
from harness.results import sessions as results
from harness.results import unit

nox.needs_version = ">=2025.5.1"
# uv creates every venv and `uv sync --locked` installs into it from uv.lock (nox's recipe).
nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
# The test matrix names every supported Python; a machine runs those it has. CI's matrix
# jobs pass --error-on-missing-interpreters, so a job there cannot pass by skipping.
nox.options.error_on_missing_interpreters = False
# Only interpreters present on the machine run: no attempt to download the missing ones.
nox.options.download_python = "never"

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHONS = nox.project.python_versions(PYPROJECT)
TOOL_PYTHON = PYTHONS[0]  # lint, build and the image use the oldest supported Python
VERSION = PYPROJECT["project"]["version"]
# Interpreters nox would not find by itself (pyenv's versions, uv's managed Pythons) are linked
# as pythonX.Y into .nox/pythons, first on PATH: every Python this machine has runs.
os.environ["PATH"] = interpreters.expose_on_path(PYTHONS, os.environ, ROOT / ".nox" / "pythons")
# pytest runs write bytecode even where PYTHONDONTWRITEBYTECODE is set (into the ignored
# __pycache__ folders). pytest rewrites the asserts of every test module and of every package
# that ships a pytest plugin (hypothesis, schemathesis): without the cache each pytest process
# (and each xdist worker) does that again from source.
PYTEST_WRITES_BYTECODE = {"PYTHONDONTWRITEBYTECODE": None}
# One pytest-xdist worker more than the cores this process may use: many tests wait (on a
# server's or a container's start, on a timeout), and the spare worker keeps the cores busy.
TEST_WORKERS = str(len(os.sched_getaffinity(0)) + 1) if sys.platform == "linux" else "auto"
# Passing results of lint, test, build, image and integration, by their inputs' digest
# (docs/caching.md; DEATHSTAR_CACHE=off turns it off). A session looks its result up before
# it installs anything: a hit costs milliseconds.
RESULTS = results.Results.open(ROOT, os.environ)


@contextmanager
def refusals(session: nox.Session) -> Iterator[None]:
    """A harness refusal becomes one readable line and a failed session, not a traceback."""
    try:
        yield
    except HarnessError as exc:
        session.error(str(exc))


def install_groups(
    session: nox.Session,
    *groups: str,
    project: bool = True,
    recording: results.Cached | unit.Plan | None = None,
) -> None:
    """``uv sync --locked`` into the session's venv: exactly these dependency groups, and with
    ``project`` the project itself (editable) with its locked runtime dependencies. uv decides
    what is up to date, and removes what the lock does not name. A pass is ``recording`` only
    while uv says the venv is the lock's (``nox -R`` skips the install)."""
    with refusals(session):
        locks.check_sources()  # uv installs from the URLs the lock names: PyPI's alone
    if project:
        selection = ["--no-default-groups", *(f"--group={group}" for group in groups)]
    else:
        selection = [f"--only-group={group}" for group in groups]
    # nox's recipe: the session's venv is uv's project environment (whatever its backend).
    env = {"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    installed = session.run_install("uv", "sync", "--locked", "--quiet", *selection, env=env)
    # None: nox skipped the install (-R); then uv says whether the venv is still the lock's.
    venv = session.virtualenv.location
    if recording and installed is None and not results.venv_matches_lock(ROOT, venv, selection):
        recording.withdrawn = "its venv is not what uv.lock says (nox -R skips installs)"


def check_exports(session: nox.Session, *exports: locks.Export) -> None:
    """The requirement files must be what uv.lock exports now (one line, else)."""
    exported = {export: session.run(*export.command(), silent=True) for export in exports}
    with refusals(session):
        locks.check_exports({export: str(text) for export, text in exported.items()})


@nox.session(python=False, default=False)
def install(session: nox.Session) -> None:
    """Create .venv with the project editable and every dev dependency group, for an IDE."""
    with refusals(session):
        locks.check_sources()  # uv installs from the URLs the lock names: PyPI's alone
    session.run("uv", "sync", "--locked", "--python", TOOL_PYTHON)
    session.log("ready: point your IDE at .venv/bin/python, or `source .venv/bin/activate`")


@nox.session(python=TOOL_PYTHON)
def lint(session: nox.Session) -> None:
    """Lock freshness, then every hook of .pre-commit-config.yaml on every file."""
    if (cached := RESULTS.lookup(session, results.EVERY_FILE)).hit:
        return
    session.run("uv", "lock", "--check")
    check_exports(session, *locks.EXPORTS)
    install_groups(session, "lint", "typing", recording=cached)
    session.run("pre-commit", "run", "--all-files", *session.posargs)
    cached.record()


@nox.session(python=PYTHONS)
def test(session: nox.Session) -> None:
    """Unit tests with branch coverage and a 90 % floor over the whole suite; a test module
    whose inputs have a recorded pass does not rerun (harness.results.unit)."""
    results.withhold_secrets(session, os.environ)
    with refusals(session):
        python, scratch = str(Path(session.bin, "python")), Path(session.virtualenv.location)
        plan = unit.plan(
            ROOT, session.name, session.posargs, python=python, environ=os.environ, scratch=scratch
        )
    session.log(plan.cached or plan.reason)
    if plan.cached:
        return
    install_groups(session, "test", recording=plan)
    session.run("coverage", "erase")
    if plan.runs_tests:  # over every core (pytest-xdist); coverage follows the workers (patch)
        pytest = ("pytest", "-n", plan.workers(TEST_WORKERS), *plan.pytest_args)
        session.run("coverage", "run", "-m", *pytest, env=PYTEST_WRITES_BYTECODE)
    session.run("python", "-m", "harness.results.floor", str(plan.save(scratch)))


@nox.session(name="lock", python=TOOL_PYTHON, default=False)
def lock_session(session: nox.Session) -> None:
    """uv lock, then the hash-pinned requirement files exported from uv.lock."""
    session.run("uv", "lock", *session.posargs)  # e.g. `-- --upgrade`
    for export in locks.EXPORTS:
        locks.write(export, str(session.run(*export.command(), silent=True)))
        session.log(f"wrote {export.path.relative_to(ROOT)}")


@nox.session(python=TOOL_PYTHON)
def build(session: nox.Session) -> None:
    """Reproducible sdist and wheel (SOURCE_DATE_EPOCH = last commit), twine check, SHA256SUMS;
    the wheel staged as the image's project layer (dist/staging), the wheelhouse."""
    with refusals(session):
        inputs = sessions.dist_inputs(ROOT)
    if (cached := RESULTS.lookup(session, results.PIPELINE_FILES, inputs=inputs)).hit:
        return
    check_exports(session, locks.RUNTIME)
    install_groups(session, "release", project=False, recording=cached)
    with refusals(session):
        made = sessions.build_dist(ROOT, VERSION, session)
    cached.record(made.summary, made.outputs, **made.facts)


@nox.session(python=TOOL_PYTHON, requires=["build"])
def image(session: nox.Session) -> None:
    """Build the image from dist/ with no network; tag it <version> and sha-<commit>; SBOM."""
    with refusals(session):
        planned = sessions.plan_image(ROOT, VERSION, session)
    inputs = partial(results.image_inputs, ROOT, planned.plan, planned.builder.description)
    present = results.image_present(planned.docker.image_id)  # and each tag names it
    cached = RESULTS.lookup(session, results.PIPELINE_FILES, inputs=inputs, present=present)
    if cached.hit:
        return
    install_groups(session, "sbom", project=False, recording=cached)  # cyclonedx-py
    with refusals(session):
        made = sessions.build_image(ROOT, planned, session)
    cached.record(made.summary, made.outputs, **made.facts)


@nox.session(python=TOOL_PYTHON, requires=["image"])
def integration(session: nox.Session) -> None:
    """Launch the recorded image with testcontainers and test it over 127.0.0.1."""
    with refusals(session):
        record, env = sessions.integration_env(ROOT, os.environ)
    inputs = partial(results.integration_inputs, ROOT, record, env)
    present = results.image_present(sessions.image_id)
    cached = RESULTS.lookup(
        session, results.PIPELINE_FILES, inputs=inputs, present=present, with_posargs=False
    )
    junit = Path(session.create_tmp()) / "junit.xml"
    if not cached.hit:  # a hit replays the whole suite's pass: the verification record below
        install_groups(session, "integration", project=False, recording=cached)
        # A module to a worker: a module's tests share its containers and some rely on the
        # module's order (test_fuzz, test_conformance); the modules do not share anything.
        session.run(
            "pytest", "integration", "-n", TEST_WORKERS, "--dist", "loadscope",
            f"--junit-xml={junit}", *session.posargs, env={**env, **PYTEST_WRITES_BYTECODE},
        )  # fmt: skip
    with refusals(session):
        sessions.record_integration(ROOT, record, session)
    cached.record(results.junit_summary(junit), image_id=record.image_id)


@nox.session(python=TOOL_PYTHON, default=False)
def repro(session: nox.Session) -> None:
    """Rebuild the recorded commit from nothing and compare: image ID, config, every layer."""
    install_groups(session, "release", "push", project=False)
    session.run("python", "-m", "harness.rebuild", "repro")


@nox.session(python=TOOL_PYTHON, default=False)
def verify(session: nox.Session) -> None:
    """`-- REF`: rebuild the commit a registry image names; is the image exactly that source?"""
    install_groups(session, "release", "push", project=False)
    session.run("python", "-m", "harness.rebuild", "verify", *session.posargs)


@nox.session(python=TOOL_PYTHON, default=False)
def audit(session: nox.Session) -> None:
    """Release gate: pip-audit of the runtime lock, --strict; fails when the data is unreachable."""
    install_groups(session, "audit", project=False)
    session.run("python", "-m", "harness.core.audit")


@nox.session(python=TOOL_PYTHON, default=False)
def push(session: nox.Session) -> None:
    """Gated release of the verified image: checks and plan; pushes only with --confirm."""
    install_groups(session, "push", project=False)
    session.run("python", "-m", "harness.release", *session.posargs)


@nox.session(python=TOOL_PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks P1-P6 against bench/seed-style.Dockerfile; `nox -s bench -- --help`."""
    install_groups(session, "release", project=False)  # build, pip: the image's own toolchain
    nox_args = ("--nox-python", sys.executable, "--test-session", f"test-{TOOL_PYTHON}")
    session.run("python", "-m", "harness.bench", *nox_args, "--", *session.posargs)


if __name__ == "__main__":
    nox.main()
