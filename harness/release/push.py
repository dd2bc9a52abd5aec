"""Pushing a planned release: a throwaway login, the tags in order, the registry read-back.

Each ref must name the verified image right before its push; afterwards every tag must name
exactly the manifest its push wrote, whose config is the verified image's. Only that is signed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from contextlib import ExitStack

from harness import HarnessError
from harness.core.docker import Docker
from harness.registry import Manifest, Registry
from harness.release.gates import Plan

PUSH_TIMEOUT = 600.0


class PushError(HarnessError):
    """A failure after pushing began: the registry may hold some of the tags already."""


def publish(
    plan: Plan, docker: Docker, sign: Callable[[str, Mapping[str, str]], None] | None = None
) -> str:
    """Log in, push, read back; then, while the login lasts, ``sign(digest, docker_env)``."""
    with ExitStack() as stack:
        try:
            env = stack.enter_context(plan.login(docker))
        except HarnessError as exc:
            raise HarnessError(f"{exc}; nothing was pushed") from None
        pushed = push(plan, docker, env)
        digest = read_back(plan, pushed, plan.reader(env))
        if sign is not None:
            try:
                sign(digest, env)
            except HarnessError as exc:
                raise PushError(
                    f"{exc}; the registry holds the tags at {digest}, their signature or "
                    "attestations are missing or wrong: fix the cause and push again"
                ) from None
    return digest


def push(plan: Plan, docker: Docker, env: Mapping[str, str]) -> dict[str, str]:
    """Push every tag, each only while it names the verified image; remove the local tags.
    Returns the manifest digest each tag's push reported writing."""
    created: list[str] = []
    done: list[str] = []  # tags the registry may hold
    pushed: dict[str, str] = {}
    try:
        for ref in plan.refs:
            docker("tag", plan.image_id, ref, env=env)
            created.append(ref)
        for ref in plan.refs:
            check_target(ref, plan.image_id, docker)
            print(f"pushing {ref}", flush=True)
            output = docker("push", ref, env=env, timeout=PUSH_TIMEOUT)
            done.append(ref.rsplit(":", 1)[1])
            pushed[done[-1]] = written(output, ref)
    except HarnessError as exc:
        if not done:
            raise HarnessError(f"{exc}; nothing was pushed") from None
        raise PushError(
            f"{exc}; the registry already holds {', '.join(done)} (immutable tags first); "
            "fix the cause and run the push again: it is idempotent"
        ) from None
    finally:
        for ref in created:  # the registry-qualified tags we made; the image keeps its own
            try:
                docker("image", "rm", ref)
            except HarnessError as exc:  # never hide the push's own error behind this one
                print(f"warning: could not remove the local tag {ref}: {exc}", file=sys.stderr)
    return pushed


def check_target(ref: str, image_id: str, docker: Docker) -> None:
    """``docker push`` pushes what ``ref`` names when it runs: it must be the verified image."""
    now = docker.image_id(ref)
    if now != image_id:
        raise HarnessError(
            f"{ref} names {now or 'no image'} now, not the verified image {image_id}; "
            "something retargeted it, so it was not pushed"
        )


def written(output: str, ref: str) -> str:
    """The manifest digest ``docker push ref`` reported writing for the tag."""
    tag = ref.rsplit(":", 1)[1]
    # The line `docker push` ends with, for both image stores.
    line = rf"^{re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}}) size: [0-9]+$"
    found = re.findall(line, output, re.MULTILINE | re.ASCII)
    if not found:
        raise HarnessError(f"docker push {ref} reported no manifest digest for {tag}")
    return str(found[-1])


def read_back(plan: Plan, pushed: Mapping[str, str], registry: Registry) -> str:
    """The digest every pushed tag resolves to: exactly the manifest its push wrote (never an
    index holding it), naming the verified image's config."""
    try:
        found = {tag: registry.manifest(plan.repository, tag) for tag in plan.tags}
    except HarnessError as exc:
        raise PushError(f"{exc}; the push is not confirmed") from None
    missing = [tag for tag, manifest in found.items() if manifest is None]
    if missing:
        raise PushError(f"the registry has no {', '.join(missing)} after the push")
    for tag, manifest in found.items():
        if manifest is not None:  # the missing ones were refused above
            check_tag(plan, tag, manifest, pushed[tag], registry)
    digests = sorted(set(pushed.values()))
    if len(digests) != 1:
        raise PushError(f"the tags name {len(digests)} different manifests: {', '.join(digests)}")
    return digests[0]


def check_tag(plan: Plan, tag: str, manifest: Manifest, written: str, registry: Registry) -> None:
    """A tag must name the manifest its push wrote (a tag moved since is never signed), and an
    index only if it is the verified image itself (its ID under the containerd store)."""
    if manifest.digest != written:
        raise PushError(
            f"registry tag {tag} names {manifest.digest}, not {written}, which the push wrote: "
            "someone moved the tag after the push; nothing was signed, do not use it"
        )
    if manifest.is_index and manifest.digest != plan.image_id:
        raise PushError(
            f"the push of {tag} wrote an image index ({manifest.digest}), not the verified "
            f"image {plan.image_id}; nothing was signed, do not use it"
        )
    config = manifest.config_digest
    if manifest.is_index:
        try:
            config, _ = registry.config(plan.repository, manifest)
        except HarnessError as exc:
            raise PushError(f"{exc}; the push is not confirmed") from None
    if config != plan.config_digest:
        raise PushError(
            f"registry tag {tag} names image config {config}, not the verified image's "
            f"{plan.config_digest}: the registry holds another image; do not use it"
        )
