"""Run git in throwaway repositories, isolated from the developer's own git configuration."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Fixed identity and dates: commits made here have known shas' inputs and a known epoch.
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_DATE": "2026-01-02T03:04:05+00:00",
    "GIT_AUTHOR_DATE": "2026-01-02T03:04:05+00:00",
}
EPOCH = 1767323045  # GIT_COMMITTER_DATE as a Unix time


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()
