"""What the harness needs to know about a git checkout."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness import HarnessError
from harness.core import process


def git(*args: str, cwd: Path) -> str:
    try:
        return process.run(["git", *args], cwd=cwd).strip()
    except process.CommandError as exc:
        raise HarnessError(f"git {' '.join(args)} failed: {process.reason(exc.output)}") from None


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


def is_dirty(cwd: Path, exclude: Sequence[str] = ()) -> bool:
    """Tracked changes or untracked files that are not ignored, outside the pathspecs
    ``exclude``."""
    specs = [f":(exclude){pattern}" for pattern in exclude]
    if git("status", "--porcelain", "--untracked-files=normal", "--", *specs, cwd=cwd):
        return True
    # git status does not look at files marked assume-unchanged (a lowercase tag) or
    # skip-worktree (S): such a file may differ from HEAD unseen, so it counts as a change.
    tagged = git("ls-files", "-v", "--", *specs, cwd=cwd).splitlines()
    return any(line[:1].islower() or line[:1] == "S" for line in tagged)


def revision_of(commit: str, *, dirty: bool) -> str:
    """The one rule for a revision string: the full sha, marked ``-dirty`` for a changed tree."""
    return f"{commit}-dirty" if dirty else commit


def revision(cwd: Path) -> str:
    """HEAD's revision string (see :func:`revision_of`)."""
    return revision_of(head_commit(cwd), dirty=is_dirty(cwd))


def tree_hash(cwd: Path, path: str) -> str:
    """The git tree hash of ``path`` at HEAD: names a directory's committed content."""
    return git("rev-parse", "--verify", f"HEAD:{path}", cwd=cwd)


def tags_at_head(cwd: Path) -> list[str]:
    return sorted(git("tag", "--points-at", "HEAD", cwd=cwd).split())


def all_tags(cwd: Path) -> list[str]:
    return sorted(git("tag", "--list", cwd=cwd).split())
