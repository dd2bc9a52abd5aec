"""The port file: where a running ``deathstar api`` says it listens, for whoever started it.

With ``--port 0`` the kernel picks the port; a caller learns it from this file (or from the
"listening" log line). The server writes the file once it serves, by an atomic rename, so a
reader never sees half of it; the file names the server's PID, so a caller can tell that the
process it started wrote it, and not one from an earlier run.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path


class PortFileError(ValueError):
    """A port file that is missing or does not say where a server listens."""


@dataclass(frozen=True, slots=True)
class Listening:
    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def dumps(self) -> str:
        return json.dumps({"host": self.host, "port": self.port, "pid": self.pid}) + "\n"


class PortFile:
    """The file at ``path``, written once by one server and removed when it stops."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Beside the file (a rename within one directory is atomic), named for this process.
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._written: str | None = None

    def prepare(self) -> None:
        """Remove a file an earlier run left, and check the file can be written.

        Before the server binds: a path it cannot write fails the start, not the serving.
        Raises OSError.
        """
        self.path.unlink(missing_ok=True)
        self.temporary.write_bytes(b"")

    def publish(self, listening: Listening) -> None:
        """Write where the server listens, all at once (a rename). Raises OSError."""
        text = listening.dumps()
        self.temporary.write_text(text, encoding="utf-8")
        self.temporary.replace(self.path)
        self._written = text

    def remove(self) -> None:
        """Remove what this server made; a file another process wrote since stays."""
        # Best effort, on the way out: a path that is gone or unreadable holds nothing of ours.
        with suppress(OSError):
            self.temporary.unlink(missing_ok=True)
        with suppress(OSError):
            if self._written is not None and self.path.read_text(encoding="utf-8") == (
                self._written
            ):
                self.path.unlink()
        self._written = None


def read(path: Path) -> Listening:
    """Where the server that wrote ``path`` listens; PortFileError when it does not say."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PortFileError(f"no port file {str(path)!r} (is the server running?)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PortFileError(f"cannot read the port file {str(path)!r}: {exc}") from None
    try:
        listening = Listening(str(data["host"]), int(data["port"]), int(data["pid"]))
    except (TypeError, KeyError, ValueError):
        raise PortFileError(f"the port file {str(path)!r} names no port: {data!r}") from None
    if not 0 < listening.port <= 65535:
        raise PortFileError(f"the port file {str(path)!r} names no port: {data!r}")
    return listening
