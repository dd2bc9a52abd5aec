"""Who gets the credentials: HTTP basic to the registry itself, or a bearer token fetched from a
token realm on the registry's own host or on a host allowed for it, over https."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from harness import HarnessError
from harness.release.registry.names import given_url, is_loopback, shown, url_host
from harness.release.registry.transport import (
    DEADLINE,
    GRACE,
    MANIFEST_LIMIT,
    TOKEN_LIMIT,
    Answer,
    Transport,
    json_object,
)

AUTH_HOSTS_VARIABLE = "DEATHSTAR_REGISTRY_AUTH_HOSTS"
# Registries whose token realm lives on another host; a realm on the registry's own host (ghcr.io:
# https://ghcr.io/token) needs no entry. More with DEATHSTAR_REGISTRY_AUTH_HOSTS=host,host.
KNOWN_AUTH_HOSTS: dict[str, frozenset[str]] = {
    "docker.io": frozenset({"auth.docker.io"}),
    "index.docker.io": frozenset({"auth.docker.io"}),
    "registry-1.docker.io": frozenset({"auth.docker.io"}),
}
_TOKEN = re.compile(r"[\x21-\x7e]+", re.ASCII)  # visible ASCII: nothing that splits a header
# One challenge: a scheme, then key=value or key="quoted value" pairs separated by commas.
_CHALLENGE = re.compile(r"(?P<scheme>[A-Za-z]+)(?:\s+(?P<params>.*))?", re.DOTALL)
_PARAM = re.compile(r'\s*(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)', re.ASCII)


@dataclass(frozen=True)
class Credentials:
    """A registry login: a username and a password or token."""

    username: str
    password: str = field(repr=False)  # never printed, never logged


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


class AuthTransport(Transport):
    """The wire with credentials: a request the registry answers 401 is sent again with basic
    auth, or with a bearer token from the realm its challenge names if :meth:`check_realm`
    allows that realm; tokens are kept per scope."""

    def __init__(
        self,
        registry: str,
        credentials: Credentials | None,
        *,
        auth_hosts: Iterable[str] = (),
        timeout: float = 10.0,
        deadline: float = DEADLINE,
        grace: float = GRACE,
    ) -> None:
        super().__init__(registry, timeout=timeout, deadline=deadline, grace=grace)
        self.credentials = credentials
        self.realm_hosts = {self.host, *KNOWN_AUTH_HOSTS.get(self.host, ()), *auth_hosts}
        self._tokens: dict[str, str] = {}

    def _send(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str] | None = None,
        *,
        what: str,
        limit: int = MANIFEST_LIMIT,
        elsewhere: bool = False,
    ) -> Answer:
        headers = dict(headers or {})
        if scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        url = self.url + path

        def send(auth: tuple[str, str] | None = None) -> Answer:
            return self._raw(
                method, url, headers=headers, auth=auth, limit=limit, what=what, elsewhere=elsewhere
            )

        answer = send()
        if answer.status != 401 or answer.elsewhere:
            return answer
        scheme, challenge = parse_challenge(answer.headers.get("WWW-Authenticate", ""))
        if scheme == "basic" and self.credentials:
            return send(self._basic())
        if scheme == "bearer":
            token = self._token(challenge, scope)
            if token:
                headers["Authorization"] = f"Bearer {token}"
                return send()
        return answer

    def _basic(self) -> tuple[str, str] | None:
        if self.credentials is None:
            return None
        return (self.credentials.username, self.credentials.password)

    def check_realm(self, realm: str) -> str:
        """The realm's host, if our credentials may go there; else a refusal naming it."""
        parts = given_url(self.registry, realm, "a token realm")
        host = url_host(parts)
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
