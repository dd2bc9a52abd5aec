"""`.ci/provision`'s functions, sourced into bash: what the rootfs steps may touch, signals.

The script runs as root and deletes under a root file system that debootstrap made; these
tests give it hostile trees (symlinks out of the rootfs) next to a stand-in host directory
and check that nothing outside the rootfs changes.
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


# path, then content: a stand-in host's files to keep, and a fresh rootfs's files.
HOST_FILES = """
usr/share/doc/bash/README       host doc
usr/share/doc/bash/copyright    host copyright
usr/share/man/man1/bash.1       host man page
usr/bin/python3                 host python
etc/dpkg/dpkg.cfg.d/host        host setting
etc/resolv.conf                 nameserver 192.0.2.1
var/log/host.log                host log
"""
ROOTFS_FILES = """
usr/share/doc/python3/README                    doc
usr/share/doc/python3/copyright                 copyright
usr/share/man/man1/python3.1                    man
usr/share/locale/de/LC_MESSAGES/x.mo            mo
usr/bin/python3                                 python
etc/dpkg/dpkg.cfg.d/excludes
etc/resolv.conf                                 nameserver 192.0.2.53
etc/hostname                                    buildhost
var/log/dpkg.log                                log
var/lib/apt/lists/deb.debian.org_Packages       lists
var/cache/apt/pkgcache.bin                      cache
"""


def write_tree(root: Path, table: str) -> Path:
    for line in filter(None, table.splitlines()):
        rel, _, text = line.partition(" ")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text.strip())
    return root


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A stand-in for the host: docs, man pages and a dpkg configuration to keep."""
    return write_tree(tmp_path / "host", HOST_FILES)


def make_rootfs(work: Path) -> Path:
    return write_tree(work / "rootfs", ROOTFS_FILES)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_slim_and_finish_a_real_rootfs(work: Path, host: Path) -> None:
    rootfs = make_rootfs(work)
    # A link inside the tree that points at the host: removed as a link, its target kept.
    (rootfs / "usr/share/doc/evil").symlink_to(host / "usr/share/doc/bash")
    before = files_under(host)
    result = provision(work, 'finish_rootfs "$1" && slim_rootfs "$1"', str(rootfs))
    assert result.returncode == 0, result.stderr
    assert files_under(host) == before
    assert (rootfs / "usr/share/doc/python3/copyright").is_file()
    assert not (rootfs / "usr/share/doc/python3/README").exists()
    assert not (rootfs / "usr/share/doc/evil").is_symlink()
    assert not (rootfs / "usr/share/man/man1").exists()
    assert not (rootfs / "usr/share/locale/de").exists()
    assert not (rootfs / "var/log/dpkg.log").exists()
    assert not (rootfs / "var/lib/apt/lists/deb.debian.org_Packages").exists()
    assert not (rootfs / "var/cache/apt/pkgcache.bin").exists()
    assert (
        "path-exclude /usr/share/doc/*" in (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").read_text()
    )
    assert (rootfs / "etc/resolv.conf").read_text() == ""
    assert (rootfs / "etc/hostname").read_text() == ""
    assert (rootfs / "usr/bin/python").readlink() == Path("python3")
    assert (rootfs / "usr/local/bin/python").readlink() == Path("/usr/bin/python3")


@pytest.mark.parametrize("linked", ["usr", "usr/share", "etc", "etc/dpkg/dpkg.cfg.d", "var"])
def test_a_symlink_out_of_the_rootfs_is_refused_and_nothing_outside_changes(
    work: Path, host: Path, linked: str
) -> None:
    rootfs = make_rootfs(work)
    target = rootfs / linked
    subprocess.run(["rm", "-rf", str(target)], check=True)
    target.symlink_to(host / linked)
    before = files_under(host)
    result = provision(work, 'slim_rootfs "$1"', str(rootfs))
    assert result.returncode != 0
    assert "refusing" in result.stderr or "has no etc/dpkg" in result.stderr
    assert files_under(host) == before
    assert not (host / "etc/dpkg/dpkg.cfg.d/docker-slim").exists()


def test_finish_rootfs_replaces_links_instead_of_writing_through_them(
    work: Path, host: Path
) -> None:
    rootfs = make_rootfs(work)
    (rootfs / "etc/resolv.conf").unlink()
    (rootfs / "etc/resolv.conf").symlink_to(host / "etc/resolv.conf")
    (rootfs / "usr/local/bin").mkdir(parents=True)
    (rootfs / "usr/local/bin/python").symlink_to(host / "usr/bin/python3")
    before = files_under(host)
    result = provision(work, 'finish_rootfs "$1"', str(rootfs))
    assert result.returncode == 0, result.stderr
    assert files_under(host) == before
    assert not (rootfs / "etc/resolv.conf").is_symlink()
    assert (rootfs / "usr/local/bin/python").readlink() == Path("/usr/bin/python3")


# Only the stand-in host is ever handed to slim_rootfs: were the check broken, the test must
# not be what deletes a real host's files. The real root's spellings go to the check alone.
@pytest.mark.parametrize("path", ["", "{host}", "{work}/../host", "{work}/rootfs/../../host"])
def test_a_root_outside_the_work_directory_is_refused(work: Path, host: Path, path: str) -> None:
    make_rootfs(work)
    before = files_under(host)
    result = provision(work, 'slim_rootfs "$1"', path.format(host=host, work=work))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("provision: error: ")
    assert files_under(host) == before


@pytest.mark.parametrize("path", ["/", "/.", "//", "/tmp/..", "/var/tmp", "{work}"])  # noqa: S108
def test_the_hosts_root_is_never_a_rootfs_of_ours(work: Path, path: str) -> None:
    result = provision(work, 'require_own_rootfs "$1"', path.format(work=work))
    assert result.returncode != 0
    assert result.stderr.startswith("provision: error: ")


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
