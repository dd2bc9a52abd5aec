"""The HTTP server: uvicorn on httptools, with the limits uvicorn has no setting for.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but not one that never
completes a request head or body, and its ``limit_concurrency`` answers in plain text only once
a request arrives. ``GuardedProtocol`` adds a head timeout, a body timeout, a head size cap and
a connection cap that answers the excess with a JSON 503 at once and closes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import socket
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from deathstar.config import Settings
from deathstar.portfile import Listening, PortFile

HEAD_TIMEOUT = 10.0  # seconds to send a complete request head; as many again for its body
KEEP_ALIVE_TIMEOUT = 5  # at most, seconds an idle keep-alive connection stays open
MAX_HEAD_BYTES = 64 * 1024
MAX_CONNECTIONS = 1000
# File descriptors kept free of connections: the database, its WAL and shm files, logs, and
# one to accept (and refuse) a connection over the cap with.
RESERVED_FDS = 24
LOGGER = logging.getLogger("deathstar")


def connection_cap(limit: int = MAX_CONNECTIONS) -> int:
    """At most ``limit`` connections, and fewer than the process may open files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limit
    return max(1, min(limit, soft - RESERVED_FDS))


def _canned(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


TOO_MANY = _canned(503, "Service Unavailable", "too many connections, try again")
HEAD_TOO_LARGE = _canned(431, "Request Header Fields Too Large", "request head too large")


class GuardedProtocol(HttpToolsProtocol):
    max_connections = MAX_CONNECTIONS
    head_timeout = HEAD_TIMEOUT

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        # From a complete head to the end of its body: a body that trickles holds a connection
        # (and a slot under the cap) as long as a head that trickles would.
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(TOO_MANY)
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and not self.transport.is_closing():
            # Still no complete head after parsing this: count it towards the head's size.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()  # a keep-alive connection's next request: its head is timed too

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        self._disarm_body_timer()
        self._body_timer = self.loop.call_later(self.head_timeout, self._timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm_body_timer()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own is plain text; every error this service answers is JSON.
        self.transport.write(_canned(400, "Bad Request", msg))
        self.transport.close()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(self.head_timeout, self._timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _timed_out(self) -> None:
        self._disarm_head_timer()
        self._disarm_body_timer()
        if not self.transport.is_closing():
            self.transport.close()


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server that says where it listens once it serves: the app has started and the
    socket accepts. With ``--port 0`` that is how a caller learns the port (uvicorn logs no
    address for a socket it was given)."""

    def __init__(
        self, config: uvicorn.Config, listening: Listening, port_file: PortFile | None
    ) -> None:
        super().__init__(config)
        self.listening = listening
        self.port_file = port_file
        self.failed = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        failure = self._publish()
        if failure is not None:
            # Whoever waits for the file would wait in vain: stop, and say why.
            LOGGER.error(failure)
            self.failed = self.should_exit = True
            return
        at = self.listening
        LOGGER.info(
            "listening on %s", at.url, extra={"host": at.host, "port": at.port, "pid": at.pid}
        )

    def _publish(self) -> str | None:
        """Write the port file, if there is one; None, or why it could not be written."""
        if self.port_file is None:
            return None
        try:
            self.port_file.publish(self.listening)
        except OSError as exc:
            return f"cannot write the port file {self.port_file.path}: {exc.strerror or exc}"
        return None


def run(
    app: ASGIApp, sock: socket.socket, settings: Settings, port_file: PortFile | None = None
) -> int:
    """Serve on ``sock`` until a signal stops it; the exit status (1: the port file failed)."""
    limits = {
        "max_connections": connection_cap(settings.max_connections),
        "head_timeout": settings.head_timeout,
    }
    protocol = type("Protocol", (GuardedProtocol,), limits)
    config = uvicorn.Config(
        app,
        http=protocol,
        loop="uvloop",
        log_config=None,  # logs.configure already routes uvicorn's loggers
        log_level=settings.log_level,
        access_log=False,  # RequestGuard writes one structured line per request instead
        server_header=False,
        timeout_keep_alive=max(1, min(KEEP_ALIVE_TIMEOUT, round(settings.head_timeout))),
        timeout_graceful_shutdown=5,
    )
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown so that the previous handler
    # runs. The default handler would kill us with the signal (exit 143); a stop on request is
    # a clean exit, so install a no-op handler for uvicorn to hand back to.
    stop_requested: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGTERM, signal.SIGINT)}
    host, port = sock.getsockname()[:2]
    server = AnnouncingServer(config, Listening(host, port, os.getpid()), port_file)
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if server.failed else 0
