"""Which files the linters that are not Python's own check: every one the repository tracks."""

from __future__ import annotations

from pathlib import Path

from harness.core import git

SHELLS = ("sh", "bash", "dash")


def dockerfiles(root: Path) -> list[Path]:
    """``Dockerfile`` and ``*.Dockerfile`` anywhere in the repository."""
    return git.tracked_files(root, "*Dockerfile")


def shell_scripts(root: Path) -> list[Path]:
    """Tracked files whose first line starts a POSIX shell or bash, whatever their name."""
    return [path for path in git.tracked_files(root) if _shell_shebang(path)]


def _shell_shebang(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode(errors="replace").split()
    interpreter = words[1] if words[:1] == ["/usr/bin/env"] and len(words) > 1 else words[0]
    return Path(interpreter).name in SHELLS if words else False
