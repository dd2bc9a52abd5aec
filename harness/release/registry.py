"""A small client for a registry's v2 HTTP API: login check, tag list, manifests.

It speaks the two auth schemes registries use: HTTP basic (distribution's htpasswd) and the
bearer-token challenge flow (GHCR, Docker Hub): a 401 names a token realm, the client fetches a
token there with its credentials and retries. Runs in a session venv (needs requests).

Everything a registry answers is untrusted input:

- Credentials go only to the registry itself and to token realms on its own host or on a host
  allowed for it (:data:`KNOWN_AUTH_HOSTS`, plus ``DEATHSTAR_REGISTRY_AUTH_HOSTS``), over https;
  plain http only when the registry and the realm are both on loopback.
- Redirects are followed only within the same scheme, host and port: credentials never follow
  a redirect elsewhere, and a redirect elsewhere is refused.
- Bodies are read streaming and capped (:data:`MANIFEST_LIMIT`, :data:`TOKEN_LIMIT`); each
  public operation has an overall deadline on top of requests' per-socket-operation timeout.
- Manifests are checked against their digests; an index is followed to its linux/amd64 entry.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests

from harness import HarnessError

T = TypeVar("T")

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
MANIFEST_LIMIT = 4 * 1024 * 1024  # bytes of one manifest, tag list or error body
TOKEN_LIMIT = 64 * 1024  # bytes of a token realm's answer
DEADLINE = 120.0  # seconds for one public operation, redirects and token fetches included
MAX_REDIRECTS = 3
AUTH_HOSTS_VARIABLE = "DEATHSTAR_REGISTRY_AUTH_HOSTS"
# Registries whose token realm lives on another host; a realm on the registry's own host (ghcr.io:
# https://ghcr.io/token) needs no entry. More with DEATHSTAR_REGISTRY_AUTH_HOSTS=host,host.
KNOWN_AUTH_HOSTS: dict[str, frozenset[str]] = {
    "docker.io": frozenset({"auth.docker.io"}),
    "index.docker.io": frozenset({"auth.docker.io"}),
    "registry-1.docker.io": frozenset({"auth.docker.io"}),
}
PLATFORM = ("linux", "amd64")  # the platform the image is built for

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
_TOKEN = re.compile(r"[\x21-\x7e]+", re.ASCII)  # visible ASCII: nothing that splits a header
_NAME_LIMIT = 255  # registry/repository, as docker counts it
# One challenge: a scheme, then key=value or key="quoted value" pairs separated by commas.
_CHALLENGE = re.compile(r"(?P<scheme>[A-Za-z]+)(?:\s+(?P<params>.*))?", re.DOTALL)
_PARAM = re.compile(r'\s*(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)', re.ASCII)


def shown(text: object, limit: int = 80) -> str:
    """Untrusted text for a one-line message: escaped, on one line, and short."""
    escaped = json.dumps(str(text))[1:-1]
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # never printed, never logged


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


def auth_hosts_from(env: Mapping[str, str]) -> frozenset[str]:
    """The extra token-realm hosts that ``DEATHSTAR_REGISTRY_AUTH_HOSTS=host,host`` allows."""
    return frozenset(h.strip().lower() for h in env.get(AUTH_HOSTS_VARIABLE, "").split(",") if h)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """A ``WWW-Authenticate`` header's first challenge; a repeated parameter is refused."""
    match = _CHALLENGE.fullmatch(header.strip())
    if match is None:
        return "", {}
    params: dict[str, str] = {}
    rest = match["params"] or ""
    while rest.strip():
        param = _PARAM.match(rest)
        if param is None:
            break  # a second challenge or junk: the first challenge's parameters end here
        key = param[1].lower()
        if key in params:
            raise HarnessError(f"the registry's auth challenge names {key} twice; refusing it")
        value = param[2] if param[2] is not None else param[3]
        params[key] = re.sub(r"\\(.)", r"\1", value)
        rest = rest[param.end() :]
    return match["scheme"].lower(), params


