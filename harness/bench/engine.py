"""One bench run's Docker, its snapshot of the working tree and the clones it edits, and the
removal of everything the run made, also after a failure: the checkout is never edited."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import HarnessError
from harness.core import git as gitinfo
from harness.core.docker import Docker
from harness.core.process import CommandError, Runner
from harness.image import build

LABEL = "deathstar-bench"
PORT = 8080  # where the service listens inside its container
BUILD_TIMEOUT = 900.0
GIT_IDENTITY = ("-c", "user.name=deathstar bench", "-c", "user.email=bench@localhost")
_BUILT = re.compile(r"^(?: ---> |Successfully built )([0-9a-f]{12,64})\s*$", re.MULTILINE)


def built_image_ids(output: str) -> list[str]:
    """Image IDs a classic-builder ``docker build`` printed, intermediate stages included."""
    return list(dict.fromkeys(_BUILT.findall(output)))


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def published_port(output: str) -> int:
    """The host port of a ``docker port CONTAINER PORT/tcp`` answer (``127.0.0.1:49153``)."""
    # One line per host address it is published on, all with the same port: the first one.
    _, _, port = output.strip().partition("\n")[0].rpartition(":")
    if not port.isdigit():
        raise HarnessError(f"docker named no published port: {output.strip()!r}")
    return int(port)


class Engine:
    """The run's Docker client and scratch directory. Containers carry a label naming the run;
    the tags it gives and the images its builds print are remembered for :meth:`cleanup`."""

    def __init__(self, runner: Runner, root: Path, log: Callable[[str], None] = print) -> None:
        self.run, self.root, self.log = runner, root, log
        self.docker = Docker(runner)
        self.token = f"{os.getpid()}-{time.time_ns()}"
        self.work = Path(tempfile.mkdtemp(prefix="deathstar-bench-"))
        self.snapshot = self.work / "snapshot"
        self.tags: list[str] = []
        self.built: list[str] = []
        self.preexisting: set[str] = set()
        self.revision = ""
        self.pyproject: dict[str, Any] = {}

    def note_existing_images(self) -> None:
        """Remember the images there are before the run: the cleanup leaves them alone."""
        listed = self.docker("images", "--all", "--quiet", "--no-trunc").split()
        self.preexisting = {short_id(i) for i in listed}

    def remember(self, image_ids: Iterable[str]) -> None:
        self.built += [i for i in dict.fromkeys(image_ids) if i not in self.built]

    def track(self, output: str) -> str:
        """Remember the images a build printed; return the output."""
        self.remember(built_image_ids(output))
        return output

    def take_snapshot(self, base_image: str) -> None:
        """Commit the working tree (tracked and untracked files, not ignored ones) into a new
        repository; the revision is read with it, as the checkout may move on meanwhile."""
        self.revision = gitinfo.revision(self.root)
        listed = self.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=self.root)  # fmt: skip
        for name in filter(None, listed.split("\0")):
            if (self.root / name).is_file():
                (self.snapshot / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.root / name, self.snapshot / name, follow_symlinks=False)
        epoch = gitinfo.commit_epoch(self.root)
        env = {**os.environ, "GIT_AUTHOR_DATE": f"@{epoch}", "GIT_COMMITTER_DATE": f"@{epoch}"}
        git = ["git", *GIT_IDENTITY, "-c", "commit.gpgsign=false"]
        self.run([*git, "init", "--quiet"], cwd=self.snapshot)
        self.run([*git, "add", "--all"], cwd=self.snapshot)
        self.run([*git, "commit", "--quiet", "-m", "bench snapshot"], cwd=self.snapshot, env=env)
        self.pyproject = tomllib.loads((self.snapshot / "pyproject.toml").read_text("utf-8"))
        self.plan = build.BuildPlan(  # what `nox -s image` plans in a clean clone of it
            version=self.pyproject["project"]["version"],
            commit=gitinfo.head_commit(self.snapshot),
            dirty=False,
            epoch=epoch,
            base_image=base_image,
        )

    def clone(self, name: str) -> Path:
        dest = self.work / name
        shutil.rmtree(dest, ignore_errors=True)
        self.run(["git", "clone", "--quiet", str(self.snapshot), str(dest)])
        return dest

    def _run(self, image: str, argv: Sequence[str], *options: str) -> str:
        """``docker run`` of ``image``, labelled; ``argv``, if given, instead of its own command."""
        instead = ["--entrypoint", argv[0], image, *argv[1:]] if argv else [image]
        return self.docker("run", *options, "--label", f"{LABEL}={self.token}", *instead)

    @contextmanager
    def container(self, image: str, argv: Sequence[str] = ()) -> Iterator[int]:
        """A container of ``image`` and its published 127.0.0.1 port; removed on exit."""
        # The engine picks the host port and holds it (one picked here could be taken meanwhile).
        cid = self._run(image, argv, "--detach", "--publish", f"127.0.0.1::{PORT}")
        try:
            yield published_port(self.docker("port", cid, f"{PORT}/tcp"))
        finally:
            self.docker("rm", "--force", "--volumes", cid)

    def output(self, image: str, argv: Sequence[str]) -> str:
        """What ``argv`` prints in a throwaway container of ``image`` without a network."""
        return self._run(image, argv, "--rm", "--network", "none")

    def cleanup(self) -> None:
        """Remove what this run made; every step is tried even when an earlier one fails."""
        for what, step in (
            ("containers", self._remove_containers),
            ("images", self._remove_images),
            ("files", lambda: shutil.rmtree(self.work, ignore_errors=True)),
        ):
            try:
                step()
            except HarnessError as exc:
                self.log(f"bench: cleanup of {what} incomplete: {exc}")

    def _remove_containers(self) -> None:
        found = self.docker("ps", "--all", "--quiet", "--filter", f"label={LABEL}={self.token}")
        if found.split():
            self.docker("rm", "--force", "--volumes", *found.split())

    def _remove_images(self) -> None:
        # The tags first (the engine then drops their untagged parents), then the intermediate
        # images the builds created, children before parents. One still in use stays.
        tags = [t for t in self.tags if self.docker.image_id(t)]
        for ref in [*tags, *(i for i in reversed(self.built) if i not in self.preexisting)]:
            try:
                self.docker("rmi", ref)
            except CommandError:
                continue
