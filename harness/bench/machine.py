"""The facts about this machine that ``bench/results.json`` records next to the figures."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any


def read_meminfo(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+) kB", text, re.MULTILINE)
    return int(match[1]) * 1024 if match else None


def read_cpu_model(text: str) -> str | None:
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match[1].strip() if match else None


def read_os_name(text: str) -> str | None:
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?$', text, re.MULTILINE)
    return match[1] if match else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def machine(docker_version: str) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": read_cpu_model(_read("/proc/cpuinfo")),
        "memory_bytes": read_meminfo(_read("/proc/meminfo")),
        "os": read_os_name(_read("/etc/os-release")),
        "kernel": platform.release(),
        "docker_version": docker_version,
        "python": platform.python_version(),
    }
