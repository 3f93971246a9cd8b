"""Fault tolerance: a crash, a hang or a bad object costs one task, never the pool."""

from __future__ import annotations

import signal
from collections import Counter

import _tasks
import pytest


def _only_failure(rec, ids, culprit):
    for task in ids:
        if task != culprit:
            assert rec.terminal(task)[0][0] == "task_completed", (task, rec.of(task))
    return rec.error(culprit)


@pytest.mark.parametrize(
    "func, args, how",
    [
        (_tasks.exit_after, (0.3, 1), "exited with code 1"),
        (_tasks.kill_self, (0.3, signal.SIGKILL), "SIGKILL"),  # what the OOM killer sends
        (_tasks.segfault, (0.3,), "SIGSEGV"),  # a segfault inside C code
    ],
)
def test_worker_death_costs_only_the_task_it_ran(manager, record, qtbot, func, args, how):
    rec = record(manager)
    a = manager.submit_task("A", _tasks.sleep_then, args=(1.5, "A"))
    x = manager.submit_task("X", func, args=args)
    rest = [manager.submit_task(n, _tasks.add, args=(i, 1)) for i, n in enumerate("BCD")]
    rec.wait(qtbot, a, x, *rest, timeout=60)
    error = _only_failure(rec, [a, x, *rest], x)
    assert error.startswith("WorkerDied:") and "died" in error and how in error
    assert rec.result(a) == "A"
    assert [rec.result(t) for t in rest] == [1, 2, 3]
    # no restart needed: the next submission just works
    again = manager.submit_task("again", _tasks.add, args=(5, 5))
    rec.wait(qtbot, again)
    assert rec.result(again) == 10
    assert rec.counts()[-1] == 0


def test_innocent_running_task_fails_when_resubmission_is_off(make_manager, record, qtbot):
    manager = make_manager(resubmit_on_crash=False)
    rec = record(manager)
    a = manager.submit_task("A", _tasks.sleep_then, args=(1.5, "A"))
    qtbot.waitUntil(lambda: "task_started" in rec.names(a), timeout=30000)
    x = manager.submit_task("X", _tasks.exit_after, args=(0.3, 3))
    later = manager.submit_task("later", _tasks.add, args=(1, 1))
    rec.wait(qtbot, a, x, later, timeout=60)
    assert "exited with code 3" in rec.error(x)
    assert "not re-run" in rec.error(a)
    assert rec.result(later) == 2


def test_worker_recycling_does_not_stall(make_manager, record, qtbot):
    # CPython gh-115634: with 2 workers recycled every 15 tasks, 300 tasks stop at 30.
    manager = make_manager(max_workers=2, max_tasks_per_child=15)
    rec = record(manager)
    batch = manager.submit_task_batch([{"name": f"t{i}", "func": _tasks.pid} for i in range(300)])
    ids = [t for t in manager.task_info if manager.task_info[t]["batch_id"] == batch]
    rec.wait(qtbot, *ids, timeout=120)
    pids = Counter(rec.result(t) for t in ids)
    assert sum(pids.values()) == 300
    assert max(pids.values()) <= 15
    assert len(pids) >= 20


