"""A small client for a registry's v2 HTTP API: login check, tag list, manifests, image configs.

It speaks the two auth schemes registries use: HTTP basic (distribution's htpasswd) and the
bearer-token challenge flow (GHCR, Docker Hub): a 401 names a token realm, the client fetches a
token there with its credentials and retries. Runs in a session venv (needs requests).

Everything a registry answers is untrusted input:

- Credentials go only to the registry itself and to token realms on its own host or on a host
  allowed for it (:data:`KNOWN_AUTH_HOSTS`, plus ``DEATHSTAR_REGISTRY_AUTH_HOSTS``), over https;
  plain http only when the registry and the realm are both on loopback.
- A URL the registry gives (a token realm, a redirect) is checked as urllib3 parses it, the
  parser requests connects with; one with a backslash, whitespace or a control character, where
  parsers disagree about the host, is refused.
- Redirects are followed only within the same scheme, host and port: credentials never follow
  a redirect elsewhere, and a redirect elsewhere is refused. The one exception is a blob, which
  registries serve from storage on another host: that redirect is followed over https (plain
  http only on loopback), without any credentials.
- Bodies are read streaming and capped (:data:`MANIFEST_LIMIT`, :data:`CONFIG_LIMIT`,
  :data:`TOKEN_LIMIT`); each public operation has an overall deadline on top of requests'
  per-socket-operation timeout.
- Manifests and config blobs are checked against their digests; an index is followed to its
  linux/amd64 entry.

The parts: :mod:`.names` (the reference grammar), :mod:`.transport` (bounded requests),
:mod:`.auth` (credentials, challenges, the realm allow-list), :mod:`.client` (the v2 API).
"""

from harness.release.registry.auth import (
    AUTH_HOSTS_VARIABLE,
    KNOWN_AUTH_HOSTS,
    AuthTransport,
    Credentials,
    auth_hosts_from,
    parse_challenge,
)
from harness.release.registry.client import (
    MANIFEST_TYPES,
    PLATFORM,
    RegistryClient,
    RemoteImage,
    sha256,
)
from harness.release.registry.names import (
    DIGEST,
    TAG,
    base_url,
    check_registry,
    check_repository,
    host_of,
    is_loopback,
    shown,
)
from harness.release.registry.transport import (
    CONFIG_LIMIT,
    DEADLINE,
    MANIFEST_LIMIT,
    MAX_REDIRECTS,
    TOKEN_LIMIT,
    Answer,
    Transport,
    json_object,
)

__all__ = [
    "AUTH_HOSTS_VARIABLE",
    "CONFIG_LIMIT",
    "DEADLINE",
    "DIGEST",
    "KNOWN_AUTH_HOSTS",
    "MANIFEST_LIMIT",
    "MANIFEST_TYPES",
    "MAX_REDIRECTS",
    "PLATFORM",
    "TAG",
    "TOKEN_LIMIT",
    "Answer",
    "AuthTransport",
    "Credentials",
    "RegistryClient",
    "RemoteImage",
    "Transport",
    "auth_hosts_from",
    "base_url",
    "check_registry",
    "check_repository",
    "host_of",
    "is_loopback",
    "json_object",
    "parse_challenge",
    "sha256",
    "shown",
]
