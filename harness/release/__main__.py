"""``python -m harness.release``: the command line of the gated push."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from harness import ROOT, HarnessError
from harness.core.docker import Docker
from harness.image.sbom import sbom_config_digest, sbom_path
from harness.registry import Skopeo, Stopped, run_skopeo, shown, stopped_by_signals
from harness.release import provenance
from harness.release.credentials import scrubbed, take_password
from harness.release.gates import Plan, preflight
from harness.release.push import PushError, publish
from harness.release.sign import (
    KEY_VARIABLE,
    PASSWORD_VARIABLE,
    Material,
    Signer,
    signer_for,
    take_material,
)

DEFAULT_REGISTRY = "ghcr.io"
DEFAULT_REPOSITORY = "tea-n-tech/deathstar"


def parse_args(argv: Sequence[str], env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nox -s push --",
        description="Push the verified image to a registry. Without --confirm: checks and plan.",
    )
    parser.add_argument(
        "--registry",
        default=env.get("DEATHSTAR_REGISTRY", DEFAULT_REGISTRY),
        help="registry host[:port] (DEATHSTAR_REGISTRY, default %(default)s)",
    )
    parser.add_argument(
        "--repository",
        default=env.get("DEATHSTAR_REPOSITORY", DEFAULT_REPOSITORY),
        help="repository in the registry (DEATHSTAR_REPOSITORY, default %(default)s)",
    )
    parser.add_argument("--confirm", action="store_true", help="really push")
    signing = parser.add_mutually_exclusive_group()
    signing.add_argument(
        "--keyless",
        action="store_true",
        help="sign keyless with GitHub Actions' OIDC token and the public Rekor log",
    )
    signing.add_argument(
        "--unsigned",
        action="store_true",
        help="push without signing (otherwise --confirm needs COSIGN_KEY and COSIGN_PASSWORD)",
    )
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the registry password from stdin (username from REGISTRY_USERNAME)",
    )
    parser.add_argument("--project-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: TextIO,
    docker: Docker | None = None,
    skopeo: Skopeo = run_skopeo,
) -> int:
    # The secrets are read once, here; no child and no later code sees them in an environment
    # but the one child that needs each (docker login, cosign sign/attest).
    env, password = take_password(env)
    env, material = take_material(env)
    docker = Docker(scrubbed((docker or Docker()).runner))
    try:
        with stopped_by_signals():  # from the first login on, a signal still cleans up
            return run(
                argv, env, stdin, docker, password=password, material=material, skopeo=skopeo
            )
    except Stopped as exc:
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
    material: Material,
    skopeo: Skopeo,
) -> int:
    """The checks, the plan, and with --confirm the push: one line for a refusal."""
    try:
        args = parse_args(argv, env)
        plan = preflight(args, env, password, stdin, docker, skopeo=skopeo)
        signer = signer_for(
            plan.registry, material, keyless=args.keyless, unsigned=args.unsigned,
            runner=docker.runner,
        )  # fmt: skip
        sign = signing(args, plan, signer, env)
        print(plan.describe())
        print(signer.describe(plan.repository_ref) if signer else NOT_SIGNING[args.unsigned])
        if not args.confirm:
            print("dry run: every check passed and nothing was pushed; add --confirm to push")
            return 0
        digest = publish(plan, docker, sign)
    except PushError as exc:
        print(f"push failed: {exc}", file=sys.stderr)
        return 1
    except HarnessError as exc:
        print(f"push refused: {exc}", file=sys.stderr)
        return 1
    signed = ", signed and attested (verified)" if sign else ", unsigned"
    print(f"pushed {len(plan.tags)} tags, all resolve to {digest}{signed}")
    return 0


NOT_SIGNING = {
    True: "signing:     none (--unsigned)",
    False: f"signing:     none: no {KEY_VARIABLE}; --confirm refuses unless given --unsigned",
}


NO_KEY = (
    f"no signing key: set {KEY_VARIABLE} (the private key's PEM) and {PASSWORD_VARIABLE}, "
    "or pass --keyless in GitHub Actions, or --unsigned to push without a signature"
)


def signing(
    args: argparse.Namespace, plan: Plan, signer: Signer | None, env: Mapping[str, str]
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
            f"{sbom.relative_to(project)} describes image config {shown(described[:19])}, not the "
            f"verified image's {plan.config_digest[:19]}; run `nox -s image integration`"
        )
    statement = provenance.predicate(project, plan.release.version, env)

    def sign(digest: str, docker_env: Mapping[str, str]) -> None:
        signer.sign(f"{plan.repository_ref}@{digest}", sbom, statement, docker_env)

    return sign


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ, sys.stdin))
