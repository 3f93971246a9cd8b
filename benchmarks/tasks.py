"""Task functions the benchmarks send to workers (module-level, so every pool can pickle them).

Timestamps use ``time.time()``: one system-wide clock that the GUI process and the worker
processes share, so a worker's stamp can be compared with the GUI thread's.
"""

from __future__ import annotations

import time
from typing import Any


def noop() -> None:
    """Do nothing: the tiny task of the throughput figure."""
    return None


def warm_up(modules: tuple[str, ...] = ()) -> None:
    """Import ``modules`` in the worker and linger a moment, so each worker gets one."""
    import importlib

    for name in modules:
        importlib.import_module(name)
    time.sleep(0.5)  # long enough for a worker still booting to take the next one


def stamp() -> float:
    """Return the worker's wall clock at the moment the task returns."""
    return time.time()


def spin(iterations: int) -> int:
    """Pure-Python CPU work (holds the GIL): ``iterations`` additions in a loop."""
    total = 0
    for i in range(iterations):
        total += i ^ (i >> 3)
    return total


def busy_for(seconds: float) -> float:
    """Saturate one CPU for ``seconds`` of wall time."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return float(n)


def big_array(megabytes: int) -> tuple[float, Any]:
    """A ``megabytes`` MB float64 array, with the wall clock taken just before returning."""
    import numpy as np

    array = np.ones(megabytes * 1024 * 1024 // 8, dtype=np.float64)
    return time.time(), array


def smooth_mesh(vertices: Any, faces: Any, iterations: int) -> Any:
    """Taubin smoothing (lambda/mu) of a triangle mesh with a scipy sparse umbrella Laplacian.

    numpy/scipy do most of the work, partly outside the GIL, which is where threads fare
    better than on pure-Python work.
    """
    import numpy as np
    import scipy.sparse as sp

    n = len(vertices)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    adjacency = sp.coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)
    ).tocsr()
    adjacency.data[:] = 1.0  # duplicated edges count once
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    degree[degree == 0] = 1.0
    laplacian = sp.diags(1.0 / degree) @ adjacency - sp.identity(n, format="csr")
    v = np.array(vertices, dtype=np.float64)
    for _ in range(iterations):
        v = v + 0.5 * (laplacian @ v)
        v = v - 0.53 * (laplacian @ v)
    return v
