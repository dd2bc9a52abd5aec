"""Names as docker reads them: registry hosts, repositories, tags, digests; and how a name that
came from outside is shown in a one-line message."""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

from harness import HarnessError

# The docker reference grammar (distribution/reference), ASCII only.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:.]+\])(?::(?P<port>[0-9]+))?",
    re.ASCII,
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)
_NAME_LIMIT = 255  # registry/repository, as docker counts it
# Where URL parsers disagree: urllib3 (what requests connects with) ends the host at a
# backslash, urllib.parse does not; whitespace and control characters are never in a URL.
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")


def shown(text: object, limit: int = 80) -> str:
    """Untrusted text for a one-line message: escaped, on one line, and short."""
    escaped = json.dumps(str(text))[1:-1]
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def check_registry(registry: str) -> None:
    """``host[:port]`` as docker reads it: a host only with a dot, a port, or ``localhost``.

    Anything else docker takes as a Docker Hub namespace (``myregistry/app`` is
    ``docker.io/myregistry/app``): the push would go somewhere other than the plan says.
    """
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


def given_url(registry: str, url: str, what: str) -> Url:
    """A URL a registry gave us, parsed as requests will connect to it: the host checked is
    the host connected to. A backslash, whitespace or a control character is refused."""
    refusal = HarnessError(
        f"registry {registry} names {what} that is not a plain URL: {shown(url)}; "
        "nothing was sent there"
    )
    if _AMBIGUOUS.search(url):
        raise refusal
    try:
        return parse_url(url)
    except LocationParseError:
        raise refusal from None


def url_host(url: Url) -> str:
    return (url.host or "").strip("[]").lower()


def host_of(registry: str) -> str:
    return (urlsplit(f"//{registry}").hostname or "").lower()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def base_url(registry: str) -> str:
    """Docker talks plain HTTP to registries on loopback and HTTPS everywhere else."""
    return f"{'http' if is_loopback(host_of(registry)) else 'https'}://{registry}"
