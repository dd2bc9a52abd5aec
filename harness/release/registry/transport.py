"""Requests to a registry, bounded: an overall deadline, capped bodies, and redirects that take
credentials nowhere but the origin that asked for them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin

import requests

from harness import HarnessError
from harness.core.untrusted import parse_json
from harness.release.registry.names import (
    base_url,
    check_registry,
    given_url,
    host_of,
    is_loopback,
    shown,
    url_host,
)

T = TypeVar("T")

MANIFEST_LIMIT = 4 * 1024 * 1024  # bytes of one manifest, tag list or error body
CONFIG_LIMIT = 4 * 1024 * 1024  # bytes of one image config blob
TOKEN_LIMIT = 64 * 1024  # bytes of a token realm's answer
DEADLINE = 120.0  # seconds for one public operation, redirects and token fetches included
GRACE = 1.0  # seconds past the deadline for a worker to give up by itself before it is left
MAX_REDIRECTS = 3


def json_object(body: bytes, what: str) -> dict[str, Any]:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise HarnessError(f"{what} is not a JSON object")
    return data


@dataclass(frozen=True)
class Answer:
    """One answer, its body read in full (within its cap).

    ``elsewhere``: a redirect took the request to another origin, where it went without
    credentials (a blob's storage); its 401 is not the registry's challenge.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    elsewhere: bool = False


class Transport:
    """The wire to one registry: each public operation runs within :data:`DEADLINE` however
    slowly the peer answers, each body is read streaming up to its cap, and a redirect is
    followed within the same scheme, host and port (for blobs also elsewhere, without
    credentials)."""

    def __init__(
        self, registry: str, *, timeout: float, deadline: float, grace: float = GRACE
    ) -> None:
        check_registry(registry)
        self.registry = registry
        self.host = host_of(registry)
        self.url = base_url(registry)
        self.timeout = timeout
        self.deadline = deadline
        self.grace = grace
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc from the environment
        self._ends = float("inf")

    def _bounded(self, what: str, operation: Callable[[], T]) -> T:
        """Run ``operation`` in a worker and give up at the deadline, however slow the peer.

        requests' timeout bounds each socket operation; a peer that drips a byte at a time
        never trips it. The worker also stops reading at the deadline; a stuck one is left
        behind as a daemon thread, and the session is closed.
        """
        outcome: list[T] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                outcome.append(operation())
            except BaseException as exc:  # handed to the caller's thread below
                failure.append(exc)

        self._ends = time.monotonic() + self.deadline
        worker = threading.Thread(target=work, name=f"registry: {what}", daemon=True)
        worker.start()
        worker.join(self.deadline + self.grace)
        if worker.is_alive():
            self.session.close()
            raise self._too_slow(what)
        if failure:
            raise failure[0]
        return outcome[0]

    def _too_slow(self, what: str) -> HarnessError:
        return HarnessError(
            f"registry {self.registry} did not {what} within {self.deadline:g} s; "
            "check the address and your network"
        )

    def _raw(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        params: dict[str, str] | None = None,
        limit: int,
        what: str,
        elsewhere: bool = False,
    ) -> Answer:
        """One request, following same-origin redirects only, its body capped at ``limit``.

        With ``elsewhere`` a redirect may also lead to another origin (a blob's storage): the
        request goes there, and on from there, without ``auth`` or an Authorization header.
        """
        left = False
        for _ in range(MAX_REDIRECTS + 1):
            remaining = self._ends - time.monotonic()
            if remaining <= 0:
                raise self._too_slow(what)
            try:
                with self.session.request(
                    method,
                    url,
                    headers=headers,
                    auth=auth,
                    params=params,
                    timeout=min(self.timeout, remaining),
                    stream=True,
                    allow_redirects=False,
                ) as response:
                    if not response.is_redirect:
                        body = self._read(response, limit, what) if method != "HEAD" else b""
                        return Answer(response.status_code, response.headers, body, left)
                    location = response.headers["Location"]
                    given_url(self.registry, location, f"a redirect of {what}")
                    target = urljoin(url, location)
                    if not self._same_origin(url, target, what, elsewhere=elsewhere):
                        left, auth = True, None
                        headers = {
                            k: v for k, v in (headers or {}).items() if k.lower() != "authorization"
                        }
                    url = target
                    params = None  # the Location carries its own query
            except requests.RequestException as exc:
                raise HarnessError(
                    f"registry {self.registry} does not answer ({type(exc).__name__}); "
                    "check the address and your network"
                ) from None
        raise HarnessError(f"registry {self.registry} redirected more than {MAX_REDIRECTS} times")

    def _same_origin(self, url: str, target: str, what: str, *, elsewhere: bool) -> bool:
        """Whether a redirect stays on the origin; one elsewhere is refused unless allowed, and
        then it must be https (plain http only from a registry on loopback to loopback)."""
        old, new = given_url(self.registry, url, what), given_url(self.registry, target, what)
        if (old.scheme, url_host(old), old.port) == (new.scheme, url_host(new), new.port):
            return True
        if not elsewhere:
            raise HarnessError(
                f"registry {self.registry} redirected {what} to {shown(new.scheme)}://"
                f"{shown(new.netloc)}; requests with credentials are never redirected elsewhere"
            )
        loopback = is_loopback(self.host) and is_loopback(url_host(new))
        if not (new.scheme == "https" or (new.scheme == "http" and loopback)):
            raise HarnessError(
                f"registry {self.registry} redirected {what} to {shown(new.scheme)}://"
                f"{shown(new.netloc)}; only https is followed elsewhere (plain http only on "
                "loopback)"
            )
        return False

    def _read(self, response: requests.Response, limit: int, what: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(chunk_size=16384):
            body += chunk
            if len(body) > limit:
                raise self._too_large(what, limit)
            if time.monotonic() > self._ends:
                raise self._too_slow(what)
        return bytes(body)

    def _too_large(self, what: str, limit: int) -> HarnessError:
        return HarnessError(
            f"registry {self.registry} answered more than {limit // 1024} KiB to {what}; "
            "refusing it"
        )
