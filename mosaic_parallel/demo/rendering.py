"""Matplotlib renderings of meshes and the contact sheet, as PNG bytes (runs in workers).

Uses the Agg canvas directly (no pyplot), so it never touches a GUI toolkit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..worker import report_progress

__all__ = ["contact_sheet_png", "render_mesh_png"]


def _figure(width: float, height: float, dpi: int) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=fig.get_facecolor())
    return buf.getvalue()


def render_mesh_png(
    mesh: Any,
    title: str = "",
    *,
    max_faces: int = 3000,
    scalars: np.ndarray | None = None,
    size: float = 2.6,
    dpi: int = 80,
) -> bytes:
    """A shaded 3D view of a mesh as PNG bytes.

    Parameters
    ----------
    mesh
        A ``trimesh.Trimesh`` or :class:`~mosaic_parallel.demo.loading.LoadedMesh`.
    title
        Caption above the view.
    max_faces
        Meshes with more faces are drawn decimated (drawing cost grows with faces).
    scalars
        Optional per-vertex values (e.g. curvature) to colour the faces with.
    """
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from .operations import decimate, to_trimesh

    tm = to_trimesh(mesh)
    if len(tm.faces) > max_faces:
        tm = decimate(tm, max_faces, progress=lambda f, m: None)
        scalars = None
    tris = tm.vertices[tm.faces]
    normals = np.asarray(tm.face_normals)
    light = np.array([0.4, -0.5, 0.75])
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.clip(normals @ light, 0, 1)
    if scalars is not None:
        from matplotlib import colormaps

        face_values = np.asarray(scalars)[tm.faces].mean(axis=1)
        lo, hi = np.nanpercentile(face_values, [5, 95])
        norm = np.clip((face_values - lo) / max(hi - lo, 1e-12), 0, 1)
        colors = colormaps["coolwarm"](norm)[:, :3] * shade[:, None]
    else:
        base = np.array([0.55, 0.7, 0.9])
        colors = base[None, :] * shade[:, None]
    fig = _figure(size, size, dpi)
    ax = fig.add_axes((0, 0, 1, 0.9), projection="3d")
    ax.add_collection3d(Poly3DCollection(tris, facecolors=np.clip(colors, 0, 1), linewidths=0))
    lo, hi = tm.bounds
    center, half = (lo + hi) / 2, float((hi - lo).max()) / 2 or 1.0
    ax.set_xlim(center[0] - half, center[0] + half)
    ax.set_ylim(center[1] - half, center[1] + half)
    ax.set_zlim(center[2] - half, center[2] + half)
    ax.view_init(elev=15, azim=30, vertical_axis="y")  # the usual meshes are y-up
    ax.set_box_aspect((1, 1, 1), zoom=1.35)
    ax.set_axis_off()
    fig.text(0.5, 0.94, title, ha="center", va="center", fontsize=8)
    return _png(fig)


def contact_sheet_png(rows: Sequence[dict[str, Any]], *, cell: float = 2.2, dpi: int = 80) -> bytes:
    """Compose before/after renderings into one PNG, one row per mesh.

    Parameters
    ----------
    rows
        Dicts with ``name`` and either ``before_png`` and ``after_png`` (bytes), or
        ``error`` (text shown in place of the images).
    """
    from matplotlib.image import imread

    n = max(1, len(rows))
    fig = _figure(2 * cell + 1.6, cell * n, dpi)
    fig.set_facecolor("white")
    for i, row in enumerate(rows):
        report_progress((i + 1) / n, current=i + 1, total=n)
        top = 1 - i / n
        fig.text(
            0.01,
            top - 0.5 / n,
            row.get("name", "?"),
            fontsize=9,
            va="center",
            weight="bold",
            wrap=True,
        )
        if row.get("error"):
            fig.text(
                0.22,
                top - 0.5 / n,
                "FAILED: " + str(row["error"])[:90],
                fontsize=7,
                va="center",
                color="firebrick",
                wrap=True,
            )
            continue
        for j, key in enumerate(("before_png", "after_png")):
            data = row.get(key)
            if not data:
                continue
            ax = fig.add_axes((0.22 + j * 0.39, top - 1 / n, 0.38, 1 / n))
            ax.imshow(imread(io.BytesIO(data), format="png"))
            ax.set_axis_off()
    return _png(fig)
