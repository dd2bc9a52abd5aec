"""The release's audit of the runtime lock (``python -m harness.core.audit``), failing closed:
a package that could not be looked up (no vulnerability data here) or a known vulnerability
fails it in one line; only pip-audit's clean report clears the lock."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from harness import HarnessError
from harness.core import locks, process

AUDIT_TIMEOUT = 600.0
UNREACHABLE = re.compile(
    r"could not be audited|not found on PyPI|Connection|Max retries|Timeout|HTTPError",
    re.IGNORECASE,
)
VULNERABILITY_ID = re.compile(r"\b(GHSA(?:-[0-9a-z]{4}){3}|PYSEC-\d+-\d+|CVE-\d+-\d+)\b")


def audit_command(pip_audit: str, lock: Path) -> list[str]:
    """The lock as the image installs it: hash-checked, every dependency pinned (no resolver)."""
    return [
        pip_audit, "--strict", "--require-hashes", "--disable-pip", "--progress-spinner", "off",
        "--desc", "off", "--requirement", str(lock),
    ]  # fmt: skip


def audit(lock: Path, bin_dir: str, runner: process.Runner = process.run) -> str:
    """pip-audit's report when it clears ``lock``; else one line on why it did not."""
    try:
        return runner(audit_command(f"{bin_dir}/pip-audit", lock), timeout=AUDIT_TIMEOUT).strip()
    except process.CommandError as exc:
        found = sorted(set(VULNERABILITY_ID.findall(exc.output)))
        if found:
            raise HarnessError(
                f"pip-audit found known vulnerabilities in {lock.name}: {', '.join(found)}; "
                "update the affected packages (`nox -s lock`) before releasing"
            ) from None
        if UNREACHABLE.search(exc.output):
            raise HarnessError(
                f"{lock.name} could not be audited: pip-audit cannot reach PyPI's vulnerability "
                f"data here ({process.reason(exc.output)}); not cleared, so no release from here"
            ) from None
        raise HarnessError(
            f"pip-audit failed on {lock.name}: {process.reason(exc.output)}"
        ) from None


def main() -> int:
    """``python -m harness.core.audit`` in a venv that has pip-audit: the runtime lock's audit."""
    return process.main_of(
        "audit", lambda: audit(locks.RUNTIME.path, str(Path(sys.executable).parent))
    )


if __name__ == "__main__":
    sys.exit(main())
