"""Figure 7: cold start, from creating the manager to the first tiny result on the GUI thread,
with the workers started lazily and started ahead, against raw executors.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from . import common, tasks
from .result import metric

SETTINGS = {"full": {"repeats": 5, "settle": 2.0}, "smoke": {"repeats": 1, "settle": 0.5}}


def _manager_start(start_workers: bool, settle: float) -> dict[str, float]:
    """Times from the constructor; ``settle`` > 0 waits that long before the first submit."""
    manager_class = common.manager_class()
    t0 = time.perf_counter()
    manager = manager_class(max_workers=2, start_workers=start_workers)
    t_ctor = time.perf_counter()
    done: list[float] = []
    manager.task_completed.connect(lambda *a: done.append(time.perf_counter()))
    out: dict[str, float] = {"constructor_ms": (t_ctor - t0) * 1000}
    try:
        if settle:
            common.spin_loop(settle)
            children = psutil.Process().children(recursive=True)
            out["workers_cpu_ms"] = sum(sum(p.cpu_times()[:2]) for p in children) * 1000
            out["workers_rss_mb"] = sum(p.memory_info().rss for p in children) / 1e6
        t_submit = time.perf_counter()
        manager.submit_task("first", tasks.noop)
        common.wait_until(lambda: bool(done), 60, "the first result")
        out["first_result_ms"] = (done[0] - t0) * 1000
        out["submit_to_result_ms"] = (done[0] - t_submit) * 1000
    finally:
        manager.shutdown(wait=True)
    return out


def _executor_start(make: Any) -> dict[str, float]:
    t0 = time.perf_counter()
    executor = make()
    try:
        executor.submit(tasks.noop).result()
        t1 = time.perf_counter()
    finally:
        executor.shutdown(wait=True)
    return {"first_result_ms": (t1 - t0) * 1000}


def _loky() -> Any:
    from loky import get_reusable_executor

    return get_reusable_executor(max_workers=2, reuse=False)


def run(size: str) -> dict[str, Any]:
    common.qt_app()
    s = SETTINGS[size]
    runs: dict[str, list[dict[str, float]]] = {
        "lazy": [],
        "ahead, submit at once": [],
        "ahead, submit after settle": [],
        "ProcessPoolExecutor": [],
        "ProcessPoolExecutor fork": [],
        "loky": [],
    }
    for _ in range(s["repeats"]):
        runs["lazy"].append(_manager_start(False, 0))
        runs["ahead, submit at once"].append(_manager_start(True, 0))
        runs["ahead, submit after settle"].append(_manager_start(True, s["settle"]))
        runs["ProcessPoolExecutor"].append(_executor_start(lambda: common.process_pool(2)))
        runs["ProcessPoolExecutor fork"].append(
            _executor_start(lambda: common.process_pool(2, "fork"))
        )
        runs["loky"].append(_executor_start(_loky))

    def med(name: str, key: str) -> float:
        return common.median([r[key] for r in runs[name]])

    ahead = "ahead, submit after settle"
    return {
        "key": "coldstart",
        "title": "7. Cold start (2 workers)",
        "settings": s,
        "metrics": [
            metric(
                7,
                "workers started ahead: first submit -> first result",
                "ms",
                med(ahead, "submit_to_result_ms"),
                "<=",
                300.0,
                {
                    "start_workers=True, submit at once: create -> result": med(
                        "ahead, submit at once", "first_result_ms"
                    ),
                    "start_workers=False: create -> result": med("lazy", "first_result_ms"),
                    "raw ProcessPoolExecutor (spawn): create -> result": med(
                        "ProcessPoolExecutor", "first_result_ms"
                    ),
                    "raw ProcessPoolExecutor (fork, not usable with Qt): create -> result": med(
                        "ProcessPoolExecutor fork", "first_result_ms"
                    ),
                    "loky: create -> result": med("loky", "first_result_ms"),
                },
                note=f"workers started by the constructor, first task submitted {s['settle']:g} s later",
            ),
            metric(
                7,
                "cost of starting ahead: constructor time",
                "ms",
                med("ahead, submit at once", "constructor_ms"),
                None,
                None,
                {
                    "constructor, start_workers=False": med("lazy", "constructor_ms"),
                    "CPU time of the 2 workers to start": med(ahead, "workers_cpu_ms"),
                    "RSS of the 2 idle workers (MB)": med(ahead, "workers_rss_mb"),
                },
            ),
        ],
        "samples": {"runs": runs},
    }
