"""Registry credentials: from the environment, stdin, or an existing ``docker login``."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO, Unpack

from harness import HarnessError
from harness.core import process
from harness.release.registry import Credentials

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


def docker_config_credentials(
    registry: str, env: Mapping[str, str], runner: process.Runner = process.run
) -> tuple[bool, str | None]:
    """(logged in?, base64 user:password if known) for an existing ``docker login``."""
    config_dir = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME", "/root")) / ".docker")
    try:
        config = json.loads((config_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False, None
    if not isinstance(config, dict):
        return False, None
    auths = config.get("auths")
    entry = auths.get(registry) if isinstance(auths, dict) else None
    helpers = config.get("credHelpers")
    helper = (helpers.get(registry) if isinstance(helpers, dict) else None) or (
        config.get("credsStore") if entry is not None else None
    )
    if isinstance(helper, str) and helper:
        return True, credential_helper_auth(helper, registry, runner)
    if entry is None:
        return False, None
    auth = entry.get("auth") if isinstance(entry, dict) else None
    return True, auth if isinstance(auth, str) else None


def credential_helper_auth(
    helper: str, registry: str, runner: process.Runner = process.run
) -> str | None:
    """Ask ``docker-credential-<helper>`` (the protocol docker itself uses) for the login."""
    try:
        found = json.loads(
            runner([f"docker-credential-{helper}", "get"], stdin=registry, timeout=30)
        )
    except (HarnessError, json.JSONDecodeError):
        return None
    if not isinstance(found, dict) or not found.get("Username") or not found.get("Secret"):
        return None
    return base64.b64encode(f"{found['Username']}:{found['Secret']}".encode()).decode()


def decode_auth(auth: str, registry: str) -> Credentials:
    """A docker config ``auth`` value (base64 of user:password) as credentials."""
    try:
        user, sep, secret = base64.b64decode(auth, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise HarnessError(
            f"the docker config's login for {registry} is unreadable; run "
            f"`docker login {registry}` again or set REGISTRY_USERNAME and REGISTRY_PASSWORD"
        )
    return Credentials(user, secret)


def credentials(
    registry: str,
    env: Mapping[str, str],
    *,
    password: str,
    password_stdin: bool,
    stdin: TextIO,
    runner: process.Runner = process.run,
) -> tuple[Credentials | None, str]:
    """The credentials to use, and where they came from; ``password`` from :func:`take_password`."""
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
    logged_in, auth = docker_config_credentials(registry, env, runner)
    if not logged_in:
        raise HarnessError(
            f"no credentials for {registry}: set REGISTRY_USERNAME and REGISTRY_PASSWORD, "
            f"or pipe the password to --password-stdin, or `docker login {registry}` first"
        )
    if auth:
        creds = decode_auth(auth, registry)
        return creds, f"{creds.username} (existing docker login)"
    return None, "existing docker login (credential helper)"
