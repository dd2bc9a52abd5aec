"""pytest plugin (``-p harness.results.contexts``): coverage attributable to each test module.

While a module is imported its lines go to the coverage context ``collect:<module>``, while its
tests run to ``<module>``, and a child process started meanwhile measures under the static
context ``child:<module>``. The controller writes each module's passed-test count, and fails
the run when a test relinked the checkout's ``.nox/pythons``: the interpreters the nox running
it keys its later sessions on.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import coverage
import pytest
from coverage.config import CoverageConfig

from harness.results.unit import CHILD, COLLECT

# How coverage's patch=subprocess hands a child its configuration (coverage.process_startup).
CHILD_CONFIG = "COVERAGE_PROCESS_CONFIG"


def _module(config: pytest.Config, path: Path) -> str:
    return path.relative_to(config.rootpath).as_posix()


def child_config(serialized: str, module: str) -> str:
    """The children's configuration with the static context ``child:<module>``."""
    config = CoverageConfig.deserialize(serialized)
    config.context = CHILD + module
    return config.serialize()


@contextmanager
def attributed(module: str, context: str) -> Iterator[None]:
    measuring = coverage.Coverage.current()
    saved = os.environ.get(CHILD_CONFIG)
    if saved is not None:
        os.environ[CHILD_CONFIG] = child_config(saved, module)
    if measuring is not None:
        measuring.switch_context(context)
    try:
        yield
    finally:
        if measuring is not None:
            measuring.switch_context("")
        if saved is not None:
            os.environ[CHILD_CONFIG] = saved


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--module-counts", help="write each test module's passed tests here")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    if not isinstance(collector, pytest.Module):
        return (yield)
    module = _module(collector.config, collector.path)
    with attributed(module, COLLECT + module):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    module = _module(item.config, item.path)
    with attributed(module, module):
        return (yield)


PASSED: Counter[str] = Counter()  # per module; one pytest run per process


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        PASSED[report.nodeid.partition("::")[0]] += 1


def python_links(config: pytest.Config) -> dict[str, str]:
    folder = config.rootpath / ".nox" / "pythons"
    return {p.name: str(p.readlink()) for p in folder.glob("python*") if p.is_symlink()}


LINKS = pytest.StashKey[dict[str, str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[LINKS] = python_links(session.config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return  # the controller sees every report, and outlives the workers
    if python_links(session.config) != session.config.stash.get(LINKS, {}):
        session.config.get_terminal_writer().line(
            f"error: a test relinked {session.config.rootpath / '.nox' / 'pythons'}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = session.config.getoption("--module-counts")
    if path:
        Path(path).write_text(json.dumps(dict(PASSED)), encoding="utf-8")
