"""What ``.ci/provision`` learned about this machine, and the testcontainers settings from it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def provision_env_path(environ: Mapping[str, str]) -> Path:
    """Where .ci/provision writes what it learned about this machine, as KEY=VALUE lines."""
    if "DEATHSTAR_PROVISION_ENV" in environ:
        return Path(environ["DEATHSTAR_PROVISION_ENV"])
    state = environ.get("XDG_STATE_HOME") or str(
        Path(environ.get("HOME", "/root")) / ".local/state"
    )
    return Path(state) / "deathstar" / "provision.env"


def testcontainers_env(environ: Mapping[str, str], provision_env: Path) -> dict[str, str]:
    """testcontainers settings for the integration tests; the caller's environment wins.

    Tests reach containers only through 127.0.0.1 and the mapped port. testcontainers would
    otherwise guess another address wherever ``/.dockerenv`` exists (it then believes it runs
    inside a container and uses the bridge gateway). ``.ci/provision`` may add more, such as
    disabling Ryuk where its image cannot be pulled; it writes them to ``provision_env``.
    """
    env = {"TC_HOST": "127.0.0.1", "TESTCONTAINERS_CONNECTION_MODE": "docker_host"}
    if provision_env.is_file():
        for line in provision_env.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key and not key.startswith("#"):
                env[key] = value
    env.update({k: v for k, v in environ.items() if k in env})
    return env
