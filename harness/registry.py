"""Registry access for release and rebuild: ``docker login`` keeps the credentials, skopeo
reads, and what it returns is checked against the digests expected here."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from harness import HarnessError
from harness.core import process
from harness.core.docker import Docker
from harness.core.references import DIGEST, check_repository, is_loopback, shown
from harness.core.untrusted import parse_json

TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
REVISION_LABEL = "org.opencontainers.image.revision"
VERSION_LABEL = "org.opencontainers.image.version"
SKOPEO_TIMEOUT = 120.0
OUTPUT_LIMIT = 8 * 1024 * 1024  # skopeo caps manifests and configs at 4 MiB; a tag list here
# What a skopeo child may see of this environment: no credential, only where to find docker's.
_PASSED = ("PATH", "HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "DOCKER_CONFIG")
# skopeo's own words for "no such manifest or repository" (never text a registry chooses).
_UNKNOWN = re.compile(r"manifest unknown|name unknown|status code from registry 404")
STOPPING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


Skopeo = Callable[[Sequence[str], Mapping[str, str]], bytes]


def run_skopeo(args: Sequence[str], env: Mapping[str, str]) -> bytes:
    """``skopeo ARGS``'s stdout, or one line on why it failed; stopped past OUTPUT_LIMIT bytes
    (a tag list has no bound of its own) or after SKOPEO_TIMEOUT."""
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as errors:
        try:
            child = subprocess.Popen(
                ["skopeo", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=errors, env=dict(env),
            )  # fmt: skip
        except FileNotFoundError:
            raise HarnessError(
                "skopeo is not installed; `apt-get install skopeo` or `bash .ci/provision`"
            ) from None

        def stop() -> None:
            timed_out.set()
            child.kill()

        timer = threading.Timer(SKOPEO_TIMEOUT, stop)
        with child:
            timer.start()
            try:
                out = child.stdout.read(OUTPUT_LIMIT + 1) if child.stdout else b""
            finally:
                timer.cancel()
                child.kill()  # a no-op once it has exited
                child.wait()
        if timed_out.is_set():
            raise HarnessError(f"skopeo {args[0]} did not finish within {SKOPEO_TIMEOUT:g} s")
        if len(out) > OUTPUT_LIMIT:
            raise HarnessError(f"skopeo {args[0]} returned more than {OUTPUT_LIMIT} bytes; refused")
        if child.returncode != 0:
            errors.seek(0)
            text = errors.read(64 * 1024).decode("utf-8", "replace")
            raise process.CommandError(f"skopeo {args[0]} failed", text, child.returncode)
    return out


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry served it: its digest is the sha256 of those bytes."""

    digest: str
    body: dict[str, Any] = field(repr=False)

    @property
    def is_index(self) -> bool:
        return self.body.get("mediaType") in INDEX_TYPES or "manifests" in self.body

    @property
    def config_digest(self) -> str:
        config = self.body.get("config")
        digest = config.get("digest") if isinstance(config, dict) else None
        return digest if isinstance(digest, str) and DIGEST.fullmatch(digest) else ""


