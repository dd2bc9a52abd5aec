"""Docker for one bench run, and the removal of everything the run made.

Containers carry a label naming the run; images are the tags the bench gave and the
intermediate images its builds printed. :meth:`Engine.cleanup` removes them and the run's
scratch directory, also when a step failed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness import HarnessError
from harness.core.docker import Docker
from harness.core.process import CommandError, Runner

LABEL = "deathstar-bench"
PORT = 8080  # where the service listens inside its container
BUILD_TIMEOUT = 900.0

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
    """The bench's Docker client; it remembers what the run makes, so that it can remove it."""

    def __init__(self, runner: Runner, log: Callable[[str], None] = print) -> None:
        self.docker = Docker(runner)
        self.log = log
        self.token = f"{os.getpid()}-{time.time_ns()}"
        self.work = Path(tempfile.mkdtemp(prefix="deathstar-bench-"))
        self.tags: list[str] = []
        self.built: list[str] = []
        self.preexisting: set[str] = set()

    def note_existing_images(self) -> None:
        """Remember the images there are before the run: the cleanup leaves them alone."""
        listed = self.docker("images", "--all", "--quiet", "--no-trunc").split()
        self.preexisting = {short_id(i) for i in listed}

    def layers(self, ref: str) -> list[str]:
        layers: list[str] = json.loads(
            self.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref)
        )
        return layers

    def remember(self, image_ids: Iterable[str]) -> None:
        """Images the run made, for the cleanup."""
        self.built += [i for i in dict.fromkeys(image_ids) if i not in self.built]

    def track(self, output: str) -> str:
        """Remember the images a build printed, for the cleanup; return the output."""
        self.remember(built_image_ids(output))
        return output

    @contextmanager
    def container(self, image: str, argv: Sequence[str] = ()) -> Iterator[int]:
        """A container of ``image`` and its published 127.0.0.1 port; removed on exit.

        The engine picks the host port and holds it for the container (a port picked here and
        released could be taken before the container starts). ``argv``, if given, replaces
        the image's entrypoint and command.
        """
        cid = self.docker(
            "run", "--detach", "--label", f"{LABEL}={self.token}",
            "--publish", f"127.0.0.1::{PORT}", *self._instead(image, argv),
        )  # fmt: skip
        try:
            yield published_port(self.docker("port", cid, f"{PORT}/tcp"))
        finally:
            self.docker("rm", "--force", "--volumes", cid)

    def output(self, image: str, argv: Sequence[str]) -> str:
        """What ``argv`` prints in a throwaway container of ``image`` without a network."""
        return self.docker(
            "run", "--rm", "--network", "none", "--label", f"{LABEL}={self.token}",
            *self._instead(image, argv),
        )  # fmt: skip

    @staticmethod
    def _instead(image: str, argv: Sequence[str]) -> list[str]:
        """``image`` and, if ``argv`` is given, the options that run it instead of its own."""
        if not argv:
            return [image]
        return ["--entrypoint", argv[0], image, *argv[1:]]

    def cleanup(self) -> None:
        """Remove what this run made; every step is tried even when an earlier one fails."""
        steps: list[tuple[str, Callable[[], object]]] = [
            ("containers", self._remove_containers),
            ("images", self._remove_images),
            ("files", lambda: shutil.rmtree(self.work, ignore_errors=True)),
        ]
        for what, step in steps:
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
        # images the builds created rather than found in the cache, children before parents.
        # An image that something else still uses is refused by the engine and stays.
        tags = [t for t in self.tags if self.docker.image_id(t)]
        leftovers = [i for i in reversed(self.built) if i not in self.preexisting]
        for ref in [*tags, *leftovers]:
            try:
                self.docker("rmi", ref)
            except CommandError:
                continue
