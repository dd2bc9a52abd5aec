"""The one way the harness runs a command: captured output, a timeout, one-line failures."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypedDict, Unpack

from harness import HarnessError

DEFAULT_TIMEOUT = 120.0


class CommandError(HarnessError):
    """A command failed; ``output`` holds what it printed."""

    def __init__(self, message: str, output: str, returncode: int) -> None:
        super().__init__(message)
        self.output = output
        self.returncode = returncode


class RunOptions(TypedDict, total=False):
    """How :func:`run` runs a command; stand-ins and wrappers take the same options."""

    cwd: Path | None
    env: Mapping[str, str] | None  # None: inherit this process's environment
    stdin: str | None  # None: the child reads nothing (never the terminal)
    timeout: float
    merge: bool  # stderr into stdout


class Runner(Protocol):
    """What :func:`run` is; tests inject a stand-in with this signature."""

    def __call__(self, args: Sequence[str], **options: Unpack[RunOptions]) -> str: ...


def run(args: Sequence[str], **options: Unpack[RunOptions]) -> str:
    """Run ``args``; its stdout (with stderr when ``merge``), or one line on why it failed.
    Secrets go through ``stdin``, never ``args``: every user of the machine sees an argv."""
    env, stdin = options.get("env"), options.get("stdin")
    timeout = options.get("timeout", DEFAULT_TIMEOUT)
    try:
        result = subprocess.run(
            list(args),
            cwd=options.get("cwd"),
            env=None if env is None else dict(env),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if options.get("merge", False) else subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise HarnessError(f"{args[0]} is not installed; install it and run again") from None
    except subprocess.TimeoutExpired:
        raise HarnessError(f"`{describe(args)}` did not finish within {timeout:g} s") from None
    if result.returncode != 0:
        output = (result.stdout or "") + (result.stderr or "")
        raise CommandError(
            f"`{describe(args)}` failed (exit {result.returncode}): {reason(output)}",
            output,
            result.returncode,
        )
    return result.stdout


def main_of(name: str, produce: Callable[[], str]) -> int:
    """A ``python -m`` entry point: print what ``produce`` returns, or its refusal in one line."""
    try:
        print(produce())
    except HarnessError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def describe(args: Sequence[str]) -> str:
    """The command's first words: enough to name it, too few to carry a value it was given."""
    return shlex.join(args[:3])


def reason(output: str) -> str:
    """The line of a failed command's output that says why: its last error, else its last."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\berror\b", line, re.IGNORECASE)]
    return (errors or lines or ["no output"])[-1]


def with_child_env(
    runner: Runner, child_env: Callable[[Mapping[str, str]], dict[str, str]]
) -> Runner:
    """``runner`` whose children get ``child_env`` of their environment (never all of ours)."""

    def run(args: Sequence[str], **options: Unpack[RunOptions]) -> str:
        env = options.get("env")
        options["env"] = child_env(os.environ if env is None else env)
        return runner(args, **options)

    return run
