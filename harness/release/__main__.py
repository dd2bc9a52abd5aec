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
from harness.release.credentials import scrubbed, take_password
from harness.release.gates import preflight
from harness.release.push import PushError, push, read_back
from harness.release.registry import AUTH_HOSTS_VARIABLE, auth_hosts_from

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
    parser.add_argument(
        "--auth-host",
        dest="auth_hosts",
        action="append",
        default=sorted(auth_hosts_from(env)),
        help="a host besides the registry's own that may receive the credentials as its token "
        f"realm (repeatable; {AUTH_HOSTS_VARIABLE}=host,host; auth.docker.io is known)",
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
    # The password is read once, here; no child and no later code sees it in an environment.
    env, password = take_password(env)
    docker = Docker(scrubbed((docker or Docker()).runner))
    try:
        args = parse_args(argv, env)
        args.auth_hosts = frozenset(host.lower() for host in args.auth_hosts)
        plan = preflight(args, env, password, stdin, docker)
        print(plan.describe())
        if not args.confirm:
            print("dry run: every check passed and nothing was pushed; add --confirm to push")
            return 0
        push(plan, docker)
        digest = read_back(plan)
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
