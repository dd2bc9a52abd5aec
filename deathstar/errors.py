"""Exception handlers: every error the API answers is JSON with a ``detail``."""

from __future__ import annotations

import json
import logging
import math

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deathstar.storage import ConflictError, NotFoundError


def _finite(value: object) -> object:
    """JSON has no NaN or Infinity, which Python's parser accepts and errors echo as input."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def conflict(_: Request, exc: ConflictError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
    # json.dumps escapes to ASCII, so an error that echoes a lone surrogate from the
    # request still renders (Starlette's JSONResponse would fail on it with a 500).
    body = json.dumps({"detail": _finite(exc.errors())}, default=str, allow_nan=False)
    return Response(body, status_code=422, media_type="application/json")


async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
    # Starlette answers 404/405 for unknown routes with plain text unless told otherwise.
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def internal_error(_: Request, exc: Exception) -> JSONResponse:
    logging.getLogger("deathstar").error("unhandled error", exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(NotFoundError, not_found)  # type: ignore[arg-type]
    app.add_exception_handler(ConflictError, conflict)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_error)
