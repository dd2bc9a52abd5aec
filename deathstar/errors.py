"""Exception handlers: every error the API answers is JSON with a ``detail``."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from deathstar.storage import ConflictError, NotFoundError, StoreUnavailableError

MAX_ECHO = 100  # characters of a refused string value echoed back
RETRY_AFTER_SECONDS = "1"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _echo(value: object) -> object:
    """The refused input, bounded: no containers, short strings, and JSON's own numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # Python's parser accepts NaN and Infinity; JSON has no such tokens
    if isinstance(value, str):
        return value[:MAX_ECHO]
    if value is None or isinstance(value, bool | int | float):
        return value
    return None


def _error(error: dict[str, Any]) -> dict[str, Any]:
    bounded = {k: v for k, v in error.items() if k != "input"}
    echo = _echo(error.get("input"))
    if echo is not None:
        bounded["input"] = echo
    return bounded


async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def conflict(_: Request, exc: ConflictError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def unavailable(_: Request, exc: StoreUnavailableError) -> JSONResponse:
    headers = {"retry-after": RETRY_AFTER_SECONDS} if exc.retry else None
    return JSONResponse({"detail": str(exc)}, status_code=503, headers=headers)


async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
    # json.dumps escapes to ASCII, so an error that echoes a lone surrogate from the
    # request still renders (Starlette's JSONResponse would fail on it with a 500).
    errors = [_error(error) for error in exc.errors()]
    body = json.dumps({"detail": errors}, default=str, allow_nan=False)
    return Response(body, status_code=422, media_type="application/json")


def _allowed_methods(request: Request) -> str:
    # Starlette names only the methods of the first route that matches the path; a path
    # served by several routes (GET and POST /v1/targets) allows all of theirs.
    # Asks the router which methods it would route, rather than reading routes' internals.
    routes = request.app.router.routes
    allowed = [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    # Starlette answers 404/405 for unknown routes with plain text unless told otherwise.
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    if exc.status_code == 405:
        headers["allow"] = _allowed_methods(request)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def internal_error(_: Request, exc: Exception) -> JSONResponse:
    logging.getLogger("deathstar").error("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(NotFoundError, not_found)  # type: ignore[arg-type]
    app.add_exception_handler(ConflictError, conflict)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailableError, unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_error)
