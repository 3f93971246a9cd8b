"""Figure 4: CPU speedup of 8 tasks of about 0.3 s with N workers, against serial, a
thread-pool-backed manager, raw ProcessPoolExecutor and loky (pure Python, then numpy/scipy).
"""

from __future__ import annotations

import time
from concurrent.futures import wait
from typing import Any

from . import common, tasks
from .result import metric

SETTINGS = {
    "full": {"tasks": 8, "seconds": 0.3, "repeats": 5, "workers": [1, 2]},
    "smoke": {"tasks": 4, "seconds": 0.02, "repeats": 1, "workers": [1, 2]},
}


def _manager_run(
    jobs: list[tuple[Any, tuple[Any, ...]]], workers: int, io: bool, **options: Any
) -> float:
    manager = common.manager_class()(
        max_workers=workers, io_workers=workers, start_workers=True, **options
    )
    finished = [0]
    failures: list[str] = []
    manager.task_completed.connect(lambda *a: finished.__setitem__(0, finished[0] + 1))
    manager.task_failed.connect(lambda task_id, name, error: failures.append(error))
    submit = manager.submit_io_task if io else manager.submit_task
    try:
        for _ in range(workers):
            submit("warm-up", tasks.warm_up, args=(WARM_MODULES,))
        common.wait_until(lambda: finished[0] == workers, 60, "warm-up tasks")
        finished[0] = 0
        t0 = time.perf_counter()
        for func, args in jobs:
            submit("work", func, args=args)
        common.wait_until(lambda: finished[0] + len(failures) == len(jobs), 600, "the tasks")
        took = time.perf_counter() - t0
    finally:
        manager.shutdown(wait=True)
    if failures:
        raise RuntimeError(f"a benchmark task failed: {failures[0]}")
    return took


def _executor_run(make: Any, jobs: list[tuple[Any, tuple[Any, ...]]], workers: int) -> float:
    executor = make(workers)
    try:
        wait([executor.submit(tasks.warm_up, WARM_MODULES) for _ in range(workers)])
        t0 = time.perf_counter()
        futures = [executor.submit(func, *args) for func, args in jobs]
        for f in futures:
            f.result()
        took = time.perf_counter() - t0
    finally:
        executor.shutdown(wait=True)
    return took


def _loky(workers: int) -> Any:
    from loky import get_reusable_executor

    return get_reusable_executor(max_workers=workers, reuse=False)


#: Imported by every worker before the clock starts: steady-state speed, not import time.
WARM_MODULES = ("numpy", "scipy.sparse")

CONTENDERS: dict[str, Any] = {
    "mosaic_parallel (process)": lambda jobs, n: _manager_run(jobs, n, io=False),
    "mosaic_parallel, worker_nice=0": lambda jobs, n: _manager_run(jobs, n, False, worker_nice=0),
    "thread-pool manager (submit_io_task)": lambda jobs, n: _manager_run(jobs, n, io=True),
    "ProcessPoolExecutor": lambda jobs, n: _executor_run(common.process_pool, jobs, n),
    "loky": lambda jobs, n: _executor_run(_loky, jobs, n),
}


def _workloads(s: dict[str, Any]) -> dict[str, tuple[list[tuple[Any, tuple[Any, ...]]], str]]:
    iterations = common.calibrate(tasks.spin, s["seconds"])
    vertices, faces, source = common.load_mesh()
    steps = common.calibrate(lambda k: tasks.smooth_mesh(vertices, faces, k), s["seconds"], 1)
    return {
        "pure-Python": (
            [(tasks.spin, (iterations,))] * s["tasks"],
            f"spin({iterations}) x {s['tasks']}",
        ),
        "numpy mesh": (
            [(tasks.smooth_mesh, (vertices, faces, steps))] * s["tasks"],
            f"Taubin smoothing, {steps} steps, of {len(vertices)} vertices from {source}, "
            f"x {s['tasks']}",
        ),
    }


def run(size: str) -> dict[str, Any]:
    common.qt_app()
    s = SETTINGS[size]
    metrics = []
    samples: dict[str, Any] = {}
    for workload, (jobs, description) in _workloads(s).items():
        serial: list[float] = []
        times: dict[str, dict[int, list[float]]] = {
            name: {n: [] for n in s["workers"]} for name in CONTENDERS
        }
        for _ in range(s["repeats"]):
            t0 = time.perf_counter()
            for func, args in jobs:
                func(*args)
            serial.append(time.perf_counter() - t0)
            for n in s["workers"]:
                for name, contender in CONTENDERS.items():
                    times[name][n].append(contender(jobs, n))
        t_serial = common.median(serial)
        speedup = {
            name: {n: t_serial / common.median(ts) for n, ts in by_n.items()}
            for name, by_n in times.items()
        }
        samples[workload] = {
            "description": description,
            "serial_seconds": serial,
            "seconds": {k: {str(n): v for n, v in d.items()} for k, d in times.items()},
            "speedup": {k: {str(n): v for n, v in d.items()} for k, d in speedup.items()},
        }
        ours = "mosaic_parallel (process)"
        for n in s["workers"]:
            metrics.append(
                metric(
                    4,
                    f"speedup over serial, {workload}, N={n}",
                    "x",
                    speedup[ours][n],
                    ">=",
                    0.93 * n,
                    {k: v[n] for k, v in speedup.items() if k != ours},
                    note=description,
                )
            )
    return {
        "key": "speedup",
        "title": "4. CPU speedup against thread pools and raw executors",
        "settings": s,
        "metrics": metrics,
        "samples": samples,
    }
