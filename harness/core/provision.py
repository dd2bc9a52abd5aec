"""What ``.ci/provision`` learned about this machine, and the testcontainers settings from it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def provision_env_path(environ: Mapping[str, str]) -> Path:
    """Where .ci/provision writes what it learned about this machine, as KEY=VALUE lines."""
    if "DEATHSTAR_PROVISION_ENV" in environ:
        return Path(environ["DEATHSTAR_PROVISION_ENV"])
    state = environ.get("XDG_STATE_HOME") or str(
        Path(environ.get("HOME", "/root")) / ".local/state"
    )
    return Path(state) / "deathstar" / "provision.env"


def testcontainers_env(environ: Mapping[str, str], provision_env: Path) -> dict[str, str]:
    """testcontainers settings: 127.0.0.1 and the mapped port (where /.dockerenv exists it
    would take the bridge gateway), plus what .ci/provision wrote; the caller's environment wins."""
    env = {"TC_HOST": "127.0.0.1", "TESTCONTAINERS_CONNECTION_MODE": "docker_host"}
    if provision_env.is_file():
        for line in provision_env.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key and not key.startswith("#"):
                env[key] = value
    env.update({k: v for k, v in environ.items() if k in env})
    # A proxy from the environment must not carry the tests' traffic: urllib (testcontainers'
    # readiness probes) and requests send even 127.0.0.1 through it unless NO_PROXY names it.
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h.strip() for h in environ.get(name, "").split(",") if h.strip()]
        env[name] = ",".join([*hosts, *(h for h in LOOPBACK_HOSTS if h not in hosts)])
    return env
