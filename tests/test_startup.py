"""What `deathstar api` does before it serves: only what serving needs."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.test_cli import run

# What `deathstar api` imports before it serves: a fresh process, with the server stubbed out.
STARTUP_PROBE = """
import sys
from deathstar import cli, server
def report(app, sock, settings, port_file):
    loaded = {name for name, module in sys.modules.items() if module is not None}
    print(" ".join(sorted(loaded)))
server.run = report
sys.exit(cli.main(["api", "--port", "0", "--database", sys.argv[1]]))
"""


def test_api_starts_without_what_only_later_or_never_needs(tmp_path: Path) -> None:
    result = run([sys.executable, "-c", STARTUP_PROBE, str(tmp_path / "x.db")])
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert {"fastapi", "uvicorn", "deathstar.app"} <= loaded
    # FastAPI imports pydantic.v1 only to refuse v1 models; urllib is the healthcheck's.
    assert "pydantic.v1" not in loaded
    assert "urllib.request" not in loaded
