"""CI's test matrix from nox's own session list: ``nox -l --json -s test | python -m
harness.core.matrix`` prints ``matrix=<JSON>`` for $GITHUB_OUTPUT, a job per test session."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from harness import HarnessError
from harness.core import process

SESSION = "test"


def matrix(listing: Sequence[dict[str, Any]], session: str = SESSION) -> dict[str, Any]:
    """``{"include": [{"session": "test-3.11", "python": "3.11"}, ...]}`` from ``nox -l --json``:
    the sessions named ``session``, each naming its Python."""
    include = []
    for entry in listing:
        if entry.get("name") != session:
            continue
        python = entry.get("python")
        if not isinstance(python, str) or not python:
            raise HarnessError(f"nox session {entry.get('session')!r} names no Python version")
        include.append({"session": str(entry["session"]), "python": python})
    if not include:
        raise HarnessError(f"nox lists no {session!r} session: the CI matrix would be empty")
    return {"include": include}


def output_line(listing_json: str, session: str = SESSION) -> str:
    """The ``$GITHUB_OUTPUT`` line: ``matrix=`` and the matrix as one line of JSON."""
    try:
        listing = json.loads(listing_json)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"`nox -l --json` printed no JSON: {exc}") from None
    if not isinstance(listing, list):
        raise HarnessError("`nox -l --json` printed JSON that is not a list of sessions")
    return "matrix=" + json.dumps(matrix(listing, session), separators=(",", ":"))


def main() -> int:
    return process.main_of("matrix", lambda: output_line(sys.stdin.read()))


if __name__ == "__main__":
    sys.exit(main())
