"""TargetStore on real SQLite files: semantics, persistence and concurrent writers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest

from deathstar.models import Target, TargetState
from deathstar.storage import ConflictError, NotFoundError, StoreError, TargetStore

T = TypeVar("T")
THREADS = 16


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "targets.db"


@pytest.fixture
def store(db: Path) -> Iterator[TargetStore]:
    target_store = TargetStore(db)
    yield target_store
    target_store.close()


def parse_ts(value: str) -> datetime:
    assert value.endswith("Z")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_create_returns_the_stored_target(store: TargetStore) -> None:
    target = store.create("Alderaan", "Alderaan", shielded=False)
    assert isinstance(target, Target)
    assert target.id >= 1
    assert (target.name, target.system, target.shielded) == ("Alderaan", "Alderaan", False)
    assert target.status is TargetState.ACTIVE
    assert target.destroyed_at is None
    assert parse_ts(target.created_at).utcoffset() is not None
    assert store.get(target.id) == target


def test_dump() -> None:
    target = Target(
        id=1,
        name="a",
        system="b",
        shielded=True,
        status=TargetState.DESTROYED,
        created_at="c",
        destroyed_at="d",
    )
    assert target.model_dump(mode="json") == {
        "id": 1,
        "name": "a",
        "system": "b",
        "shielded": True,
        "status": "destroyed",
        "created_at": "c",
        "destroyed_at": "d",
    }


def test_shielded_is_stored(store: TargetStore) -> None:
    target = store.create("Scarif", "Abrion", shielded=True)
    assert target.shielded is True
    assert store.get(target.id).shielded is True


def test_duplicate_name_conflicts(store: TargetStore) -> None:
    store.create("Hoth", "Hoth", shielded=False)
    with pytest.raises(ConflictError, match="'Hoth' already exists"):
        store.create("Hoth", "elsewhere", shielded=True)
    assert store.list(limit=10, offset=0)[1] == 1


def test_names_are_case_sensitive(store: TargetStore) -> None:
    store.create("hoth", "x", shielded=False)
    store.create("Hoth", "x", shielded=False)
    assert store.list(limit=10, offset=0)[1] == 2


def test_errors_are_store_errors() -> None:
    assert issubclass(ConflictError, StoreError)
    assert issubclass(NotFoundError, StoreError)


def test_get_unknown(store: TargetStore) -> None:
    with pytest.raises(NotFoundError, match="target 99 does not exist"):
        store.get(99)


def test_list_pages_in_id_order(store: TargetStore) -> None:
    created = [store.create(f"t{i}", "s", shielded=False) for i in range(7)]
    assert store.list(limit=100, offset=0) == (created, 7)
    assert store.list(limit=3, offset=0) == (created[:3], 7)
    assert store.list(limit=3, offset=3) == (created[3:6], 7)
    assert store.list(limit=3, offset=6) == (created[6:], 7)
    assert store.list(limit=3, offset=7) == ([], 7)


def test_list_empty(store: TargetStore) -> None:
    assert store.list(limit=5, offset=0) == ([], 0)


def test_delete(store: TargetStore) -> None:
    keep = store.create("keep", "s", shielded=False)
    gone = store.create("gone", "s", shielded=False)
    store.delete(gone.id)
    with pytest.raises(NotFoundError):
        store.get(gone.id)
    with pytest.raises(NotFoundError, match=f"target {gone.id} does not exist"):
        store.delete(gone.id)
    assert store.list(limit=10, offset=0) == ([keep], 1)


def test_ids_are_not_reused_after_delete(store: TargetStore) -> None:
    first = store.create("a", "s", shielded=False)
    store.delete(first.id)
    second = store.create("a", "s", shielded=False)
    assert second.id > first.id


def test_fire_destroys(store: TargetStore) -> None:
    target = store.create("Alderaan", "Alderaan", shielded=False)
    fired = store.fire(target.id)
    assert fired.status is TargetState.DESTROYED
    assert fired.destroyed_at is not None
    assert parse_ts(fired.destroyed_at) >= parse_ts(fired.created_at)
    assert (fired.id, fired.name, fired.created_at) == (target.id, target.name, target.created_at)
    assert store.get(target.id) == fired


def test_fire_twice_conflicts(store: TargetStore) -> None:
    target = store.create("Alderaan", "Alderaan", shielded=False)
    fired = store.fire(target.id)
    with pytest.raises(ConflictError, match="already destroyed"):
        store.fire(target.id)
    assert store.get(target.id) == fired


def test_fire_shielded_conflicts(store: TargetStore) -> None:
    target = store.create("Hoth", "Hoth", shielded=True)
    with pytest.raises(ConflictError, match="shielded"):
        store.fire(target.id)
    assert store.get(target.id) == target


def test_fire_unknown(store: TargetStore) -> None:
    with pytest.raises(NotFoundError):
        store.fire(1)


def test_a_closed_store_has_a_problem(db: Path) -> None:
    store = TargetStore(db)
    assert store.problem() is None
    store.close()
    assert store.problem() is not None


def test_a_store_without_its_table_has_a_problem(store: TargetStore, db: Path) -> None:
    with closing(sqlite3.connect(db)) as other:
        other.execute("DROP TABLE targets")  # simulate a damaged database
    assert store.problem() is not None


def test_data_survives_reopening(db: Path) -> None:
    store = TargetStore(db)
    kept = store.create("Jedha", "Jedha", shielded=True)
    fired = store.fire(store.create("Alderaan", "Alderaan", shielded=False).id)
    store.close()

    reopened = TargetStore(db)
    try:
        assert reopened.list(limit=10, offset=0) == ([kept, fired], 2)
        with pytest.raises(ConflictError):
            reopened.create("Jedha", "x", shielded=False)
    finally:
        reopened.close()


def test_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "t.db"
    store = TargetStore(str(path))
    try:
        store.create("a", "b", shielded=False)
    finally:
        store.close()
    assert path.is_file()


def test_in_memory_store() -> None:
    store = TargetStore(":memory:")
    try:
        target = store.create("a", "b", shielded=False)
        assert store.get(target.id) == target
    finally:
        store.close()


# --- concurrency ---------------------------------------------------------------------------


def run_together(calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
    """Run every call on its own thread, released at once by a barrier; collect the outcomes."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | Exception:
        barrier.wait()
        try:
            return call()
        except Exception as exc:  # the outcome is what the test inspects
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def assert_exactly_one_hit(outcomes: list[Target | Exception], target_id: int) -> None:
    hits = [o for o in outcomes if isinstance(o, Target)]
    misses = [o for o in outcomes if not isinstance(o, Target)]
    assert len(hits) == 1, outcomes
    assert hits[0].id == target_id
    assert hits[0].status is TargetState.DESTROYED
    assert all(isinstance(o, ConflictError) for o in misses), misses
    assert all("already destroyed" in str(o) for o in misses)
    assert len(misses) == len(outcomes) - 1


