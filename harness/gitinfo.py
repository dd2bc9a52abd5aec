"""What the harness needs to know about the git checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import HarnessError


def git(*args: str, cwd: Path) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise HarnessError("git is not installed; install git and run again") from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        raise HarnessError(
            f"git {' '.join(args)} failed: {detail[-1] if detail else result.returncode}"
        )
    return result.stdout.strip()


def head_commit(cwd: Path) -> str:
    try:
        return git("rev-parse", "--verify", "HEAD", cwd=cwd)
    except HarnessError:
        raise HarnessError(
            f"{cwd} has no commit yet; commit first so builds have a revision"
        ) from None


def commit_epoch(cwd: Path) -> int:
    """The committer time of HEAD: the SOURCE_DATE_EPOCH of a reproducible build."""
    head_commit(cwd)
    return int(git("log", "-1", "--format=%ct", "HEAD", cwd=cwd))


def is_dirty(cwd: Path) -> bool:
    """Tracked changes or untracked files that are not ignored."""
    return bool(git("status", "--porcelain", "--untracked-files=normal", cwd=cwd))


def revision(cwd: Path) -> str:
    """HEAD's full sha, marked ``-dirty`` when the tree has changes."""
    sha = head_commit(cwd)
    return f"{sha}-dirty" if is_dirty(cwd) else sha


def tags_at_head(cwd: Path) -> list[str]:
    return sorted(git("tag", "--points-at", "HEAD", cwd=cwd).split())


def all_tags(cwd: Path) -> list[str]:
    return sorted(git("tag", "--list", cwd=cwd).split())
