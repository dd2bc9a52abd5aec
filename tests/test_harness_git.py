"""harness.core.git against real, throwaway git repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import HarnessError
from harness.core import git as gitinfo
from harness.image.build import BuildPlan
from tests.gitrepo import EPOCH, git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "file.txt").write_text("one\n")
    git(tmp_path, "add", "file.txt")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_clean_checkout(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    assert gitinfo.head_commit(repo) == sha
    assert gitinfo.commit_epoch(repo) == EPOCH
    assert not gitinfo.is_dirty(repo)
    assert gitinfo.revision(repo) == sha


@pytest.mark.parametrize("change", ["modify", "untracked"])
def test_dirty_tree_marks_revision(repo: Path, change: str) -> None:
    if change == "modify":
        (repo / "file.txt").write_text("two\n")
    else:
        (repo / "new.txt").write_text("new\n")
    assert gitinfo.is_dirty(repo)
    assert gitinfo.revision(repo).endswith("-dirty")


def test_ignored_files_do_not_make_the_tree_dirty(repo: Path) -> None:
    (repo / ".gitignore").write_text("dist/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore dist")
    (repo / "dist").mkdir()
    (repo / "dist" / "x.whl").write_text("x")
    assert not gitinfo.is_dirty(repo)


def test_tags(repo: Path) -> None:
    git(repo, "tag", "v0.1.0")
    (repo / "file.txt").write_text("two\n")
    git(repo, "commit", "-qam", "second")
    git(repo, "tag", "-a", "v0.2.0", "-m", "release 0.2.0")
    assert gitinfo.tags_at_head(repo) == ["v0.2.0"]
    assert gitinfo.all_tags(repo) == ["v0.1.0", "v0.2.0"]


def test_repository_without_commits_is_one_clear_error(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(HarnessError, match="has no commit yet; commit first"):
        gitinfo.commit_epoch(tmp_path)


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(
        HarnessError, match=r"git status --porcelain .*failed: .*not a git repository"
    ):
        gitinfo.is_dirty(tmp_path)


def test_missing_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError, match="git is not installed"):
        gitinfo.is_dirty(tmp_path)


def test_a_plans_revision_is_dirty_only_for_changes_the_image_is_made_from(repo: Path) -> None:
    (repo / "tests").mkdir()
    (repo / "tests" / "test_app.py").write_text("t = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "tests")
    (repo / "tests" / "test_app.py").write_text("# a comment\nt = 1\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "new.md").write_text("untracked\n")
    assert gitinfo.is_dirty(repo)
    assert not BuildPlan.for_checkout(repo, "0.1.0", {}).dirty
    (repo / "file.txt").write_text("two\n")
    assert BuildPlan.for_checkout(repo, "0.1.0", {}).dirty


@pytest.mark.parametrize("flag", ["--assume-unchanged", "--skip-worktree"])
def test_a_file_git_status_is_told_to_skip_still_makes_the_tree_dirty(
    repo: Path, flag: str
) -> None:
    git(repo, "update-index", flag, "file.txt")
    (repo / "file.txt").write_text("changed\n")
    assert gitinfo.is_dirty(repo)
    assert BuildPlan.for_checkout(repo, "0.1.0", {}).dirty
