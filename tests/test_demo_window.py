"""The demo window under offscreen Qt: responsive during a run, results as they arrive.

It also renders mid-run to a PNG that shows the rows and bars it should.
"""

from __future__ import annotations

import itertools
import time

import pytest

pytest.importorskip("trimesh")

from test_demo_operations import MESHES
from test_demo_run import SMALL
from test_widgets import image_stats, states


def mesh_paths():
    from mosaic_parallel.demo import bundled_mesh_path

    if MESHES is None:
        return [bundled_mesh_path()]
    return [MESHES / name for name in ("cow.obj", "suzanne.obj", "teapot.obj")]


@pytest.fixture
def window(qtbot, make_manager):
    from mosaic_parallel.demo.window import DemoWindow

    manager = make_manager(max_workers=2)
    win = DemoWindow(manager, mesh_paths(), options={**SMALL, "sdf_resolution": 10})
    qtbot.addWidget(win)
    win.show()
    return win


@pytest.mark.timeout(120)
def test_window_stays_responsive_and_fills_the_contact_sheet(qtbot, window):
    from qtpy.QtCore import QTimer

    manager = window.manager
    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.setInterval(10)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    process_spans: dict[str, list[float]] = {}

    def started(task_id, name):
        if name.startswith("process "):
            process_spans[task_id] = [time.perf_counter()]

    def completed(task_id, name, result):
        if task_id in process_spans:
            process_spans[task_id].append(time.perf_counter())

    manager.task_started.connect(started)
    manager.task_completed.connect(completed)
    heartbeat.start()
    with qtbot.waitSignal(window.run_finished, timeout=100_000) as blocker:
        run = window.start_run()
        assert run is not None
        assert not window.run_button.isEnabled()
    heartbeat.stop()
    run = blocker.args[0]

    assert run.succeeded, {k: r["error"] for k, r in run.records.items()}
    first = min(s[0] for s in process_spans.values())
    last = max(s[1] for s in process_spans.values())
    during = [t for t in beats if first <= t <= last]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    print(
        f"\nheartbeat during the geometry batch ({last - first:.2f} s): {len(during)} beats, "
        f"longest gap {max(gaps) * 1000:.0f} ms, "
        f"median {sorted(gaps)[len(gaps) // 2] * 1000:.0f} ms"
    )
    # the GUI thread kept turning while workers did the geometry: the heartbeat kept
    # firing all through the batch (no stall as long as the batch itself)
    assert len(during) >= 10
    assert max(gaps) < 0.5 * (last - first)

    # every mesh has its before/after pictures in the contact sheet
    for key, cells in window.result_labels.items():
        assert all(label.pixmap() is not None and not label.pixmap().isNull() for label in cells), (
            key
        )
    assert window.run_button.isEnabled()
    assert "processed" in window.status_label.text()


@pytest.mark.timeout(120)
def test_window_screenshot_mid_run(qtbot, window, tmp_path):
    window.start_run()
    monitor = window.monitor

    def processing_with_progress():
        return any(
            name.startswith("process ") and s["status"] == "running" and 0 < s["progress"] < 100
            for name, s in states(monitor).items()
        )

    qtbot.waitUntil(processing_with_progress, timeout=60_000)
    shot = tmp_path / "demo_window_mid_run.png"
    assert window.grab().save(str(shot))
    rows = states(monitor)
    names = set(rows)
    assert {f"load {p.stem}" for p in mesh_paths()} <= names
    assert any(s["status"] == "running" for n, s in rows.items() if n.startswith("process "))
    assert len(monitor.batch_state()) == 1
    batch = next(iter(monitor.batch_state().values()))
    assert batch["value"] < 100
    width, height, colours = image_stats(shot)
    assert (width, height) == (window.width(), window.height())
    assert colours > 20
    with qtbot.waitSignal(window.run_finished, timeout=100_000):
        pass
    assert monitor.batch_state()[run_batch(window)]["value"] == 100
    done = tmp_path / "demo_window_done.png"
    assert window.grab().save(str(done))
    assert image_stats(done)[2] > colours  # the renderings add colour


def run_batch(window):
    return window.run.batch_id
