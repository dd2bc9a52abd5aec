"""The one stand-in `docker` of the harness tests, injected as the harness's process runner.

It answers by argument prefix (``rules``, first match wins) and records every call with its
stdin and environment, so a test can prove what a child would have been given. Subclasses
add state where a test needs an engine that remembers (the bench's images and containers).
No interpreter starts per call: the fake runs in-process, behind the same runner signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Unpack
from urllib.parse import urlsplit

from harness.core import process
from tests.serving import serving

NOT_FOUND = "Error response from daemon: Cannot connect to the Docker daemon"


@dataclass(frozen=True)
class Call:
    args: list[str]
    stdin: str | None
    env: Mapping[str, str] | None
    cwd: Path | None


# A rule's answer: its output, or a function of the whole argv that returns it (and may write
# files the real command writes, as `docker save --output` does).
Answer = str | Callable[[list[str]], str]


@dataclass
class FakeDocker:
    rules: list[tuple[list[str], Answer, int]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def __call__(self, args: Sequence[str], **options: Unpack[process.RunOptions]) -> str:
        argv, env, cwd = list(args), options.get("env"), options.get("cwd")
        stdin = options.get("stdin")
        self.calls.append(Call(argv, stdin, None if env is None else dict(env), cwd))
        if argv[0] == "docker":
            for prefix, answer, code in self.rules:
                if argv[1 : 1 + len(prefix)] == prefix:
                    out = answer(argv) if callable(answer) else answer
                    if code:
                        raise process.CommandError(f"`{' '.join(argv[:3])}` failed", out, code)
                    return out + "\n"
        return self.answer(argv, cwd=cwd, env=env)

    def answer(self, args: list[str], *, cwd: Path | None, env: Mapping[str, str] | None) -> str:
        """What a command no rule matched gets; here, the answer of an engine that is down."""
        raise process.CommandError(f"`{' '.join(args[:3])}` failed", NOT_FOUND, 1)

    def docker_calls(self) -> list[list[str]]:
        return [c.args[1:] for c in self.calls if c.args[0] == "docker"]


# --- an engine that remembers, and a registry it pushes to (the release tests) -----------------


@dataclass
class FakeEngine(FakeDocker):
    """An engine with images (by ID, with labels) and refs; ``docker push`` hands the image a
    ref names *at that moment* to ``pushed``, as the real one does, and reports the digest of the
    manifest it wrote (what ``pushed`` returns, else docker's manifest of the image). ``after``
    runs after every docker call, so a test can retarget a ref between two of the harness's
    steps."""

    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # image ID -> labels
    refs: dict[str, str] = field(default_factory=dict)  # ref -> image ID
    pushed: Callable[[str, str], str | None] | None = None  # (ref, image ID) on each push
    after: Callable[[list[str]], None] | None = None

    def image(self, ref: str) -> str | None:
        return ref if ref in self.labels else self.refs.get(ref)

    def answer(self, args: list[str], *, cwd: Path | None, env: Mapping[str, str] | None) -> str:
        if args[0] != "docker":
            return super().answer(args, cwd=cwd, env=env)
        if args[1] == "login" and env and env.get("DOCKER_CONFIG"):
            # What docker login writes (base64 of user:password stands in for it here).
            config = Path(env["DOCKER_CONFIG"], "config.json")
            config.write_text(json.dumps({"auths": {args[2]: {"auth": "<login>"}}}))
        out = self._engine(args[1:])
        if self.after is not None:
            self.after(args[1:])
        return out

    def _engine(self, argv: list[str]) -> str:
        image = self.image(argv[-1])
        match argv:
            case ["image", "inspect", "--format", "{{.Id}}", _] if image:
                return image
            case ["image", "inspect", "--format", "{{json .Config.Labels}}", _] if image:
                return json.dumps(self.labels[image] or None)
            case ["tag", source, ref] if self.image(source):
                self.refs[ref] = str(self.image(source))
                return ""
            case ["push", ref] if image:
                written = self.pushed(ref, image) if self.pushed is not None else None
                digest = written or sha256(image_manifest(image))
                tag = ref.rsplit(":", 1)[1]
                return f"The push refers to repository [x]\n{tag}: digest: {digest} size: 1"
            case ["image", "rm", ref] if ref in self.refs:
                del self.refs[ref]
                return ""
            case ["login", *_]:
                return "Login Succeeded"
        raise process.CommandError("docker failed", f"Error: No such object: {argv[-1]}", 1)


Canned = tuple[int, dict[str, str], bytes]  # status, headers, body


def image_manifest(config_digest: str) -> bytes:
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1}
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {**config, "digest": config_digest},
            "layers": [],
        }
    ).encode()


def sha256(body: bytes) -> str:
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


@dataclass
class FakeRegistry:
    """A registry's v2 API on a loopback address, with basic or bearer auth (token at /token).

    ``canned`` answers a path (without query) before any auth check: a test's hostile answer.
    ``blobs`` are served at ``/v2/<repository>/blobs/<digest>``; with ``blob_redirect`` set, an
    authorized blob request is answered 307 to ``<blob_redirect><digest>?signature=fake``
    instead, as registries send blobs to their storage.
    ``drip`` sends each answer's headers a byte at a time, that many seconds apart. Every
    request is recorded as (method, path, headers).
    """

    scheme: str = "basic"
    host: str = "127.0.0.1"
    username: str = "deploy"
    password: str = "s3cret"  # noqa: S105 (a test's)
    token: str = "tok-123"  # noqa: S105 (a test's)
    realm: str | None = None  # what a bearer challenge names; default: this server's /token
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, ref) -> body
    canned: dict[str, Canned] = field(default_factory=dict)
    drip: float = 0.0
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    address: str = ""
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, digest) -> body
    blob_redirect: str | None = None

    def put(self, repository: str, tag: str, body: bytes) -> str:
        """Store a manifest under its tag and its digest; return the digest."""
        self.manifests[(repository, tag)] = body
        self.manifests[(repository, sha256(body))] = body
        return sha256(body)

    def put_blob(self, repository: str, body: bytes) -> str:
        """Store a blob under its digest; return the digest."""
        self.blobs[(repository, sha256(body))] = body
        return sha256(body)

    def tags(self, repository: str) -> list[str]:
        return sorted(t for r, t in self.manifests if r == repository and ":" not in t)

    @contextmanager
    def serving(self) -> Iterator[FakeRegistry]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                registry.requests.append((self.command, self.path, dict(self.headers)))
                self.send(*registry.answer(self.path, self.headers.get("Authorization", "")))

            def do_HEAD(self) -> None:
                self.do_GET()

            def send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                head = f"HTTP/1.1 {status} X\r\n"
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    head += f"{key}: {value}\r\n"
                head += "Connection: close\r\n\r\n"
                if registry.drip:
                    for byte in head.encode():
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(registry.drip)
                else:
                    self.wfile.write(head.encode())
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.close_connection = True

        server = ThreadingHTTPServer((self.host, 0), Handler)
        server.block_on_close = False  # a dripping answer must not hold the test up
        self.address = f"{self.host}:{server.server_address[1]}"
        with serving(server):
            yield self

    def answer(self, target: str, authorization: str) -> Canned:
        path = urlsplit(target).path
        if path in self.canned:
            return self.canned[path]
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if path == "/token":
            if authorization != f"Basic {basic}":
                return 401, {}, b'{"errors": [{"code": "UNAUTHORIZED"}]}'
            return 200, {}, json.dumps({"token": self.token}).encode()
        wanted = f"Basic {basic}" if self.scheme == "basic" else f"Bearer {self.token}"
        if authorization != wanted:
            realm = self.realm or f"http://{self.address}/token"
            challenge = (
                'Basic realm="registry"'
                if self.scheme == "basic"
                else f'Bearer realm="{realm}",service="fake.registry"'
            )
            return 401, {"WWW-Authenticate": challenge}, b""
        return self.content(path)

    def content(self, path: str) -> Canned:
        if path == "/v2/":
            return 200, {}, b"{}"
        repository, _, rest = path.removeprefix("/v2/").rpartition("/")
        if rest == "list" and repository.endswith("/tags"):
            repository = repository.removesuffix("/tags")
            tags = self.tags(repository)
            if not tags:
                return 404, {}, b'{"errors": [{"code": "NAME_UNKNOWN"}]}'
            return 200, {}, json.dumps({"name": repository, "tags": tags}).encode()
        if repository.endswith("/blobs"):
            return self.blob(repository.removesuffix("/blobs"), rest)
        body = self.manifests.get((repository.removesuffix("/manifests"), rest))
        if body is None:
            return 404, {}, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}'
        return 200, {"Docker-Content-Digest": sha256(body)}, body

    def blob(self, repository: str, digest: str) -> Canned:
        if (repository, digest) not in self.blobs:
            return 404, {}, b'{"errors": [{"code": "BLOB_UNKNOWN"}]}'
        if self.blob_redirect is not None:
            return 307, {"Location": f"{self.blob_redirect}{digest}?signature=fake"}, b""
        return 200, {"Docker-Content-Digest": digest}, self.blobs[(repository, digest)]


@dataclass
class FakeSkopeo:
    """skopeo reading a FakeRegistry's store, in process: ``inspect --raw``, ``inspect --config
    --raw`` (an index resolved to its linux/amd64 image, as skopeo does here) and ``list-tags``.
    A path in the registry's ``canned`` answers first, as over HTTP. Every call is recorded
    with the environment skopeo would have had."""

    registry: FakeRegistry
    calls: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)

    def __call__(self, args: Sequence[str], env: Mapping[str, str]) -> bytes:
        argv = list(args)
        self.calls.append((argv, dict(env)))
        ref = argv[-1].removeprefix("docker://").partition("/")[2]
        if argv[0] == "list-tags":
            tags = self.registry.tags(ref)
            canned = self.registry.canned.get(f"/v2/{ref}/tags/list")
            if canned is not None and canned[0] != 200:
                raise self.error(f"invalid status code from registry {canned[0]}")
            if not tags:
                raise self.error("fetching tags list: invalid status code from registry 404")
            return json.dumps({"Repository": ref, "Tags": tags}).encode()
        repository, _, reference = ref.rpartition("@") if "@" in ref else ref.rpartition(":")
        body = self.body(f"/v2/{repository}/manifests/{reference}", (repository, reference))
        if "--config" not in argv:
            return body
        manifest = json.loads(body)
        for entry in manifest.get("manifests", []):  # an index: this platform's image
            if entry.get("platform", {}).get("architecture") == "amd64":
                manifest = json.loads(self.body("", (repository, entry["digest"])))
        digest = manifest["config"]["digest"]
        return self.body(f"/v2/{repository}/blobs/{digest}", (repository, digest), blob=True)

    def body(self, path: str, key: tuple[str, str], *, blob: bool = False) -> bytes:
        if path in self.registry.canned:
            status, _, canned = self.registry.canned[path]
            if status == 200:
                return canned
            raise self.error(f"invalid status code from registry {status}")
        found = (self.registry.blobs if blob else self.registry.manifests).get(key)
        if found is None:
            raise self.error("reading manifest: manifest unknown")
        return found

    @staticmethod
    def error(message: str) -> process.CommandError:
        return process.CommandError("skopeo failed", f'level=fatal msg="{message}"', 1)