def json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise HarnessError(f"{what} is not a JSON object")
    return data


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RegistryClient:
    def __init__(
        self,
        registry: str,
        credentials: Credentials | None,
        *,
        auth_hosts: Iterable[str] = (),
        timeout: float = 10.0,
        deadline: float = DEADLINE,
    ) -> None:
        check_registry(registry)
        self.registry = registry
        self.host = host_of(registry)
        self.url = base_url(registry)
        self.credentials = credentials
        self.realm_hosts = {self.host, *KNOWN_AUTH_HOSTS.get(self.host, ()), *auth_hosts}
        self.timeout = timeout
        self.deadline = deadline
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc from the environment
        self._tokens: dict[str, str] = {}
        self._ends = float("inf")

    # --- the public operations, each within its deadline ----------------------------------------

    def check_login(self, repository: str) -> None:
        """Refuse early, with nothing pushed, when the registry is down or refuses us."""
        self._bounded("answer /v2/", lambda: self._check_login(repository))

    def tags(self, repository: str) -> list[str]:
        return self._bounded("list tags", lambda: self._tags(repository))

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest of the manifest ``tag`` names (the sha256 of its bytes), or None."""
        found = self._bounded(f"read manifest {tag}", lambda: self._manifest(repository, tag))
        return None if found is None else found[0]

    def image_config(self, repository: str, tag: str) -> tuple[str, str] | None:
        """(manifest digest of ``tag``, ``config.digest`` of its linux/amd64 image), or None."""
        return self._bounded(f"read manifest {tag}", lambda: self._image_config(repository, tag))

    def _bounded(self, what: str, operation: Callable[[], T]) -> T:
        """Run ``operation`` in a worker and give up at the deadline, however slow the peer.

        requests' timeout bounds each socket operation; a peer that drips a byte at a time
        never trips it. The worker also stops reading at the deadline; a stuck one is left
        behind as a daemon thread, and the session is closed.
        """
        outcome: list[T] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                outcome.append(operation())
            except BaseException as exc:  # handed to the caller's thread below
                failure.append(exc)

        self._ends = time.monotonic() + self.deadline
        worker = threading.Thread(target=work, name=f"registry: {what}", daemon=True)
        worker.start()
        worker.join(self.deadline + 1.0)
        if worker.is_alive():
            self.session.close()
            raise self._too_slow(what)
        if failure:
            raise failure[0]
        return outcome[0]

    def _too_slow(self, what: str) -> HarnessError:
        return HarnessError(
            f"registry {self.registry} did not {what} within {self.deadline:g} s; "
            "check the address and your network"
        )

    # --- the operations -------------------------------------------------------------------------

    def _check_login(self, repository: str) -> None:
        answer = self._send("GET", "/v2/", f"repository:{repository}:pull,push", what="answer /v2/")
        if answer.status in (401, 403):
            raise HarnessError(
                f"registry {self.registry} refused the credentials ({answer.status}); "
                "check REGISTRY_USERNAME and REGISTRY_PASSWORD"
            )
        if answer.status != 200:
            raise HarnessError(
                f"registry {self.registry} answered {answer.status} on /v2/; "
                "is it a container registry?"
            )

    def _tags(self, repository: str) -> list[str]:
        path = f"/v2/{repository}/tags/list"
        answer = self._send("GET", path, f"repository:{repository}:pull", what="list tags")
        if answer.status == 404:
            return []  # the repository does not exist yet
        self._expect_ok(answer, "list tags")
        tags = json_object(answer.body, f"registry {self.registry}'s tag list").get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise HarnessError(f"registry {self.registry}'s tag list is not a list of names")
        return sorted(tags)

    def _manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]] | None:
        """(sha256 of the manifest's bytes, the manifest) for a tag or digest; None if absent."""
        what = f"read manifest {reference}"
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Accept": MANIFEST_TYPES}
        answer = self._send("GET", path, f"repository:{repository}:pull", headers, what=what)
        if answer.status == 404:
            return None
        self._expect_ok(answer, what)
        digest = f"sha256:{hashlib.sha256(answer.body).hexdigest()}"
        claimed = answer.headers.get("Docker-Content-Digest", digest)
        if claimed.startswith("sha256:") and claimed != digest:
            raise HarnessError(
                f"registry {self.registry} answered manifest {reference} with bytes that do not "
                f"match its Docker-Content-Digest {shown(claimed)}"
            )
        manifest = json_object(answer.body, f"registry {self.registry}'s manifest {reference}")
        return digest, manifest

    def _image_config(self, repository: str, tag: str) -> tuple[str, str] | None:
        found = self._manifest(repository, tag)
        if found is None:
            return None
        digest, manifest = found
        if "manifests" in manifest:  # an index / manifest list: follow the platform's image
            entry = self._platform_entry(manifest.get("manifests"), tag)
            image = self._manifest(repository, entry)
            if image is None or image[0] != entry:
                raise HarnessError(
                    f"registry {self.registry} does not serve {entry}, which index {tag} names"
                )
            manifest = image[1]
        config = manifest.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str) or not DIGEST.fullmatch(config_digest):
            raise HarnessError(
                f"registry {self.registry}'s manifest {tag} names no sha256 config digest"
            )
        return digest, config_digest

    def _platform_entry(self, entries: object, tag: str) -> str:
        listed = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
        platform = [
            e
            for e in listed
            if isinstance(e.get("platform"), dict)
            and (e["platform"].get("os"), e["platform"].get("architecture")) == PLATFORM
        ]
        chosen = platform if len(platform) == 1 else listed if len(listed) == 1 else []
        digest = chosen[0].get("digest") if chosen else None
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            raise HarnessError(
                f"registry {self.registry}'s index {tag} names no single {'/'.join(PLATFORM)} "
                "image by sha256 digest"
            )
        return digest

    def _expect_ok(self, answer: Answer, what: str) -> None:
        if answer.status != 200:
            raise HarnessError(f"registry {self.registry} could not {what}: {answer.status}")

    # --- auth -----------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str] | None = None,
        *,
        what: str,
    ) -> Answer:
        headers = dict(headers or {})
        if scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        url = self.url + path
        answer = self._raw(method, url, headers=headers, limit=MANIFEST_LIMIT, what=what)
        if answer.status != 401:
            return answer
        scheme, challenge = parse_challenge(answer.headers.get("WWW-Authenticate", ""))
        if scheme == "basic" and self.credentials:
            return self._raw(
                method, url, headers=headers, auth=self._basic(), limit=MANIFEST_LIMIT, what=what
            )
        if scheme == "bearer":
            token = self._token(challenge, scope)
            if token:
                headers["Authorization"] = f"Bearer {token}"
                return self._raw(method, url, headers=headers, limit=MANIFEST_LIMIT, what=what)
        return answer

    def _basic(self) -> tuple[str, str] | None:
        if self.credentials is None:
            return None
        return (self.credentials.username, self.credentials.password)

    def check_realm(self, realm: str) -> str:
        """The realm's host, if our credentials may go there; else a refusal naming it."""
        parts = urlsplit(realm)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise HarnessError(
                f"registry {self.registry} names a token realm that is not a URL: {shown(realm)}"
            )
        if host not in self.realm_hosts:
            raise HarnessError(
                f"registry {self.registry} sends us to token realm host {shown(host)}, which is "
                f"neither the registry's host nor allowed for it; nothing was sent there (allow "
                f"it with {AUTH_HOSTS_VARIABLE}={shown(host)} if it is the registry's own)"
            )
        if parts.scheme == "http" and not (is_loopback(host) and is_loopback(self.host)):
            raise HarnessError(
                f"registry {self.registry} names a plain-http token realm on {shown(host)}; "
                "credentials go only over https (plain http only on loopback)"
            )
        return host

    def _token(self, challenge: dict[str, str], scope: str) -> str | None:
        realm = challenge.get("realm")
        if not realm:
            raise HarnessError(
                f"registry {self.registry} asks for a bearer token but names no realm"
            )
        host = self.check_realm(realm)
        params = {"service": challenge.get("service", ""), "scope": challenge.get("scope", scope)}
        answer = self._raw(
            "GET", realm, params=params, auth=self._basic(), limit=TOKEN_LIMIT, what="fetch a token"
        )
        if answer.status in (401, 403):
            return None  # the caller reports the registry's refusal
        if answer.status != 200:
            raise HarnessError(f"token realm {host} answered {answer.status}")
        body = json_object(answer.body, f"token realm {host}'s answer")
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise HarnessError(f"token realm {host} answered 200 without a usable token")
        self._tokens[scope] = token
        return token

    # --- the wire -------------------------------------------------------------------------------

    def _raw(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        params: dict[str, str] | None = None,
        limit: int,
        what: str,
    ) -> Answer:
        """One request, following same-origin redirects only, its body capped at ``limit``."""
        for _ in range(MAX_REDIRECTS + 1):
            remaining = self._ends - time.monotonic()
            if remaining <= 0:
                raise self._too_slow(what)
            try:
                with self.session.request(
                    method,
                    url,
                    headers=headers,
                    auth=auth,
                    params=params,
                    timeout=min(self.timeout, remaining),
                    stream=True,
                    allow_redirects=False,
                ) as response:
                    if not response.is_redirect:
                        body = self._read(response, limit, what) if method != "HEAD" else b""
                        return Answer(response.status_code, response.headers, body)
                    url = self._same_origin(url, response.headers["Location"], what)
                    params = None  # the Location carries its own query
            except requests.RequestException as exc:
                raise HarnessError(
                    f"registry {self.registry} does not answer ({type(exc).__name__}); "
                    "check the address and your network"
                ) from None
        raise HarnessError(f"registry {self.registry} redirected more than {MAX_REDIRECTS} times")

    def _same_origin(self, url: str, location: str, what: str) -> str:
        target = urljoin(url, location)
        old, new = urlsplit(url), urlsplit(target)
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            raise HarnessError(
                f"registry {self.registry} redirected {what} to {shown(new.scheme)}://"
                f"{shown(new.netloc)}; requests with credentials are never redirected elsewhere"
            )
        return target

    def _read(self, response: requests.Response, limit: int, what: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(chunk_size=16384):
            body += chunk
            if len(body) > limit:
                raise self._too_large(what, limit)
            if time.monotonic() > self._ends:
                raise self._too_slow(what)
        return bytes(body)

    def _too_large(self, what: str, limit: int) -> HarnessError:
        return HarnessError(
            f"registry {self.registry} answered more than {limit // 1024} KiB to {what}; "
            "refusing it"
        )
