"""The demo end to end: every shared mesh through a real manager, bad input, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trimesh")

from test_demo_operations import MESHES, needs_meshes, write_bad_inputs

from mosaic_parallel.demo.runner import DemoRun

#: Small settings so that the exhaustive run stays quick on 2 workers.
SMALL = {
    "target_faces": 800,
    "smooth_iterations": 3,
    "sample_count": 200,
    "sdf_resolution": 6,
    "render_faces": 800,
}


def run_to_end(qtbot, run: DemoRun, timeout_ms: int) -> dict:
    with qtbot.waitSignal(run.finished, timeout=timeout_ms) as blocker:
        run.start()
    return blocker.args[0]


def looks_like_png(path: Path, min_bytes: int = 5000) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes


@needs_meshes
@pytest.mark.timeout(300)
def test_demo_runs_on_every_shared_mesh(qtbot, make_manager, tmp_path):
    manager = make_manager(max_workers=2)
    paths = sorted(p for p in MESHES.iterdir() if p.suffix.lower() in {".obj", ".ply"})
    assert len(paths) >= 9
    run = DemoRun(manager, paths, options=SMALL, out_dir=tmp_path, max_concurrent=2)
    records = run_to_end(qtbot, run, 240_000)

    failures = {k: r["error"] for k, r in records.items() if r["status"] != "completed"}
    assert not failures
    assert run.succeeded and run.contact_sheet_error is None
    for key, record in records.items():
        result = record["result"]
        assert result["summary_after"]["faces"] <= SMALL["target_faces"], key
        assert Path(result["output"]).is_file()
    # the one with triangle strips loads as a full surface
    assert records["igea"]["result"]["summary_before"]["faces"] > 200_000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["succeeded"] is True
    assert {m["name"] for m in summary["meshes"]} == {p.stem for p in paths}
    assert looks_like_png(tmp_path / "contact_sheet.png", 50_000)


@pytest.mark.timeout(180)
def test_bad_inputs_fail_their_own_tasks_while_the_rest_completes(qtbot, make_manager, tmp_path):
    from mosaic_parallel.demo import bundled_mesh_path

    manager = make_manager(max_workers=2)
    bad = write_bad_inputs(tmp_path / "in")
    paths = [bundled_mesh_path()] + [p for p, _ in bad.values()]
    if MESHES is not None:
        paths.append(MESHES / "suzanne.obj")
    failed_signals: list[str] = []
    manager.task_failed.connect(lambda tid, name, err: failed_signals.append(name))
    run = DemoRun(manager, paths, ["decimate", "smooth"], SMALL, tmp_path / "out")
    records = run_to_end(qtbot, run, 120_000)

    assert records["spot"]["status"] == "completed"
    if MESHES is not None:
        assert records["suzanne"]["status"] == "completed"
    for key, (_, fragment) in bad.items():
        assert records[key]["status"] == "failed", key
        assert records[key]["error"].startswith("MeshLoadError: "), records[key]["error"]
        assert fragment in records[key]["error"], (key, records[key]["error"])
    assert sorted(failed_signals) == sorted(f"load {k}" for k in bad)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["succeeded"] is False
    assert looks_like_png(tmp_path / "out" / "contact_sheet.png")


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", COLUMNS="160")
    return subprocess.run(
        [sys.executable, "-m", "mosaic_parallel", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )


@pytest.mark.timeout(200)
def test_cli_headless_on_the_bundled_mesh(tmp_path):
    proc = _cli(
        ["--headless", "--out", "out", "--workers", "2", "--target-faces", "1500"], tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "spot" in proc.stdout and "completed" in proc.stdout
    out = tmp_path / "out"
    assert (out / "meshes" / "spot.processed.ply").is_file()
    assert looks_like_png(out / "contact_sheet.png")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meshes"][0]["summary_after"]["faces"] <= 1500


@pytest.mark.timeout(200)
def test_cli_exit_status_1_lists_the_failure(tmp_path):
    from mosaic_parallel.demo import bundled_mesh_path

    proc = _cli(
        [
            "--headless",
            "--out",
            "out",
            "--workers",
            "1",
            "--operations",
            "decimate",
            str(bundled_mesh_path()),
            str(tmp_path / "absent.stl"),
        ],
        tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "mesh file not found" in proc.stdout
    assert "1 of 2 mesh(es) failed" in proc.stdout
    assert (tmp_path / "out" / "meshes" / "spot.processed.ply").is_file()


def test_cli_rejects_unknown_operations(tmp_path):
    proc = _cli(["--headless", "--operations", "explode"], tmp_path)
    assert proc.returncode == 2
    assert "unknown operations" in proc.stderr


@pytest.mark.timeout(120)
def test_shutting_the_manager_down_mid_run_ends_the_run(qtbot, make_manager, tmp_path):
    from mosaic_parallel.demo import bundled_mesh_path

    manager = make_manager(max_workers=1)
    run = DemoRun(manager, [bundled_mesh_path()] * 3, options=SMALL, out_dir=tmp_path)
    started: list[str] = []
    manager.task_started.connect(lambda tid, name: started.append(name))
    run.start()
    qtbot.waitUntil(lambda: any(n.startswith("process ") for n in started), timeout=60_000)
    with qtbot.waitSignal(run.finished, timeout=30_000):
        manager.shutdown(wait=True)
    statuses = [r["status"] for r in run.records.values()]
    assert "cancelled" in statuses
    assert set(statuses) <= {"completed", "cancelled"}
    assert run.contact_sheet is None  # nothing is submitted to a manager that is shut down
    assert json.loads((tmp_path / "summary.json").read_text())["succeeded"] is False


def test_cli_without_a_display_runs_headless(tmp_path):
    env_display = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, "-m", "mosaic_parallel", "demo", "--out", "o", "--operations", "sample"],
        cwd=tmp_path,
        env={**env_display, "QT_QPA_PLATFORM": "offscreen", "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "o" / "summary.json").is_file()


@pytest.mark.parametrize("out", ["/proc/no-such-folder", "existing-file"])
def test_cli_refuses_an_out_folder_it_cannot_write(tmp_path, out):
    if out == "existing-file":
        target = tmp_path / "a-file"
        target.write_text("not a folder")
        out = str(target)
    proc = subprocess.run(
        [sys.executable, "-m", "mosaic_parallel", "demo", "--headless", "--out", out],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
    )
    assert proc.returncode == 2
    assert "--out" in proc.stderr and "cannot write" in proc.stderr
