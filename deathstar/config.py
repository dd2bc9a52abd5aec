"""Runtime settings and their precedence: a flag, else its ``DEATHSTAR_*`` variable, else the
default."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
UNKNOWN = "unknown"


class ConfigError(ValueError):
    """A setting has a value the service cannot use."""


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


def _number(
    raw: str, source: str, kind: type[float], what: str, *, low: float, high: float
) -> float:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{source} must be {what}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{source} must be between {low:g} and {high:g}, got {raw!r}")
    return value


def parse_seconds(raw: str, source: str) -> float:
    return _number(raw, source, float, "a number of seconds", low=0.1, high=3600)


def parse_count(raw: str, source: str) -> int:
    return int(_number(raw, source, int, "a whole number", low=1, high=1_000_000))


def _as_is(raw: str, _source: str) -> str:
    return raw


def _as_path(raw: str, source: str) -> Path:
    if not raw.strip():
        raise ConfigError(f"{source} must be a file path, got {raw!r}")
    return Path(raw)


# Each setting a flag can give: (flag, variable, parser). The parser names its source in errors.
FLAGGED: dict[str, tuple[str, str, Callable[[str, str], Any]]] = {
    "host": ("--host", "DEATHSTAR_HOST", _as_is),
    "port": ("--port", "DEATHSTAR_PORT", parse_port),
    "database": ("--database", "DEATHSTAR_DATABASE", _as_path),
    "log_level": ("--log-level", "DEATHSTAR_LOG_LEVEL", parse_log_level),
    "port_file": ("--port-file", "DEATHSTAR_PORT_FILE", _as_path),
}

# Server limits, set by variable only: tuning, not something to choose per run.
UNFLAGGED: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "head_timeout": ("DEATHSTAR_HEAD_TIMEOUT", parse_seconds),
    "max_connections": ("DEATHSTAR_MAX_CONNECTIONS", parse_count),
}


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database: Path = Path("deathstar.db")
    log_level: str = "info"
    port_file: Path | None = None  # where `api` says where it listens, `healthcheck` looks
    revision: str = UNKNOWN
    created: str = UNKNOWN
    head_timeout: float = 10.0  # seconds to send a request head (again: its body), or an idle close
    max_connections: int = 1000

    @classmethod
    def resolve(
        cls,
        flags: Mapping[str, object],
        env: Mapping[str, str] | None = None,
        *,
        only: Collection[str] = (*FLAGGED, *UNFLAGGED),
    ) -> Settings:
        """Settings from ``flags`` (None: not given) over ``env`` over the defaults.

        With a flag given its variable is not read at all, so a bad value there cannot fail a
        command that says what it wants; ``only`` limits which settings are read at all.
        Raises ConfigError naming the flag or variable whose value is unusable.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in only:
            if name in UNFLAGGED:
                variable, parse = UNFLAGGED[name]
                if variable in env:
                    values[name] = parse(env[variable], variable)
                continue
            flag, variable, parse = FLAGGED[name]
            given = flags.get(name)
            if given is not None:
                values[name] = parse(str(given), flag)
            elif variable in env:
                values[name] = parse(env[variable], variable)
        return cls(
            **values,
            revision=env.get("DEATHSTAR_REVISION", "") or UNKNOWN,
            created=env.get("DEATHSTAR_CREATED", "") or UNKNOWN,
        )
