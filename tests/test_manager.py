"""The core manager: results, failures, warnings, progress, output and order of signals."""

from __future__ import annotations

import itertools
import os
import threading

import _tasks
import pytest
from conftest import TERMINAL_SIGNALS


def test_result_reaches_completed_then_callback(manager, record, qtbot):
    rec = record(manager)
    seen = []
    manager.task_completed.connect(lambda tid, name, result: seen.append(("signal", result)))
    task = manager.submit_task(
        "add", _tasks.add, lambda r: seen.append(("callback", r)), args=(2,), kwargs={"b": 3}
    )
    rec.wait(qtbot, task)
    assert rec.result(task) == 5
    assert seen == [("signal", 5), ("callback", 5)]
    assert rec.names(task) == ["task_queued", "task_started", "task_completed"]
    assert manager.task_info[task]["status"] == "completed"
    assert manager.task_info[task]["name"] == "add"
    assert manager.task_info[task]["is_io"] is False


def test_exception_reaches_failed_with_type_message_and_traceback(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("fails", _tasks.raise_value_error, args=("bad mesh",))
    rec.wait(qtbot, task)
    error = rec.error(task)
    assert error.startswith("ValueError: bad mesh")
    assert "Traceback" in error and "raise_value_error" in error  # the worker's traceback
    assert manager.task_info[task]["status"] == "failed"


def test_warnings_are_folded_and_follow_completed(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("warns", _tasks.warn_twice_and_once)
    rec.wait(qtbot, task)
    qtbot.waitUntil(lambda: len([e for e in rec.of(task) if e[0] == "task_warning"]) == 2)
    names = rec.names(task)
    assert names.index("task_completed") < names.index("task_warning")
    warnings = [e[3] for e in rec.of(task) if e[0] == "task_warning"]
    assert warnings == ["UserWarning: twice (repeated 2 times)", "DeprecationWarning: once"]


def test_callback_that_raises_becomes_a_warning_and_manager_goes_on(manager, record, qtbot):
    rec = record(manager)

    def bad_callback(result):
        raise KeyError("no such layer")

    first = manager.submit_task("first", _tasks.add, bad_callback, args=(1, 1))
    rec.wait(qtbot, first)
    qtbot.waitUntil(lambda: "task_warning" in rec.names(first))
    (warning,) = [e[3] for e in rec.of(first) if e[0] == "task_warning"]
    assert "KeyError" in warning and "no such layer" in warning
    second = manager.submit_task("second", _tasks.add, args=(2, 2))
    rec.wait(qtbot, second)
    assert rec.result(second) == 4


def test_lambdas_and_closures_run(manager, record, qtbot):
    rec = record(manager)
    offset = 10

    def closure(x):
        return x + offset

    a = manager.submit_task("lambda", lambda x: x * 3, args=(7,))
    b = manager.submit_task("closure", closure, args=(5,))
    rec.wait(qtbot, a, b)
    assert rec.result(a) == 21
    assert rec.result(b) == 15


@pytest.mark.parametrize(
    "bad, type_name",
    [
        (threading.Lock(), "lock"),
        (open(os.devnull, "w"), "TextIOWrapper"),  # noqa: SIM115 - an open file is the point
        (_tasks.BadState(), "BadState"),
    ],
)
def test_unpicklable_argument_fails_only_its_task(manager, record, qtbot, bad, type_name):
    rec = record(manager)
    good_before = manager.submit_task("good", _tasks.add, args=(1, 2))
    bad_task = manager.submit_task("bad", _tasks.identity, args=(bad,))
    good_after = manager.submit_task("good too", _tasks.add, args=(3, 4))
    rec.wait(qtbot, good_before, bad_task, good_after)
    error = rec.error(bad_task)
    assert "argument 0" in error and type_name in error and "pickle" in error.lower()
    assert rec.result(good_before) == 3 and rec.result(good_after) == 7


def test_qt_widget_argument_fails_clearly(manager, record, qtbot):
    from qtpy.QtWidgets import QLabel

    rec = record(manager)
    label = QLabel("not picklable")
    bad = manager.submit_task("widget", _tasks.identity, args=(label,))
    good = manager.submit_task("good", _tasks.add, args=(1, 1))
    rec.wait(qtbot, bad, good)
    assert "QLabel" in rec.error(bad)
    assert rec.result(good) == 2


def test_stdout_and_stderr_reach_task_output(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("chatter", _tasks.chatter, args=(3,))
    rec.wait(qtbot, task)
    text = {"stdout": "", "stderr": ""}
    for e in rec.of(task):
        if e[0] == "task_output":
            text[e[2]] += e[3]
    assert text["stdout"] == "out 0\nout 1\nout 2\n"
    assert text["stderr"] == "to stderr\n"
    assert manager.get_task_output(task) == text
    names = rec.names(task)
    assert names.index("task_output") < names.index("task_completed")


def test_output_kept_per_task_is_bounded(make_manager, record, qtbot):
    manager = make_manager(output_limit=100_000)
    rec = record(manager)
    task = manager.submit_task("loud", _tasks.print_many, args=(3,))
    rec.wait(qtbot, task)
    out = manager.get_task_output(task)["stdout"]
    assert len(out) == 100_000
    assert out.endswith("THE END\n")


def test_report_progress_reaches_progress_and_message(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("steps", _tasks.steps, args=(4,))
    rec.wait(qtbot, task)
    progress = [e for e in rec.of(task) if e[0] == "task_progress"]
    messages = [e[3] for e in rec.of(task) if e[0] == "task_message"]
    assert progress[-1][2:] == ("steps", 1.0, 4, 4)
    assert all(isinstance(e[3], float) and isinstance(e[4], int) for e in progress)
    assert messages[-1] == "step 4"
    assert messages == sorted(messages)


def test_progress_fraction_given_directly(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("fraction", _tasks.fraction_only)
    rec.wait(qtbot, task)
    fractions = [e[3] for e in rec.of(task) if e[0] == "task_progress"]
    assert fractions[-1] == 0.5
    assert [e[3] for e in rec.of(task) if e[0] == "task_message"] == ["half"]


def test_report_progress_outside_a_task_is_a_noop():
    from mosaic_parallel import report_progress

    assert report_progress(0.5, "nothing happens", 1, 2) is None


def test_workers_limit_blas_and_openmp_threads(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("threads", _tasks.thread_limits)
    rec.wait(qtbot, task)
    env, pools = rec.result(task)
    assert set(env.values()) == {"1"}
    assert pools and all(n == 1 for n in pools)


def test_workers_never_import_qt(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("qt?", _tasks.qt_modules)
    rec.wait(qtbot, task)
    assert rec.result(task) == []


def test_io_task_runs_on_a_thread_of_this_process(manager, record, qtbot):
    import os

    rec = record(manager)
    task = manager.submit_io_task("io", _tasks.pid)
    steps = manager.submit_io_task("io steps", _tasks.steps, args=(3,))
    rec.wait(qtbot, task, steps)
    assert rec.result(task) == os.getpid()
    assert manager.task_info[task]["is_io"] is True
    assert [e[3] for e in rec.of(steps) if e[0] == "task_message"][-1] == "step 3"


def test_batch_never_exceeds_max_concurrent(make_manager, record, qtbot):
    manager = make_manager(max_workers=3)
    rec = record(manager)
    tasks = [{"name": f"span {i}", "func": _tasks.spans, "args": (0.3,)} for i in range(7)]
    batch = manager.submit_task_batch(tasks, max_concurrent=2)
    ids = [t for t in manager.task_info if manager.task_info[t]["batch_id"] == batch]
    assert len(ids) == 7 and manager.batch_task_ids(batch) == ids
    assert manager.batch_task_ids("no such batch") == []
    rec.wait(qtbot, *ids, timeout=60)
    spans = [rec.result(t) for t in ids]
    moments = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    assert peak == 2


def test_every_task_gets_signals_in_order_and_one_terminal(manager, record, qtbot):
    rec = record(manager)
    ids = []
    for i in range(12):
        func = [_tasks.add, _tasks.raise_value_error, _tasks.steps][i % 3]
        args = [(i, 1), ("x",), (3,)][i % 3]
        ids.append(manager.submit_task(f"t{i}", func, args=args))
    cancelled = manager.submit_task("to cancel", _tasks.sleep_then, args=(5,))
    assert manager.cancel_task(cancelled)
    rec.wait(qtbot, *ids, cancelled)
    order = {
        "task_queued": 0,
        "task_started": 1,
        "task_progress": 2,
        "task_message": 2,
        "task_output": 2,
    }
    for task in ids:
        names = rec.names(task)
        terminal = [n for n in names if n in TERMINAL_SIGNALS]
        assert len(terminal) == 1, names
        before = names[: names.index(terminal[0])]
        assert before[0] == "task_queued" and before[1] == "task_started"
        assert [order[n] for n in before] == sorted(order[n] for n in before)
    assert rec.names(cancelled) == ["task_queued", "task_cancelled"]


def test_running_tasks_is_emitted_on_change_only(manager, record, qtbot):
    rec = record(manager)
    ids = [manager.submit_task(f"s{i}", _tasks.sleep_then, args=(0.2,)) for i in range(4)]
    rec.wait(qtbot, *ids)
    counts = rec.counts()
    assert counts and counts[-1] == 0
    assert min(counts) >= 0 and max(counts) <= 2
    assert all(a != b for a, b in itertools.pairwise(counts))
    before = len(rec.log)
    qtbot.wait(300)  # idle: nothing is emitted
    assert len(rec.log) == before


def test_cancel_queued_task(make_manager, record, qtbot):
    manager = make_manager(max_workers=1)
    rec = record(manager)
    busy = manager.submit_task("busy", _tasks.sleep_then, args=(0.5, "done"))
    queued = manager.submit_task("queued", _tasks.add, args=(1, 1))
    assert manager.cancel_task(queued) is True
    assert manager.cancel_task(queued) is False  # already cancelled
    rec.wait(qtbot, busy, queued)
    assert rec.terminal(queued)[0][0] == "task_cancelled"
    assert rec.result(busy) == "done"
    assert manager.cancel_task(busy) is False  # finished
    assert manager.cancel_task("no such task") is False
    assert manager.task_info[queued]["status"] == "cancelled"


def test_clear_finished_tasks_and_get_task_output(manager, record, qtbot):
    rec = record(manager)
    done = manager.submit_task("done", _tasks.add, args=(1, 1))
    rec.wait(qtbot, done)
    running = manager.submit_task("running", _tasks.sleep_then, args=(1.0,))
    assert manager.clear_finished_tasks() == [done]
    assert done not in manager.task_info and running in manager.task_info
    assert manager.get_task_output(done) == {"stdout": "", "stderr": ""}
    rec.wait(qtbot, running)


def test_finished_history_is_bounded(make_manager, record, qtbot):
    manager = make_manager(max_finished=5)
    rec = record(manager)
    ids = [manager.submit_task(f"t{i}", _tasks.add, args=(i,)) for i in range(12)]
    rec.wait(qtbot, *ids)
    finished = [e[1] for e in rec.log if e[0] == "task_completed"]  # in the order they ended
    assert sorted(manager.task_info) == sorted(finished[-5:])


def test_bad_input_is_refused_clearly_and_loses_nothing(manager, record, qtbot):
    rec = record(manager)
    with pytest.raises(TypeError, match="callable"):
        manager.submit_task("not callable", 42)
    with pytest.raises(ValueError, match="max_concurrent"):
        manager.submit_task_batch(
            [{"name": "a", "func": _tasks.add, "args": (1,)}], max_concurrent=0
        )
    with pytest.raises(TypeError, match="no 'func'"):
        manager.submit_task_batch([{"name": "a", "func": _tasks.add, "args": (1,)}, {"name": "b"}])
    with pytest.raises(TypeError, match="unknown keys"):
        manager.submit_task_batch([{"name": "a", "function": _tasks.add}])
    with pytest.raises(ValueError, match="timeout"):
        manager.submit_task("t", _tasks.add, args=(1,), timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        manager.submit_task("t", _tasks.add, args=(1,), timeout=float("nan"))
    with pytest.raises(TypeError, match="timeout"):
        manager.submit_task("t", _tasks.add, args=(1,), timeout="5")
    with pytest.raises(TypeError, match="args"):
        manager.submit_task("t", _tasks.add, args=0.1)
    with pytest.raises(TypeError, match="batch_id"):
        manager.submit_io_task("io", _tasks.add, None, 0.2)  # a stray positional argument
    good = {"name": "ok", "func": _tasks.add, "args": (1,)}
    with pytest.raises(TypeError, match="task 2 of the batch: args"):
        manager.submit_task_batch([good, good, {"name": "b", "func": _tasks.add, "args": 0.1}])
    assert len(manager.task_info) == 0  # nothing half-submitted
    task = manager.submit_task("fine", _tasks.add, args=(1, 1))
    rec.wait(qtbot, task)
    assert rec.result(task) == 2


def test_submit_after_shutdown_raises(make_manager):
    manager = make_manager()
    manager.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        manager.submit_task("late", _tasks.add, args=(1,))


def test_shutdown_cancels_unfinished_tasks_and_stops_workers(make_manager, record, qtbot):
    import psutil

    manager = make_manager()
    rec = record(manager)
    ids = [manager.submit_task(f"long {i}", _tasks.sleep_then, args=(30,)) for i in range(3)]
    qtbot.waitUntil(lambda: len(manager.worker_pids()) == 2 and "task_started" in rec.names(ids[0]))
    pids = manager.worker_pids()
    manager.shutdown(wait=True)
    assert all(rec.terminal(t)[0][0] == "task_cancelled" for t in ids)
    assert rec.counts()[-1] == 0
    assert not [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]


def test_workers_run_at_lower_priority(make_manager, record, qtbot):
    import os

    default = make_manager()
    unchanged = make_manager(worker_nice=0)
    rec_default, rec_unchanged = record(default), record(unchanged)
    a = default.submit_task("nice", _tasks.niceness)
    b = unchanged.submit_task("nice", _tasks.niceness)
    rec_default.wait(qtbot, a)
    rec_unchanged.wait(qtbot, b)
    ours = os.nice(0)
    assert rec_default.result(a) == min(ours + 10, 19)
    assert rec_unchanged.result(b) == ours


def test_timeout_of_infinity_or_years_means_no_limit(manager, record, qtbot):
    rec = record(manager)
    a = manager.submit_task("inf", _tasks.sleep_then, args=(0.2, "a"), timeout=float("inf"))
    b = manager.submit_task("years", _tasks.sleep_then, args=(0.2, "b"), timeout=1e12)
    rec.wait(qtbot, a, b)
    assert (rec.result(a), rec.result(b)) == ("a", "b")


def test_progress_with_nan_counts_does_not_fail_the_task(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("nan", _tasks.odd_progress)
    rec.wait(qtbot, task)
    assert rec.result(task) == "fine"
    assert [e[3] for e in rec.of(task) if e[0] == "task_message"] == ["odd"]


def test_empty_exception_message_has_no_trailing_colon(manager, record, qtbot):
    rec = record(manager)
    task = manager.submit_task("bare", _tasks.raise_bare)
    rec.wait(qtbot, task)
    assert rec.error(task).startswith("KeyError\n")


def test_unpicklable_task_alone_does_not_stall_the_queue(make_manager, record, qtbot):
    manager = make_manager(max_workers=1)
    rec = record(manager)
    bad = manager.submit_task("bad", _tasks.identity, args=(threading.Lock(),))
    good = manager.submit_task("good", _tasks.add, args=(2, 2))
    rec.wait(qtbot, bad, good)
    assert "lock" in rec.error(bad)
    assert rec.result(good) == 4
