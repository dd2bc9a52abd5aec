"""Typed, unit-tested logic behind the nox sessions.

Modules imported by ``noxfile.py`` itself use the standard library only, because nox's own
environment has nothing else; modules that need third-party packages run inside a session's
virtualenv as ``python -m harness.<module>``.
"""

from pathlib import Path


class HarnessError(Exception):
    """A refusal or failure the user can fix; its message is one readable line."""


ROOT = Path(__file__).resolve().parent.parent
