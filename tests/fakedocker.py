"""The one stand-in `docker` of the harness tests, injected as the harness's process runner.

It answers by argument prefix (``rules``, first match wins) and records every call with its
stdin and environment, so a test can prove what a child would have been given. Subclasses
add state where a test needs an engine that remembers (the bench's images and containers).
No interpreter starts per call: the fake runs in-process, behind the same runner signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.core import process

NOT_FOUND = "Error response from daemon: Cannot connect to the Docker daemon"


@dataclass(frozen=True)
class Call:
    args: list[str]
    stdin: str | None
    env: Mapping[str, str] | None
    cwd: Path | None


@dataclass
class FakeDocker:
    rules: list[tuple[list[str], str, int]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def __call__(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = process.DEFAULT_TIMEOUT,
        merge: bool = False,
    ) -> str:
        argv = list(args)
        self.calls.append(Call(argv, stdin, None if env is None else dict(env), cwd))
        if argv[0] == "docker":
            for prefix, out, code in self.rules:
                if argv[1 : 1 + len(prefix)] == prefix:
                    if code:
                        raise process.CommandError(f"`{' '.join(argv[:3])}` failed", out, code)
                    return out + "\n"
        return self.answer(argv, cwd=cwd, env=env)

    def answer(self, args: list[str], *, cwd: Path | None, env: Mapping[str, str] | None) -> str:
        """What a command no rule matched gets; here, the answer of an engine that is down."""
        raise process.CommandError(f"`{' '.join(args[:3])}` failed", NOT_FOUND, 1)

    def docker_calls(self) -> list[list[str]]:
        return [c.args[1:] for c in self.calls if c.args[0] == "docker"]
