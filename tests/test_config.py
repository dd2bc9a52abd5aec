"""Settings from DEATHSTAR_* variables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from deathstar.config import (
    LOG_LEVELS,
    UNKNOWN,
    ConfigError,
    Settings,
    parse_log_level,
    parse_port,
)


def test_defaults_from_empty_environment() -> None:
    settings = Settings.resolve({}, {})
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.database == Path("deathstar.db")
    assert settings.log_level == "info"
    assert settings.revision == UNKNOWN
    assert settings.created == UNKNOWN


def test_every_variable_overrides() -> None:
    settings = Settings.resolve(
        {},
        {
            "DEATHSTAR_HOST": "0.0.0.0",  # noqa: S104 - a value, nothing binds here
            "DEATHSTAR_PORT": "9000",
            "DEATHSTAR_DATABASE": "/data/targets.db",
            "DEATHSTAR_LOG_LEVEL": "DEBUG",
            "DEATHSTAR_REVISION": "abc123",
            "DEATHSTAR_CREATED": "2026-01-02T03:04:05Z",
            "UNRELATED": "ignored",
        },
    )
    assert settings == Settings(
        host="0.0.0.0",  # noqa: S104
        port=9000,
        database=Path("/data/targets.db"),
        log_level="debug",
        revision="abc123",
        created="2026-01-02T03:04:05Z",
    )


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEATHSTAR_PORT", "1234")
    monkeypatch.setenv("DEATHSTAR_LOG_LEVEL", "error")
    monkeypatch.delenv("DEATHSTAR_REVISION", raising=False)
    settings = Settings.resolve({})
    assert settings.port == 1234
    assert settings.log_level == "error"
    assert settings.revision == UNKNOWN


@pytest.mark.parametrize("variable", ["DEATHSTAR_REVISION", "DEATHSTAR_CREATED"])
def test_empty_build_info_is_unknown(variable: str) -> None:
    settings = Settings.resolve({}, {variable: ""})
    assert dataclasses.asdict(settings)[variable.removeprefix("DEATHSTAR_").lower()] == UNKNOWN


@pytest.mark.parametrize(("raw", "port"), [("0", 0), ("1", 1), ("65535", 65535), (" 80 ", 80)])
def test_port_bounds(raw: str, port: int) -> None:
    assert Settings.resolve({}, {"DEATHSTAR_PORT": raw}).port == port


@pytest.mark.parametrize("raw", ["abc", "", "80.5", "0x50", "70000", "65536", "-1"])
def test_bad_port_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="DEATHSTAR_PORT") as caught:
        Settings.resolve({}, {"DEATHSTAR_PORT": raw})
    message = str(caught.value)
    assert raw.strip() in message
    assert "\n" not in message


@pytest.mark.parametrize("level", LOG_LEVELS)
def test_log_levels_case_insensitive(level: str) -> None:
    assert Settings.resolve({}, {"DEATHSTAR_LOG_LEVEL": f" {level.upper()} "}).log_level == level


@pytest.mark.parametrize("raw", ["nope", "", "warn", "trace", "10"])
def test_bad_log_level_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="DEATHSTAR_LOG_LEVEL") as caught:
        Settings.resolve({}, {"DEATHSTAR_LOG_LEVEL": raw})
    assert "critical, error, warning, info, debug" in str(caught.value)


def test_parsers_name_their_source() -> None:
    with pytest.raises(ConfigError, match=r"^--port must be a port number, got 'x'$"):
        parse_port("x", "--port")
    with pytest.raises(ConfigError, match=r"^--port must be between 0 and 65535, got 99999$"):
        parse_port("99999", "--port")
    with pytest.raises(ConfigError, match=r"^--log-level must be one of"):
        parse_log_level("loud", "--log-level")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_resolve_flag_wins_over_variable() -> None:
    env = {"DEATHSTAR_PORT": "9000", "DEATHSTAR_HOST": "::1", "DEATHSTAR_DATABASE": "/e.db"}
    settings = Settings.resolve({"port": "7000", "database": Path("/f.db"), "host": None}, env)
    assert (settings.port, settings.database, settings.host) == (7000, Path("/f.db"), "::1")


def test_resolve_does_not_read_the_variable_of_a_given_flag() -> None:
    env = {"DEATHSTAR_PORT": "abc", "DEATHSTAR_LOG_LEVEL": "loud"}
    settings = Settings.resolve({"port": "1", "log_level": "DEBUG"}, env)
    assert (settings.port, settings.log_level) == (1, "debug")


def test_resolve_only_reads_the_named_settings() -> None:
    env = {"DEATHSTAR_PORT": "5", "DEATHSTAR_LOG_LEVEL": "loud", "DEATHSTAR_REVISION": "r"}
    settings = Settings.resolve({}, env, only=("port",))
    assert settings == Settings(port=5, revision="r")


def test_resolve_names_the_bad_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--log-level must be one of"):
        Settings.resolve({"log_level": "loud"}, {})
