"""Figures 2 and 3a: 10,000 no-op tasks submitted at once, until each is delivered; the GUI's
longest stall meanwhile.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from . import common, tasks
from .result import metric

SETTINGS = {"full": {"tasks": 10_000, "repeats": 3}, "smoke": {"tasks": 200, "repeats": 1}}
WORKERS = 2


def _manager_flood(n: int, io: bool) -> dict[str, float]:
    manager = common.manager_class()(max_workers=WORKERS, io_workers=WORKERS, start_workers=True)
    count = [0]

    def on_completed(task_id: str, name: str, result: Any) -> None:
        count[0] += 1

    manager.task_completed.connect(on_completed)
    submit = manager.submit_io_task if io else manager.submit_task
    heartbeat = common.Heartbeat()
    try:
        for _ in range(2 * WORKERS):
            submit("warm-up", tasks.noop)
        common.wait_until(lambda: count[0] == 2 * WORKERS, 60, "warm-up tasks")
        count[0] = 0
        t0 = time.perf_counter()
        for _i in range(n):
            submit("noop", tasks.noop)
        t_submitted = time.perf_counter()
        heartbeat.start()
        common.wait_until(lambda: count[0] == n, 600, f"{n} no-op tasks")
        t1 = time.perf_counter()
        heartbeat.stop()
    finally:
        manager.shutdown(wait=True)
    return {
        "seconds": t1 - t0,
        "rate": n / (t1 - t0),
        "submit_seconds": t_submitted - t0,
        "max_gap_ms": heartbeat.max_gap_ms,
    }


def _executor_flood(make: Any, n: int, submit_name: str = "submit") -> dict[str, float]:
    executor = make()
    try:
        submit = getattr(executor, submit_name)
        wait([submit(tasks.noop) for _ in range(2 * WORKERS)])
        t0 = time.perf_counter()
        futures = [submit(tasks.noop) for _ in range(n)]
        t_submitted = time.perf_counter()
        wait(futures)
        t1 = time.perf_counter()
        for f in futures[:10]:
            f.result()
    finally:
        if hasattr(executor, "shutdown"):
            executor.shutdown(wait=True)
        else:  # pebble
            executor.close()
            executor.join()
    return {"seconds": t1 - t0, "rate": n / (t1 - t0), "submit_seconds": t_submitted - t0}


def _loky() -> Any:
    from loky import get_reusable_executor

    return get_reusable_executor(max_workers=WORKERS, reuse=False)


def _pebble() -> Any:
    from pebble import ProcessPool

    return ProcessPool(max_workers=WORKERS)


CONTENDERS: dict[str, Any] = {
    "mosaic_parallel (process)": lambda n: _manager_flood(n, io=False),
    "mosaic_parallel submit_io_task (thread)": lambda n: _manager_flood(n, io=True),
    "ProcessPoolExecutor": lambda n: _executor_flood(lambda: common.process_pool(WORKERS), n),
    "ThreadPoolExecutor": lambda n: _executor_flood(lambda: ThreadPoolExecutor(WORKERS), n),
    "loky": lambda n: _executor_flood(_loky, n),
    "pebble ProcessPool": lambda n: _executor_flood(_pebble, n, "schedule"),
}


def run(size: str) -> dict[str, Any]:
    common.qt_app()
    s = SETTINGS[size]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    for _ in range(s["repeats"]):  # contenders side by side in every repeat
        for name, flood in CONTENDERS.items():
            runs[name].append(flood(s["tasks"]))
    rates = {name: common.median([r["rate"] for r in rs]) for name, rs in runs.items()}
    ours = "mosaic_parallel (process)"
    ratios = [
        a["rate"] / b["rate"] for a, b in zip(runs[ours], runs["ProcessPoolExecutor"], strict=False)
    ]
    gaps = [r["max_gap_ms"] for r in runs[ours]]
    io_gaps = [r["max_gap_ms"] for r in runs["mosaic_parallel submit_io_task (thread)"]]
    return {
        "key": "throughput",
        "title": f"2. Tiny-task throughput ({s['tasks']} no-op tasks, {WORKERS} workers)",
        "settings": s,
        "metrics": [
            metric(
                2,
                f"tiny tasks per second ({s['tasks']} no-ops)",
                "tasks/s",
                rates[ours],
                None,
                None,
                {k: v for k, v in rates.items() if k != ours},
            ),
            metric(
                2,
                "throughput ratio to raw ProcessPoolExecutor (same run)",
                "x",
                common.median(ratios),
                ">=",
                1.0,
                {k: v / rates["ProcessPoolExecutor"] for k, v in rates.items() if k != ours},
            ),
            metric(
                3,
                f"longest heartbeat gap while {s['tasks']} tasks finish",
                "ms",
                common.median(gaps),
                "<=",
                16.0,
                {"mosaic_parallel submit_io_task (thread)": common.median(io_gaps)},
                note="median over repeats of each run's longest gap, measured after the submit loop",
            ),
            metric(
                3,
                f"time the GUI thread spends in {s['tasks']} submit_task calls",
                "ms",
                common.median([r["submit_seconds"] * 1000 for r in runs[ours]]),
                None,
                None,
                {
                    k: common.median([r["submit_seconds"] * 1000 for r in rs])
                    for k, rs in runs.items()
                    if k != ours
                },
                note="the GUI is blocked for this long by the submit loop itself",
            ),
        ],
        "samples": {"runs": runs},
    }
