"""Figure 6: what an idle manager costs the GUI process: event-loop wake-ups, events delivered
to the manager, and CPU time, over an idle period, against the same period without a manager.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from . import common, tasks
from .result import metric

SETTINGS = {"full": {"seconds": 10.0}, "smoke": {"seconds": 0.5}}


def _event_counter() -> Any:
    from qtpy.QtCore import QObject

    class EventCounter(QObject):
        """Counts every event delivered to the object it filters (timer events included)."""

        def __init__(self) -> None:
            super().__init__()
            self.count = 0
            self.types: dict[str, int] = {}

        def eventFilter(self, watched: Any, event: Any) -> bool:
            self.count += 1
            key = str(event.type())
            self.types[key] = self.types.get(key, 0) + 1
            return False

    return EventCounter()


def _idle_period(seconds: float, watched: Any = None) -> dict[str, Any]:
    """Run a plain event loop for ``seconds``; count wake-ups, events and CPU time."""
    from qtpy.QtCore import QAbstractEventDispatcher, QEventLoop, QThread, QTimer

    dispatcher = QAbstractEventDispatcher.instance(QThread.currentThread())
    awake = [0]

    def on_awake() -> None:
        awake[0] += 1

    dispatcher.awake.connect(on_awake)
    counter = _event_counter()
    if watched is not None:
        watched.installEventFilter(counter)
    process = psutil.Process()
    loop = QEventLoop()
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    timer.start(int(seconds * 1000))
    cpu0 = time.process_time()  # nanosecond clock (psutil's cpu_times ticks at 10 ms)
    t0 = time.perf_counter()
    loop.exec()
    wall = time.perf_counter() - t0
    cpu1 = time.process_time()
    dispatcher.awake.disconnect(on_awake)
    if watched is not None:
        watched.removeEventFilter(counter)
    return {
        "wall_seconds": wall,
        "awake": awake[0],
        "manager_events": counter.count,
        "manager_event_types": counter.types,
        "cpu_ms": (cpu1 - cpu0) * 1000,
        "threads": process.num_threads(),
    }


def run(size: str) -> dict[str, Any]:
    common.qt_app()
    seconds = SETTINGS[size]["seconds"]
    common.spin_loop(0.5)
    baseline = _idle_period(seconds)
    manager = common.manager_class()(max_workers=2, start_workers=True)
    done = [0]
    manager.task_completed.connect(lambda *a: done.__setitem__(0, done[0] + 1))
    try:
        manager.submit_task("one task", tasks.noop)
        common.wait_until(lambda: done[0] == 1, 60, "a task")
        common.spin_loop(1.5)  # let the manager settle (its safety poll stops when idle)
        workers = [psutil.Process(pid) for pid in manager.worker_pids()]
        wcpu0 = sum(sum(p.cpu_times()[:2]) for p in workers)
        with_manager = _idle_period(seconds, manager)
        wcpu1 = sum(sum(p.cpu_times()[:2]) for p in workers)
    finally:
        manager.shutdown(wait=True)
    with_manager["workers_cpu_ms"] = (wcpu1 - wcpu0) * 1000
    extra_cpu = with_manager["cpu_ms"] - baseline["cpu_ms"]
    return {
        "key": "idle",
        "title": f"6. Idle cost over {seconds:g} s",
        "settings": SETTINGS[size],
        "metrics": [
            metric(
                6,
                f"timer events delivered to the idle manager in {seconds:g} s",
                "events",
                with_manager["manager_events"],
                "<=",
                0,
                {
                    "GUI event-loop wake-ups with the manager": with_manager["awake"],
                    "GUI event-loop wake-ups without a manager": baseline["awake"],
                },
                note="events seen by an event filter on the manager; wake-ups from "
                "QAbstractEventDispatcher.awake",
            ),
            metric(
                6,
                f"GUI-process CPU time over {seconds:g} idle s, manager minus none",
                "ms",
                extra_cpu,
                "<",
                10.0,
                {
                    "GUI process with the manager": with_manager["cpu_ms"],
                    "GUI process without a manager": baseline["cpu_ms"],
                    "the 2 idle workers together": with_manager["workers_cpu_ms"],
                },
            ),
        ],
        "samples": {"baseline": baseline, "with_manager": with_manager},
    }
