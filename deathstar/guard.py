"""Pure ASGI middleware: refuses bodies it will not parse and logs each request once."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deathstar.logs import ACCESS_LOGGER

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32

access_log = logging.getLogger(ACCESS_LOGGER)

# A JSON string (escapes included) in one regex step; what is left has only structure to count.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[][{}]")


def json_too_deep(body: bytes | bytearray, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than ``limit``: a loop, never recursion.

    Scanned as text in the encoding the parser reads it in (``json.loads`` also takes UTF-16
    and UTF-32): scanned as bytes, a character whose code units hold 0x22 (U+2200 is 00 22 in
    UTF-16) would pass for a quote and hide the brackets after it.
    """
    try:
        text = bytes(body).decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError:
        return False  # the parser refuses it too
    depth = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def is_json(scope: Scope) -> bool:
    """Whether the request declares a JSON body (application/json or a +json type)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class EarlyAnswerError(StarletteHTTPException):
    """The request is refused before its body is (fully) read, so the connection must close.

    An HTTPException because FastAPI re-raises those from body parsing; any other exception
    raised while it reads a body becomes a 400 "error parsing the body".
    """

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(status_code, detail, headers={"connection": "close"})


class RequestGuard:
    """Caps request bodies and JSON nesting, refuses ambiguous framing, logs each request once.

    Pure ASGI rather than ``BaseHTTPMiddleware`` because it sits on every request's path and
    must see bodies that arrive in chunks without a Content-Length.
    """

    def __init__(
        self, app: ASGIApp, max_body: int = MAX_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_depth = max_depth

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

        body = bytearray()
        check_depth = is_json(scope)

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
                if len(body) > self.max_body:
                    raise self._too_large()
                if check_depth and not message.get("more_body") and json_too_deep(body):
                    raise EarlyAnswerError(400, f"JSON nested deeper than {self.max_depth} levels")
            return message

        try:
            refusal = self._refuse_head(scope)
            if refusal is not None:
                raise refusal
            await self.app(scope, receive_wrapper, send_wrapper)
        except EarlyAnswerError as exc:
            if response_started:  # pragma: no cover - handlers read the body before answering
                raise
            await send_json(send_wrapper, exc.status_code, {"detail": exc.detail})
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"][:200],
                    "status": status or 500,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client": (scope.get("client") or ("-",))[0],
                },
            )

    def _too_large(self) -> EarlyAnswerError:
        return EarlyAnswerError(413, f"request body exceeds {self.max_body} bytes")

    def _refuse_head(self, scope: Scope) -> EarlyAnswerError | None:
        names = {key for key, _ in scope["headers"]}
        if b"content-length" in names and b"transfer-encoding" in names:
            return EarlyAnswerError(400, "Content-Length and Transfer-Encoding are ambiguous")
        if self._declared_length(scope) > self.max_body:
            return self._too_large()
        return None

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # the server itself rejects a malformed Content-Length
        return 0


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
