"""``python -m harness.release``: the gated push behind ``nox -s push``.

Every gate refuses with one line and no side effect: a dirty tree, HEAD without a release tag
equal to the package version, an image other than the one ``integration`` verified at this
commit, missing or wrong credentials, a registry that does not answer. Without ``--confirm``
it stops after the gates and prints the plan. With it, it logs in with ``--password-stdin``
into a throwaway Docker config, pushes immutable tags before moving ones, removes the
registry tags it created locally, and reads every tag's digest back from the registry.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from packaging.version import InvalidVersion, Version

from harness import ROOT, HarnessError, gitinfo, images, lock
from harness.registry import Credentials, RegistryClient
from harness.tags import Release, image_tags

DEFAULT_REGISTRY = "ghcr.io"
DEFAULT_REPOSITORY = "tea-n-tech/deathstar"
PUSH_TIMEOUT = 600
_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class Plan:
    registry: str
    repository: str
    image_id: str
    commit: str
    release: Release
    tags: list[str]
    credentials: Credentials | None  # None: use the existing `docker login`
    credentials_source: str

    @property
    def refs(self) -> list[str]:
        return [f"{self.registry}/{self.repository}:{tag}" for tag in self.tags]

    def describe(self) -> str:
        lines = [
            f"registry:    {self.registry}",
            f"repository:  {self.repository}",
            f"image:       {self.image_id}",
            f"commit:      {self.commit} (v{self.release.version})",
            f"credentials: {self.credentials_source}",
            "tags:",
            *(f"  {ref}" for ref in self.refs),
        ]
        return "\n".join(lines)


def parse_args(argv: Sequence[str], env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nox -s push --",
        description="Push the verified image to a registry. Without --confirm: checks and plan.",
    )
    parser.add_argument(
        "--registry",
        default=env.get("DEATHSTAR_REGISTRY", DEFAULT_REGISTRY),
        help="registry host[:port] (DEATHSTAR_REGISTRY, default %(default)s)",
    )
    parser.add_argument(
        "--repository",
        default=env.get("DEATHSTAR_REPOSITORY", DEFAULT_REPOSITORY),
        help="repository in the registry (DEATHSTAR_REPOSITORY, default %(default)s)",
    )
    parser.add_argument("--confirm", action="store_true", help="really push")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the registry password from stdin (username from REGISTRY_USERNAME)",
    )
    parser.add_argument("--project-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def release_at_head(tags_at_head: list[str], package_version: str) -> Release:
    releases = [r for r in map(Release.parse, tags_at_head) if r is not None]
    if not releases:
        raise HarnessError(
            f"HEAD carries no release tag; tag the release commit: git tag v{package_version}"
        )
    try:
        wanted = Version(package_version)
        matching = [r for r in releases if Version(r.version) == wanted]
    except InvalidVersion as exc:
        raise HarnessError(f"not a valid version: {exc}") from None
    if not matching:
        found = ", ".join(f"v{r.version}" for r in releases)
        raise HarnessError(
            f"HEAD is tagged {found} but the package version is {package_version}; "
            "make them equal and tag again"
        )
    return matching[0]


def verified_image(project: Path, head: str) -> images.ImageRecord:
    record = images.load_image_record(project / "dist" / "image.json")
    verified = images.load_verification(project / "dist" / "verified.json")
    if record.commit != head or record.revision != head:
        # "<sha>-dirty"[:12] would hide the "-dirty": say so, or the two shas read the same.
        dirty = " with uncommitted changes" if record.revision.endswith("-dirty") else ""
        raise HarnessError(
            f"the recorded image was built from {record.commit[:12]}{dirty}, not from HEAD "
            f"{head[:12]}; run `nox` on this commit first"
        )
    if verified.get("image_id") != record.image_id or verified.get("commit") != head:
        raise HarnessError(
            f"image {record.image_id[:19]} has not passed `nox -s integration` at {head[:12]}; "
            "run it first"
        )
    try:
        local_id = images.docker("image", "inspect", "--format", "{{.Id}}", record.image_id)
    except HarnessError:
        raise HarnessError(
            f"the verified image {record.image_id[:19]} is no longer in the local Docker engine; "
            "run `nox` again"
        ) from None
    if local_id != record.image_id:  # pragma: no cover - docker answers with the id it was given
        raise HarnessError(f"image id mismatch: {local_id} != {record.image_id}")
    return record


def docker_config_credentials(registry: str, env: Mapping[str, str]) -> tuple[bool, str | None]:
    """(logged in?, base64 user:password if known) for an existing ``docker login``."""
    config_dir = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME", "/root")) / ".docker")
    try:
        config = json.loads((config_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False, None
    entry = config.get("auths", {}).get(registry)
    helper = config.get("credHelpers", {}).get(registry) or (
        config.get("credsStore") if entry is not None else None
    )
    if helper:
        return True, credential_helper_auth(helper, registry)
    if entry is None:
        return False, None
    return True, entry.get("auth")


def credential_helper_auth(helper: str, registry: str) -> str | None:
    """Ask ``docker-credential-<helper>`` (the protocol docker itself uses) for the login."""
    try:
        result = subprocess.run(
            [f"docker-credential-{helper}", "get"],
            input=registry,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        found = json.loads(result.stdout) if result.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return None
    if not found.get("Username") or not found.get("Secret"):
        return None
    return base64.b64encode(f"{found['Username']}:{found['Secret']}".encode()).decode()


def credentials(
    registry: str, env: Mapping[str, str], *, password_stdin: bool, stdin: TextIO
) -> tuple[Credentials | None, str]:
    username = env.get("REGISTRY_USERNAME", "")
    password = stdin.read().rstrip("\r\n") if password_stdin else env.get("REGISTRY_PASSWORD", "")
    if username and password:
        source = "stdin" if password_stdin else "REGISTRY_PASSWORD"
        return Credentials(username, password), f"{username} (REGISTRY_USERNAME, {source})"
    if username or password:
        raise HarnessError(
            "set both REGISTRY_USERNAME and REGISTRY_PASSWORD (or pipe the password to "
            "--password-stdin)"
        )
    logged_in, auth = docker_config_credentials(registry, env)
    if not logged_in:
        raise HarnessError(
            f"no credentials for {registry}: set REGISTRY_USERNAME and REGISTRY_PASSWORD, "
            f"or pipe the password to --password-stdin, or `docker login {registry}` first"
        )
    if auth:
        user, _, secret = base64.b64decode(auth).decode().partition(":")
        return Credentials(user, secret), f"{user} (existing docker login)"
    return None, "existing docker login (credential helper)"


def preflight(args: argparse.Namespace, env: Mapping[str, str], stdin: TextIO) -> Plan:
    project: Path = args.project_dir
    if gitinfo.is_dirty(project):
        raise HarnessError(
            "the working tree has uncommitted changes; release from a clean checkout"
        )
    head = gitinfo.head_commit(project)
    version = lock.load_pyproject(project / "pyproject.toml")["project"]["version"]
    release = release_at_head(gitinfo.tags_at_head(project), version)
    record = verified_image(project, head)
    creds, source = credentials(args.registry, env, password_stdin=args.password_stdin, stdin=stdin)
    RegistryClient(args.registry, creds).check_login(args.repository)
    return Plan(
        registry=args.registry,
        repository=args.repository,
        image_id=record.image_id,
        commit=head,
        release=release,
        tags=image_tags(release, head, gitinfo.all_tags(project)),
        credentials=creds,
        credentials_source=source,
    )


@contextmanager
def docker_login(plan: Plan) -> Iterator[dict[str, str]]:
    """An environment whose Docker config is logged in; a throwaway one for our credentials."""
    if plan.credentials is None:
        yield dict(os.environ)
        return
    with tempfile.TemporaryDirectory(prefix="deathstar-push-") as config_dir:
        env = {**os.environ, "DOCKER_CONFIG": config_dir}
        images.docker_with_input(
            plan.credentials.password,
            "login", plan.registry, "--username", plan.credentials.username, "--password-stdin",
            env=env,
        )  # fmt: skip
        yield env


class PushError(HarnessError):
    """A failure after pushing began: the registry may hold some of the tags already."""


def push(plan: Plan) -> str:
    """Push every tag, remove the local registry tags again, and return the pushed digest."""
    created: list[str] = []
    pushed: list[str] = []
    digests: set[str] = set()
    try:
        with docker_login(plan) as env:
            for ref in plan.refs:
                images.docker("tag", plan.image_id, ref)
                created.append(ref)
            for ref in plan.refs:
                print(f"pushing {ref}", flush=True)
                output = images.docker("push", ref, env=env, timeout=PUSH_TIMEOUT)
                digests.update(_PUSHED_DIGEST.findall(output))
                pushed.append(ref.rsplit(":", 1)[1])
    except HarnessError as exc:
        if not pushed:
            raise
        raise PushError(
            f"{exc}; the registry already holds {', '.join(pushed)} (immutable tags first); "
            "fix the cause and run the push again: it is idempotent"
        ) from None
    finally:
        _untag(created)
    if len(digests) != 1:
        raise PushError(f"docker push reported {len(digests)} digests: {sorted(digests)}")
    return digests.pop()


def _untag(refs: list[str]) -> None:
    """Remove the registry-qualified tags we made; the image keeps its own tags."""
    for ref in refs:
        try:
            images.docker("image", "rm", ref)
        except HarnessError as exc:  # never hide the push's own error behind a cleanup error
            print(f"warning: could not remove the local tag {ref}: {exc}", file=sys.stderr)


def read_back(plan: Plan, expected: str) -> None:
    client = RegistryClient(plan.registry, plan.credentials)
    digests = {tag: client.manifest_digest(plan.repository, tag) for tag in plan.tags}
    wrong = {tag: digest for tag, digest in digests.items() if digest != expected}
    if wrong:
        raise PushError(f"registry tags do not all resolve to {expected}: {wrong}")


def main(argv: Sequence[str], env: Mapping[str, str], stdin: TextIO) -> int:
    try:
        args = parse_args(argv, env)
        plan = preflight(args, env, stdin)
        print(plan.describe())
        if not args.confirm:
            print("dry run: every check passed and nothing was pushed; add --confirm to push")
            return 0
        digest = push(plan)
        read_back(plan, digest)
    except PushError as exc:
        print(f"push failed: {exc}", file=sys.stderr)
        return 1
    except HarnessError as exc:
        print(f"push refused: {exc}", file=sys.stderr)
        return 1
    print(f"pushed {len(plan.tags)} tags, all resolve to {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ, sys.stdin))
