"""The one stand-in `docker` of the harness tests, injected as the harness's process runner.

It answers by argument prefix (``rules``, first match wins) and records every call with its
stdin and environment, so a test can prove what a child would have been given. Subclasses
add state where a test needs an engine that remembers (the bench's images and containers).
No interpreter starts per call: the fake runs in-process, behind the same runner signature.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Unpack

from harness.core import process

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
    """What a registry holds, as FakeSkopeo reads it: manifests by tag and digest, blobs by
    digest. ``canned`` answers a v2 API path first: a test's hostile or failing answer."""

    address: str = "127.0.0.1:5000"
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, ref) -> body
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, digest) -> body
    canned: dict[str, Canned] = field(default_factory=dict)

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
