"""JSON from outside (a registry, an image archive, cosign), read in one place: bad syntax or
UTF-8, an integer too long for CPython (ValueErrors) and deep nesting (RecursionError) are None."""

from __future__ import annotations

import json
from typing import Any


def parse_json(data: bytes | str) -> Any:  # noqa: ANN401 (JSON: the caller checks the shape)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None
