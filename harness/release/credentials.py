"""Registry credentials: from the environment, stdin, or an existing ``docker login``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TextIO, Unpack

from harness import HarnessError
from harness.core import process
from harness.registry import Credentials, logged_in

PASSWORD_VARIABLE = "REGISTRY_PASSWORD"  # noqa: S105 (the name of a variable)


def take_password(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The password, read once: gone from ``os.environ`` and from the mapping handed on."""
    rest = dict(env)
    password = rest.pop(PASSWORD_VARIABLE, "")
    os.environ.pop(PASSWORD_VARIABLE, None)
    return rest, password


def scrubbed(runner: process.Runner) -> process.Runner:
    """``runner`` whose children get an explicit environment without the password.

    ``env=None`` would mean "inherit os.environ"; every child gets a copy without it instead.
    ``docker login`` gets the password on stdin, and nothing else ever gets it.
    """

    def run(args: Sequence[str], **options: Unpack[process.RunOptions]) -> str:
        env = options.get("env")
        child = dict(os.environ if env is None else env)
        child.pop(PASSWORD_VARIABLE, None)
        options["env"] = child
        return runner(args, **options)

    return run


def credentials(
    registry: str, env: Mapping[str, str], *, password: str, password_stdin: bool, stdin: TextIO
) -> tuple[Credentials | None, str]:
    """The credentials to use, and where they came from; ``password`` from :func:`take_password`.

    None: docker's own login for the registry (its config or credential helper), which this
    code never reads; docker and skopeo use it."""
    username = env.get("REGISTRY_USERNAME", "")
    if password_stdin:
        password = stdin.read().rstrip("\r\n")
    if username and password:
        source = "stdin" if password_stdin else "REGISTRY_PASSWORD"
        return Credentials(username, password), f"{username} (REGISTRY_USERNAME, {source})"
    if username or password:
        raise HarnessError(
            "set both REGISTRY_USERNAME and REGISTRY_PASSWORD (or pipe the password to "
            "--password-stdin)"
        )
    if not logged_in(registry, env):
        raise HarnessError(
            f"no credentials for {registry}: set REGISTRY_USERNAME and REGISTRY_PASSWORD, "
            f"or pipe the password to --password-stdin, or `docker login {registry}` first"
        )
    return None, "existing docker login"
