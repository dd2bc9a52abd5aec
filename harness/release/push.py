"""Pushing a planned release: a throwaway login, the tags in order, the registry read-back.

``docker push REF`` pushes whatever REF names when it runs, so each ref is checked to name the
verified image right before its push, and afterwards every tag's manifest in the registry must
name the verified image's config digest. Only then is the registry's digest reported.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager

from harness import HarnessError
from harness.core.docker import Docker
from harness.release.gates import Plan
from harness.release.registry import RegistryClient

PUSH_TIMEOUT = 600.0


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


def publish(
    plan: Plan, docker: Docker, sign: Callable[[str, Mapping[str, str]], None] | None = None
) -> str:
    """Log in, push, read back; then, while the login lasts, ``sign(digest, docker_env)``."""
    with ExitStack() as stack:
        try:
            env = stack.enter_context(docker_login(plan, docker))
        except HarnessError as exc:
            raise HarnessError(f"{exc}; nothing was pushed") from None
        push(plan, docker, env)
        digest = read_back(plan)
        if sign is not None:
            try:
                sign(digest, env)
            except HarnessError as exc:
                raise PushError(
                    f"{exc}; the registry holds the tags at {digest}, their signature or "
                    "attestations are missing or wrong: fix the cause and push again"
                ) from None
    return digest


def push(plan: Plan, docker: Docker, env: Mapping[str, str]) -> None:
    """Push every tag, each only while it names the verified image; remove the local tags."""
    created: list[str] = []
    pushed: list[str] = []
    try:
        for ref in plan.refs:
            docker("tag", plan.image_id, ref, env=env)
            created.append(ref)
        for ref in plan.refs:
            check_target(ref, plan.image_id, docker)
            print(f"pushing {ref}", flush=True)
            docker("push", ref, env=env, timeout=PUSH_TIMEOUT)
            pushed.append(ref.rsplit(":", 1)[1])
    except HarnessError as exc:
        if not pushed:
            raise HarnessError(f"{exc}; nothing was pushed") from None
        raise PushError(
            f"{exc}; the registry already holds {', '.join(pushed)} (immutable tags first); "
            "fix the cause and run the push again: it is idempotent"
        ) from None
    finally:
        _untag(created, docker)


def check_target(ref: str, image_id: str, docker: Docker) -> None:
    """``docker push`` pushes what ``ref`` names when it runs: it must be the verified image."""
    now = docker.image_id(ref)
    if now != image_id:
        raise HarnessError(
            f"{ref} names {now or 'no image'} now, not the verified image {image_id}; "
            "something retargeted it, so it was not pushed"
        )


def _untag(refs: list[str], docker: Docker) -> None:
    """Remove the registry-qualified tags we made; the image keeps its own tags."""
    for ref in refs:
        try:
            docker("image", "rm", ref)
        except HarnessError as exc:  # never hide the push's own error behind a cleanup error
            print(f"warning: could not remove the local tag {ref}: {exc}", file=sys.stderr)


def read_back(plan: Plan, client: RegistryClient | None = None) -> str:
    """The digest every pushed tag resolves to, once each names the verified image's config."""
    client = client or plan.client()
    try:
        found = {tag: client.image_config(plan.repository, tag) for tag in plan.tags}
    except HarnessError as exc:
        raise PushError(f"{exc}; the push is not confirmed") from None
    missing = [tag for tag, image in found.items() if image is None]
    if missing:
        raise PushError(f"the registry has no {', '.join(missing)} after the push")
    configs = {tag: image[1] for tag, image in found.items() if image is not None}
    for tag, config in configs.items():
        if config != plan.config_digest:
            raise PushError(
                f"registry tag {tag} names image config {config}, not the verified image's "
                f"{plan.config_digest}: the registry holds another image; do not use it"
            )
    digests = sorted({image[0] for image in found.values() if image is not None})
    if len(digests) != 1:
        raise PushError(f"the tags name {len(digests)} different manifests: {', '.join(digests)}")
    return digests[0]
