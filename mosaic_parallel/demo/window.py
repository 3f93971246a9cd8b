"""The demo window: pick meshes and operations, run them, watch them, see the results.

A :class:`~mosaic_parallel.widgets.TaskMonitor` shows the tasks; before/after renderings
arrive in a contact sheet beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..widgets import TaskMonitor
from .loading import SUPPORTED_SUFFIXES, bundled_mesh_path
from .operations import DEFAULT_OPTIONS, OPERATIONS
from .runner import DemoRun

__all__ = ["DemoWindow", "run_window"]

_LABELS = {
    "decimate": "Decimate",
    "smooth": "Taubin smoothing",
    "curvature": "Curvature",
    "sample": "Sample points",
    "sdf": "Signed distance grid",
}


class DemoWindow(QMainWindow):
    """The demo's main window: meshes, operations, Run, a TaskMonitor and results.

    The mesh list holds the bundled mesh plus "Open..."; the contact sheet fills in as
    results arrive.

    Parameters
    ----------
    manager
        The :class:`~mosaic_parallel.BackgroundTaskManager` to run on.
    meshes
        Mesh files listed at start (the bundled ``spot.obj`` is always listed).
    options
        Overrides of :data:`~mosaic_parallel.demo.operations.DEFAULT_OPTIONS`.

    Signals
    -------
    run_finished(run)
        A run (:class:`~mosaic_parallel.demo.runner.DemoRun`) is over.
    """

    run_finished = Signal(object)

    def __init__(
        self,
        manager: Any,
        meshes: Sequence[str | Path] = (),
        operations: Sequence[str] = OPERATIONS,
        options: dict[str, Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.manager = manager
        self.options = {**DEFAULT_OPTIONS, **(options or {})}
        self.run: DemoRun | None = None
        self.setWindowTitle("mosaic_parallel demo")

        # left: inputs
        self.mesh_list = QListWidget()
        bundled = bundled_mesh_path()
        if not any(Path(p).resolve() == bundled.resolve() for p in meshes):
            self.add_mesh(bundled, checked=not meshes)
        for path in meshes:
            self.add_mesh(path, checked=True)
        open_button = QPushButton("Open…")
        open_button.clicked.connect(self._open)
        self.op_boxes: dict[str, QCheckBox] = {}
        ops_box = QGroupBox("Operations")
        ops_layout = QVBoxLayout(ops_box)
        for op in OPERATIONS:
            box = QCheckBox(_LABELS.get(op, op))
            box.setChecked(op in operations)
            self.op_boxes[op] = box
            ops_layout.addWidget(box)
        self.target_faces = QSpinBox()
        self.target_faces.setRange(100, 1_000_000)
        self.target_faces.setSingleStep(500)
        self.target_faces.setValue(int(self.options["target_faces"]))
        self.target_faces.setPrefix("target faces: ")
        ops_layout.addWidget(self.target_faces)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.start_run)
        self.cancel_button = QPushButton("Cancel run")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_run)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(QLabel("Meshes"))
        left_layout.addWidget(self.mesh_list, 1)
        left_layout.addWidget(open_button)
        left_layout.addWidget(ops_box)
        left_layout.addWidget(self.run_button)
        left_layout.addWidget(self.cancel_button)

        # middle: the monitor; right: the results
        self.monitor = TaskMonitor(manager)
        self.sheet = QWidget()
        self.sheet_layout = QGridLayout(self.sheet)
        self.sheet_layout.setAlignment(Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.sheet)
        self.status_label = QLabel("Choose meshes and operations, then Run.")
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(QLabel("Results (input | result)"))
        right_layout.addWidget(scroll, 1)
        right_layout.addWidget(self.status_label)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.monitor)
        splitter.addWidget(right)
        splitter.setSizes([170, 630, 400])
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addWidget(splitter)
        self.setCentralWidget(central)
        self.resize(1240, 640)
        self.result_labels: dict[str, list[QLabel]] = {}

    # ------------------------------------------------------------------ inputs
    def add_mesh(self, path: str | Path, checked: bool = True) -> QListWidgetItem:
        """List a mesh file (checked items are run)."""
        path = Path(path)
        item = QListWidgetItem(path.name)
        item.setToolTip(str(path))
        item.setData(Qt.ItemDataRole.UserRole, str(path))
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        self.mesh_list.addItem(item)
        return item

    def selected_meshes(self) -> list[str]:
        """Paths of the checked meshes."""
        out = []
        for i in range(self.mesh_list.count()):
            item = self.mesh_list.item(i)
            if item is not None and item.checkState() == Qt.CheckState.Checked:
                out.append(str(item.data(Qt.ItemDataRole.UserRole)))
        return out

    def selected_operations(self) -> list[str]:
        """The checked operations."""
        return [op for op, box in self.op_boxes.items() if box.isChecked()]

    def _open(self) -> None:
        patterns = " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, "Open meshes", "", f"Meshes ({patterns})")
        for f in files:
            self.add_mesh(f, checked=True)

    # ------------------------------------------------------------------ running
    def start_run(self) -> DemoRun | None:
        """Start a run on the checked meshes; returns it (``None`` if nothing is checked)."""
        meshes = self.selected_meshes()
        if not meshes or (self.run is not None and not self.run.is_finished):
            return None
        options = {**self.options, "target_faces": self.target_faces.value()}
        self._clear_sheet()
        run = DemoRun(self.manager, meshes, self.selected_operations(), options, None, parent=self)
        run.mesh_finished.connect(self._show_result)
        run.finished.connect(self._run_done)
        self.run = run
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status_label.setText(f"Running on {len(meshes)} mesh(es)…")
        for row, key in enumerate(run.records):
            name = QLabel(key)
            name.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            cells = [QLabel("…"), QLabel("")]
            for col, label in enumerate([name, *cells]):
                self.sheet_layout.addWidget(label, row, col)
            self.result_labels[key] = cells
        run.start()
        return run

    def cancel_run(self) -> None:
        """Cancel the current run."""
        if self.run is not None:
            self.run.cancel()

    def _clear_sheet(self) -> None:
        while self.sheet_layout.count():
            item = self.sheet_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.result_labels.clear()

    def _show_result(self, key: str, record: dict[str, Any]) -> None:
        cells = self.result_labels.get(key)
        if cells is None:
            return
        result = record.get("result")
        if result is None:
            cells[0].setText(
                f"<span style='color:firebrick'>{record['status']}: {record['error']}</span>"
            )
            cells[0].setWordWrap(True)
            return
        for label, data in zip(cells, (result["before_png"], result["after_png"]), strict=True):
            if data:
                pix = QPixmap()
                pix.loadFromData(data, "PNG")
                label.setPixmap(pix.scaledToWidth(150, Qt.TransformationMode.SmoothTransformation))
        after = result["summary_after"]
        cells[1].setToolTip(
            f"{after['vertices']} vertices, {after['faces']} faces, "
            f"watertight: {after['watertight']}"
        )

    def _run_done(self, records: dict[str, Any]) -> None:
        run = self.run
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if run is not None:
            ok = sum(1 for r in records.values() if r["status"] == "completed")
            self.status_label.setText(f"Finished: {ok} of {len(records)} mesh(es) processed.")
            self.run_finished.emit(run)

    def closeEvent(self, event: Any) -> None:
        """Cancel the current run when the window closes."""
        self.cancel_run()
        super().closeEvent(event)


def run_window(
    meshes: Sequence[str | Path] = (),
    workers: int | None = None,
    operations: Sequence[str] = OPERATIONS,
    options: dict[str, Any] | None = None,
) -> int:
    """Open the demo window and run the Qt event loop; returns the exit status."""
    from ..bridge import BackgroundTaskManager

    app = QApplication.instance() or QApplication(["mosaic_parallel demo"])
    manager = BackgroundTaskManager(max_workers=workers)
    window = DemoWindow(manager, meshes, operations, options)
    window.show()
    try:
        return int(app.exec())
    finally:
        manager.shutdown(wait=True)
