"""What goes into a results key: canonical digests of files, the interpreter and the environment.

The environment policy (docs/caching.md): every variable's value is an input, except a documented
list of volatile ones that no cached session's tools read (terminal, shell, CI run identifiers,
the cache's own switches) and secret-named ones, which cached sessions never see at all
(:func:`withheld`), so no key is a function of a secret a guess could recover.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import HarnessError

# Terminal, shell and login-session facts, and per-run CI identifiers: they differ between two
# runs that must share a result, and none of the cached sessions' tools reads them.
VOLATILE = (
    "_", "COLUMNS", "LINES", "TERM", "COLORTERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION",
    "TERM_SESSION_ID", "LS_COLORS", "PWD", "OLDPWD", "SHLVL", "HOSTNAME", "DISPLAY",
    "WAYLAND_DISPLAY", "WINDOWID", "TMUX", "TMUX_PANE", "STY", "WINDOW", "SSH_*", "PS1", "PS2",
    "PS4", "PROMPT_COMMAND", "HIST*", "MAIL", "EDITOR", "VISUAL", "PAGER", "LESS", "LESSOPEN",
    "LESSCLOSE", "XDG_SESSION_*", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS",
    "INVOCATION_ID", "JOURNAL_STREAM", "MOTD_SHOWN",
    "GITHUB_*", "RUNNER_*", "ACTIONS_*",  # a CI run's own identifiers, paths and tokens
    "DEATHSTAR_CACHE", "DEATHSTAR_CACHE_*",  # where the cache is does not change a result
)  # fmt: skip
KEPT = ("GITHUB_ACTIONS",)  # constant in CI, and tools may format differently under it
# A name like a credential: withheld from cached sessions and kept out of every key.
SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|PASSPHRASE|CREDENTIAL|PRIVATE|COOKIE|(^|_)(KEY|AUTH|PASS|PAT|APIKEY)(_|$)",
    re.IGNORECASE,
)
# user:password@ in a URL-like value (an index URL, a proxy): the host stays an input.
URL_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def digest(parts: Mapping[str, Any]) -> str:
    """The sha256 (hex) of ``parts`` as canonical JSON: sorted keys, no spaces, no NaN."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _git(root: Path, *args: str, stdin: str | None = None) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, input=stdin, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        lines = detail.strip().splitlines()
        raise HarnessError(f"git {args[0]} failed: {lines[-1] if lines else exc}") from None
    return result.stdout


def session_files(
    root: Path, include: Sequence[str] = (".",), exclude: Sequence[str] = ()
) -> list[str]:
    """Tracked files and untracked files that are not ignored, under the pathspecs ``include``
    but not ``exclude``, that exist now (a deleted tracked file is not read by anyone)."""
    specs = [*include, *(f":(exclude){pattern}" for pattern in exclude)]
    listing = ("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *specs)
    listed = _git(root, *listing)
    names = {name for name in listed.split("\0") if name}
    return sorted(name for name in names if (root / name).is_file() or (root / name).is_symlink())


def files_on_disk(root: Path, folders: Iterable[str]) -> list[str]:
    """Every file under ``folders`` as Python and pytest see them, git-ignored ones too
    (bytecode aside): an ignored test module is still collected, an ignored module imported."""
    found = []
    for folder in folders:
        for path in (root / folder).rglob("*"):
            if "__pycache__" not in path.parts and path.suffix != ".pyc" and not path.is_dir():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def file_digests(root: Path, paths: Iterable[str]) -> dict[str, str]:
    """Each path's git blob ID of its current bytes (no filters), in one ``git hash-object``;
    a missing path maps to ``"absent"``."""
    names = sorted(set(paths))
    if any("\n" in name for name in names):
        raise HarnessError("a file name with a newline cannot be keyed; rename it")
    if folders := [name for name in names if (root / name).is_symlink() and (root / name).is_dir()]:
        raise HarnessError(f"{folders[0]} links to a folder, whose files cannot be keyed")
    present = [name for name in names if (root / name).is_file()]
    ids: list[str] = []
    if present:
        stdin = "".join(f"{name}\n" for name in present)
        ids = _git(root, "hash-object", "--no-filters", "--stdin-paths", stdin=stdin).split()
    if len(ids) != len(present):
        raise HarnessError("git hash-object answered a different number of files")
    digests = dict.fromkeys(names, "absent")
    digests.update(zip(present, ids, strict=True))
    return digests


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def is_volatile(name: str) -> bool:
    return _matches(name, VOLATILE) and name not in KEPT


def is_secret(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


def withheld(environ: Mapping[str, str]) -> list[str]:
    """The secret-named variables present: a cached session runs without them."""
    return sorted(name for name in environ if is_secret(name))


def environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What of ``environ`` goes into a key: every variable but the volatile and the withheld
    ones, with any ``user:password@`` removed from URL-like values."""
    return {
        name: URL_USERINFO.sub("", value)
        for name, value in sorted(environ.items())
        if not is_volatile(name) and not is_secret(name)
    }


PROBE = (
    "import json, platform, sys; print(json.dumps({'implementation': sys.implementation.name,"
    " 'version': sys.version, 'hexversion': sys.hexversion, 'abiflags': sys.abiflags,"
    " 'executable': sys.executable, 'platform': platform.platform(),"
    " 'machine': platform.machine(), 'libc': platform.libc_ver()}))"
)


def interpreter(python: str) -> str:
    """Implementation, full version, build and platform of the interpreter ``python`` names
    (a command or a path), as one canonical string; ``"missing:<python>"`` when it cannot run."""
    try:
        result = subprocess.run(
            [python, "-I", "-S", "-c", PROBE], capture_output=True, text=True, check=True
        )
        facts = json.loads(result.stdout)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return f"missing:{python}"
    return json.dumps(facts, sort_keys=True, separators=(",", ":"))