def test_cancel_running_task_cooperatively(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("loop", _tasks.loop_with_progress, args=(30,))
    other = manager.submit_task("other", _tasks.sleep_then, args=(1.0, "other"))
    qtbot.waitUntil(lambda: "task_message" in rec.names(task), timeout=30000)
    pids = manager.worker_pids()
    assert manager.cancel_task(task) is True
    rec.wait(qtbot, task, other)
    assert rec.terminal(task)[0][0] == "task_cancelled"
    assert "task_completed" not in rec.names(task)
    assert rec.result(other) == "other"
    assert manager.worker_pids() == pids  # stopped by itself: no worker was replaced


def test_cancel_running_task_that_never_reports_terminates_its_worker(make_manager, record, qtbot):
    manager = make_manager(cancel_grace=0.3)
    rec = record(manager)
    called = []
    stuck = manager.submit_task(
        "stuck", _tasks.sleep_then, lambda r: called.append(r), args=(60, "x")
    )
    other = manager.submit_task("other", _tasks.sleep_then, args=(1.0, "other"))
    qtbot.waitUntil(
        lambda: "task_started" in rec.names(stuck) and "task_started" in rec.names(other),
        timeout=30000,
    )
    assert manager.cancel_task(stuck) is True
    rec.wait(qtbot, stuck, other, timeout=60)
    assert [e[0] for e in rec.terminal(stuck)] == ["task_cancelled"]
    assert rec.result(other) == "other"  # re-run from the start in a fresh pool
    qtbot.wait(200)
    assert rec.names(stuck).count("task_cancelled") == 1 and not called


def test_cancel_batch(make_manager, record, qtbot):
    manager = make_manager(cancel_grace=0.3)
    rec = record(manager)
    batch = manager.submit_task_batch(
        [{"name": f"s{i}", "func": _tasks.sleep_then, "args": (30,)} for i in range(5)],
        max_concurrent=2,
    )
    keep = manager.submit_task("keep", _tasks.add, args=(1, 2))
    ids = [t for t in manager.task_info if manager.task_info[t]["batch_id"] == batch]
    qtbot.waitUntil(lambda: sum("task_started" in rec.names(t) for t in ids) == 2, timeout=30000)
    assert manager.cancel_batch(batch) == 5
    rec.wait(qtbot, keep, *ids, timeout=60)
    assert all(rec.terminal(t)[0][0] == "task_cancelled" for t in ids)
    assert rec.result(keep) == 3
    assert manager.cancel_batch(batch) == 0


def test_timeout_fails_the_task_and_replaces_its_worker(manager, record, qtbot):
    rec = record(manager)
    slow = manager.submit_task("slow", _tasks.sleep_then, args=(60,), timeout=0.5)
    fine = manager.submit_task("fine", _tasks.sleep_then, args=(1.0, "fine"), timeout=30)
    batch = manager.submit_task_batch(
        [{"name": "b", "func": _tasks.sleep_then, "args": (60,), "timeout": 0.4}]
    )
    (in_batch,) = [t for t in manager.task_info if manager.task_info[t]["batch_id"] == batch]
    rec.wait(qtbot, slow, fine, in_batch, timeout=60)
    assert "timed out after 0.5 s" in rec.error(slow)
    assert "timed out after 0.4 s" in rec.error(in_batch)
    assert rec.result(fine) == "fine"
    after = manager.submit_task("after", _tasks.add, args=(2, 2))
    rec.wait(qtbot, after)
    assert rec.result(after) == 4


def test_io_task_timeout_and_cancel(manager, record, qtbot):
    rec = record(manager)
    slow = manager.submit_io_task("slow io", _tasks.sleep_then, args=(2, "late"), timeout=0.2)
    loop = manager.submit_io_task("loop io", _tasks.loop_with_progress, args=(30,))
    qtbot.waitUntil(lambda: "task_message" in rec.names(loop), timeout=30000)
    assert manager.cancel_task(loop)
    rec.wait(qtbot, slow, loop)
    assert "timed out after 0.2 s" in rec.error(slow)
    assert rec.terminal(loop)[0][0] == "task_cancelled"
    qtbot.wait(2500)  # the late result of the timed-out thread is dropped
    assert len(rec.terminal(slow)) == 1


@pytest.mark.parametrize(
    "func, args, expected",
    [
        (_tasks.raise_unbuildable, (), "Unbuildable: 1-2"),
        (_tasks.return_generator, (), "generator"),
        (_tasks.return_lock, (), "lock"),
        (_tasks.identity, (_tasks.BadState(),), "BadState"),
        (_tasks.identity, (_tasks.BadUnpickle(),), "refuses to be rebuilt"),
    ],
)
def test_bad_objects_fail_their_own_task(manager, record, qtbot, func, args, expected):
    rec = record(manager)
    running = manager.submit_task("running", _tasks.sleep_then, args=(0.5, "ok"))
    bad = manager.submit_task("bad", func, args=args)
    queued = [manager.submit_task(f"q{i}", _tasks.add, args=(i, i)) for i in range(3)]
    rec.wait(qtbot, running, bad, *queued)
    assert expected in rec.error(bad)
    assert rec.result(running) == "ok"
    assert [rec.result(t) for t in queued] == [0, 2, 4]


def test_cancelled_running_task_that_finishes_anyway_is_still_cancelled(
    make_manager, record, qtbot
):
    manager = make_manager(cancel_grace=30)  # long grace: the task ends on its own first
    rec = record(manager)
    called = []
    task = manager.submit_task("sleeper", _tasks.sleep_then, called.append, args=(1.0, "slept"))
    qtbot.waitUntil(lambda: "task_started" in rec.names(task), timeout=30_000)
    assert manager.cancel_task(task) is True
    rec.wait(qtbot, task)
    qtbot.wait(100)
    assert [e[0] for e in rec.terminal(task)] == ["task_cancelled"]
    assert "task_completed" not in rec.names(task) and not called
