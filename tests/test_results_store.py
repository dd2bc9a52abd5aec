"""The results store: atomic writes, a bound with oldest-first eviction, every bad entry a miss."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.results.store import FORMAT, Store, open_store

KEY_A, KEY_B, KEY_C = ("a" * 64, "b" * 64, "c" * 64)


def test_an_entry_comes_back_as_it_was_stored(tmp_path: Path) -> None:
    results = Store(tmp_path / "results", 10_000)
    assert results.get(KEY_A) is None
    assert results.put(KEY_A, {"summary": "795 tests", "outputs": {"dist/x": "ab"}})
    assert results.get(KEY_A) == {"summary": "795 tests", "outputs": {"dist/x": "ab"}}


def test_a_write_is_atomic_a_rename_over_the_old_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = Store(tmp_path, 10_000)
    results.put(KEY_A, {"n": 1})
    replaced: list[tuple[str, Path]] = []
    real_replace = os.replace

    def replace(source: str, target: Path) -> None:
        # Before the rename the old entry is still whole, and the new bytes are complete.
        assert results.get(KEY_A) == {"n": 1}
        assert json.loads(Path(source).read_text())["entry"] == {"n": 2}
        replaced.append((source, target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    results.put(KEY_A, {"n": 2})
    assert len(replaced) == 1
    assert Path(replaced[0][1]) == results.path(KEY_A)
    assert results.get(KEY_A) == {"n": 2}
    assert [p.name for p in tmp_path.iterdir()] == [f"{KEY_A}.json"]  # no temporary left


def test_a_failed_write_leaves_no_temporary_and_no_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    assert not Store(tmp_path, 10_000).put(KEY_A, {"n": 1})
    assert list(tmp_path.iterdir()) == []


def test_the_store_stays_under_its_bound_evicting_the_oldest_first(tmp_path: Path) -> None:
    entry = {"pad": "x" * 200}
    size = len(json.dumps({"format": FORMAT, "key": KEY_A, "entry": entry}, sort_keys=True))
    results = Store(tmp_path, 2 * size + size // 2)  # room for two
    for age, key in enumerate((KEY_A, KEY_B)):
        results.put(key, entry)
        os.utime(results.path(key), ns=(10**9 * (age + 1),) * 2)
    results.put(KEY_C, entry)
    assert results.get(KEY_A) is None
    assert results.get(KEY_B) == entry
    assert results.get(KEY_C) == entry
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= results.max_bytes


def test_a_hit_counts_as_a_use_for_eviction(tmp_path: Path) -> None:
    entry = {"pad": "x" * 200}
    size = len(json.dumps({"format": FORMAT, "key": KEY_A, "entry": entry}, sort_keys=True))
    results = Store(tmp_path, 2 * size + size // 2)
    for age, key in enumerate((KEY_A, KEY_B)):
        results.put(key, entry)
        os.utime(results.path(key), ns=(10**9 * (age + 1),) * 2)
    assert results.get(KEY_A) == entry  # now the newest
    results.put(KEY_C, entry)
    assert results.get(KEY_B) is None
    assert results.get(KEY_A) == entry


def test_an_entry_larger_than_the_store_is_not_stored(tmp_path: Path) -> None:
    results = Store(tmp_path, 100)
    assert not results.put(KEY_A, {"pad": "x" * 200})
    assert results.get(KEY_A) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"format": 1, "key": "' + KEY_A.encode() + b'", "entry": {"n"',  # truncated
        b"\xff\xfe not utf-8",
        b"[1, 2]",
        b'{"format": 1, "key": "' + KEY_A.encode() + b'", "entry": [1]}',
        b'{"format": 2, "key": "' + KEY_A.encode() + b'", "entry": {}}',  # other format
        b'{"key": "' + KEY_A.encode() + b'", "entry": {}}',
        b'{"format": 1, "key": "' + KEY_B.encode() + b'", "entry": {}}',  # another key's
        b"[" * 100_000,
    ],
)
def test_a_corrupt_or_foreign_entry_is_a_miss(tmp_path: Path, content: bytes) -> None:
    results = Store(tmp_path, 1_000_000)
    results.path(KEY_A).write_bytes(content)
    assert results.get(KEY_A) is None


def test_a_well_formed_entry_written_by_hand_is_read(tmp_path: Path) -> None:
    # The counterpart of the corrupt cases: the same layout with the right fields is a hit.
    results = Store(tmp_path, 1_000_000)
    document = {"format": FORMAT, "key": KEY_A, "entry": {"n": 1}}
    results.path(KEY_A).write_text(json.dumps(document))
    assert results.get(KEY_A) == {"n": 1}


def test_an_entry_that_is_a_symlink_is_a_miss(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"format": FORMAT, "key": KEY_A, "entry": {"n": 1}}))
    results = Store(tmp_path / "results", 1_000_000)
    results.root.mkdir()
    results.path(KEY_A).symlink_to(outside)
    assert results.get(KEY_A) is None


def test_an_entry_that_is_a_directory_or_unreadable_is_a_miss(tmp_path: Path) -> None:
    results = Store(tmp_path, 1_000_000)
    results.path(KEY_A).mkdir()
    assert results.get(KEY_A) is None
    assert Store(tmp_path / "absent", 1_000_000).get(KEY_B) is None


@pytest.mark.parametrize("key", ["../" + "a" * 61, "A" * 64, "a" * 63, "/etc/passwd", ""])
def test_only_hex_keys_name_entries(tmp_path: Path, key: str) -> None:
    results = Store(tmp_path, 1_000_000)
    assert results.get(key) is None
    with pytest.raises(ValueError, match="not a results key"):
        results.put(key, {"n": 1})


def test_the_store_is_where_the_environment_says(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    opened = open_store(home)
    assert opened is not None
    assert opened.root == tmp_path / ".cache/deathstar/results"
    opened = open_store({**home, "XDG_CACHE_HOME": str(tmp_path / "x")})
    assert opened is not None
    assert opened.root == tmp_path / "x/deathstar/results"
    opened = open_store({**home, "DEATHSTAR_CACHE_DIR": str(tmp_path / "d")})
    assert opened is not None
    assert opened.root == tmp_path / "d"
    opened = open_store({**home, "DEATHSTAR_CACHE_MAX_BYTES": "1000"})
    assert opened is not None
    assert opened.max_bytes == 1000


@pytest.mark.parametrize("value", ["off", "OFF", " off "])
def test_the_switch_turns_the_cache_off(value: str) -> None:
    assert open_store({"HOME": "/h", "DEATHSTAR_CACHE": value}) is None
    assert open_store({"HOME": "/h", "DEATHSTAR_CACHE": "on"}) is not None


def test_eviction_removes_only_the_stores_own_entries(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{}" * 100)  # a folder the user pointed us at
    store = Store(tmp_path, 300)
    for n in range(4):
        store.put(f"{n:064x}", {"n": n, "pad": "x" * 50})
    assert (tmp_path / "package.json").exists()
