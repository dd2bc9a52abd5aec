"""The figures behind ``nox -s bench`` (``python -m harness.bench``), measured on this machine."""
