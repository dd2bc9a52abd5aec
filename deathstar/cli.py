"""Command line: ``deathstar api`` serves the API, ``deathstar healthcheck`` probes it."""

from __future__ import annotations

import argparse
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from deathstar import __version__
from deathstar.config import LOG_LEVELS, ConfigError, Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deathstar",
        description="Track targets across the galaxy over HTTP.",
        epilog="Every flag has a DEATHSTAR_* environment variable; a flag wins over it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    api = commands.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", help="address to bind (DEATHSTAR_HOST, default 127.0.0.1)")
    api.add_argument("--port", help="port to bind (DEATHSTAR_PORT, default 8080)")
    api.add_argument(
        "--database", type=Path, help="SQLite file (DEATHSTAR_DATABASE, default ./deathstar.db)"
    )
    api.add_argument(
        "--log-level",
        help=f"one of {', '.join(LOG_LEVELS)} (DEATHSTAR_LOG_LEVEL, default info)",
    )

    health = commands.add_parser(
        "healthcheck", help="exit 0 only when the local API answers /healthz with 200"
    )
    health.add_argument("--port", help="port of the local API (DEATHSTAR_PORT, default 8080)")
    health.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for an answer (default 2)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = vars(args)
    try:
        if args.command == "healthcheck":  # reads the port only
            return healthcheck(Settings.resolve(flags, only=("port",)).port, args.timeout)
        settings = Settings.resolve(flags)
    except ConfigError as exc:
        parser.exit(2, f"deathstar: error: {exc}\n")
    return serve(settings)


def healthcheck(port: int, timeout: float) -> int:
    url = f"http://127.0.0.1:{port}/healthz"
    # No proxies: an HTTP_PROXY in the container's environment must not reroute a local probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            healthy = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"deathstar: unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if not healthy:  # pragma: no cover - urlopen raises for every non-2xx answer
        print(f"deathstar: unhealthy: {url} answered {response.status}", file=sys.stderr)
    return 0 if healthy else 1


def serve(settings: Settings) -> int:
    import uvicorn  # noqa: PLC0415 - keeps `deathstar healthcheck` fast to start

    from deathstar import logs  # noqa: PLC0415
    from deathstar.app import create_app  # noqa: PLC0415

    logs.configure(settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # logs.configure already routes uvicorn's loggers
        log_level=settings.log_level,
        access_log=False,  # RequestGuard writes one structured line per request instead
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown so that the previous handler
    # runs. The default handler would kill us with the signal (exit 143); a stop on request is
    # a clean exit, so install a no-op handler for uvicorn to hand back to.
    stop_requested: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
