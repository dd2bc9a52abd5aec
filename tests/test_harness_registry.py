"""The registry client against a small in-process registry on 127.0.0.1.

The stand-in speaks the two auth schemes real registries use: HTTP basic (distribution with
htpasswd) and the bearer-token challenge (GHCR, Docker Hub).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from harness import HarnessError
from harness.release.registry import Credentials, RegistryClient, base_url

USER, PASSWORD, TOKEN = "deploy", "s3cret", "tok-123"
MANIFEST = b'{"schemaVersion": 2}'
DIGEST = f"sha256:{hashlib.sha256(MANIFEST).hexdigest()}"


class FakeRegistry(BaseHTTPRequestHandler):
    scheme: ClassVar[str] = "basic"
    send_digest_header: ClassVar[bool] = True
    tags: ClassVar[dict[str, list[str]]] = {"team/app": ["1.0.0", "latest"]}
    token_requests: ClassVar[list[dict[str, list[str]]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if self.scheme == "basic":
            expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            return header == f"Basic {expected}"
        return header == f"Bearer {TOKEN}"

    def _challenge(self) -> None:
        self.send_response(401)
        if self.scheme == "basic":
            self.send_header("WWW-Authenticate", 'Basic realm="registry"')
        else:
            realm = f"http://127.0.0.1:{self.server.server_port}/token"  # type: ignore[attr-defined]
            self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="fake.registry"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/token":
            FakeRegistry.token_requests.append(parse_qs(url.query))
            basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {basic}":
                self._json(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                return
            self._json(200, {"token": TOKEN})
            return
        if not self._authorized():
            self._challenge()
            return
        if url.path == "/v2/":
            self._json(200, {})
        elif url.path.endswith("/tags/list"):
            repo = url.path.removeprefix("/v2/").removesuffix("/tags/list")
            if repo not in self.tags:
                self._json(404, {"errors": [{"code": "NAME_UNKNOWN"}]})
            else:
                self._json(200, {"name": repo, "tags": self.tags[repo]})
        elif "/manifests/" in url.path:
            self._manifest(url.path)
        else:
            self._json(404, {})

    def do_HEAD(self) -> None:
        if not self._authorized():
            self._challenge()
            return
        self._manifest(urlparse(self.path).path)

    def _manifest(self, path: str) -> None:
        repo, _, tag = path.removeprefix("/v2/").partition("/manifests/")
        if tag not in self.tags.get(repo, []):
            self._json(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            return
        self.send_response(200)
        if self.send_digest_header:
            self.send_header("Docker-Content-Digest", DIGEST)
        self.send_header("Content-Length", str(len(MANIFEST)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(MANIFEST)


@pytest.fixture(params=["basic", "bearer"])
def registry(request: pytest.FixtureRequest) -> Iterator[str]:
    FakeRegistry.scheme = request.param
    FakeRegistry.send_digest_header = True
    FakeRegistry.token_requests.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_login_tags_and_digests_with_valid_credentials(registry: str) -> None:
    client = RegistryClient(registry, Credentials(USER, PASSWORD))
    client.check_login("team/app")
    assert client.tags("team/app") == ["1.0.0", "latest"]
    assert client.tags("team/unknown") == []
    assert client.manifest_digest("team/app", "1.0.0") == DIGEST
    assert client.manifest_digest("team/app", "9.9.9") is None


def test_bearer_flow_asks_the_realm_for_a_scoped_token(registry: str) -> None:
    client = RegistryClient(registry, Credentials(USER, PASSWORD))
    client.tags("team/app")
    if FakeRegistry.scheme == "bearer":
        assert FakeRegistry.token_requests[-1] == {
            "service": ["fake.registry"],
            "scope": ["repository:team/app:pull"],
        }
    else:
        assert FakeRegistry.token_requests == []


def test_digest_from_manifest_body_when_header_missing(registry: str) -> None:
    FakeRegistry.send_digest_header = False
    client = RegistryClient(registry, Credentials(USER, PASSWORD))
    assert client.manifest_digest("team/app", "latest") == DIGEST


def test_wrong_or_missing_credentials_are_refused(registry: str) -> None:
    for credentials in (Credentials(USER, "wrong"), None):
        client = RegistryClient(registry, credentials)
        with pytest.raises(HarnessError, match=r"refused the credentials \(401\)"):
            client.check_login("team/app")
        with pytest.raises(HarnessError, match="could not list tags: 401"):
            client.tags("team/app")


def test_registry_that_does_not_answer() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RegistryClient(f"127.0.0.1:{port}", None, timeout=2)
    with pytest.raises(HarnessError, match=r"does not answer \(ConnectionError\)"):
        client.check_login("team/app")


def test_password_is_not_in_the_repr() -> None:
    assert PASSWORD not in repr(Credentials(USER, PASSWORD))


@pytest.mark.parametrize(
    ("registry", "url"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "http://localhost:5000"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("ghcr.io", "https://ghcr.io"),
        ("registry.example.com:443", "https://registry.example.com:443"),
    ],
)
def test_base_url_is_plain_http_only_on_loopback(registry: str, url: str) -> None:
    assert base_url(registry) == url
