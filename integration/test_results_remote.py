"""The shared results tier against a real ``registry:2`` with the real ``oras``: what one store
pushes another pulls into another checkout, and a well-formed artifact whose output is not what
its entry says is a miss. The registry runs on 127.0.0.1 (plain http, as for any loopback).
"""

from __future__ import annotations

import hashlib
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import LABELS, ContainerLedger, owner_of, published_on_loopback
from testcontainers.core.network import Network

from harness.results import remote
from harness.results.remote import Remote
from harness.results.store import Store, document

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from testcontainers.community.registry import DockerRegistryContainer

KEY = "5e" * 32

WHEEL = "dist/app-1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def repository(
    loopback: Network, ledger: ContainerLedger, request: pytest.FixtureRequest
) -> Iterator[str]:
    """``127.0.0.1:<port>/deathstar/results`` on a registry:2 removed after the module."""
    container = (
        DockerRegistryContainer(image="registry:2", port=5000)
        .with_kwargs(labels=dict(LABELS))
        .with_network(loopback)
    )
    with ledger.running(container, "registry:2 container", owner_of(request)):
        yield f"{published_on_loopback(container, 5000)}/deathstar/results"


def tier(repository: str, checkout: Path, *, write: bool = False) -> Store:
    checkout.mkdir(exist_ok=True)
    return Store(checkout / ".store", 10_000_000, Remote(repository, checkout, write))


def test_what_ci_pushes_another_checkout_pulls(repository: str, tmp_path: Path) -> None:
    ci, laptop = tmp_path / "ci", tmp_path / "laptop"
    wheel = hashlib.sha256(b"wheel bytes").hexdigest()
    entry = {"summary": "built", "origin": "CI run 7", "output_paths": [WHEEL],
             "outputs": {WHEEL: wheel}}  # fmt: skip
    (ci / "dist").mkdir(parents=True)
    (ci / WHEEL).write_bytes(b"wheel bytes")
    assert tier(repository, ci, write=True).put(KEY, entry)
    pulled = tier(repository, laptop)
    assert pulled.get(KEY) == entry
    assert (laptop / WHEEL).read_bytes() == b"wheel bytes"
    assert tier(repository, tmp_path / "other").get("0f" * 32) is None  # no such tag: a miss


def test_an_output_that_is_not_what_the_entry_says_is_a_miss(
    repository: str, tmp_path: Path
) -> None:
    key = "a1" * 32
    claimed = hashlib.sha256(b"what CI built").hexdigest()
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / remote.ENTRY_NAME).write_bytes(
        document(key, {"output_paths": [WHEEL], "outputs": {WHEEL: claimed}})
    )
    (folder / claimed).write_bytes(b"something else")  # its layer digest is right; its name lies
    layers = [f"{remote.ENTRY_NAME}:{remote.ENTRY_TYPE}", f"{claimed}:{remote.OUTPUT_TYPE}"]
    subprocess.run(
        ["oras", "push", "--plain-http", "--artifact-type", remote.ARTIFACT_TYPE,
         f"{repository}:{key}", *layers],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    laptop = tmp_path / "laptop"
    assert tier(repository, laptop).get(key) is None
    assert not (laptop / "dist").exists()
