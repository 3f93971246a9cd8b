"""The demo's Qt-free mesh code: loading (good and bad files, triangle strips) and operations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")

from mosaic_parallel.demo import MeshLoadError, bundled_mesh_path, load_mesh  # noqa: E402
from mosaic_parallel.demo.loading import tristrips_to_triangles  # noqa: E402
from mosaic_parallel.demo.operations import (  # noqa: E402
    OPERATIONS,
    decimate,
    process_mesh,
    sample_points,
    signed_distance_grid,
    summarize,
    taubin_smooth,
    vertex_curvature,
)


def shared_meshes() -> Path | None:
    """``shared/data/meshes`` found beside the repository (or any of its parents)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "meshes"
        if candidate.is_dir():
            return candidate
    return None


MESHES = shared_meshes()
needs_meshes = pytest.mark.skipif(
    MESHES is None, reason="shared/data/meshes not found beside the repository"
)


# ---------------------------------------------------------------- triangle strips
def test_tristrips_alternate_orientation_and_restart():
    faces = tristrips_to_triangles([np.array([0, 1, 2, 3, -1, 4, 5, 6])])
    assert faces.tolist() == [[0, 1, 2], [2, 1, 3], [4, 5, 6]]


def test_tristrips_drop_degenerate_joins():
    # 0 1 2 2 3 joins two pieces with degenerate triangles (2,2,x)
    faces = tristrips_to_triangles([np.array([0, 1, 2, 2, 3, 4])])
    assert all(len(set(f)) == 3 for f in faces.tolist())
    assert [0, 1, 2] in faces.tolist()


def test_tristrips_of_a_strip_grid_give_a_consistently_oriented_surface():
    # a 2 x 3 quad grid as one strip per row of quads: orientation must be consistent
    strips = [np.array([0, 4, 1, 5, 2, 6, 3, 7]), np.array([4, 8, 5, 9, 6, 10, 7, 11])]
    faces = tristrips_to_triangles(strips)
    grid = np.array([[x, y, 0.0] for y in range(3) for x in range(4)])
    mesh = trimesh.Trimesh(grid, faces, process=False)
    assert len(faces) == 12
    assert mesh.is_winding_consistent
    normals_z = mesh.face_normals[:, 2]
    assert np.all(np.sign(normals_z) == np.sign(normals_z[0]))


# ---------------------------------------------------------------- loading
def test_bundled_spot_loads_watertight():
    mesh = load_mesh(bundled_mesh_path())
    assert (len(mesh.vertices), len(mesh.faces)) == (2930, 5856)
    assert summarize(mesh)["watertight"]


@needs_meshes
def test_igea_triangle_strips_load_as_triangles():
    mesh = load_mesh(MESHES / "igea.ply")
    assert len(mesh.vertices) == 134345
    assert len(mesh.faces) > 200_000
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
    assert any("triangle strip" in note for note in mesh.notes)
    assert trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).is_winding_consistent


def write_bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Bad mesh files and a fragment of the error each must give."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.obj").write_bytes(b"")
    (folder / "notes.obj").write_text("These are my notes, not a mesh.\nSee you tomorrow.\n")
    (folder / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n")
    (folder / "textured.obj").write_text(
        "mtllib textured.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
        "usemtl skin\nf 1/1 2/2 3/3\n"
    )
    (folder / "textured.mtl").write_text("newmtl skin\nKd 1 1 1\nmap_Kd skin_diffuse.png\n")
    (folder / "nomtl.obj").write_text("mtllib gone.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (folder / "mesh.xyz").write_text("0 0 0\n")
    return {
        "missing": (folder / "missing.obj", "mesh file not found"),
        "empty": (folder / "empty.obj", "the file is empty"),
        "notes": (folder / "notes.obj", "is not an OBJ mesh"),
        "points": (folder / "points.obj", "no faces"),
        "textured": (folder / "textured.obj", "texture image 'skin_diffuse.png'"),
        "nomtl": (folder / "nomtl.obj", "material library 'gone.mtl' does not exist"),
        "mesh": (folder / "mesh.xyz", "unsupported file type"),
    }


@pytest.mark.parametrize(
    "key", ["missing", "empty", "notes", "points", "textured", "nomtl", "mesh"]
)
def test_bad_input_raises_a_clear_error(tmp_path, key):
    path, fragment = write_bad_inputs(tmp_path)[key]
    with pytest.raises(MeshLoadError, match=fragment.replace("(", r"\(")):
        load_mesh(path)


# ---------------------------------------------------------------- operations
@pytest.fixture(scope="module")
def sphere():
    return trimesh.creation.icosphere(subdivisions=3, radius=2.0)


def test_taubin_smoothing_keeps_volume_and_moves_vertices(sphere):
    noisy = sphere.copy()
    rng = np.random.default_rng(0)
    noisy.vertices = noisy.vertices + rng.normal(scale=0.03, size=noisy.vertices.shape)
    smoothed = taubin_smooth(noisy, iterations=10)
    assert len(smoothed.vertices) == len(noisy.vertices)
    # smoothing brings the noisy vertices back towards the sphere without shrinking it
    err_before = np.abs(np.linalg.norm(noisy.vertices, axis=1) - 2.0).mean()
    err_after = np.abs(np.linalg.norm(smoothed.vertices, axis=1) - 2.0).mean()
    assert err_after < 0.6 * err_before
    assert smoothed.volume == pytest.approx(sphere.volume, rel=0.05)


def test_decimate_reaches_the_target(sphere):
    small = decimate(sphere, 200)
    assert 150 <= len(small.faces) <= 200
    assert len(decimate(sphere, 10_000).faces) == len(sphere.faces)


def test_curvature_of_a_sphere(sphere):
    curv = vertex_curvature(sphere)
    assert np.median(curv["gaussian"]) == pytest.approx(1 / 4, rel=0.1)  # 1 / R^2
    assert np.all(curv["mean"] > 0)
    assert curv["gaussian"].shape == (len(sphere.vertices),)


def test_sample_points_lie_on_the_surface(sphere):
    points = sample_points(sphere, 500)
    assert points.shape == (500, 3)
    assert np.allclose(np.linalg.norm(points, axis=1), 2.0, atol=0.05)


def test_signed_distance_grid_is_positive_inside(sphere):
    sdf = signed_distance_grid(sphere, resolution=9)
    values = sdf["values"]
    assert values.shape == (9, 9, 9)
    assert values[4, 4, 4] == pytest.approx(2.0, abs=0.05)  # the centre, R inside
    assert values[0, 0, 0] < 0


def test_process_mesh_writes_and_summarizes(tmp_path):
    mesh = load_mesh(bundled_mesh_path())
    result = process_mesh(
        mesh,
        OPERATIONS,
        {"target_faces": 1000, "sdf_resolution": 6, "sample_count": 100, "render_faces": 800},
        str(tmp_path),
    )
    assert result["summary_before"]["faces"] == 5856
    assert result["summary_after"]["faces"] <= 1000
    assert set(result["operations"]) == set(OPERATIONS)
    assert Path(result["output"]).is_file()
    reloaded = trimesh.load(result["output"], force="mesh")
    assert len(reloaded.faces) == result["summary_after"]["faces"]
    for key in ("before_png", "after_png"):
        assert result[key][:8] == b"\x89PNG\r\n\x1a\n" and len(result[key]) > 2000
