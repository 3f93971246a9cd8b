"""The demo: real mesh operations run in the background through the task manager.

Install with ``pip install mosaic-parallel[demo]``; run with ``python -m mosaic_parallel demo``.
The operation modules (:mod:`.loading`, :mod:`.operations`, :mod:`.rendering`) are Qt-free;
:mod:`.runner` drives them through a manager, :mod:`.headless` and :mod:`.window` show them.
"""

from __future__ import annotations

from .loading import LoadedMesh, MeshLoadError, bundled_mesh_path, load_mesh
from .operations import DEFAULT_OPTIONS, OPERATIONS, process_mesh

__all__ = [
    "DEFAULT_OPTIONS",
    "OPERATIONS",
    "LoadedMesh",
    "MeshLoadError",
    "bundled_mesh_path",
    "load_mesh",
    "process_mesh",
]
