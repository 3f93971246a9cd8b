"""TaskMonitor on a real manager: rows, batch bars, cancel, output, clear, and a screenshot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mosaic_parallel import report_progress


# ---------------------------------------------------------------- tasks (run in workers)
def stepping(total: int, delay: float, text: str = "hello") -> int:
    print(f"{text} from the task")
    for i in range(1, total + 1):
        time.sleep(delay)
        report_progress(current=i, total=total, message=f"step {i} of {total}")
    return total


def failing() -> None:
    print("about to fail")
    raise ValueError("boom in the task")


def until_cancelled() -> None:
    while True:
        time.sleep(0.02)
        report_progress(0.5, message="waiting to be cancelled")


# ---------------------------------------------------------------- helpers
def image_stats(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct colours on a sampling grid) of a PNG."""
    from qtpy.QtGui import QImage

    image = QImage(str(path))
    assert not image.isNull(), path
    colours = {
        image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)
    }
    return image.width(), image.height(), len(colours)


def states(monitor):
    return {monitor.row_state(t)["name"]: monitor.row_state(t) for t in monitor.task_ids()}


@pytest.fixture
def monitor(qtbot, manager):
    from mosaic_parallel.widgets import TaskMonitor

    widget = TaskMonitor(manager)
    widget.resize(900, 360)
    qtbot.addWidget(widget)
    widget.show()
    return widget


@pytest.mark.timeout(90)
def test_task_monitor_rows_batches_cancel_output_and_clear(qtbot, manager, monitor, tmp_path):
    batch_id = manager.submit_task_batch(
        [
            {"name": f"step {i}", "func": stepping, "args": (10, 0.15, f"task {i}")}
            for i in range(3)
        ],
        max_concurrent=1,
    )
    bad = manager.submit_task("bad one", failing)
    endless = manager.submit_task("endless", until_cancelled)

    # mid-run: one batch task running with progress, the others of the batch queued
    qtbot.waitUntil(lambda: states(monitor)["step 0"]["progress"] >= 30, timeout=30_000)
    mid = states(monitor)
    assert mid["step 0"]["status"] == "running"
    assert mid["step 0"]["message"].startswith("step ")
    assert mid["step 0"]["cancel_enabled"]
    assert mid["step 0"]["elapsed"].endswith(" s")  # shown from the start, not after a tick
    assert mid["step 1"]["status"] == "queued" and mid["step 2"]["status"] == "queued"
    batch = monitor.batch_state()[batch_id]
    assert 0 < batch["value"] < 100 and "0/3 finished" in batch["label"]
    shot = tmp_path / "task_monitor_mid_run.png"
    assert monitor.grab().save(str(shot))
    width, height, colours = image_stats(shot)
    assert (width, height) == (monitor.width(), monitor.height())
    assert colours > 20  # text, bars and buttons, not a blank widget

    # the cancel button of the endless task
    qtbot.waitUntil(lambda: states(monitor)["endless"]["status"] == "running", timeout=30_000)
    endless_row = monitor._rows[endless]
    with qtbot.waitSignal(manager.task_cancelled, timeout=15_000):
        endless_row.cancel.click()
    assert states(monitor)["endless"]["status"] == "cancelled"
    assert not states(monitor)["endless"]["cancel_enabled"]

    qtbot.waitUntil(
        lambda: all(
            s["status"] in ("completed", "failed", "cancelled") for s in states(monitor).values()
        ),
        timeout=60_000,
    )
    end = states(monitor)
    assert [end[f"step {i}"]["status"] for i in range(3)] == ["completed"] * 3
    assert all(end[f"step {i}"]["progress"] == 100 for i in range(3))
    assert end["bad one"]["status"] == "failed"
    assert end["bad one"]["message"].startswith("ValueError: boom in the task")
    assert float(end["step 0"]["elapsed"].split()[0]) > 0
    assert monitor.batch_state()[batch_id]["value"] == 100
    assert "3/3 finished" in monitor.batch_state()[batch_id]["label"]

    # captured output on demand
    dialog = monitor.show_output(bad)
    from qtpy.QtWidgets import QPlainTextEdit

    text = dialog.findChild(QPlainTextEdit, "output_text").toPlainText()
    assert "about to fail" in text and "ValueError: boom in the task" in text
    dialog.close()
    batch_task = monitor.task_ids()[0]
    dialog = monitor.show_output(batch_task)
    assert "task 0 from the task" in dialog.findChild(QPlainTextEdit, "output_text").toPlainText()
    dialog.close()

    # clear finished: rows, batch bars and the manager's table are emptied
    monitor.clear_button.click()
    assert monitor.task_ids() == []
    assert monitor.batch_state() == {}
    assert monitor.table.rowCount() == 0
    assert len(manager.task_info) == 0
    assert monitor.summary_label.text() == "No tasks"


def test_task_monitor_shows_tasks_submitted_before_it(qtbot, manager):
    from mosaic_parallel.widgets import TaskMonitor

    with qtbot.waitSignal(manager.task_completed, timeout=30_000):
        done = manager.submit_task("early", stepping, args=(2, 0.0))
    queued = manager.submit_task("later", stepping, args=(2, 0.0))
    widget = TaskMonitor(manager)
    qtbot.addWidget(widget)
    assert widget.task_ids() == [done, queued]
    assert widget.row_state(done)["status"] == "completed"
    with qtbot.waitSignal(manager.task_completed, timeout=30_000):
        pass
    assert widget.row_state(queued)["status"] == "completed"
