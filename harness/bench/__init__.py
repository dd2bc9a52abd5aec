"""``python -m harness.bench``: the figures behind ``nox -s bench`` (docs/benchmarks.md lists
them), measured on this machine in throwaway clones of the working tree."""
