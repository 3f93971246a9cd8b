"""Bounded memory: finished-task history and output buffers do not grow without end."""

from __future__ import annotations

import gc

import _tasks
import psutil
from qtpy.QtCore import QTimer


def _run_batch(manager, rec, qtbot, count):
    batch = manager.submit_task_batch(
        [{"name": "tiny", "func": _tasks.add, "args": (i,)} for i in range(count)]
    )
    qtbot.waitUntil(
        lambda: (
            all(
                info["status"] == "completed"
                for info in (manager.task_info[t] for t in manager.task_info)
                if info["batch_id"] == batch
            )
            and sum(1 for e in rec.log if e[0] == "task_completed") >= count
        ),
        timeout=300_000,
    )
    rec.log.clear()


def test_twenty_thousand_tiny_tasks_keep_memory_flat(manager, record, qtbot):
    rec = record(manager)
    _run_batch(manager, rec, qtbot, 2000)  # warm up: pools, caches, the first 1,000 finished
    gc.collect()
    before = psutil.Process().memory_info().rss
    _run_batch(manager, rec, qtbot, 20_000)
    gc.collect()
    grown = psutil.Process().memory_info().rss - before
    assert len(manager.task_info) == manager.max_finished == 1000
    assert grown < 30 * 2**20, f"RSS grew by {grown / 2**20:.1f} MB"


def test_hundred_megabytes_of_output_keeps_only_the_tail(make_manager, record, qtbot):
    manager = make_manager(output_limit=50_000)
    rec = record(manager)
    beats = []
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: beats.append(1))
    heartbeat.start(5)
    task = manager.submit_task("loud", _tasks.print_many, args=(100,))
    qtbot.waitUntil(lambda: "task_started" in rec.names(task), timeout=30_000)
    beats.clear()
    rec.wait(qtbot, task, timeout=120)
    heartbeat.stop()
    assert rec.result(task) == 100
    out = manager.get_task_output(task)["stdout"]
    assert len(out) == 50_000 and out.endswith("THE END\n")
    assert beats, "the GUI thread's timer never fired while the output arrived"
    # what reached the GUI is far less than what was printed: the worker dropped the middle
    received = sum(len(e[3]) for e in rec.of(task) if e[0] == "task_output")
    assert received < 100 * 2**20
