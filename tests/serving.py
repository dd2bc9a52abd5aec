"""The tests' small HTTP servers, each served by a thread of its own and stopped without a wait.

``serve_forever`` checks for a shutdown request once per poll interval (0.5 s by default), and
``shutdown`` waits for that check: a test that stops a server paid up to half a second for
nothing. These poll often instead; an idle server's thread wakes a few hundred times a second.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import BaseServer
from typing import TypeVar

POLL = 0.005  # seconds between a serving thread's checks for a shutdown request

S = TypeVar("S", bound=BaseServer)


def start(server: BaseServer) -> threading.Thread:
    """Serve ``server`` in a daemon thread until :func:`stop`."""
    thread = threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True)
    thread.start()
    return thread


def stop(server: BaseServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join()


@contextmanager
def serving(server: S) -> Iterator[S]:
    """``server``, served for the ``with`` block and stopped (its socket closed) after it."""
    thread = start(server)
    try:
        yield server
    finally:
        stop(server, thread)


@contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused, for the ``with`` block.

    The port stays bound (never listening, so a connection gets a reset) until the block ends:
    nothing else, such as another xdist worker's server, can take it meanwhile, as it could a
    port that was picked and released. Bound without SO_REUSEADDR, which a second socket on
    the port would need on both sides.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
