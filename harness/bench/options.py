"""The bench's settings and its command line, ``nox -s bench -- [OPTIONS]``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness import ROOT
from harness.image import build


def count(default: float, what: str) -> Any:  # noqa: ANN401 - a dataclass field's default
    """A setting that is an option of its own and must be positive."""
    return field(default=default, metadata={"help": what})


@dataclass(frozen=True)
class Options:
    """What to measure how often, and where the figures go; ``command`` is recorded with them."""

    runs: int = count(5, "P1 rebuilds per side")
    start_runs: int = count(10, "P3 starts per side")
    load_runs: int = count(3, "P5 load runs")
    load_seconds: float = count(10.0, "seconds per P5 run")
    connections: int = count(10, "P5 connections")
    env_runs: int = count(3, "P6 runs per backend")
    pipeline_runs: int = count(1, "P4 runs")
    rows: int = 100
    skip_pipeline: bool = False
    base_image: str = build.DEFAULT_BASE_IMAGE
    output_dir: Path = ROOT / "bench"
    nox_python: str = sys.executable
    test_session: str = "test-3.11"
    command: str = "nox -s bench"

    def settings(self) -> dict[str, Any]:
        """The counts that ran, by what they count."""
        counts = {f.metadata["help"]: getattr(self, f.name) for f in fields(self) if f.metadata}
        return {**counts, "P4 runs": 0 if self.skip_pipeline else self.pipeline_runs}


def parse_args(argv: Sequence[str]) -> Options:
    """``[INTERNAL... --] PUBLIC...``: nox passes its own settings before ``--``."""
    argv = list(argv)
    split = argv.index("--") if "--" in argv else -1
    internal, public = argv[: max(split, 0)], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="nox -s bench --",
        description="Measure on this machine; print the table, write bench/results.json and "
        "bench/RESULTS.md.",
    )
    add, defaults = parser.add_argument, Options()
    add("--skip-pipeline", action="store_true", help="skip P4, P7-P11: the minutes-long pipelines")
    counts = [f for f in fields(Options) if "help" in f.metadata]
    for f in counts:
        help_text = f"{f.metadata['help']} ({f.default})"
        add(
            f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default, help=help_text
        )
    base_image = os.environ.get("DEATHSTAR_BASE_IMAGE", defaults.base_image)
    add(
        "--base-image",
        default=base_image,
        help=f"default: $DEATHSTAR_BASE_IMAGE, else {defaults.base_image}",
    )
    add("--output-dir", type=Path, default=defaults.output_dir, help="default: bench/")
    add("--nox-python", default=defaults.nox_python, help=argparse.SUPPRESS)
    add("--test-session", default=defaults.test_session, help=argparse.SUPPRESS)
    args = parser.parse_args([*internal, *public])
    for f in counts:
        if getattr(args, f.name) <= 0:
            parser.error(f"--{f.name.replace('_', '-')} must be positive")
    command = "nox -s bench" + (f" -- {shlex.join(public)}" if public else "")
    return Options(**vars(args), command=command)
