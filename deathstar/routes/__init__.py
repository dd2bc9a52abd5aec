"""The API's routers: ``ops`` for probes and build info, ``targets`` for the resource."""

from __future__ import annotations

from typing import Any

from deathstar.models import ErrorBody

# Answers any operation can get: RequestGuard refuses before routing, the server when full.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed request: ambiguous framing or body."},
    413: {"model": ErrorBody, "description": "Request body over 64 KiB."},
    503: {
        "model": ErrorBody,
        "description": "Too many connections, or storage busy (see Retry-After) or unwritable.",
    },
}
