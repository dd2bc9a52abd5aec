"""The bench's settings and its command line, ``nox -s bench -- [OPTIONS]``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT
from harness.image import build


@dataclass(frozen=True)
class Options:
    """What to measure how often, and where the figures go; ``command`` is recorded with them."""

    runs: int = 5
    start_runs: int = 10
    load_runs: int = 3
    load_seconds: float = 10.0
    connections: int = 10
    rows: int = 100
    env_runs: int = 3
    pipeline_runs: int = 1
    skip_pipeline: bool = False
    base_image: str = build.DEFAULT_BASE_IMAGE
    output_dir: Path = ROOT / "bench"
    nox_python: str = sys.executable
    test_session: str = "test-3.11"
    command: str = "nox -s bench"

    def settings(self) -> dict[str, Any]:
        return {
            "P1 runs per side": self.runs,
            "P3 runs per side": self.start_runs,
            "P4 runs": 0 if self.skip_pipeline else self.pipeline_runs,
            "P5": f"wrk, {self.connections} connections, {self.load_runs} x "
            f"{self.load_seconds:g} s, {self.rows} rows",
            "P6 runs per backend": self.env_runs,
        }


def parse_args(argv: Sequence[str]) -> Options:
    """``[INTERNAL... --] PUBLIC...``: nox passes its own settings before ``--``."""
    argv = list(argv)
    public = argv[argv.index("--") + 1 :] if "--" in argv else argv
    internal = argv[: argv.index("--")] if "--" in argv else []
    parser = argparse.ArgumentParser(
        prog="nox -s bench --",
        description="Measure P1-P6 on this machine; print the table, write bench/results.json "
        "and bench/RESULTS.md.",
    )
    defaults = Options()
    add = parser.add_argument
    add("--skip-pipeline", action="store_true", help="skip P4, the minutes-long nox pipeline")
    add("--runs", type=int, default=defaults.runs, help="P1 rebuilds per side (default 5)")
    add("--start-runs", type=int, default=defaults.start_runs, help="P3 starts per side (10)")
    add("--load-runs", type=int, default=defaults.load_runs, help="P5 load runs (default 3)")
    add("--load-seconds", type=float, default=defaults.load_seconds, help="per run (10)")
    add("--connections", type=int, default=defaults.connections, help="P5 connections (10)")
    add("--env-runs", type=int, default=defaults.env_runs, help="P6 runs per backend (3)")
    add("--pipeline-runs", type=int, default=defaults.pipeline_runs, help="P4 runs (1)")
    add("--base-image", default=os.environ.get("DEATHSTAR_BASE_IMAGE", defaults.base_image))
    add("--output-dir", type=Path, default=defaults.output_dir, help="default: bench/")
    add("--nox-python", default=defaults.nox_python, help=argparse.SUPPRESS)
    add("--test-session", default=defaults.test_session, help=argparse.SUPPRESS)
    args = parser.parse_args([*internal, *public])
    counts = ("runs", "start_runs", "load_runs", "connections", "env_runs", "pipeline_runs")
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.load_seconds <= 0:
        parser.error("--load-seconds must be positive")
    command = "nox -s bench" + (f" -- {shlex.join(public)}" if public else "")
    return Options(**vars(args), command=command)
