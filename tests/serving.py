"""The tests' small HTTP servers, each served by a thread of its own and stopped without a wait.

``serve_forever`` checks for a shutdown request once per poll interval (0.5 s by default), and
``shutdown`` waits for that check: a test that stops a server paid up to half a second for
nothing. These poll often instead; an idle server's thread wakes a few hundred times a second.
"""

from __future__ import annotations

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
