"""Typed, unit-tested logic behind the nox sessions.

- ``harness.core`` (general plumbing) and ``harness.image`` (building and recording the image):
  what ``noxfile.py`` imports, standard library only (nox's own environment has nothing else).
- ``harness.release``: the gated push (``python -m harness.release``), run in a session venv.
- ``harness.bench``: the benchmarks (``python -m harness.bench``), run in a session venv.
- ``harness.stage``: the wheel laid out as the image's project layer (``python -m harness.stage``,
  pypa's installer), run in a session venv.
"""

from pathlib import Path


class HarnessError(Exception):
    """A refusal or failure the user can fix; its message is one readable line."""


ROOT = Path(__file__).resolve().parent.parent
