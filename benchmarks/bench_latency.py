"""Figure 1: completion latency, from a task's return in the worker to the slot on the GUI thread."""

from __future__ import annotations

import time
from typing import Any

from . import common, tasks
from .result import metric

SETTINGS = {"full": {"tasks": 300, "gap": 0.01}, "smoke": {"tasks": 10, "gap": 0.005}}


def _through_manager(n: int, gap: float, io: bool) -> list[float]:
    manager = common.manager_class()(max_workers=2, start_workers=True)
    latencies: list[float] = []
    done: list[str] = []

    def on_completed(task_id: str, name: str, result: Any) -> None:
        latencies.append(time.time() - result)
        done.append(task_id)

    manager.task_completed.connect(on_completed)
    submit = manager.submit_io_task if io else manager.submit_task
    try:
        submit("warm-up", tasks.stamp)
        common.wait_until(lambda: len(done) == 1, 60, "the warm-up task")
        latencies.clear()
        done.clear()
        for i in range(n):  # spaced out: one task at a time, a pause between them
            submit(f"stamp {i}", tasks.stamp)
            common.wait_until(lambda i=i: len(done) == i + 1, 30, "a stamp task")
            common.spin_loop(gap)
    finally:
        manager.shutdown(wait=True)
    return [x * 1000 for x in latencies]


def _through_executor_signal(n: int, gap: float) -> list[float]:
    """Reference: a raw ProcessPoolExecutor whose done-callback emits a queued Qt signal."""
    from qtpy.QtCore import QObject, Qt, Signal

    class Relay(QObject):
        finished = Signal(object)

    relay = Relay()
    latencies: list[float] = []
    relay.finished.connect(
        lambda value: latencies.append(time.time() - value), Qt.ConnectionType.QueuedConnection
    )
    with common.process_pool(2) as pool:
        pool.submit(tasks.noop).result()
        for i in range(n):
            future = pool.submit(tasks.stamp)
            future.add_done_callback(lambda f: relay.finished.emit(f.result()))
            common.wait_until(lambda i=i: len(latencies) == i + 1, 30, "a stamp task")
            common.spin_loop(gap)
    return [x * 1000 for x in latencies]


def run(size: str) -> dict[str, Any]:
    common.qt_app()
    s = SETTINGS[size]
    samples = {
        "mosaic_parallel (process)": _through_manager(s["tasks"], s["gap"], io=False),
        "mosaic_parallel submit_io_task (thread)": _through_manager(s["tasks"], s["gap"], io=True),
        "ProcessPoolExecutor + done-callback signal": _through_executor_signal(
            s["tasks"], s["gap"]
        ),
    }
    ours = samples["mosaic_parallel (process)"]
    others = {k: v for k, v in samples.items() if k != "mosaic_parallel (process)"}
    return {
        "key": "latency",
        "title": "1. Completion latency (worker return -> task_completed slot)",
        "settings": s,
        "metrics": [
            metric(
                1,
                "completion latency, median",
                "ms",
                common.median(ours),
                "<=",
                2.0,
                {k: common.median(v) for k, v in others.items()},
            ),
            metric(
                1,
                "completion latency, p99",
                "ms",
                common.percentile(ours, 99),
                "<=",
                10.0,
                {k: common.percentile(v, 99) for k, v in others.items()},
            ),
        ],
        "samples": samples,
    }
