"""Any order of events: a hypothesis state machine checks the manager's invariants.

It interleaves submit, cancel, crash, timeout, batch limits and shutdown.
"""

from __future__ import annotations

import time

import _tasks
import hypothesis.strategies as st
from conftest import TERMINAL_SIGNALS, Recorder, _children, wait_for_no_children
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from qtpy.QtTest import QTest


def spin_until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        QTest.qWait(10)
    return predicate()


class ManagerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        from mosaic_parallel import BackgroundTaskManager

        self.children_before = _children()
        self.manager = BackgroundTaskManager(max_workers=2, cancel_grace=0.2)
        self.rec = Recorder(self.manager)
        self.ids: list[str] = []
        self.closed = False

    def open(self) -> bool:
        return not self.closed

    @precondition(open)
    @rule(value=st.integers(0, 9), seconds=st.sampled_from([0.0, 0.05, 0.3]))
    def submit(self, value, seconds):
        self.ids.append(self.manager.submit_task("sleep", _tasks.sleep_then, args=(seconds, value)))

    @precondition(open)
    @rule(seconds=st.sampled_from([0.0, 0.1]))
    def submit_crash(self, seconds):
        self.ids.append(self.manager.submit_task("crash", _tasks.exit_after, args=(seconds, 1)))

    @precondition(open)
    @rule()
    def submit_failure(self):
        self.ids.append(self.manager.submit_task("fail", _tasks.raise_value_error, args=("no",)))

    @precondition(open)
    @rule()
    def submit_timeout(self):
        self.ids.append(
            self.manager.submit_task("hang", _tasks.sleep_then, args=(30,), timeout=0.15)
        )

    @precondition(open)
    @rule()
    def submit_io(self):
        self.ids.append(self.manager.submit_io_task("io", _tasks.sleep_then, args=(0.05, "io")))

    @precondition(open)
    @rule(size=st.integers(1, 5), limit=st.one_of(st.none(), st.integers(1, 3)))
    def submit_batch(self, size, limit):
        batch = self.manager.submit_task_batch(
            [{"name": f"b{i}", "func": _tasks.sleep_then, "args": (0.05, i)} for i in range(size)],
            max_concurrent=limit,
        )
        self.ids.extend(
            t for t in self.manager.task_info if self.manager.task_info[t]["batch_id"] == batch
        )

    @precondition(lambda self: self.open() and self.ids)
    @rule(data=st.data())
    def cancel(self, data):
        task = data.draw(st.sampled_from(self.ids))
        was_unfinished = not self.rec.terminal(task)
        answer = self.manager.cancel_task(task)
        assert answer == was_unfinished

    @precondition(open)
    @rule(ms=st.sampled_from([0, 20, 200]))
    def let_time_pass(self, ms):
        QTest.qWait(ms)

    @precondition(open)
    @rule()
    def shutdown(self):
        self.manager.shutdown(wait=True)
        self.closed = True
        assert all(self.rec.terminal(t) for t in self.ids), "shutdown left a task without an end"

    @precondition(lambda self: self.closed)
    @rule()
    def submit_after_shutdown(self):
        try:
            self.manager.submit_task("late", _tasks.add, args=(1,))
        except RuntimeError as exc:
            assert "shut down" in str(exc)
        else:
            raise AssertionError("a shut-down manager accepted a task")

    @invariant()
    def at_most_one_terminal_signal_each(self):
        ends = [e[1] for e in self.rec.log if e[0] in TERMINAL_SIGNALS]
        assert len(ends) == len(set(ends))

    @invariant()
    def running_count_never_negative(self):
        assert all(c >= 0 for c in self.rec.counts())

    def teardown(self):
        try:
            if not self.closed:
                assert spin_until(lambda: all(self.rec.terminal(t) for t in self.ids), 60), [
                    (t, self.rec.names(t)) for t in self.ids if not self.rec.terminal(t)
                ]
                QTest.qWait(50)
                counts = self.rec.counts()
                assert not counts or counts[-1] == 0
            for task in self.ids:
                assert len(self.rec.terminal(task)) == 1, self.rec.names(task)
        finally:
            self.manager.shutdown(wait=True)
        assert not wait_for_no_children(self.children_before), "child processes left behind"


def test_any_order_of_events_keeps_the_invariants(qapp):
    run_state_machine_as_test(
        ManagerMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )
