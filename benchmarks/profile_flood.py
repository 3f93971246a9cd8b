"""Profile the GUI thread (cProfile) while 10,000 no-op tasks go through the manager.

``python -m benchmarks.profile_flood [--tasks N] [--top K]``: prints where the GUI thread's
time goes: submitting, and delivering the results (the 10k-task flood of figures 2 and 3).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from typing import Any

from . import common, tasks


def _time_calls(obj: Any, name: str, into: list[float]) -> None:
    """Wrap ``obj.name`` (a class or an instance) to record each call's duration in ms."""
    original = getattr(obj, name)
    isinstance(obj, type)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - t0) * 1000)

    setattr(obj, name, timed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    common.qt_app()
    timings: dict[str, list[float]] = {"_drain": [], "ProcessBackend.submit": []}
    manager_class = common.manager_class()
    _time_calls(manager_class, "_drain", timings["_drain"])  # before connect() binds it
    manager = manager_class(max_workers=2, start_workers=True)
    count = [0]

    def on_completed(task_id: str, name: str, result: Any) -> None:
        count[0] += 1

    manager.task_completed.connect(on_completed)
    _time_calls(manager._processes, "submit", timings["ProcessBackend.submit"])
    try:
        manager.submit_task("warm-up", tasks.noop)
        common.wait_until(lambda: count[0] == 1, 60, "the warm-up task")
        count[0] = 0
        profile = cProfile.Profile()
        t0 = time.perf_counter()
        profile.enable()
        for _ in range(args.tasks):
            manager.submit_task("noop", tasks.noop)
        t_sub = time.perf_counter()
        common.wait_until(lambda: count[0] == args.tasks, 600, "the tasks")
        profile.disable()
        t1 = time.perf_counter()
    finally:
        manager.shutdown(wait=True)
    print(
        f"{args.tasks} tasks: submit loop {t_sub - t0:.2f} s, all delivered after "
        f"{t1 - t0:.2f} s ({args.tasks / (t1 - t0):,.0f} tasks/s, under cProfile)"
    )
    for name, durations in timings.items():
        durations.sort()
        if durations:
            print(
                f"{name}: {len(durations)} calls, median {durations[len(durations) // 2]:.2f} ms, "
                f"max {durations[-1]:.2f} ms, total {sum(durations):.0f} ms"
            )
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(key).print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
