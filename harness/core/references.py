"""Registry names as docker reads them (distribution/reference): hosts, repositories, and
untrusted text shown in one line; shared by the release, the rebuild and the build cache."""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

from harness import HarnessError

# The docker reference grammar (distribution/reference), ASCII only.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:.]+\])(?::(?P<port>[0-9]+))?",
    re.ASCII,
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
_NAME_LIMIT = 255  # registry/repository, as docker counts it
DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)


def shown(text: object, limit: int = 80) -> str:
    """Untrusted text for a one-line message: escaped, on one line, and short."""
    escaped = json.dumps(str(text))[1:-1]
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def check_registry(registry: str) -> None:
    """``host[:port]`` as docker reads it, not a Docker Hub namespace (``myregistry/app``)."""
    match = _REGISTRY.fullmatch(registry)
    port = match["port"] if match else None
    if (
        match is None
        or not ("." in registry or ":" in registry or registry == "localhost")
        or (port is not None and not 0 < int(port) < 65536)
    ):
        raise HarnessError(
            f"registry '{shown(registry)}' is not a registry host[:port] docker would push to "
            "(a host needs a dot, a port, or to be localhost)"
        )


def check_repository(registry: str, repository: str) -> None:
    if not _REPOSITORY.fullmatch(repository) or len(f"{registry}/{repository}") > _NAME_LIMIT:
        raise HarnessError(
            f"repository '{shown(repository)}' is not a docker repository name (lowercase "
            "letters, digits and . _ - between them, parts separated by /, at most 255 chars)"
        )


def is_loopback(registry: str) -> bool:
    """Whether ``host[:port]`` is on loopback: the only place plain http is allowed, as docker."""
    host = (urlsplit(f"//{registry}").hostname or "").lower()
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
