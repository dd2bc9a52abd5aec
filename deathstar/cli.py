"""Command line: ``deathstar api`` serves the API, ``deathstar healthcheck`` probes it."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

from deathstar import __version__, portfile
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
    api.add_argument(
        "--port", help="port to bind, 0 for one the system picks (DEATHSTAR_PORT, default 8080)"
    )
    api.add_argument(
        "--port-file",
        help="once serving, write where it listens to this file as JSON {host, port, pid}; "
        "removed on exit (DEATHSTAR_PORT_FILE)",
    )
    api.add_argument("--database", help="SQLite file (DEATHSTAR_DATABASE, default ./deathstar.db)")
    api.add_argument(
        "--log-level",
        help=f"one of {', '.join(LOG_LEVELS)} (DEATHSTAR_LOG_LEVEL, default info)",
    )

    health = commands.add_parser(
        "healthcheck", help="exit 0 only when the local API answers /healthz with 200"
    )
    health.add_argument("--port", help="port of the local API (DEATHSTAR_PORT, default 8080)")
    health.add_argument(
        "--port-file",
        help="probe the port the API wrote to this file instead (DEATHSTAR_PORT_FILE)",
    )
    health.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for an answer (default 2)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = vars(args)
    try:
        if args.command == "healthcheck":  # reads where to probe only
            return healthcheck(Settings.resolve(flags, only=("port", "port_file")), args.timeout)
        settings = Settings.resolve(flags)
    except ConfigError as exc:
        parser.exit(2, f"deathstar: error: {exc}\n")
    return serve(settings)


def probed_port(settings: Settings) -> int:
    """The port the healthcheck probes: the one the port file names, if one is set.

    Raises ConfigError for port 0 without a port file (no way to know which port the server
    picked) and PortFileError when the file does not name a port (yet).
    """
    if settings.port_file is not None:
        return portfile.read(settings.port_file).port
    if settings.port == 0:
        raise ConfigError(
            "port 0 lets the server pick its port; give the healthcheck --port-file "
            "(DEATHSTAR_PORT_FILE), the file `deathstar api --port-file` writes"
        )
    return settings.port


def healthcheck(settings: Settings, timeout: float) -> int:
    # Here, not at the top: `deathstar api` does not need urllib and starts without it.
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        port = probed_port(settings)
    except portfile.PortFileError as exc:
        print(f"deathstar: unhealthy: {exc}", file=sys.stderr)
        return 1
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


def fail(message: str) -> int:
    """One readable line on stderr for a startup failure, and exit status 1."""
    print(f"deathstar: error: {message}", file=sys.stderr)
    return 1


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``; raises OSError naming why it cannot be."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def serve(settings: Settings) -> int:
    import sqlite3  # noqa: PLC0415 - keeps `deathstar healthcheck` fast to start

    from deathstar.storage import TargetStore  # noqa: PLC0415

    # Open what the server needs before it starts, so that a failure is one line, not a
    # traceback logged from the middle of uvicorn's startup; and before the web stack is
    # imported, so that it is a quick one.
    try:
        TargetStore(settings.database).close()
    except (sqlite3.Error, OSError) as exc:
        return fail(f"cannot open the database {str(settings.database)!r}: {exc}")
    port_file = None if settings.port_file is None else portfile.PortFile(settings.port_file)
    try:
        return _serve(settings, port_file)
    finally:
        if port_file is not None:
            port_file.remove()


def _serve(settings: Settings, port_file: portfile.PortFile | None) -> int:
    if port_file is not None:
        try:
            port_file.prepare()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return fail(f"cannot write the port file {str(port_file.path)!r}: {reason}")
    try:
        sock = listen(settings.host, settings.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return fail(f"cannot listen on {settings.host}:{settings.port}: {reason}")
    with sock:
        # FastAPI imports pydantic.v1, a fifth of the start-up, only to refuse v1 models in
        # routes; this service has none, and with the module absent FastAPI skips that check.
        sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]
        from deathstar import logs, server  # noqa: PLC0415
        from deathstar.app import create_app  # noqa: PLC0415

        logs.configure(settings.log_level)
        return server.run(create_app(settings), sock, settings, port_file)