def test_concurrent_fire_through_one_store(store: TargetStore) -> None:
    for round_ in range(5):
        target = store.create(f"target-{round_}", "s", shielded=False)
        outcomes = run_together([partial(store.fire, target.id)] * THREADS)
        assert_exactly_one_hit(outcomes, target.id)


def test_concurrent_fire_through_separate_connections(db: Path) -> None:
    # One store per thread: separate SQLite connections race as separate processes would.
    stores = [TargetStore(db) for _ in range(THREADS)]
    try:
        for round_ in range(5):
            target = stores[0].create(f"target-{round_}", "s", shielded=False)
            outcomes = run_together([partial(s.fire, target.id) for s in stores])
            assert_exactly_one_hit(outcomes, target.id)
            assert all(s.get(target.id).status is TargetState.DESTROYED for s in stores)
    finally:
        for s in stores:
            s.close()


def test_two_stores_fire_concurrently(db: Path) -> None:
    first, second = TargetStore(db), TargetStore(db)
    try:
        for round_ in range(10):
            target = first.create(f"target-{round_}", "s", shielded=False)
            outcomes = run_together(
                [partial(first.fire, target.id), partial(second.fire, target.id)]
            )
            assert_exactly_one_hit(outcomes, target.id)
    finally:
        first.close()
        second.close()


def test_concurrent_creates_keep_every_row(db: Path) -> None:
    per_thread = 20
    stores = [TargetStore(db) for _ in range(4)]
    try:

        def create_many(worker: int) -> list[Target]:
            store = stores[worker % len(stores)]
            return [store.create(f"w{worker}-{i}", "s", shielded=False) for i in range(per_thread)]

        outcomes = run_together([partial(create_many, w) for w in range(THREADS)])
        created = [t for result in outcomes if isinstance(result, list) for t in result]
        assert not [o for o in outcomes if isinstance(o, Exception)]
        rows, total = stores[0].list(limit=1000, offset=0)
        assert total == THREADS * per_thread
        assert len({t.id for t in created}) == total
        assert {t.name for t in rows} == {
            f"w{w}-{i}" for w in range(THREADS) for i in range(per_thread)
        }
        assert sorted(created, key=lambda t: t.id) == rows
    finally:
        for s in stores:
            s.close()


def test_concurrent_creates_of_one_name_admit_one(db: Path) -> None:
    stores = [TargetStore(db) for _ in range(4)]
    try:
        calls = [partial(s.create, "only", "s", shielded=False) for s in stores] * 4
        outcomes = run_together(calls)
        assert len([o for o in outcomes if isinstance(o, Target)]) == 1
        assert all(isinstance(o, ConflictError) for o in outcomes if not isinstance(o, Target))
        assert stores[0].list(limit=10, offset=0)[1] == 1
    finally:
        for s in stores:
            s.close()
