"""``python -m harness.release``: the command line of the gated push."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from harness import ROOT, HarnessError
from harness.core.docker import Docker
from harness.release.gates import preflight
from harness.release.push import PushError, push, read_back

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
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the registry password from stdin (username from REGISTRY_USERNAME)",
    )
    parser.add_argument("--project-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(
    argv: Sequence[str], env: Mapping[str, str], stdin: TextIO, docker: Docker | None = None
) -> int:
    docker = docker or Docker()
    try:
        args = parse_args(argv, env)
        plan = preflight(args, env, stdin, docker)
        print(plan.describe())
        if not args.confirm:
            print("dry run: every check passed and nothing was pushed; add --confirm to push")
            return 0
        digest = push(plan, docker)
        read_back(plan, digest)
    except PushError as exc:
        print(f"push failed: {exc}", file=sys.stderr)
        return 1
    except HarnessError as exc:
        print(f"push refused: {exc}", file=sys.stderr)
        return 1
    print(f"pushed {len(plan.tags)} tags, all resolve to {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ, sys.stdin))
