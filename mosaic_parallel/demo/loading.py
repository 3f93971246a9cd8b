"""Reading mesh files (OBJ, PLY, STL, OFF) into plain arrays, with clear errors for bad input.

Qt-free; it runs on an I/O thread of the manager (``submit_io_task``). PLY files whose
faces are stored as triangle strips (``tristrips``) are converted to triangles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..worker import report_progress

__all__ = [
    "SUPPORTED_SUFFIXES",
    "LoadedMesh",
    "MeshLoadError",
    "bundled_mesh_path",
    "load_mesh",
    "tristrips_to_triangles",
]

#: File types the demo reads.
SUPPORTED_SUFFIXES = (".obj", ".ply", ".stl", ".off")


class MeshLoadError(ValueError):
    """A mesh file is missing, empty, unreadable, or not a surface mesh."""


@dataclass
class LoadedMesh:
    """A triangle mesh as plain arrays, cheap to pickle to a worker process.

    Attributes
    ----------
    name
        A short name (the file's stem).
    path
        Where it was read from.
    vertices
        ``(n, 3)`` float64 coordinates.
    faces
        ``(m, 3)`` int64 vertex indices.
    notes
        Remarks about the loading (for example a triangle-strip conversion).
    """

    name: str
    path: str
    vertices: np.ndarray
    faces: np.ndarray
    notes: list[str] = field(default_factory=list)


def bundled_mesh_path() -> Path:
    """Path of the bundled ``spot.obj`` (Keenan Crane, CC0)."""
    return Path(str(resources.files("mosaic_parallel.demo") / "data" / "spot.obj"))


def tristrips_to_triangles(strips: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Turn triangle strips into a ``(m, 3)`` triangle array.

    Each strip lists vertex indices; ``-1`` restarts a strip. Triangle ``i`` of a strip is
    ``(s[i], s[i+1], s[i+2])`` with every second one flipped to keep a consistent
    orientation; degenerate triangles (a repeated index, used to join strips) are dropped.
    """
    out: list[np.ndarray] = []
    for strip in strips:
        s = np.asarray(strip, dtype=np.int64).ravel()
        # split at the -1 restart markers
        cuts = np.flatnonzero(s < 0)
        for part in np.split(s, cuts):
            part = part[part >= 0]
            if len(part) < 3:
                continue
            a, b, c = part[:-2], part[1:-1], part[2:]
            tri = np.stack([a, b, c], axis=1)
            odd = np.arange(len(tri)) % 2 == 1
            tri[odd] = tri[odd][:, [1, 0, 2]]
            keep = (a != b) & (b != c) & (a != c)
            out.append(tri[keep])
    if not out:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(out)


def _obj_references(path: Path, text: str) -> list[str]:
    """Problems with the material and texture files an OBJ refers to (empty when fine)."""
    problems: list[str] = []
    for mtl_name in re.findall(r"^\s*mtllib\s+(.+?)\s*$", text, flags=re.MULTILINE):
        mtl = path.parent / mtl_name
        if not mtl.is_file():
            problems.append(f"its material library '{mtl_name}' does not exist")
            continue
        mtl_text = mtl.read_text(errors="replace")
        for image in re.findall(
            r"^\s*(?:map_\w+|bump|disp|decal|refl)\s+(?:-\S+\s+\S+\s+)*(\S.*?)\s*$",
            mtl_text,
            flags=re.MULTILINE,
        ):
            if not (mtl.parent / image).is_file():
                problems.append(
                    f"its material library '{mtl_name}' references the texture image "
                    f"'{image}', which does not exist"
                )
    return problems


def _read_ply(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """Read a PLY that stores ``tristrips`` (and no ``face`` element); ``None`` otherwise."""
    import plyfile

    with path.open("rb") as fh:
        head = fh.read(65536)  # the header is text at the start of the file
    end = head.find(b"end_header")
    if end < 0:
        raise MeshLoadError(f"{path.name} is not a PLY file: no 'end_header' line")
    names = set(re.findall(rb"^element\s+(\S+)", head[:end], flags=re.MULTILINE))
    names = {n.decode("ascii", "replace") for n in names}
    if "tristrips" not in names or "face" in names:
        return None
    data = plyfile.PlyData.read(str(path))
    vert = data["vertex"].data
    vertices = np.column_stack([vert["x"], vert["y"], vert["z"]]).astype(np.float64)
    strips = data["tristrips"].data["vertex_indices"]
    report_progress(0.5, message=f"converting {len(strips)} triangle strip(s) to triangles")
    faces = tristrips_to_triangles(list(strips))
    return vertices, faces, [f"faces converted from {len(strips)} triangle strip(s)"]


def load_mesh(path: str | Path) -> LoadedMesh:
    """Read a mesh file into a :class:`LoadedMesh`.

    Parameters
    ----------
    path
        An OBJ, PLY, STL or OFF file.

    Raises
    ------
    MeshLoadError
        The file is missing, empty, of an unknown type, unreadable, refers to a missing
        material or texture, or holds no triangles.
    """
    import trimesh

    path = Path(path)
    report_progress(0.0, message=f"reading {path.name}")
    if not path.exists():
        raise MeshLoadError(f"mesh file not found: {path}")
    if not path.is_file():
        raise MeshLoadError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise MeshLoadError(f"the file is empty (0 bytes): {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise MeshLoadError(
            f"unsupported file type '{suffix}' for {path.name}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    notes: list[str] = []
    loaded: Any = None
    if suffix == ".obj":
        text = path.read_text(errors="replace")
        problems = _obj_references(path, text)
        if problems:
            raise MeshLoadError(f"{path.name}: " + "; ".join(problems))
        if not re.search(r"^\s*v\s", text, flags=re.MULTILINE):
            raise MeshLoadError(f"{path.name} is not an OBJ mesh: it has no vertex ('v ...') lines")
    if suffix == ".ply":
        try:
            loaded = _read_ply(path)
        except Exception as exc:
            raise MeshLoadError(f"could not read {path.name} as PLY: {exc}") from exc
    if loaded is not None:
        vertices, faces, notes = loaded
    else:
        try:
            mesh = trimesh.load(str(path), skip_materials=True, process=False)
        except Exception as exc:
            raise MeshLoadError(
                f"could not read {path.name} as {suffix[1:].upper()}: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(mesh, trimesh.Scene):
            if not any(isinstance(g, trimesh.Trimesh) for g in mesh.geometry.values()):
                points = sum(len(getattr(g, "vertices", ())) for g in mesh.geometry.values())
                mesh = trimesh.PointCloud(np.zeros((points, 3)))
            else:
                mesh = mesh.to_mesh()
        if isinstance(mesh, trimesh.PointCloud):
            if len(mesh.vertices) == 0:
                raise MeshLoadError(f"{path.name} contains no vertices: it is not a readable mesh")
            raise MeshLoadError(
                f"{path.name} has {len(mesh.vertices)} vertices but no faces: "
                "a point cloud is not a surface mesh"
            )
        if not isinstance(mesh, trimesh.Trimesh):
            raise MeshLoadError(f"{path.name} holds no triangle mesh")
        if len(mesh.faces):
            # texture seams split vertices; merge them so the surface is connected
            mesh.merge_vertices(merge_tex=True, merge_norm=True)
            mesh.remove_unreferenced_vertices()
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
    if len(vertices) == 0:
        raise MeshLoadError(f"{path.name} contains no vertices: it is not a readable mesh")
    if len(faces) == 0:
        raise MeshLoadError(
            f"{path.name} has {len(vertices)} vertices but no faces: "
            "a point cloud is not a surface mesh"
        )
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshLoadError(f"{path.name} has faces that refer to vertices it does not have")
    report_progress(1.0, message=f"read {len(vertices)} vertices, {len(faces)} faces")
    return LoadedMesh(path.stem, str(path), vertices, faces, notes)
