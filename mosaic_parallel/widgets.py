"""Reusable Qt widgets for a manager: :class:`TaskMonitor`, a table of tasks and batches.

The widget needs nothing but a :class:`~mosaic_parallel.BackgroundTaskManager`'s signals
and public methods (``task_info``, ``cancel_task``, ``get_task_output``,
``clear_finished_tasks``), so any application can drop it in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["TaskMonitor"]

_TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class _Row:
    task_id: str
    name: str
    batch_id: str | None
    status: str = "queued"
    started: float | None = None
    finished: float | None = None
    message: str = ""
    progress: QProgressBar | None = None
    cancel: QPushButton | None = None
    output: QPushButton | None = None
    items: dict[int, QTableWidgetItem] = field(default_factory=dict)


@dataclass
class _BatchRow:
    batch_id: str
    widget: QWidget
    label: QLabel
    bar: QProgressBar
    tasks: set[str]


class TaskMonitor(QWidget):
    """A table of a manager's tasks, with a progress bar per batch.

    One row per task shows its name, status, progress, latest message, elapsed time, a
    cancel button and its captured output on demand; a "Clear finished" button forgets
    finished tasks.

    Parameters
    ----------
    manager
        A :class:`~mosaic_parallel.BackgroundTaskManager`.
    parent
        Qt parent widget.
    """

    COLUMNS = ("Task", "Status", "Progress", "Message", "Elapsed", "", "")
    (COL_NAME, COL_STATUS, COL_PROGRESS, COL_MESSAGE, COL_ELAPSED, COL_CANCEL, COL_OUTPUT) = range(
        7
    )

    def __init__(self, manager: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.manager = manager
        self._rows: dict[str, _Row] = {}
        self._order: list[str] = []
        self._batches: dict[str, _BatchRow] = {}
        self._dialogs: list[QDialog] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        header = QHBoxLayout()
        self.summary_label = QLabel("No tasks")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Forget finished tasks and remove their rows")
        self.clear_button.clicked.connect(self.clear_finished)
        header.addWidget(self.summary_label, 1)
        header.addWidget(self.clear_button)
        layout.addLayout(header)
        self.batch_area = QVBoxLayout()
        layout.addLayout(self.batch_area)
        self.table = QTableWidget(0, len(self.COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        vertical = self.table.verticalHeader()
        if vertical is not None:
            vertical.setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        hh = self.table.horizontalHeader()
        if hh is not None:
            hh.setSectionResizeMode(self.COL_MESSAGE, QHeaderView.ResizeMode.Stretch)
            hh.setMinimumSectionSize(40)
        for col, width in (
            (self.COL_NAME, 120),
            (self.COL_STATUS, 76),
            (self.COL_PROGRESS, 96),
            (self.COL_MESSAGE, 200),
            (self.COL_ELAPSED, 56),
            (self.COL_CANCEL, 60),
            (self.COL_OUTPUT, 60),
        ):
            self.table.setColumnWidth(col, width)
        layout.addWidget(self.table, 1)

        manager.task_queued.connect(self._on_queued)
        manager.task_started.connect(self._on_started)
        manager.task_progress.connect(self._on_progress)
        manager.task_message.connect(self._on_message)
        manager.task_completed.connect(lambda tid, name, result: self._on_done(tid, "completed"))
        manager.task_failed.connect(self._on_failed)
        manager.task_cancelled.connect(lambda tid, name: self._on_done(tid, "cancelled"))

        self._clock = QTimer(self)
        self._clock.setInterval(250)
        self._clock.timeout.connect(self._tick)
        for task_id in list(manager.task_info):  # tasks submitted before the monitor
            info = manager.task_info.get(task_id)
            if info is not None:
                self._add_row(task_id, info["name"], info)

    # ------------------------------------------------------------------ public
    def task_ids(self) -> list[str]:
        """Ids of the tasks shown, in row order."""
        return list(self._order)

    def row_state(self, task_id: str) -> dict[str, Any]:
        """What the row of ``task_id`` shows.

        Returns
        -------
        dict
            ``name``, ``status``, ``progress`` (0-100), ``message``, ``elapsed`` (text)
            and ``cancel_enabled``.
        """
        row = self._rows[task_id]
        return {
            "name": row.items[self.COL_NAME].text(),
            "status": row.items[self.COL_STATUS].text(),
            "progress": row.progress.value() if row.progress is not None else 0,
            "message": row.items[self.COL_MESSAGE].text(),
            "elapsed": row.items[self.COL_ELAPSED].text(),
            "cancel_enabled": bool(row.cancel is not None and row.cancel.isEnabled()),
        }

    def batch_state(self) -> dict[str, dict[str, Any]]:
        """Per batch id: its bar's value (0-100), maximum and label text."""
        return {
            bid: {"value": b.bar.value(), "maximum": b.bar.maximum(), "label": b.label.text()}
            for bid, b in self._batches.items()
        }

    def cancel(self, task_id: str) -> bool:
        """Cancel a task through the manager (what its row's button does)."""
        return bool(self.manager.cancel_task(task_id))

    def show_output(self, task_id: str) -> QDialog:
        """Open a dialog with the task's captured stdout and stderr; returns it."""
        output = self.manager.get_task_output(task_id)
        row = self._rows.get(task_id)
        dialog = QDialog(self)
        dialog.setWindowTitle(f"Output of {row.name if row else task_id}")
        dialog.resize(640, 400)
        lay = QVBoxLayout(dialog)
        text = QPlainTextEdit(dialog)
        text.setObjectName("output_text")
        text.setReadOnly(True)
        body = []
        for stream in ("stdout", "stderr"):
            if output.get(stream):
                body.append(f"--- {stream} ---\n{output[stream]}")
        info = self.manager.task_info.get(task_id)
        if info is not None and info.get("error"):
            body.append(f"--- error ---\n{info['error']}")
        text.setPlainText("\n".join(body) or "(no output captured)")
        lay.addWidget(text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, dialog)
        buttons.rejected.connect(dialog.close)
        lay.addWidget(buttons)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def clear_finished(self) -> None:
        """Forget finished tasks in the manager and remove their rows and finished batches."""
        self.manager.clear_finished_tasks()
        for task_id in [t for t in self._order if self._rows[t].status in _TERMINAL]:
            r = self._order.index(task_id)
            self.table.removeRow(r)
            self._order.pop(r)
            row = self._rows.pop(task_id)
            batch = self._batches.get(row.batch_id or "")
            if batch is not None:
                batch.tasks.discard(task_id)
        for bid in [b for b, batch in self._batches.items() if not batch.tasks]:
            batch = self._batches.pop(bid)
            self.batch_area.removeWidget(batch.widget)
            batch.widget.deleteLater()
        self._refresh_batches()
        self._refresh_summary()

    # ------------------------------------------------------------------ slots
    def _on_queued(self, task_id: str, name: str) -> None:
        self._add_row(task_id, name, self.manager.task_info.get(task_id))

    def _on_started(self, task_id: str, name: str) -> None:
        row = self._rows.get(task_id)
        if row is None:
            return
        row.started = time.time()
        self._set_status(row, "running")
        self._update_elapsed(row)
        if not self._clock.isActive():
            self._clock.start()

    def _on_progress(self, task_id: str, name: str, fraction: float, cur: int, tot: int) -> None:
        row = self._rows.get(task_id)
        if row is None or row.progress is None:
            return
        row.progress.setRange(0, 100)
        row.progress.setValue(round(fraction * 100))
        row.progress.setFormat(f"{cur}/{tot}" if tot else "%p%")
        self._update_elapsed(row)
        self._refresh_batches()

    def _on_message(self, task_id: str, name: str, message: str) -> None:
        row = self._rows.get(task_id)
        if row is None:
            return
        row.message = message
        self._item(task_id, self.COL_MESSAGE).setText(message)

    def _on_failed(self, task_id: str, name: str, error: str) -> None:
        row = self._rows.get(task_id)
        if row is None:
            return
        head = error.strip().split("\n\n", 1)[0]
        self._item(task_id, self.COL_MESSAGE).setText(head)
        self._item(task_id, self.COL_MESSAGE).setToolTip(error)
        self._on_done(task_id, "failed")

    def _on_done(self, task_id: str, status: str) -> None:
        row = self._rows.get(task_id)
        if row is None:
            return
        row.finished = time.time()
        self._set_status(row, status)
        if status == "completed" and row.progress is not None:
            row.progress.setRange(0, 100)
            row.progress.setValue(100)
        if row.cancel is not None:
            row.cancel.setEnabled(False)
        self._update_elapsed(row)
        self._refresh_batches()

    def _tick(self) -> None:
        running = [row for row in self._rows.values() if row.status == "running"]
        for row in running:
            self._update_elapsed(row)
        if not running:
            self._clock.stop()

    # ------------------------------------------------------------------ rows
    def _add_row(self, task_id: str, name: str, info: dict[str, Any] | None) -> None:
        if task_id in self._rows:
            return
        batch_id = info.get("batch_id") if info else None
        row = _Row(task_id, name, batch_id)
        self._rows[task_id] = row
        self._order.append(task_id)
        r = self.table.rowCount()
        self.table.insertRow(r)
        for col, text in (
            (self.COL_NAME, name),
            (self.COL_STATUS, "queued"),
            (self.COL_MESSAGE, ""),
            (self.COL_ELAPSED, ""),
        ):
            item = row.items[col] = QTableWidgetItem(text)
            self.table.setItem(r, col, item)
        row.items[self.COL_NAME].setToolTip(
            f"{task_id}"
            + (f" (batch {batch_id})" if batch_id else "")
            + (" - I/O thread" if info and info.get("is_io") else "")
        )
        row.progress = QProgressBar()
        row.progress.setRange(0, 100)
        row.progress.setValue(0)
        self.table.setCellWidget(r, self.COL_PROGRESS, row.progress)
        row.cancel = QPushButton("Cancel")
        row.cancel.clicked.connect(lambda _=False, t=task_id: self.cancel(t))
        self.table.setCellWidget(r, self.COL_CANCEL, row.cancel)
        row.output = QPushButton("Output")
        row.output.clicked.connect(lambda _=False, t=task_id: self.show_output(t))
        self.table.setCellWidget(r, self.COL_OUTPUT, row.output)
        if info is not None and info.get("status") not in (None, "queued"):
            row.started = info.get("started")
            if info["status"] in _TERMINAL:
                self._on_done(task_id, info["status"])
            else:
                self._set_status(row, info["status"])
        if batch_id is not None:
            batch = self._batches.get(batch_id)
            if batch is None:
                batch = self._add_batch(batch_id)
            batch.tasks.add(task_id)
        self._refresh_batches()
        self._refresh_summary()

    def _add_batch(self, batch_id: str) -> _BatchRow:
        widget = QWidget(self)
        lay = QHBoxLayout(widget)
        lay.setContentsMargins(0, 0, 0, 0)
        label = QLabel(batch_id, widget)
        bar = QProgressBar(widget)
        bar.setRange(0, 100)
        lay.addWidget(label)
        lay.addWidget(bar, 1)
        self.batch_area.addWidget(widget)
        batch = _BatchRow(batch_id, widget, label, bar, set())
        self._batches[batch_id] = batch
        return batch

    def _item(self, task_id: str, col: int) -> QTableWidgetItem:
        return self._rows[task_id].items[col]

    def _set_status(self, row: _Row, status: str) -> None:
        row.status = status
        self._item(row.task_id, self.COL_STATUS).setText(status)
        self._refresh_summary()

    def _update_elapsed(self, row: _Row) -> None:
        if row.started is None:
            return
        end = row.finished if row.finished is not None else time.time()
        self._item(row.task_id, self.COL_ELAPSED).setText(f"{max(0.0, end - row.started):.1f} s")

    def _refresh_batches(self) -> None:
        for batch in self._batches.values():
            total = len(batch.tasks)
            done = 0.0
            finished = 0
            for task_id in batch.tasks:
                row = self._rows[task_id]
                if row.status in _TERMINAL:
                    done += 1
                    finished += 1
                elif row.progress is not None:
                    done += row.progress.value() / 100
            batch.bar.setValue(round(100 * done / total) if total else 0)
            batch.label.setText(f"batch {batch.batch_id}: {finished}/{total} finished")

    def _refresh_summary(self) -> None:
        counts: dict[str, int] = {}
        for row in self._rows.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        if not counts:
            self.summary_label.setText("No tasks")
            return
        order = ("running", "queued", "completed", "failed", "cancelled")
        self.summary_label.setText(", ".join(f"{counts[s]} {s}" for s in order if counts.get(s)))
