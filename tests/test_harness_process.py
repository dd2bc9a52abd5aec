"""The harness's one process runner, against real child processes of this interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import HarnessError
from harness.core import process


def test_reason_prefers_the_last_error_line() -> None:
    output = "Collecting x\nERROR: no single file to hash\nnox > Session test-3.11 failed.\n"
    assert process.reason(output) == "ERROR: no single file to hash"
    assert process.reason("a\nb\n") == "b"
    assert process.reason("") == "no output"


def test_run_command_outcomes(tmp_path: Path) -> None:
    python = sys.executable
    assert process.run([python, "-c", "print('hi')"]) == "hi\n"
    merged = process.run(
        [python, "-c", "import sys; print('out'); print('err', file=sys.stderr)"], merge=True
    )
    assert "out" in merged
    assert "err" in merged
    with pytest.raises(process.CommandError, match=r"exit 3\): error: bad") as failed:
        process.run([python, "-c", "print('error: bad'); print('x'); raise SystemExit(3)"])
    assert "error: bad" in failed.value.output
    with pytest.raises(HarnessError, match="is not installed"):
        process.run([str(tmp_path / "missing")])
    with pytest.raises(HarnessError, match=r"did not finish within 0\.1 s"):
        process.run([python, "-c", "import time; time.sleep(5)"], timeout=0.1)


def test_run_passes_stdin_and_never_inherits_the_terminal() -> None:
    echo = [sys.executable, "-c", "import sys; print(sys.stdin.read() or 'empty')"]
    assert process.run(echo, stdin="secret") == "secret\n"
    assert process.run(echo) == "empty\n"


def test_a_failure_names_the_command_but_not_its_later_arguments() -> None:
    with pytest.raises(process.CommandError) as failed:
        process.run([sys.executable, "-c", "raise SystemExit(2)", "--password=hunter2"])
    assert "hunter2" not in str(failed.value)
    assert failed.value.returncode == 2
