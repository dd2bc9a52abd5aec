"""The port file `deathstar api --port-file` writes: what it says, and how it is replaced."""

from __future__ import annotations

from pathlib import Path

from deathstar import portfile
from deathstar.portfile import Listening, PortFile


def test_what_the_file_says_reads_back(tmp_path: Path) -> None:
    written = PortFile(tmp_path / "port")
    written.prepare()
    written.publish(Listening("127.0.0.1", 8080, 42))
    assert portfile.read(tmp_path / "port") == Listening("127.0.0.1", 8080, 42)
    assert (tmp_path / "port").read_text() == '{"host": "127.0.0.1", "port": 8080, "pid": 42}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["port"]  # no temporary file left


def test_urls_of_v4_and_v6_addresses() -> None:
    assert Listening("127.0.0.1", 80, 1).url == "http://127.0.0.1:80"
    assert Listening("::1", 80, 1).url == "http://[::1]:80"


def test_prepare_removes_a_stale_file_and_remove_only_its_own(tmp_path: Path) -> None:
    path = tmp_path / "port"
    path.write_text("stale")
    mine = PortFile(path)
    mine.prepare()
    assert not path.exists()  # a reader no longer finds the old address
    mine.remove()  # nothing published: only the temporary file goes
    assert list(tmp_path.iterdir()) == []
    mine.prepare()
    mine.publish(Listening("127.0.0.1", 1, 2))
    path.write_text("another server's")  # written since: not ours to remove
    mine.remove()
    assert path.read_text() == "another server's"
