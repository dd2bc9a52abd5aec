"""Past one machine: a BuildKit cache in a registry (``DEATHSTAR_BUILD_CACHE``) for ``image``,
never for ``repro``/``verify``; and the buildx builder that BUILDX_BUILDER or DOCKER_CONTEXT
selects, which, unless it is the local engine's own, cannot see the local images."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

from harness import HarnessError
from harness.core import git, process, references
from harness.core.docker import Docker

CACHE_VARIABLE, CACHE_WRITE_VARIABLE = "DEATHSTAR_BUILD_CACHE", "DEATHSTAR_BUILD_CACHE_WRITE"
MAIN = "main"
# What selects the builder for `docker buildx build`; the harness's other docker calls (load,
# inspect, tag) go to the local engine, which integration tests against.
SELECTORS = ("DOCKER_CONTEXT", "BUILDX_BUILDER")


def cache_tag(branch: str) -> str:
    """A branch name as a tag, one to one: ``main`` is main's; any other branch is its name
    made tag-safe and cut short, plus a digest of the whole name (``ümain``, ``feature/x``
    and ``feature-x`` get tags of their own, never main's)."""
    if branch == MAIN:
        return MAIN
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", branch).lstrip(".-")[:100]
    return f"{safe}-{hashlib.sha256(branch.encode()).hexdigest()[:12]}".lstrip("-")


def branch(root: Path) -> str | None:
    """The checked-out branch; None on a detached HEAD."""
    try:
        return git.git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=root) or None
    except HarnessError:
        return None


RUNTIME_BASE_TAG = "runtime-base-"  # then the runtime base's key: a tag no branch's can be


@dataclass(frozen=True)
class BuildCache:
    """DEATHSTAR_BUILD_CACHE's repository: BuildKit's cache under a branch's tag and main's,
    and the runtime bases as images, each under the digest of its inputs; both are written only
    with DEATHSTAR_BUILD_CACHE_WRITE=1."""

    repository: str  # REGISTRY/REPOSITORY
    write: bool

    @classmethod
    def configured(cls, environ: Mapping[str, str]) -> BuildCache | None:
        """The cache the environment names, None without one; one line on a bad value."""
        value, write = environ.get(CACHE_VARIABLE, ""), environ.get(CACHE_WRITE_VARIABLE, "")
        if write not in ("", "0", "1"):
            why = f"{CACHE_WRITE_VARIABLE} is '{references.shown(write)}', not 1 or 0"
            raise HarnessError(why)
        if not value:
            return None
        registry, _, repository = value.partition("/")
        try:
            references.check_registry(registry)
            references.check_repository(registry, repository)
        except HarnessError as exc:
            raise HarnessError(f"{CACHE_VARIABLE} is not REGISTRY/REPOSITORY: {exc}") from None
        return cls(value, write == "1")

    def flags(self, branch: str | None) -> list[str]:
        """``--cache-from`` the branch's and main's cache; when writing, only ``--cache-to`` the
        branch's (``mode=max``: every stage's layers)."""
        registry = self.repository.partition("/")[0]
        # Plain http only on loopback, as the registry module allows.
        insecure = ",registry.insecure=true" if references.is_loopback(registry) else ""
        tags = dict.fromkeys([cache_tag(branch) if branch else MAIN, MAIN])
        refs = [f"type=registry,ref={self.repository}:{tag}{insecure}" for tag in tags]
        if self.write:  # a writer reads no cache: what it writes is what the source builds
            return ["--cache-to", f"{refs[0]},mode=max"]
        return [arg for ref in refs for arg in ("--cache-from", ref)]

    def runtime_base(self, key: str) -> str:
        """Where the runtime base with this key is shared; never a branch's cache tag, which
        ends in ``-`` and 12 hex digits."""
        return f"{self.repository}:{RUNTIME_BASE_TAG}{key}"


def local_engine(runner: process.Runner = process.run) -> Docker:
    """The local engine: docker without the variables that select another builder."""
    return Docker(process.with_child_env(runner, without_selectors))


def without_selectors(env: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in SELECTORS}


@dataclass(frozen=True)
class BuildxBuilder:
    """The builder ``docker buildx build`` uses here, as ``docker buildx inspect`` names it."""

    name: str
    driver: str
    endpoint: str  # the docker driver's: the context of the engine it builds in
    local: bool  # the local engine's own builder: it reads and tags the local images

    @classmethod
    def selected(cls, docker: Docker, local_engine: Docker) -> BuildxBuilder:
        """``docker`` runs with the caller's selectors, ``local_engine`` without them."""
        fields: dict[str, str] = {}
        for line in docker("buildx", "inspect").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        name, driver, endpoint = (fields.get(k, "") for k in ("Name", "Driver", "Endpoint"))
        local = False
        if driver == "docker":  # its endpoint is a context: the local one's engine, or another
            host = ("context", "inspect", "--format", "{{.Endpoints.docker.Host}}")
            local = local_engine(*host, endpoint) == local_engine(*host)
        return cls(name, driver, endpoint, local)

    def engine(self, runner: process.Runner) -> Docker | None:
        """The engine whose images the builder reads (a docker driver's), else None: then the
        base comes from a registry by digest."""
        if self.driver != "docker":
            return None

        def on_endpoint(args: Sequence[str], **options: Unpack[process.RunOptions]) -> str:
            return runner([args[0], "--context", self.endpoint, *args[1:]], **options)

        return Docker(on_endpoint)
