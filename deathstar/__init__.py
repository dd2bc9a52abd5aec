"""deathstar: a small HTTP API for tracking targets, shipped as a verified container image."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deathstar")
except PackageNotFoundError:  # pragma: no cover - only when run from a bare source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
