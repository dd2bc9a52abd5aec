"""Rebuilding a commit from nothing and comparing: ``nox -s repro`` and ``nox -s verify``."""
