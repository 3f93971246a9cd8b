"""Figure 3b: the GUI's longest stall while 2 CPU-saturating tasks run (and the machine's
noise floor: the same heartbeat with nothing running).
"""

from __future__ import annotations

from typing import Any

from . import common, tasks
from .result import metric

SETTINGS = {"full": {"seconds": 3.0, "repeats": 3}, "smoke": {"seconds": 0.3, "repeats": 1}}


def _idle_gap(seconds: float) -> float:
    heartbeat = common.Heartbeat()
    heartbeat.start()
    common.spin_loop(seconds)
    heartbeat.stop()
    return heartbeat.max_gap_ms


def _saturated_gap(seconds: float, nice: int) -> float:
    manager = common.manager_class()(max_workers=2, start_workers=True, worker_nice=nice)
    done = [0]
    manager.task_completed.connect(lambda *a: done.__setitem__(0, done[0] + 1))
    try:
        manager.submit_task("warm-up", tasks.noop)
        common.wait_until(lambda: done[0] == 1, 60, "the warm-up task")
        heartbeat = common.Heartbeat()
        heartbeat.start()
        for _ in range(2):
            manager.submit_task("busy", tasks.busy_for, args=(seconds,))
        common.wait_until(lambda: done[0] == 3, 60 + seconds, "the busy tasks")
        heartbeat.stop()
    finally:
        manager.shutdown(wait=True)
    return heartbeat.max_gap_ms


def run(size: str) -> dict[str, Any]:
    common.qt_app()
    s = SETTINGS[size]
    idle, default, niced = [], [], []
    for _ in range(s["repeats"]):
        idle.append(_idle_gap(s["seconds"]))
        default.append(_saturated_gap(s["seconds"], 0))
        niced.append(_saturated_gap(s["seconds"], 10))
    return {
        "key": "responsiveness",
        "title": "3. GUI responsiveness (5 ms heartbeat)",
        "settings": s,
        "metrics": [
            metric(
                3,
                "longest heartbeat gap while 2 CPU-saturating tasks run",
                "ms",
                common.median(default),
                "<=",
                16.0,
                {
                    "same, worker_nice=10": common.median(niced),
                    "no tasks at all (noise floor)": common.median(idle),
                },
            ),
        ],
        "samples": {"idle": idle, "saturated": default, "saturated_nice10": niced},
    }
