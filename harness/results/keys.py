"""What goes into a results key: canonical digests of files, the interpreter and the environment.

The environment policy (docs/caching.md), Turborepo's strict mode: only DECLARED variables, which
can change a result, are inputs; PASSED ones (where things are on this machine, the terminal, a CI
run's identifiers) reach the tools unhashed; every other variable, and every secret-named one, is
withheld from cached sessions' tools (:func:`withheld`), so no key depends on the machine or on a
secret a guess could recover.
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

# Variables that can change a result: inputs, and they reach the tools.
DECLARED = (
    "PYTHON*", "UV_*", "PIP_*", "VIRTUALENV_*", "NOX_*", "PYTEST_*", "COVERAGE_*", "MYPY*",
    "RUFF_*", "PRE_COMMIT*", "HYPOTHESIS_*", "GIT_*", "DOCKER_*", "BUILDX_*", "BUILDKIT_*",
    "TESTCONTAINERS_*", "DEATHSTAR_*", "SOURCE_DATE_EPOCH", "LANG", "LANGUAGE", "LC_*", "TZ",
)  # fmt: skip
# Where things are on this machine, and how it reaches the network: they reach the tools but
# differ between two machines that must share a result, and name no result-changing fact.
MACHINE = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TEMP", "TMP", "XDG_*", "VIRTUAL_ENV",
    "CONDA_*", "PYENV*", "UV_CACHE_DIR", "UV_PYTHON_INSTALL_DIR", "PIP_CACHE_DIR",
    "PRE_COMMIT_HOME", "DOCKER_CONFIG", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY", "SSL_CERT_*", "*CA_BUNDLE", "*CA_CERTS*", "*_CAINFO", "PIP_CERT",
    "*_PROXY", "*_proxy", "CI", "FORCE_COLOR", "NO_COLOR", "PY_COLORS",
    "DEATHSTAR_IMAGE_RECORD",  # dist/image.json's path here: its content is in the key
)  # fmt: skip
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
    "DEATHSTAR_RESULTS_CACHE", "DEATHSTAR_RESULTS_CACHE_*",
)  # fmt: skip
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


def is_passed(name: str) -> bool:
    """Reaches the tools but is no input: machine-local or volatile."""
    return _matches(name, MACHINE) or _matches(name, VOLATILE)


def is_declared(name: str) -> bool:
    return _matches(name, DECLARED) and not is_passed(name) and not is_secret(name)


def is_secret(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


def withheld(environ: Mapping[str, str]) -> list[str]:
    """What a cached session runs without: secret-named variables and every one neither
    declared nor passed (it cannot change a result it never sees)."""
    return sorted(
        name for name in environ if is_secret(name) or not (is_passed(name) or is_declared(name))
    )


def environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What of ``environ`` goes into a key: the declared variables, with any ``user:password@``
    removed from URL-like values."""
    return {
        name: URL_USERINFO.sub("", value)
        for name, value in sorted(environ.items())
        if is_declared(name)
    }


# The build, not where it is installed (a venv's path is the clone's) or the kernel it runs on.
PROBE = (
    "import json, platform, sys; print(json.dumps({'implementation': sys.implementation.name,"
    " 'version': sys.version, 'hexversion': sys.hexversion, 'abiflags': sys.abiflags,"
    " 'platform': sys.platform, 'machine': platform.machine(), 'libc': platform.libc_ver()}))"
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
