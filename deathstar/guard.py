"""Pure ASGI middleware that caps request bodies and writes one access log line per request."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deathstar.logs import ACCESS_LOGGER

MAX_BODY_BYTES = 64 * 1024

access_log = logging.getLogger(ACCESS_LOGGER)


class RequestGuard:
    """Caps request bodies and logs each request once.

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
        await send_json(send, 413, {"detail": f"request body exceeds {self.max_body} bytes"})

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


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    """Answer with a JSON body and close: used before the app has (fully) read the request."""
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
