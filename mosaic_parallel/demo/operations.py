"""Mesh operations a membrane-modelling GUI runs in the background, built on trimesh and scipy.

Qt-free: these run in worker processes. Long operations report their progress with
:func:`mosaic_parallel.report_progress` through an optional ``progress(fraction, message)``
callback, so that :func:`process_mesh` can fold several operations into one task's bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..worker import report_progress
from .loading import LoadedMesh

__all__ = [
    "DEFAULT_OPTIONS",
    "OPERATIONS",
    "decimate",
    "process_mesh",
    "sample_points",
    "signed_distance_grid",
    "summarize",
    "taubin_smooth",
    "to_trimesh",
    "vertex_curvature",
]

Progress = Callable[[float, str | None], None]

#: Operations in the order :func:`process_mesh` applies them.
OPERATIONS = ("decimate", "smooth", "curvature", "sample", "sdf")

#: Options of :func:`process_mesh` and their defaults.
DEFAULT_OPTIONS: dict[str, Any] = {
    "target_faces": 4000,
    "smooth_iterations": 10,
    "sample_count": 2000,
    "sdf_resolution": 16,
    "render_faces": 5000,
}


def _noop(fraction: float, message: str | None = None) -> None:
    report_progress(fraction, message=message)


def to_trimesh(mesh: LoadedMesh | Any) -> Any:
    """A ``trimesh.Trimesh`` from a :class:`LoadedMesh` (a Trimesh is returned as is)."""
    import trimesh

    if isinstance(mesh, trimesh.Trimesh):
        return mesh
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)


def summarize(mesh: Any) -> dict[str, Any]:
    """Vertices, faces, watertightness, area, volume and bounds of a mesh.

    The volume is that of a closed surface; for an open mesh it is reported but
    meaningless, so ``volume`` is ``None`` then.
    """
    mesh = to_trimesh(mesh)
    watertight = bool(mesh.is_watertight)
    return {
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
        "watertight": watertight,
        "area": float(mesh.area),
        "volume": float(mesh.volume) if watertight else None,
        "bounds": np.asarray(mesh.bounds, dtype=float).round(6).tolist(),
    }


def taubin_smooth(
    mesh: Any,
    iterations: int = 10,
    lamb: float = 0.5,
    nu: float = 0.53,
    progress: Progress = _noop,
) -> Any:
    """Taubin (shrink-free) smoothing; returns a smoothed copy.

    Each iteration is one shrink and one inflate step of trimesh's ``filter_taubin``
    with the Laplacian operator computed once.
    """
    import trimesh

    out = to_trimesh(mesh).copy()
    laplacian = trimesh.smoothing.laplacian_calculation(out)
    for i in range(iterations):
        trimesh.smoothing.filter_taubin(
            out, lamb=lamb, nu=nu, iterations=2, laplacian_operator=laplacian
        )
        progress((i + 1) / iterations, None)
    return out


def decimate(mesh: Any, target_faces: int, progress: Progress = _noop) -> Any:
    """Quadric decimation (fast-simplification) down to about ``target_faces`` faces.

    A mesh that already has no more faces than that is returned unchanged (a copy).
    """
    out = to_trimesh(mesh)
    if target_faces < 4:
        raise ValueError(f"target_faces must be at least 4, not {target_faces}")
    if len(out.faces) <= target_faces:
        progress(1.0, f"already {len(out.faces)} faces, no decimation needed")
        return out.copy()
    progress(0.0, f"decimating {len(out.faces)} -> {target_faces} faces")
    result = out.simplify_quadric_decimation(face_count=int(target_faces))
    progress(1.0, None)
    return result


def vertex_curvature(
    mesh: Any, radius: float | None = None, chunk: int = 1000, progress: Progress = _noop
) -> dict[str, np.ndarray]:
    """Per-vertex Gaussian and mean curvature.

    Gaussian curvature is the angle defect at each vertex divided by a third of the area
    of its faces; mean curvature is trimesh's discrete mean curvature measure within a ball
    of ``radius`` (default: twice the mean edge length) divided by the ball's cross-section.

    Returns
    -------
    dict
        ``{"gaussian": (n,), "mean": (n,), "radius": float}``
    """
    import trimesh

    tm = to_trimesh(mesh)
    if radius is None:
        radius = 2.0 * float(tm.edges_unique_length.mean())
    vertex_area = np.zeros(len(tm.vertices))
    np.add.at(vertex_area, tm.faces.ravel(), np.repeat(tm.area_faces / 3.0, 3))
    gaussian = tm.vertex_defects / np.maximum(vertex_area, 1e-300)
    mean = np.empty(len(tm.vertices))
    n = len(tm.vertices)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        mean[start:stop] = trimesh.curvature.discrete_mean_curvature_measure(
            tm, tm.vertices[start:stop], radius
        ) / (np.pi * radius**2)
        progress(stop / n, None)
    return {"gaussian": gaussian, "mean": mean, "radius": float(radius)}


def sample_points(mesh: Any, count: int = 2000, seed: int = 0) -> np.ndarray:
    """``count`` points sampled uniformly by area on the surface, as ``(count, 3)``."""
    import trimesh

    points, _ = trimesh.sample.sample_surface(to_trimesh(mesh), int(count), seed=seed)
    return np.asarray(points)


def signed_distance_grid(
    mesh: Any,
    resolution: int = 16,
    padding: float = 0.1,
    chunk: int = 512,
    progress: Progress = _noop,
) -> dict[str, np.ndarray]:
    """Signed distance to the surface on a regular grid around the mesh.

    trimesh's convention: positive inside, negative outside (the sign is only meaningful
    for a watertight mesh).

    Returns
    -------
    dict
        ``{"origin": (3,), "spacing": (3,), "values": (r, r, r)}``
    """
    import trimesh

    tm = to_trimesh(mesh)
    lo, hi = tm.bounds
    pad = (hi - lo) * padding
    lo, hi = lo - pad, hi + pad
    axes = [np.linspace(lo[i], hi[i], resolution) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    values = np.empty(len(grid))
    for start in range(0, len(grid), chunk):
        stop = min(len(grid), start + chunk)
        values[start:stop] = trimesh.proximity.signed_distance(tm, grid[start:stop])
        progress(stop / len(grid), None)
    spacing = (hi - lo) / max(resolution - 1, 1)
    return {"origin": lo, "spacing": spacing, "values": values.reshape((resolution,) * 3)}


def _stats(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"min": float("nan"), "max": float("nan"), "mean": float("nan")}
    return {
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
    }


def process_mesh(
    mesh: LoadedMesh,
    operations: Sequence[str] = OPERATIONS,
    options: dict[str, Any] | None = None,
    out_dir: str | None = None,
    render: bool = True,
) -> dict[str, Any]:
    """Run the chosen operations on one mesh; the geometry task of the demo.

    Parameters
    ----------
    mesh
        The loaded mesh.
    operations
        Names from :data:`OPERATIONS`; they run in that order whatever the order given.
    options
        Overrides of :data:`DEFAULT_OPTIONS`.
    out_dir
        If given, the processed mesh is written there as ``<name>.processed.ply``.
    render
        Render before/after PNGs (matplotlib, in this process).

    Returns
    -------
    dict
        ``name``, ``summary_before``, ``summary_after``, ``operations`` (statistics per
        operation), ``output`` (path or ``None``), ``before_png``/``after_png`` (bytes or
        ``None``), ``seconds``, ``notes``.
    """
    from . import rendering

    t0 = time.perf_counter()
    opts = {**DEFAULT_OPTIONS, **(options or {})}
    unknown = set(operations) - set(OPERATIONS)
    if unknown:
        raise ValueError(f"unknown operations: {sorted(unknown)}; known: {list(OPERATIONS)}")
    chosen = [op for op in OPERATIONS if op in operations]
    steps = len(chosen) + (2 if render else 0) + 1
    done = 0

    def stage(message: str) -> Progress:
        base = done

        def progress(fraction: float, text: str | None) -> None:
            report_progress((base + fraction) / steps, message=text)

        report_progress(base / steps, message=message)
        return progress

    original = to_trimesh(mesh)
    current = original
    stats: dict[str, Any] = {}
    before_png = after_png = None
    if render:
        stage("rendering the input")
        before_png = rendering.render_mesh_png(
            original, f"{mesh.name}: input", max_faces=opts["render_faces"]
        )
        done += 1
    curvature = None
    for op in chosen:
        if op == "decimate":
            p = stage(f"decimating to {opts['target_faces']} faces")
            faces_before = len(current.faces)
            current = decimate(current, opts["target_faces"], progress=p)
            stats[op] = {"faces_before": faces_before, "faces_after": len(current.faces)}
        elif op == "smooth":
            p = stage(f"Taubin smoothing, {opts['smooth_iterations']} iterations")
            smoothed = taubin_smooth(current, opts["smooth_iterations"], progress=p)
            moved = np.linalg.norm(smoothed.vertices - current.vertices, axis=1)
            stats[op] = {"iterations": opts["smooth_iterations"], "vertex_shift": _stats(moved)}
            current = smoothed
        elif op == "curvature":
            p = stage(f"curvature at {len(current.vertices)} vertices")
            curvature = vertex_curvature(current, progress=p)
            stats[op] = {
                "radius": curvature["radius"],
                "gaussian": _stats(curvature["gaussian"]),
                "mean": _stats(curvature["mean"]),
            }
        elif op == "sample":
            p = stage(f"sampling {opts['sample_count']} surface points")
            points = sample_points(current, opts["sample_count"])
            p(1.0, None)
            stats[op] = {"count": len(points), "centroid": points.mean(axis=0).tolist()}
        elif op == "sdf":
            r = opts["sdf_resolution"]
            p = stage(f"signed distance on a {r}^3 grid")
            sdf = signed_distance_grid(current, r, progress=p)
            values = sdf["values"]
            stats[op] = {
                "resolution": r,
                "inside_fraction": float((values > 0).mean()),
                "distance": _stats(values),
            }
        done += 1
    output = None
    stage("writing the result")
    if out_dir is not None:
        path = Path(out_dir) / f"{mesh.name}.processed.ply"
        path.parent.mkdir(parents=True, exist_ok=True)
        current.export(str(path))
        output = str(path)
    done += 1
    if render:
        stage("rendering the result")
        after_png = rendering.render_mesh_png(
            current,
            f"{mesh.name}: result",
            max_faces=opts["render_faces"],
            scalars=None if curvature is None else _curvature_for(curvature, current),
        )
        done += 1
    report_progress(1.0, message="done")
    return {
        "name": mesh.name,
        "source": mesh.path,
        "operations": stats,
        "summary_before": summarize(original),
        "summary_after": summarize(current),
        "output": output,
        "before_png": before_png,
        "after_png": after_png,
        "seconds": time.perf_counter() - t0,
        "notes": list(mesh.notes),
    }


def _curvature_for(curvature: dict[str, np.ndarray], mesh: Any) -> np.ndarray | None:
    """Mean curvature to colour the result with, when it matches the result's vertices."""
    values = curvature["mean"]
    return values if len(values) == len(mesh.vertices) else None
