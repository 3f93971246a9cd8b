"""Figures 5 and 3c: a task returning a 200 MB numpy array; transfer rate into the GUI process
and the GUI's longest stall while it arrives.
"""

from __future__ import annotations

import time
from typing import Any

from . import common, tasks
from .result import metric

SETTINGS = {"full": {"megabytes": 200, "repeats": 3}, "smoke": {"megabytes": 8, "repeats": 1}}


def _through_manager(megabytes: int, repeats: int) -> list[dict[str, float]]:
    manager = common.manager_class()(max_workers=2, start_workers=True)
    arrived: list[float] = []
    sizes: list[int] = []

    def on_completed(task_id: str, name: str, result: Any) -> None:
        now = time.time()
        if isinstance(result, tuple):
            arrived.append(now - result[0])
            sizes.append(result[1].nbytes)

    manager.task_completed.connect(on_completed)
    runs = []
    try:
        manager.submit_task("warm-up", tasks.warm_up, args=(("numpy",),))
        manager.submit_task("warm-up", tasks.warm_up, args=(("numpy",),))
        common.spin_loop(1.0)
        for i in range(repeats):
            heartbeat = common.Heartbeat()
            heartbeat.start()
            manager.submit_task("big", tasks.big_array, args=(megabytes,))
            common.wait_until(lambda i=i: len(arrived) == i + 1, 300, "the large result")
            heartbeat.stop()
            runs.append(
                {
                    "seconds": arrived[-1],
                    "gb_per_s": sizes[-1] / arrived[-1] / 1e9,
                    "max_gap_ms": heartbeat.max_gap_ms,
                }
            )
            common.spin_loop(0.2)
    finally:
        manager.shutdown(wait=True)
    return runs


def _through_executor(make: Any, megabytes: int, repeats: int) -> list[dict[str, float]]:
    executor = make()
    runs = []
    try:
        executor.submit(tasks.warm_up, ("numpy",)).result()
        for _ in range(repeats):
            t_worker, array = executor.submit(tasks.big_array, megabytes).result()
            took = time.time() - t_worker
            runs.append({"seconds": took, "gb_per_s": array.nbytes / took / 1e9})
            del array
    finally:
        executor.shutdown(wait=True)
    return runs


def _loky() -> Any:
    from loky import get_reusable_executor

    return get_reusable_executor(max_workers=2, reuse=False)


def run(size: str) -> dict[str, Any]:
    common.qt_app()
    s = SETTINGS[size]
    mb, reps = s["megabytes"], s["repeats"]
    runs = {
        "mosaic_parallel (process)": _through_manager(mb, reps),
        "ProcessPoolExecutor (.result() on the main thread)": _through_executor(
            lambda: common.process_pool(2), mb, reps
        ),
        "loky (.result() on the main thread)": _through_executor(_loky, mb, reps),
    }
    rate = {k: common.median([r["gb_per_s"] for r in v]) for k, v in runs.items()}
    ours = "mosaic_parallel (process)"
    return {
        "key": "large",
        "title": f"5. Large results ({mb} MB numpy array)",
        "settings": s,
        "metrics": [
            metric(
                5,
                f"effective transfer rate of a {mb} MB result",
                "GB/s",
                rate[ours],
                ">=",
                1.0,
                {k: v for k, v in rate.items() if k != ours},
                note="from the worker's return to the slot (pickling, transport, unpickling)",
            ),
            metric(
                3,
                f"longest heartbeat gap while a {mb} MB result arrives",
                "ms",
                common.median([r["max_gap_ms"] for r in runs[ours]]),
                "<=",
                16.0,
            ),
        ],
        "samples": {"runs": runs},
    }
