"""The queue under concurrency on both databases: concurrent /next calls fill their batches
(PostgreSQL claims rows with FOR UPDATE SKIP LOCKED instead of all racing for the same items),
counters stay exact, and transient conflicts (deadlocks) are retried, not answered with 500."""

import threading

import pytest
from conftest import annotate_records
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from rlxf.server import queue
from rlxf.server.security import lookup_user
from rlxf.store import Assignment, Item
from rlxf.store.conflicts import StillConflicting, conflict_kind, retry_conflicts


def _users(site, n):
    return [lookup_user(site.store, site.annotator()["Authorization"].split()[1], "bearer")
            for _ in range(n)]


def _at_once(fn, args_list):
    """Run fn(*args) for every args in parallel threads that start together."""
    barrier = threading.Barrier(len(args_list))
    results, errors = [None] * len(args_list), []

    def go(i, args):
        barrier.wait()
        try:
            results[i] = fn(*args)
        except Exception as e:  # noqa: BLE001 - asserted by the callers
            errors.append(repr(e))

    threads = [threading.Thread(target=go, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def _counters_match(store, overlap):
    with store.read() as s:
        counted = dict(s.execute(select(Assignment.item_id, func.count(Assignment.id))
                                 .group_by(Assignment.item_id)).all())
        items = list(s.scalars(select(Item)))
    for item in items:
        assert item.n_assigned == counted.get(item.id, 0) <= overlap
    return sum(counted.values())


def test_concurrent_next_calls_all_get_full_batches(annotate_site):
    """The issue's case: 20 annotators ask at once on a 500-item project (k = 3, 1,500 open
    slots): every batch is full (PostgreSQL used to hand 17 of 20 an empty one)."""
    site = annotate_site
    p = site.project(annotate_records(500), overlap=3, gold_count=0)
    users = _users(site, 20)
    results, errors = _at_once(queue.next_assignments, [(site.store, u, p["id"], 20)
                                                          for u in users])
    assert errors == []
    assert [len(batch) for batch, _waiting in results] == [20] * 20
    assert not any(waiting for _batch, waiting in results)
    for batch, _ in results:  # nobody gets an item twice
        assert len({a["item_id"] for a in batch}) == 20
    assert _counters_match(site.store, 3) == 400


def test_concurrent_next_calls_drain_the_project_exactly(annotate_site):
    """Fewer slots than asked for: concurrent calls hand out every slot (12 items x k = 2),
    none twice, and an annotator is told "nothing left" only when no item is left for them."""
    site = annotate_site
    p = site.project(annotate_records(12), overlap=2, gold_count=0)
    users = _users(site, 10)
    results, errors = _at_once(queue.next_assignments, [(site.store, u, p["id"], 8)
                                                          for u in users])
    assert errors == []
    assert _counters_match(site.store, 2) == 24 == sum(len(b) for b, _ in results)
    for (batch, waiting), user in zip(results, users):
        assert not waiting
        if len(batch) < 8:  # short: nothing left that this annotator does not already hold
            again, _ = queue.next_assignments(site.store, user, p["id"], 8)
            assert [a["id"] for a in again] == [a["id"] for a in batch]


class _Orig(Exception):
    def __init__(self, sqlstate):
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_deadlocks_are_retried_and_other_errors_are_not():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("UPDATE items", {}, _Orig("40P01"))
        return "done"

    assert retry_conflicts(flaky, base_s=0.0) == "done" and len(calls) == 3
    assert conflict_kind(OperationalError("x", {}, _Orig("40001"))) == "serialisation failure"
    assert conflict_kind(OperationalError("x", {}, _Orig("23505"))) is None

    def always():
        raise OperationalError("UPDATE items", {}, _Orig("40P01"))

    with pytest.raises(StillConflicting, match="deadlock on every one of 4 attempts"):
        retry_conflicts(always, attempts=4, base_s=0.0)

    def broken():
        calls.append(1)
        raise OperationalError("x", {}, _Orig("23505"))

    calls.clear()
    with pytest.raises(OperationalError):
        retry_conflicts(broken, base_s=0.0)
    assert len(calls) == 1
