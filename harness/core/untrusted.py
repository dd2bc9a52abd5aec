"""JSON from outside (a registry's answer, an image archive, cosign's output), read in one place.

Every way such bytes can fail to be JSON that Python holds is one answer here, so no caller
keeps its own list: a syntax error and bytes that are not UTF-8 (both ValueErrors), an integer
of more digits than CPython converts (a ValueError since 3.11), nesting deep enough to exhaust
the stack (RecursionError).
"""

from __future__ import annotations

import json
from typing import Any

UNREADABLE = (ValueError, RecursionError)


def parse_json(data: bytes | str) -> Any:  # noqa: ANN401 (JSON: the caller checks the shape)
    """The JSON value of ``data``, or None when it is not JSON this Python can hold."""
    try:
        return json.loads(data)
    except UNREADABLE:
        return None
