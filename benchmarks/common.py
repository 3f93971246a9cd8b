"""Shared helpers of the benchmarks: the Qt application, the heartbeat, waiting, statistics."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: Sizes: "full" for ``make bench``, "smoke" for CI (seconds per benchmark).
SIZES = ("full", "smoke")


_APP: list[Any] = []  # keeps the application object alive


def qt_app() -> Any:
    """The process's QApplication (created on first call, offscreen)."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(["mosaic-parallel-bench"])
        _APP.append(app)
    return app


def wait_until(condition: Callable[[], bool], timeout: float, what: str = "condition") -> float:
    """Run the Qt event loop until ``condition()`` holds; return the seconds waited.

    The loop sleeps between events (a 1 ms precise timer re-checks the condition), so the
    waiting costs almost no CPU and does not compete with the workers. Raises
    ``TimeoutError`` after ``timeout`` seconds: a benchmark that hangs is a bug.
    """
    from qtpy.QtCore import QEventLoop, Qt, QTimer

    qt_app()
    start = time.perf_counter()
    if condition():
        return 0.0
    loop = QEventLoop()
    expired = [False]

    def check() -> None:
        if condition():
            loop.quit()
        elif time.perf_counter() - start > timeout:
            expired[0] = True
            loop.quit()

    poll = QTimer()
    poll.setTimerType(Qt.TimerType.PreciseTimer)
    poll.setInterval(1)
    poll.timeout.connect(check)
    poll.start()
    loop.exec()
    poll.stop()
    if expired[0]:
        raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
    return time.perf_counter() - start


def spin_loop(seconds: float) -> None:
    """Keep the Qt event loop running for ``seconds`` (events are handled meanwhile)."""
    from qtpy.QtCore import QEventLoop, Qt, QTimer

    qt_app()
    loop = QEventLoop()
    timer = QTimer()  # a QTimer object: singleShot's overloads differ between bindings
    timer.setSingleShot(True)
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(loop.quit)
    timer.start(max(0, int(seconds * 1000)))
    loop.exec()


class Heartbeat:
    """A 5 ms QTimer on the GUI thread; its longest gap is the GUI's worst stall.

    Use ``start()``/``stop()`` around the period of interest; ``max_gap_ms`` is the longest
    time between two consecutive ticks (or between start and the first tick).
    """

    def __init__(self, interval_ms: int = 5) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.interval_ms = interval_ms
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self.ticks: list[float] = []

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())

    def start(self) -> None:
        self.ticks = [time.perf_counter()]
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self.ticks.append(time.perf_counter())

    @property
    def gaps_ms(self) -> list[float]:
        return [(b - a) * 1000 for a, b in zip(self.ticks, self.ticks[1:], strict=False)]

    @property
    def max_gap_ms(self) -> float:
        gaps = self.gaps_ms
        return max(gaps) if gaps else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    data = sorted(values)
    k = (len(data) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def find_meshes() -> Path | None:
    """The shared ``shared/data/meshes`` folder, found by walking up from here and the cwd."""
    env = os.environ.get("MOSAIC_MESHES")
    if env and Path(env).is_dir():
        return Path(env)
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for parent in [start, *start.parents]:
            candidate = parent / "shared" / "data" / "meshes"
            if candidate.is_dir():
                return candidate
    return None


def load_mesh(name: str = "stanford-bunny.obj") -> tuple[Any, Any, str]:
    """``(vertices, faces, source)`` of a shared mesh; falls back to the bundled spot or an
    icosphere when the shared folder is missing (the source says which).
    """
    import numpy as np
    import trimesh

    folder = find_meshes()
    path = folder / name if folder is not None else None
    if path is not None and path.exists():
        mesh = trimesh.load(path, force="mesh", process=False)
        source = str(path)
    else:
        mesh = trimesh.creation.icosphere(subdivisions=5)
        source = "trimesh icosphere(5) (shared meshes not found)"
    return np.asarray(mesh.vertices), np.asarray(mesh.faces), source


def calibrate(func: Callable[[int], Any], target_seconds: float, start: int = 10_000) -> int:
    """The argument ``n`` for which ``func(n)`` takes about ``target_seconds`` here.

    Refines ``n`` until one call lands within 15 % of the target (work with a fixed setup
    cost, like building a mesh Laplacian, is not proportional to ``n``).
    """
    n = start
    for _ in range(12):
        t0 = time.perf_counter()
        func(n)
        took = time.perf_counter() - t0
        if took < 0.02:
            n *= 4
            continue
        if abs(took - target_seconds) <= 0.15 * target_seconds:
            break
        n = max(1, round(n * min(8.0, max(0.125, target_seconds / took))))
    return n


def manager_class() -> Any:
    from mosaic_parallel import BackgroundTaskManager

    return BackgroundTaskManager


def process_pool(workers: int, method: str = "spawn") -> Any:
    """A raw ``ProcessPoolExecutor``; spawn by default, as the manager uses (fork is unsafe
    in a process that runs Qt threads, and Python 3.14 drops it as the default).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))


def qt_binding() -> str:
    import qtpy

    return f"{qtpy.API_NAME} {qtpy.QT_VERSION}"
