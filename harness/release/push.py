"""Pushing a planned release: a throwaway login, the tags in order, the digest read-back."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from harness import HarnessError
from harness.core.docker import Docker
from harness.release.gates import Plan
from harness.release.registry import RegistryClient

PUSH_TIMEOUT = 600.0
_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


class PushError(HarnessError):
    """A failure after pushing began: the registry may hold some of the tags already."""


@contextmanager
def docker_login(plan: Plan, docker: Docker) -> Iterator[dict[str, str]]:
    """An environment whose Docker config is logged in; a throwaway one for our credentials."""
    if plan.credentials is None:
        yield dict(os.environ)
        return
    with tempfile.TemporaryDirectory(prefix="deathstar-push-") as config_dir:
        env = {**os.environ, "DOCKER_CONFIG": config_dir}
        docker(
            "login", plan.registry, "--username", plan.credentials.username, "--password-stdin",
            stdin=plan.credentials.password, env=env,
        )  # fmt: skip
        yield env


def push(plan: Plan, docker: Docker) -> str:
    """Push every tag, remove the local registry tags again, and return the pushed digest."""
    created: list[str] = []
    pushed: list[str] = []
    digests: set[str] = set()
    try:
        with docker_login(plan, docker) as env:
            for ref in plan.refs:
                docker("tag", plan.image_id, ref)
                created.append(ref)
            for ref in plan.refs:
                print(f"pushing {ref}", flush=True)
                output = docker("push", ref, env=env, timeout=PUSH_TIMEOUT)
                digests.update(_PUSHED_DIGEST.findall(output))
                pushed.append(ref.rsplit(":", 1)[1])
    except HarnessError as exc:
        if not pushed:
            raise
        raise PushError(
            f"{exc}; the registry already holds {', '.join(pushed)} (immutable tags first); "
            "fix the cause and run the push again: it is idempotent"
        ) from None
    finally:
        _untag(created, docker)
    if len(digests) != 1:
        raise PushError(f"docker push reported {len(digests)} digests: {sorted(digests)}")
    return digests.pop()


def _untag(refs: list[str], docker: Docker) -> None:
    """Remove the registry-qualified tags we made; the image keeps its own tags."""
    for ref in refs:
        try:
            docker("image", "rm", ref)
        except HarnessError as exc:  # never hide the push's own error behind a cleanup error
            print(f"warning: could not remove the local tag {ref}: {exc}", file=sys.stderr)


def read_back(plan: Plan, expected: str) -> None:
    client = RegistryClient(plan.registry, plan.credentials)
    digests = {tag: client.manifest_digest(plan.repository, tag) for tag in plan.tags}
    wrong = {tag: digest for tag, digest in digests.items() if digest != expected}
    if wrong:
        raise PushError(f"registry tags do not all resolve to {expected}: {wrong}")
