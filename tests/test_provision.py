"""`.ci/provision`'s functions, sourced into bash: the archive's date, signals, settings.

The base's root file system is made by mmdebstrap in a chroot of its own (its hooks run inside
it), so the script itself deletes nothing under a tree it did not make but its work directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import ROOT

SCRIPT = ROOT / ".ci" / "provision"


def provision(
    work: Path, body: str, *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in bash after sourcing the script, with WORK_DIR=``work``.

    The script's EXIT trap removes WORK_DIR; after a ``body`` that succeeded it is lifted so
    the test can look at the result (after a failure it runs, and must not leave the tree).
    """
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work.parent),
        "DEATHSTAR_PROVISION_LOG": str(work.parent / "tool.log"),
    }
    command = f'source "{SCRIPT}"; WORK_DIR="$1"; shift; {body}; trap - EXIT'
    return subprocess.run(
        ["bash", "-c", command, "provision-test", str(work), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def files_under(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): p.read_text() if p.is_file() and not p.is_symlink() else "<->"
        for p in sorted(path.rglob("*"))
    }


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    "mirror", ["http://deb.debian.org/debian", "https://deb.debian.org/debian/"]
)
def test_the_archive_date_is_read_from_the_release_file_apt_fetched(
    work: Path, mirror: str
) -> None:
    lists = work.parent / "lists"
    lists.mkdir()
    release = "Origin: Debian\nDate: Sat, 11 Jul 2026 10:16:37 UTC\nValid-Until: never\n"
    (lists / "deb.debian.org_debian_dists_bookworm_InRelease").write_text(release)
    (lists / "deb.debian.org_debian_dists_bookworm-updates_InRelease").write_text("Date: other\n")
    result = provision(work, 'archive_date "$1" "$2"', mirror, str(lists))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Sat, 11 Jul 2026 10:16:37 UTC\n"


def test_without_a_release_file_the_archive_date_is_one_error_line(work: Path) -> None:
    result = provision(work, 'archive_date "$1" "$2"', "http://deb.example/debian", str(work))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("provision: error: no Release file of bookworm")


def test_a_signal_stops_the_tool_before_the_work_directory_goes(work: Path) -> None:
    pidfile = work.parent / "grandchild.pid"
    body = (
        'mkdir -p "$WORK_DIR/rootfs"; '
        f"run_logged \"a long tool\" sh -c 'sleep 60 & echo $! > {pidfile}; wait'"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work.parent),
        "DEATHSTAR_PROVISION_LOG": str(work.parent / "tool.log"),
    }
    script = subprocess.Popen(
        ["bash", "-c", f'source "{SCRIPT}"; WORK_DIR="$1"; {body}', "t", str(work)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(200):  # bounded: the tool writes its pid at once
            if pidfile.is_file() and pidfile.read_text().strip():
                break
            time.sleep(0.05)
        grandchild = int(pidfile.read_text())
        script.send_signal(signal.SIGTERM)
        _, stderr = script.communicate(timeout=30)
    finally:
        script.kill()
    assert script.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in stderr
    assert not Path(f"/proc/{grandchild}").exists() or _is_zombie(grandchild)
    assert not work.exists()  # removed, and only after the tool had stopped


def _is_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.parametrize(
    ("ref", "valid"),
    [
        ("python:3.11-slim-bookworm", True),
        ("registry:2", True),
        ("127.0.0.1:5000/team/base:1.0", True),
        ("ghcr.io/tea-n-tech/deathstar@sha256:" + "a" * 64, True),
        ("python:3.11 ; rm -rf /", False),
        ("python:3.11\nFROM evil", False),
        ("$(id)", False),
        ("", False),
        ("UPPER/case", False),
    ],
)
def test_image_references_are_validated(work: Path, ref: str, valid: bool) -> None:
    result = provision(work, 'valid_image_ref "$1"', ref)
    assert (result.returncode == 0) is valid


def test_a_bad_base_image_setting_is_one_line(work: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "DEATHSTAR_BASE_IMAGE": "x; rm -rf /"}
    result = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith("provision: error: BASE_IMAGE=")
    assert result.stderr.count("\n") == 1


# --- the engine's daemon.json ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b'\xef\xbb\xbf{"features": {"containerd-snapshotter": true}}',
            "is not JSON dockerd reads",
        ),
        (b'[{"features": {"containerd-snapshotter": true}}]', 'is not a JSON object with a "feat'),
        (b"features: {containerd-snapshotter: true}", "is not JSON dockerd reads"),
        (b'{"features": true}', 'is not a JSON object with a "features" object'),
        (b'{"debug": 1' + b"0" * 5000 + b"}", "is not JSON dockerd reads"),
        (b'{"a": "\xff"}', "is not JSON dockerd reads"),
    ],
    ids=["bom", "list", "garbage", "features-not-object", "huge-int", "not-utf8"],
)
def test_a_daemon_json_it_cannot_read_stops_provision(
    work: Path, content: bytes, problem: str
) -> None:
    """PoC: an unparsable file counted as "store already enabled", and dockerd was restarted
    without it."""
    daemon_json = work.parent / "daemon.json"
    daemon_json.write_bytes(content)
    result = provision(
        work, 'enable_containerd_store "$1"; echo "ACTIONS: ${ACTIONS[*]}"', str(daemon_json)
    )
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(f"provision: error: {daemon_json} {problem}")
    assert result.stderr.endswith("; fix or remove it, then run again\n")
    assert result.stderr.count("\n") == 1, result.stderr
    assert daemon_json.read_bytes() == content  # left as it was


@pytest.mark.parametrize(
    ("content", "expected", "enabled"),
    [
        (None, {"features": {"containerd-snapshotter": True}}, True),
        (b"  \n", {"features": {"containerd-snapshotter": True}}, True),
        (b'{"debug": true}', {"debug": True, "features": {"containerd-snapshotter": True}}, True),
        (
            b'{"features": {"containerd-snapshotter": false}}',
            {"features": {"containerd-snapshotter": True}},
            True,
        ),
        (
            b'{"features": {"containerd-snapshotter": true}}',
            {"features": {"containerd-snapshotter": True}},
            False,
        ),
    ],
    ids=["missing", "blank", "other-settings", "disabled", "enabled"],
)
def test_the_containerd_store_is_enabled_keeping_other_settings(
    work: Path, content: bytes | None, expected: dict[str, object], enabled: bool
) -> None:
    daemon_json = work.parent / "docker" / "daemon.json"
    if content is not None:
        daemon_json.parent.mkdir()
        daemon_json.write_bytes(content)
    result = provision(
        work, 'enable_containerd_store "$1"; echo "ACTIONS: ${ACTIONS[*]}"', str(daemon_json)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(daemon_json.read_text()) == expected
    assert ("enabled the containerd image store" in result.stdout) is enabled
