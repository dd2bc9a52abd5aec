"""The gated, signed push behind ``nox -s push`` (``python -m harness.release``)."""
