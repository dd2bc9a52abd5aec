"""The shared tier of the results store: entries as OCI artifacts in a registry, through oras.

``DEATHSTAR_RESULTS_CACHE=REGISTRY/REPO``: a local miss asks for the tag named by the key;
``DEATHSTAR_RESULTS_CACHE_WRITE=1`` (CI only) pushes every recorded pass. What a registry sends
is untrusted: a hit only when the manifest, the entry and each output's sha256 check out, before
anything is written. An unreachable registry is a warning and a miss. Credentials: docker's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.core.references import DIGEST, check_registry, check_repository, is_loopback, shown
from harness.results.store import Store, is_key, is_off, open_store, parse

VARIABLE = "DEATHSTAR_RESULTS_CACHE"
WRITE_VARIABLE = "DEATHSTAR_RESULTS_CACHE_WRITE"
ARTIFACT_TYPE = "application/vnd.deathstar.result.v1"
ENTRY_TYPE = "application/vnd.deathstar.result.v1+json"
OUTPUT_TYPE = "application/vnd.deathstar.output.v1"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
ENTRY_NAME = "entry.json"  # outputs travel named by their sha256: no name a registry picks
TITLE = "org.opencontainers.image.title"
TIMEOUT = 60.0
# What oras may see of our environment: where docker's credentials are, never a secret.
PASSED = ("PATH", "HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "DOCKER_CONFIG", "HTTPS_PROXY",
          "https_proxy", "NO_PROXY", "no_proxy")  # fmt: skip
Oras = Callable[[Sequence[str], Path], bytes]


class RemoteError(Exception):
    """oras failed: the registry is unreachable, refused us, or has no such tag."""


def run_oras(args: Sequence[str], cwd: Path) -> bytes:
    """``oras ARGS``'s stdout, run in ``cwd``; RemoteError with its last line on failure."""
    env = {name: os.environ[name] for name in PASSED if name in os.environ}
    try:
        done = subprocess.run(
            ["oras", *args], cwd=cwd, env=env, capture_output=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RemoteError(str(exc)) from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RemoteError(lines[-1] if lines else f"oras exited {done.returncode}")
    return done.stdout


def origin(environ: Mapping[str, str]) -> str:
    """Where an entry was made, without naming a host: CI's run, or a developer's machine."""
    run = environ.get("GITHUB_RUN_ID", "")
    return f"CI run {run}" if run.isdigit() else "a developer machine"


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as Python and Go both read it: oras (Go) matches keys ignoring case and
    takes the last, so keys that collide under casefold are refused, not read two ways."""
    if len({key.casefold() for key, _ in pairs}) != len(pairs):
        raise ValueError("a manifest with keys that collide")
    return dict(pairs)


def layer_files(manifest: object, max_bytes: int) -> dict[str, str]:
    """Each layer's file name and digest, if the manifest is one of our entries in bounds."""
    if not isinstance(manifest, dict) or manifest.get("mediaType") != MANIFEST_TYPE:
        raise ValueError("not an OCI image manifest")
    layers = manifest.get("layers")
    if manifest.get("artifactType") != ARTIFACT_TYPE or not isinstance(layers, list):
        raise ValueError("not a results entry")
    files: dict[str, str] = {}
    for layer in layers:
        annotations = layer.get("annotations") if isinstance(layer, dict) else None
        # Only a title: any other annotation (oras's unpack of a directory) is refused.
        if not isinstance(annotations, dict) or set(annotations) != {TITLE}:
            raise ValueError("a layer with other annotations")
        name, kind = annotations[TITLE], layer.get("mediaType")
        expected = ENTRY_TYPE if name == ENTRY_NAME else OUTPUT_TYPE
        if kind != expected or not (name == ENTRY_NAME or is_key(str(name))) or name in files:
            raise ValueError(f"an unexpected layer: {shown(name)}")
        size = layer.get("size")
        if type(size) is not int or size < 0 or not DIGEST.fullmatch(str(layer.get("digest"))):
            raise ValueError("a layer without a size or sha256 digest")
        files[name] = layer["digest"]
    sizes = sum(layer["size"] for layer in layers)
    if ENTRY_NAME not in files or sizes > max_bytes:
        raise ValueError("no entry, or larger than the store")
    return files


# What push and verify trust: made on this machine by its own sessions, never pulled.
RECORDS = frozenset({"dist/image.json", "dist/verified.json"})


def outputs_of(entry: Mapping[str, Any]) -> dict[str, str]:
    """The entry's outputs under dist/ by sha256; ValueError for any other (a link, a path
    outside dist/, an odd name)."""
    outputs, declared = entry.get("outputs", {}), entry.get("output_paths", [])
    if not isinstance(outputs, dict) or not isinstance(declared, list):
        raise TypeError("outputs are not a mapping")
    under = tuple(f"{p}/" for p in declared if isinstance(p, str))
    files = {}
    for name, digest in outputs.items():
        path = Path(str(name))
        if digest == "absent":
            continue
        if (
            path.parts[:1] != ("dist",) or len(path.parts) < 2 or ".." in path.parts
            or path.as_posix() != name or not str(name).isprintable() or not is_key(str(digest))
            or name in RECORDS or not (name in declared or name.startswith(under))
        ):  # fmt: skip
            raise ValueError(f"an output the shared tier does not carry: {shown(name)}")
        files[str(name)] = str(digest)
    return files


@dataclass
class Remote:
    """The registry repository ``reference`` (``registry/repository``) as a store's tier."""

    reference: str
    checkout: Path
    write: bool = False
    oras: Oras = run_oras
    pulled: set[str] = field(default_factory=set)
    unreachable: bool = False  # after one failure, this process stops asking: one timeout at most

    @property
    def options(self) -> list[str]:
        return ["--plain-http"] if is_loopback(self.reference.partition("/")[0]) else []

    def warn(self, what: str, exc: Exception) -> None:
        self.unreachable = True
        print(f"nox > results cache: {what} {self.reference}: {shown(exc, 200)}", file=sys.stderr)

    def pull(self, key: str, store: Store) -> dict[str, Any] | None:
        """The entry for ``key`` from the registry, verified, with its outputs written into
        dist/ and itself into ``store``; None for a miss of any kind."""
        if self.unreachable:
            return None
        with tempfile.TemporaryDirectory(prefix="deathstar-pull-") as scratch:
            folder = Path(scratch)
            try:
                raw = self.oras(["manifest", "fetch", *self.options, f"{self.reference}:{key}"],
                                folder)  # fmt: skip
                files = layer_files(json.loads(raw, object_pairs_hook=unique_keys), store.max_bytes)
                # By the digest of the manifest checked: what is pulled is what was checked.
                digest = hashlib.sha256(raw).hexdigest()
                pull = ["pull", *self.options, "-o", "out", f"{self.reference}@sha256:{digest}"]
                self.oras(pull, folder)
                entry = self._verified(key, folder / "out", files)
            except RemoteError as exc:
                if not str(exc).rstrip().endswith(f"{self.reference}:{key}: not found"):
                    self.warn("could not read", exc)  # not oras's own 404 for this tag
                return None
            except (ValueError, TypeError, OSError, RecursionError):
                return None  # a hostile or broken answer is a miss
        if entry is None or not store.put(key, entry, pulled=True):
            return None
        self.pulled.add(key)
        return entry

    def _verified(self, key: str, out: Path, files: Mapping[str, str]) -> dict[str, Any] | None:
        found = {item.name: item for item in os.scandir(out)}
        regular = all(item.is_file(follow_symlinks=False) for item in found.values())
        if set(found) != set(files) or not regular:
            return None
        entry = parse((out / ENTRY_NAME).read_bytes(), key)
        if entry is None:
            return None
        contents = {}
        for name, digest in outputs_of(entry).items():
            data = (out / digest).read_bytes() if digest in found else b""
            if hashlib.sha256(data).hexdigest() != digest:
                return None
            contents[name] = data
        for name, data in contents.items():  # all verified: now written, each atomically
            path = self.checkout / name
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.pull")
            temporary.write_bytes(data)
            temporary.replace(path)
        return entry

    def push(self, key: str, document: bytes, entry: Mapping[str, Any]) -> None:
        """Push the entry and its outputs under the tag ``key`` (only when writing)."""
        if not self.write or self.unreachable:
            return
        with tempfile.TemporaryDirectory(prefix="deathstar-push-") as scratch:
            folder = Path(scratch)
            try:
                (folder / ENTRY_NAME).write_bytes(document)
                outputs = outputs_of(entry)
                for name, digest in outputs.items():
                    (folder / digest).write_bytes((self.checkout / name).read_bytes())
                layers = [f"{ENTRY_NAME}:{ENTRY_TYPE}"]
                layers += [f"{digest}:{OUTPUT_TYPE}" for digest in sorted(set(outputs.values()))]
                self.oras(["push", *self.options, "--artifact-type", ARTIFACT_TYPE,
                           f"{self.reference}:{key}", *layers], folder)  # fmt: skip
            except (RemoteError, ValueError, TypeError, OSError) as exc:
                self.warn("could not push to", exc)


def open_remote(environ: Mapping[str, str], checkout: Path) -> Remote | None:
    """The tier ``DEATHSTAR_RESULTS_CACHE`` names; None when unset or the cache is off."""
    reference = environ.get(VARIABLE, "").strip()
    if not reference or is_off(environ):
        return None
    registry, _, repository = reference.partition("/")
    check_registry(registry)
    check_repository(registry, repository)
    write = environ.get(WRITE_VARIABLE, "") == "1"
    return Remote(reference, checkout, write)


def open_shared(environ: Mapping[str, str], checkout: Path) -> Store | None:
    """The store the environment names, with its shared tier (a bad name: a warning, local
    only); None when the cache is off."""
    store = open_store(environ)
    if store is not None:
        try:
            store.remote = open_remote(environ, checkout)
        except HarnessError as exc:
            print(f"nox > results cache: {exc}; {VARIABLE} is not used", file=sys.stderr)
    return store
