"""The HTTP API: health, version and a small targets resource stored in SQLite."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deathstar import __version__
from deathstar.config import Settings
from deathstar.logs import ACCESS_LOGGER
from deathstar.storage import ConflictError, NotFoundError, Target, TargetStore

MAX_BODY_BYTES = 64 * 1024
MAX_PAGE = 100
MAX_SQLITE_INT = 2**63 - 1

access_log = logging.getLogger(ACCESS_LOGGER)


# Lone surrogates ("\ud800") are refused by pydantic's str validation itself (string_unicode).
Text = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]
TargetId = Annotated[int, Path(ge=1, le=MAX_SQLITE_INT, description="The target's id.")]


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Text = Field(description="Unique name of the target.")
    system: Text = Field(description="Star system the target is in.")
    shielded: StrictBool = Field(default=False, description="A shielded target cannot be fired at.")


class TargetOut(BaseModel):
    id: int
    name: str
    system: str
    shielded: bool
    status: Literal["active", "destroyed"]
    created_at: str
    destroyed_at: str | None


class TargetPage(BaseModel):
    items: list[TargetOut]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    detail: Any


class VersionInfo(BaseModel):
    version: str
    revision: str
    created: str


class Status(BaseModel):
    status: str


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No target with this id."},
    409: {"model": ErrorBody, "description": "The request conflicts with the target's state."},
    413: {"model": ErrorBody, "description": "Request body over 64 KiB."},
}


def _out(target: Target) -> dict[str, Any]:
    return target.as_dict()


class RequestGuard:
    """Pure ASGI middleware: caps request bodies and writes one access log line per request.

    Pure ASGI rather than ``BaseHTTPMiddleware`` because it sits on every request's path and
    must see bodies that arrive in chunks without a Content-Length.
    """

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLargeError(self.max_body)
            return message

        try:
            if self._declared_length(scope) > self.max_body:
                await self._refuse_body(send_wrapper)
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLargeError:
            if response_started:  # pragma: no cover - handlers read the body before answering
                raise
            await self._refuse_body(send_wrapper)
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status or 500,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client": (scope.get("client") or ("-",))[0],
                },
            )

    async def _refuse_body(self, send: Send) -> None:
        await _send_json(send, 413, {"detail": f"request body exceeds {self.max_body} bytes"})

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # the server itself rejects a malformed Content-Length
        return 0


class _BodyTooLargeError(StarletteHTTPException):
    # An HTTPException because FastAPI re-raises those from body parsing; any other exception
    # raised while it reads a chunked body becomes a 400 "error parsing the body".
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


def _finite(value: object) -> object:
    """JSON has no NaN or Infinity, which Python's parser accepts and errors echo as input."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = TargetStore(settings.database)
        try:
            yield
        finally:
            app.state.store.close()

    app = FastAPI(
        title="deathstar",
        version=__version__,
        summary="Track targets across the galaxy.",
        lifespan=lifespan,
    )
    app.add_middleware(RequestGuard)

    def store(request: Request) -> TargetStore:
        result: TargetStore = request.app.state.store
        return result

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ConflictError)
    async def conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
        # json.dumps escapes to ASCII, so an error that echoes a lone surrogate from the
        # request still renders (Starlette's JSONResponse would fail on it with a 500).
        body = json.dumps({"detail": _finite(exc.errors())}, default=str, allow_nan=False)
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        # Starlette answers 404/405 for unknown routes with plain text unless told otherwise.
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("deathstar").error("unhandled error", exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    @app.get("/healthz", response_model=Status, tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Status,
        tags=["ops"],
        responses={503: {"model": Status, "description": "Storage unreachable."}},
    )
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the SQLite store answers a query."""
        if store(request).ping():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "storage unavailable"}, status_code=503)

    @app.get("/version", response_model=VersionInfo, tags=["ops"])
    async def version() -> dict[str, str]:
        """The package version and the revision and build time the image was made from."""
        return {"version": __version__, "revision": settings.revision, "created": settings.created}

    @app.post(
        "/v1/targets",
        status_code=201,
        response_model=TargetOut,
        tags=["targets"],
        responses={k: ERRORS[k] for k in (409, 413)},
    )
    async def create_target(body: TargetIn, request: Request, response: Response) -> dict[str, Any]:
        """Create a target. Names are unique: a second target with the same name is a 409."""
        target = store(request).create(body.name, body.system, shielded=body.shielded)
        response.headers["Location"] = f"/v1/targets/{target.id}"
        return _out(target)

    @app.get("/v1/targets", response_model=TargetPage, tags=["targets"])
    async def list_targets(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_SQLITE_INT)] = 0,
    ) -> dict[str, Any]:
        """List targets by id, a page at a time."""
        targets, total = store(request).list(limit=limit, offset=offset)
        return {
            "items": [_out(t) for t in targets],
            "total": total,
            "limit": limit,
            "offset": offset,
        }

    @app.get(
        "/v1/targets/{target_id}",
        response_model=TargetOut,
        tags=["targets"],
        responses={404: ERRORS[404]},
    )
    async def get_target(target_id: TargetId, request: Request) -> dict[str, Any]:
        """One target."""
        return _out(store(request).get(target_id))

    @app.delete(
        "/v1/targets/{target_id}",
        status_code=204,
        tags=["targets"],
        responses={404: ERRORS[404]},
    )
    async def delete_target(target_id: TargetId, request: Request) -> Response:
        """Delete a target."""
        store(request).delete(target_id)
        return Response(status_code=204)

    @app.post(
        "/v1/targets/{target_id}/fire",
        response_model=TargetOut,
        tags=["targets"],
        responses={k: ERRORS[k] for k in (404, 409)},
    )
    async def fire(target_id: TargetId, request: Request) -> dict[str, Any]:
        """Fire at a target: it becomes destroyed. 409 when it is shielded or already destroyed."""
        return _out(store(request).fire(target_id))

    return app
