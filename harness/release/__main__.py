"""``python -m harness.release``: the gates, the plan, and with ``--confirm`` the push, its
read-back and signature."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from harness import ROOT, HarnessError
from harness import registry as reg
from harness.core import references as names
from harness.core.docker import Docker
from harness.core.process import with_child_env
from harness.image.sbom import sbom_config_digest, sbom_path
from harness.release import sign
from harness.release.gates import PASSWORD_VARIABLE, Plan, preflight, take_secrets, without_password

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


def read_back(plan: Plan, pushed: Mapping[str, str], registry: reg.Registry) -> str:
    """The one digest every push wrote, which every tag must still name (a tag moved since is
    never signed): an image whose config is the verified image's, or an index only if it is the
    verified image itself (its ID under the containerd store)."""
    digest, *others = sorted(set(pushed.values()))
    if others:
        raise PushError(
            f"the tags name {1 + len(others)} different manifests: {digest}, {', '.join(others)}"
        )
    try:
        found = {tag: registry.manifest(plan.repository, tag) for tag in plan.tags}
    except HarnessError as exc:
        raise PushError(f"{exc}; the push is not confirmed") from None
    if missing := [tag for tag, manifest in found.items() if manifest is None]:
        raise PushError(f"the registry has no {', '.join(missing)} after the push")
    for tag, manifest in found.items():
        if manifest is not None and manifest.digest != digest:
            raise PushError(
                f"registry tag {tag} names {manifest.digest}, not {digest}, which the push wrote: "
                "someone moved the tag after the push; nothing was signed, do not use it"
            )
    tag, image = plan.tags[0], found[plan.tags[0]] or reg.Manifest(digest, {})
    if image.is_index and image.digest != plan.image_id:
        raise PushError(
            f"the push of {tag} wrote an image index ({image.digest}), not the verified "
            f"image {plan.image_id}; nothing was signed, do not use it"
        )
    try:
        config = (
            registry.config(plan.repository, image)[0] if image.is_index else image.config_digest
        )
    except HarnessError as exc:
        raise PushError(f"{exc}; the push is not confirmed") from None
    if config != plan.config_digest:
        raise PushError(
            f"registry tag {tag} names image config {config}, not the verified image's "
            f"{plan.config_digest}: the registry holds another image; do not use it"
        )
    return digest


NOT_SIGNING = {
    True: "signing:     none (--unsigned)",
    False: f"signing:     none: no {sign.KEY_VARIABLE}; --confirm refuses unless given --unsigned",
}
NO_KEY = (
    f"no signing key: set {sign.KEY_VARIABLE} (the private key's PEM) and "
    f"{sign.PASSWORD_VARIABLE}, or pass --keyless in GitHub Actions, or --unsigned to push "
    "without a signature"
)


def parse_args(argv: Sequence[str], env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nox -s push --",
        description="Push the verified image to a registry. Without --confirm: checks and plan.",
    )
    add = parser.add_argument
    add("--registry", default=env.get("DEATHSTAR_REGISTRY", "ghcr.io"),
        help="registry host[:port] (DEATHSTAR_REGISTRY, default %(default)s)")  # fmt: skip
    add("--repository", default=env.get("DEATHSTAR_REPOSITORY", "tea-n-tech/deathstar"),
        help="repository in the registry (DEATHSTAR_REPOSITORY, default %(default)s)")  # fmt: skip
    add("--confirm", action="store_true", help="really push")
    signing = parser.add_mutually_exclusive_group()
    signing.add_argument("--keyless", action="store_true",
        help="sign keyless with GitHub Actions' OIDC token and the public Rekor log")  # fmt: skip
    signing.add_argument(
        "--unsigned",
        action="store_true",
        help="push without signing (otherwise --confirm needs COSIGN_KEY and COSIGN_PASSWORD)",
    )
    add("--password-stdin", action="store_true",
        help="read the registry password from stdin (username from REGISTRY_USERNAME)")  # fmt: skip
    add("--project-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: TextIO,
    docker: Docker | None = None,
    skopeo: reg.Skopeo = reg.run_skopeo,
) -> int:
    # The secrets are read once, here; no child and no later code sees them in an environment
    # but the one child that needs each (docker login, cosign sign/attest).
    env, taken = take_secrets(env, PASSWORD_VARIABLE)
    env, material = sign.take_material(env)
    password = taken[PASSWORD_VARIABLE]
    docker = Docker(with_child_env((docker or Docker()).runner, without_password))
    try:
        with reg.stopped_by_signals():  # from the first login on, a signal still cleans up
            return run(
                argv, env, stdin, docker, password=password, material=material, skopeo=skopeo
            )
    except reg.Stopped as exc:
        print(
            f"push stopped by {exc}: the throwaway login and the local registry tags are "
            "removed; the registry may hold some tags, unsigned: run the push again",
            file=sys.stderr,
        )
        return 128 + exc.number


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: TextIO,
    docker: Docker,
    *,
    password: str,
    material: sign.Material,
    skopeo: reg.Skopeo,
) -> int:
    """The checks, the plan, and with --confirm the push: one line for a refusal."""
    try:
        args = parse_args(argv, env)
        plan = preflight(args, env, password, stdin, docker, skopeo=skopeo)
        signer = sign.signer_for(
            plan.registry, material, keyless=args.keyless, unsigned=args.unsigned,
            runner=docker.runner,
        )  # fmt: skip
        signs = signing(args, plan, signer, env)
        print(plan.describe())
        print(signer.describe(plan.repository_ref) if signer else NOT_SIGNING[args.unsigned])
        if not args.confirm:
            print("dry run: every check passed and nothing was pushed; add --confirm to push")
            return 0
        digest = publish(plan, docker, signs)
    except HarnessError as exc:
        failed = "failed" if isinstance(exc, PushError) else "refused"
        print(f"push {failed}: {exc}", file=sys.stderr)
        return 1
    signed = ", signed and attested (verified)" if signs else ", unsigned"
    print(f"pushed {len(plan.tags)} tags, all resolve to {digest}{signed}")
    return 0


def signing(
    args: argparse.Namespace, plan: Plan, signer: sign.Signer | None, env: Mapping[str, str]
) -> Callable[[str, Mapping[str, str]], None] | None:
    """What signs the pushed digest; checked now, so a refusal comes before any push."""
    if signer is None:
        if args.confirm and not args.unsigned:
            raise HarnessError(NO_KEY)
        return None
    project: Path = args.project_dir
    sbom = sbom_path(project)
    described = sbom_config_digest(sbom)
    if described != plan.config_digest:
        raise HarnessError(
            f"{sbom.relative_to(project)} describes image config {names.shown(described[:19])}, "
            f"not the verified image's {plan.config_digest[:19]}; run `nox -s image integration`"
        )
    statement = sign.provenance(project, plan.release.version, env)

    def signs(digest: str, docker_env: Mapping[str, str]) -> None:
        signer.sign(f"{plan.repository_ref}@{digest}", sbom, statement, docker_env)

    return signs


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ, sys.stdin))
