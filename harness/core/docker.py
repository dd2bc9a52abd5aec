"""The docker client, through the harness's one process runner."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from harness import HarnessError
from harness.core import process

DOCKER_TIMEOUT, LOAD_TIMEOUT = 30.0, 600.0


class Docker:
    """``docker`` commands with one-line failures; tests pass a stand-in ``runner``."""

    def __init__(self, runner: process.Runner = process.run) -> None:
        self.runner = runner

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        timeout: float = DOCKER_TIMEOUT,
        env: Mapping[str, str] | None = None,
        merge: bool = False,
    ) -> str:
        """Run ``docker ARGS``; secrets go through ``stdin``, never through ``args``."""
        try:
            output = self.runner(
                ["docker", *args], stdin=stdin, timeout=timeout, env=env, merge=merge
            )
        except process.CommandError as exc:
            lines = exc.output.strip().splitlines()  # docker's last line says why
            why = f"docker {' '.join(args[:2])} failed: {lines[-1] if lines else '?'}"
            raise process.CommandError(why, exc.output, exc.returncode) from None
        except HarnessError as exc:
            if "is not installed" in str(exc):
                raise HarnessError("the docker client is not installed; install Docker") from None
            raise
        return output.strip()

    def image_id(self, ref: str) -> str | None:
        """The ID ``ref`` names now, or None when the engine has no such image."""
        try:
            return self("image", "inspect", "--format", "{{.Id}}", ref)
        except process.CommandError:
            return None

    def load(self, archive: Path) -> None:
        self("load", "--input", str(archive), timeout=LOAD_TIMEOUT)

    def image_size(self, ref: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", ref))

    def server_version(self, timeout: float = 10.0) -> str:
        return self("version", "--format", "{{.Server.Version}}", timeout=timeout)

    def require_engine(self) -> str:
        """The engine's version, or one line on how to get an engine."""
        try:
            return self.server_version()
        except HarnessError:
            where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            raise HarnessError(
                f"no Docker engine answers at {where}: start Docker "
                "(on a machine without one, `bash .ci/provision` installs and starts it)"
            ) from None
