"""What a hostile client gets from the container, through 127.0.0.1 and the mapped port.

Silent and slow clients are cut off, the connection cap answers the excess at once, and
ambiguous or oversized requests close their connection. Each check waits a bounded time for an
outcome and asserts the outcome, never how long it took.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack, closing
from urllib.parse import urlsplit

import pytest
from containers import Lab, Launcher, Service, owner_of, wait_until

HEAD_TIMEOUT = 0.5  # seconds, set in the container: the default (10 s) would only slow the test
MAX_CONNECTIONS = 4
WAIT = 15.0  # seconds a socket waits for the server's answer or close: a bound, not a measure
POST_JSON = b"POST /v1/targets HTTP/1.1\r\nHost: deathstar\r\nContent-Type: application/json\r\n"


def address(service: Service) -> tuple[str, int]:
    parts = urlsplit(service.base_url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port is not None
    return parts.hostname, parts.port


def connect(service: Service) -> socket.socket:
    return socket.create_connection(address(service), timeout=WAIT)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or WAIT passes: a failure)."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"the server kept the connection open for {WAIT:g} s")
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def status_and_body(raw: bytes) -> tuple[int, dict[str, object], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body), head.lower()


@pytest.fixture(scope="module")
def limited(launcher: Launcher, request: pytest.FixtureRequest) -> Iterator[Service]:
    """A service that gives a silent client half a second; shared, as no client changes it."""
    env = {"DEATHSTAR_HEAD_TIMEOUT": str(HEAD_TIMEOUT)}
    with launcher.serving(owner_of(request), env=env) as service:
        yield service


@pytest.fixture
def capped(lab: Lab) -> Iterator[Service]:
    """A service that serves a few connections at once, and lets idle ones wait long."""
    env = {"DEATHSTAR_MAX_CONNECTIONS": str(MAX_CONNECTIONS), "DEATHSTAR_HEAD_TIMEOUT": "60"}
    with lab.serving(env=env) as service:
        yield service


def one_request(service: Service) -> tuple[int, dict[str, object], bytes]:
    get = b"GET /healthz HTTP/1.1\r\nHost: deathstar\r\nConnection: close\r\n\r\n"
    return status_and_body(exchange(service, get))


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: deathstar\r\n", b"POST /v1/targets HTTP/1.1\r\n"],
    ids=["idle", "half a head", "a request line only"],
)
def test_a_client_that_sends_no_complete_head_is_cut_off(limited: Service, sent: bytes) -> None:
    assert b"200 OK" not in exchange(
        limited, sent
    )  # closed (or answered with an error), never served


def exchange(service: Service, sent: bytes) -> bytes:
    """What the server answers ``sent`` on a connection of its own, until it closes it."""
    with closing(connect(service)) as sock:
        sock.sendall(sent)
        return read_all(sock)


def test_a_body_that_never_arrives_is_cut_off(limited: Service) -> None:
    exchange(limited, POST_JSON + b"Content-Length: 100\r\n\r\n{")


def test_connections_over_the_cap_get_a_json_503_at_once(capped: Service) -> None:
    with ExitStack() as held:
        for _ in range(MAX_CONNECTIONS):
            held.enter_context(closing(connect(capped)))

        def refused_or_hold_another() -> tuple[int, dict[str, object], bytes] | None:
            # docker-proxy hands each held connection on as it gets to it, and a connection of
            # the readiness probe it still held may have taken a slot (refusing one of ours)
            # and closed since: while one is served, the cap is not reached, so hold another.
            answer = one_request(capped)
            if answer[0] == 503:
                return answer
            held.enter_context(closing(connect(capped)))
            return None

        refused = wait_until(refused_or_hold_another, WAIT, what="a 503")
        assert "detail" in refused[1]
    # The held sockets are gone: once the server has seen them close, it serves again.
    wait_until(lambda: one_request(capped)[0] == 200, WAIT, what="a 200 again")


def test_an_ambiguous_request_is_refused_and_its_connection_closed(service: Service) -> None:
    framing = b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    status, body, head = status_and_body(exchange(service, POST_JSON + framing))
    assert status == 400
    assert "detail" in body
    assert b"connection: close" in head


def test_an_oversized_chunked_body_gets_413_and_a_closed_connection(service: Service) -> None:
    chunk = b"x" * (64 * 1024 + 1)  # one byte over the cap, in one chunk: no length declared
    chunked = b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(chunk) + chunk + b"\r\n"
    status, body, head = status_and_body(exchange(service, POST_JSON + chunked))
    assert status == 413
    assert "detail" in body
    assert b"connection: close" in head