@dataclass(frozen=True)
class Registry:
    """One registry host, read with skopeo and the docker login in ``auth_file``."""

    host: str
    auth_file: Path | None = None
    skopeo: Skopeo = run_skopeo

    @classmethod
    def logged_in_as(cls, host: str, env: Mapping[str, str], skopeo: Skopeo) -> Registry:
        """The registry, read with the docker login that ``env``'s docker config holds."""
        return cls(host, docker_auth_file(env), skopeo)

    def _run(self, what: str, ref: str, *args: str, absent: bool = True) -> bytes | None:
        """skopeo's answer; None when it says there is no such manifest or repository."""
        auth = self.auth_file
        args += ("--authfile", str(auth)) if auth and auth.is_file() else ()
        args += ("--tls-verify=false",) if is_loopback(self.host) else ()
        env = {key: os.environ[key] for key in _PASSED if key in os.environ}
        try:
            return self.skopeo([*args, f"docker://{self.host}/{ref}"], env)
        except process.CommandError as exc:
            if absent and _UNKNOWN.search(exc.output):
                return None
            reason = shown(process.reason(exc.output), 160)
            raise HarnessError(f"could not {what} from registry {self.host}: {reason}") from None

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest ``reference`` (a tag or a digest) names, or None if there is none."""
        check_repository(self.host, repository)
        if not (TAG.fullmatch(reference) or DIGEST.fullmatch(reference)):
            raise HarnessError(f"'{shown(reference)}' is neither a tag nor a sha256 digest")
        sep = "@" if reference.startswith("sha256:") else ":"
        ref = f"{repository}{sep}{reference}"
        body = self._run(f"read manifest {reference}", ref, "inspect", "--raw")
        if body is None:
            return None
        expected = reference if sep == "@" else None
        return Manifest(*self._checked(body, f"manifest {reference}", expected))

    def config(self, repository: str, manifest: Manifest) -> tuple[str, dict[str, Any]]:
        """(digest, JSON) of the image config ``manifest`` names, checked against its digest;
        of an index, the config of the image skopeo picks for this platform."""
        if not manifest.is_index and not manifest.config_digest:
            raise HarnessError(
                f"registry {self.host}'s manifest {manifest.digest} names no sha256 config"
            )
        ref = f"{repository}@{manifest.digest}"
        what = f"read the config of {manifest.digest}"
        body = self._run(what, ref, "inspect", "--config", "--raw", absent=False)
        expected = None if manifest.is_index else manifest.config_digest
        return self._checked(body or b"", f"config {expected or manifest.digest}", expected)

    def _checked(self, body: bytes, what: str, digest: str | None) -> tuple[str, dict[str, Any]]:
        """(sha256, JSON object) of ``body``, which must be ``digest`` when one is expected."""
        found = f"sha256:{hashlib.sha256(body).hexdigest()}"
        if digest is not None and found != digest:
            raise HarnessError(
                f"registry {self.host} answered {what} with bytes whose sha256 is {found}; "
                "refusing it"
            )
        value = parse_json(body)
        if not isinstance(value, dict):
            raise HarnessError(f"registry {self.host}'s {what} is not a JSON object")
        return found, value

    def tags(self, repository: str) -> list[str]:
        """The repository's tags; none when it does not exist yet."""
        check_repository(self.host, repository)
        listed = parse_json(self._run("list tags", repository, "list-tags") or b'{"Tags": []}')
        tags = listed.get("Tags") if isinstance(listed, dict) else None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise HarnessError(f"registry {self.host}'s tag list is not a list of names")
        return sorted(tags)


@dataclass(frozen=True)
class Credentials:
    """A registry login: a username and a password or token."""

    username: str
    password: str = field(repr=False)  # never printed, never logged


@contextmanager
def login(
    host: str,
    credentials: Credentials | None,
    docker: Docker,
    environ: Mapping[str, str] = os.environ,
) -> Iterator[dict[str, str]]:
    """``environ`` with a docker config that holds a login to ``host``: with ``credentials``, a
    throwaway one that ``docker login --password-stdin`` writes, removed after; else the user's."""
    if credentials is None:
        yield dict(environ)
        return
    with tempfile.TemporaryDirectory(prefix="deathstar-login-") as config_dir:
        env = {**environ, "DOCKER_CONFIG": config_dir}
        # An entry for the host keeps docker from handing the password to a default credential
        # store (a keyring that outlives this directory), and keeps it where skopeo reads it.
        Path(config_dir, "config.json").write_text(json.dumps({"auths": {host: {}}}))
        docker(
            "login", host, "--username", credentials.username, "--password-stdin",
            stdin=credentials.password, env=env,
        )  # fmt: skip
        yield env


def logged_in(host: str, env: Mapping[str, str]) -> bool:
    """Whether docker's config holds a login to ``host`` skopeo uses too (no secret is read)."""
    path = docker_auth_file(env)
    config = parse_json(path.read_bytes()) if path is not None and path.is_file() else None
    if not isinstance(config, dict):
        return False
    auths, helpers = config.get("auths"), config.get("credHelpers")
    entry = auths.get(host) if isinstance(auths, dict) else None
    return bool(
        (isinstance(entry, dict) and entry.get("auth"))
        or (isinstance(helpers, dict) and isinstance(helpers.get(host), str))
    )


def docker_auth_file(env: Mapping[str, str]) -> Path | None:
    """docker's config.json: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    home = env.get("HOME")
    return Path(home) / ".docker" / "config.json" if home else None


class Stopped(BaseException):
    """A signal ended the run; like KeyboardInterrupt, nothing on the way catches it."""

    def __init__(self, number: int) -> None:
        super().__init__(signal.Signals(number).name)
        self.number = number


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGTERM, SIGHUP and SIGINT as an exception, so the cleanup runs: the throwaway login (a
    password docker wrote to disk) and local tags are removed."""

    def stop(number: int, frame: FrameType | None) -> None:
        for each in STOPPING:  # a second signal must not cut the cleanup short
            signal.signal(each, signal.SIG_IGN)
        raise Stopped(number)

    previous = {number: signal.signal(number, stop) for number in STOPPING}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
