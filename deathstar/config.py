"""Runtime settings: command-line flags win over ``DEATHSTAR_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
UNKNOWN = "unknown"


class ConfigError(ValueError):
    """A setting has a value the service cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database: Path = Path("deathstar.db")
    log_level: str = "info"
    revision: str = UNKNOWN
    created: str = UNKNOWN

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            host=env.get("DEATHSTAR_HOST", defaults.host),
            port=parse_port(env.get("DEATHSTAR_PORT", str(defaults.port)), "DEATHSTAR_PORT"),
            database=Path(env.get("DEATHSTAR_DATABASE", str(defaults.database))),
            log_level=parse_log_level(
                env.get("DEATHSTAR_LOG_LEVEL", defaults.log_level), "DEATHSTAR_LOG_LEVEL"
            ),
            revision=env.get("DEATHSTAR_REVISION", "") or UNKNOWN,
            created=env.get("DEATHSTAR_CREATED", "") or UNKNOWN,
        )


def parse_port(raw: str, source: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{source} must be a port number, got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{source} must be between 0 and 65535, got {port}")
    return port


def parse_log_level(raw: str, source: str) -> str:
    level = raw.strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{source} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level
