"""A small client for a registry's v2 HTTP API: login check, tag list, manifest digests.

It speaks the two auth schemes registries use: HTTP basic (distribution's htpasswd) and the
bearer-token challenge flow (GHCR, Docker Hub): a 401 names a token realm, the client fetches a
token there with its credentials and retries. Runs in a session venv (needs requests).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from harness import HarnessError

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # never printed, never logged


def base_url(registry: str) -> str:
    """Docker talks plain HTTP to registries on loopback and HTTPS everywhere else."""
    host = urlsplit(f"//{registry}").hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return f"{'http' if loopback else 'https'}://{registry}"


class RegistryClient:
    def __init__(
        self, registry: str, credentials: Credentials | None, *, timeout: float = 10.0
    ) -> None:
        self.registry = registry
        self.url = base_url(registry)
        self.credentials = credentials
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment sees our credentials
        self._tokens: dict[str, str] = {}

    def _send(
        self, method: str, path: str, scope: str, headers: dict[str, str] | None = None
    ) -> requests.Response:
        headers = dict(headers or {})
        if scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        response = self._raw(method, self.url + path, headers=headers)
        if response.status_code != 401:
            return response
        scheme, _, params = response.headers.get("WWW-Authenticate", "").partition(" ")
        if scheme.lower() == "basic" and self.credentials:
            return self._raw(method, self.url + path, headers=headers, auth=self._basic())
        if scheme.lower() == "bearer":
            token = self._token(dict(_CHALLENGE_PARAM.findall(params)), scope)
            if token:
                headers["Authorization"] = f"Bearer {token}"
                return self._raw(method, self.url + path, headers=headers)
        return response

    def _basic(self) -> tuple[str, str] | None:
        if self.credentials is None:
            return None
        return (self.credentials.username, self.credentials.password)

    def _token(self, challenge: dict[str, str], scope: str) -> str | None:
        realm = challenge.get("realm")
        if not realm:
            return None
        params = {"service": challenge.get("service", ""), "scope": challenge.get("scope", scope)}
        response = self._raw("GET", realm, params=params, auth=self._basic())
        if response.status_code != 200:
            return None
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if isinstance(token, str) and token:
            self._tokens[scope] = token
            return token
        return None

    def _raw(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        try:
            return self.session.request(
                method, url, headers=headers, auth=auth, params=params, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise HarnessError(
                f"registry {self.registry} does not answer ({type(exc).__name__}); "
                "check the address and your network"
            ) from None

    def check_login(self, repository: str) -> None:
        """Refuse early, with nothing pushed, when the registry is down or refuses us."""
        response = self._send("GET", "/v2/", f"repository:{repository}:pull,push")
        if response.status_code in (401, 403):
            raise HarnessError(
                f"registry {self.registry} refused the credentials ({response.status_code}); "
                "check REGISTRY_USERNAME and REGISTRY_PASSWORD"
            )
        if response.status_code != 200:
            raise HarnessError(
                f"registry {self.registry} answered {response.status_code} on /v2/; "
                "is it a container registry?"
            )

    def tags(self, repository: str) -> list[str]:
        response = self._send("GET", f"/v2/{repository}/tags/list", f"repository:{repository}:pull")
        if response.status_code == 404:
            return []  # the repository does not exist yet
        self._expect_ok(response, "list tags")
        return sorted(response.json().get("tags") or [])

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        path = f"/v2/{repository}/manifests/{tag}"
        headers = {"Accept": MANIFEST_TYPES}
        response = self._send("HEAD", path, f"repository:{repository}:pull", headers=headers)
        if response.status_code == 404:
            return None
        self._expect_ok(response, f"read manifest {tag}")
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        # Some registries omit the header on HEAD: the digest is the manifest's sha256.
        response = self._send("GET", path, f"repository:{repository}:pull", headers=headers)
        self._expect_ok(response, f"read manifest {tag}")
        return f"sha256:{hashlib.sha256(response.content).hexdigest()}"

    def _expect_ok(self, response: requests.Response, what: str) -> None:
        if response.status_code != 200:
            raise HarnessError(f"registry {self.registry} could not {what}: {response.status_code}")
