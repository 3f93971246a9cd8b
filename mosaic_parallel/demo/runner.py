"""Drives one demo run through a manager: load, process, compose the contact sheet.

Each mesh is loaded by an I/O task, then processed by a process task of one batch with
``max_concurrent``; the contact sheet is a last process task.

Shared by the headless command and the demo window; it uses only the manager's public
signals and methods.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, Signal

from .loading import load_mesh
from .operations import OPERATIONS, process_mesh
from .rendering import contact_sheet_png

__all__ = ["DemoRun", "first_line", "unique_keys"]

PENDING, LOADING, PROCESSING, COMPLETED, FAILED, CANCELLED = (
    "pending",
    "loading",
    "processing",
    "completed",
    "failed",
    "cancelled",
)


def first_line(error: str) -> str:
    """The ``Type: message`` head of a manager error text (the traceback dropped)."""
    return (error or "").strip().split("\n\n", 1)[0].strip()


def unique_keys(paths: Sequence[str | Path]) -> list[str]:
    """Short unique names for mesh files: the stem, with a suffix when stems repeat."""
    keys: list[str] = []
    seen: dict[str, int] = {}
    for p in paths:
        stem = Path(p).stem or "mesh"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        keys.append(stem if n == 0 else f"{stem}-{n + 1}")
    return keys


class DemoRun(QObject):
    """One run of the demo on a list of mesh files.

    Parameters
    ----------
    manager
        The :class:`~mosaic_parallel.BackgroundTaskManager` to run on.
    paths
        Mesh files.
    operations
        Names from :data:`~mosaic_parallel.demo.operations.OPERATIONS`.
    options
        Overrides of :data:`~mosaic_parallel.demo.operations.DEFAULT_OPTIONS`.
    out_dir
        Where processed meshes, ``summary.json`` and ``contact_sheet.png`` go (``None``:
        nothing is written).
    max_concurrent
        Geometry tasks of this run that may run at once (default: the manager's workers).
    contact_sheet
        Compose the contact sheet at the end.

    Signals
    -------
    mesh_finished(key, record)
        A mesh's record (see :attr:`records`) reached a terminal status.
    finished(records)
        Every mesh (and the contact sheet) is done.
    """

    mesh_finished = Signal(str, object)
    finished = Signal(object)

    def __init__(
        self,
        manager: Any,
        paths: Sequence[str | Path],
        operations: Sequence[str] = OPERATIONS,
        options: dict[str, Any] | None = None,
        out_dir: str | Path | None = None,
        max_concurrent: int | None = None,
        contact_sheet: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.manager = manager
        self.operations = list(operations)
        self.options = dict(options or {})
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.max_concurrent = max_concurrent or getattr(manager, "max_workers", None)
        self.want_contact_sheet = contact_sheet
        self.batch_id = f"demo-{uuid.uuid4().hex[:8]}"
        self.records: dict[str, dict[str, Any]] = {
            key: {
                "name": key,
                "path": str(path),
                "status": PENDING,
                "stage": None,
                "error": None,
                "task_id": None,
                "result": None,
            }
            for key, path in zip(unique_keys(paths), paths, strict=True)
        }
        self.contact_sheet: bytes | None = None
        self.contact_sheet_error: str | None = None
        self.output_error: str | None = None
        self.is_finished = False
        self._task_keys: dict[str, str] = {}  # task id -> mesh key ("" for the sheet)
        manager.task_failed.connect(self._on_failed)
        manager.task_cancelled.connect(self._on_cancelled)

    # ------------------------------------------------------------------ flow
    def start(self) -> None:
        """Submit the loading tasks (one I/O task per mesh)."""
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        for key, record in self.records.items():
            record["status"], record["stage"] = LOADING, "load"
            task_id = self.manager.submit_io_task(
                f"load {key}",
                load_mesh,
                functools.partial(self._loaded, key),
                args=(record["path"],),
            )
            record["task_id"] = task_id
            self._task_keys[task_id] = key
        if not self.records:
            self._maybe_finish()

    def cancel(self) -> None:
        """Cancel whatever of this run is still queued or running."""
        for task_id in list(self._task_keys):
            self.manager.cancel_task(task_id)

    def _loaded(self, key: str, mesh: Any) -> None:
        record = self.records[key]
        record["status"], record["stage"] = PROCESSING, "process"
        mesh_out = str(self.out_dir / "meshes") if self.out_dir is not None else None
        mesh.name = key
        if getattr(self.manager, "is_shut_down", False):
            record["status"], record["error"] = CANCELLED, "the manager was shut down"
            self.mesh_finished.emit(key, record)
            self._maybe_finish()
            return
        self.manager.submit_task_batch(
            [
                {
                    "name": f"process {key}",
                    "func": process_mesh,
                    "args": (mesh, self.operations, self.options, mesh_out),
                    "callback": functools.partial(self._processed, key),
                }
            ],
            max_concurrent=self.max_concurrent,
            batch_id=self.batch_id,
        )
        # the batch call does not return task ids: find ours among the batch's tasks
        for task_id in list(self.manager.task_info):
            info = self.manager.task_info.get(task_id)
            if info and info["batch_id"] == self.batch_id and task_id not in self._task_keys:
                self._task_keys[task_id] = key
                record["task_id"] = task_id

    def _processed(self, key: str, result: dict[str, Any]) -> None:
        record = self.records[key]
        record["status"], record["stage"], record["result"] = COMPLETED, None, result
        self.mesh_finished.emit(key, record)
        self._maybe_finish()

    def _on_failed(self, task_id: str, name: str, error: str) -> None:
        key = self._task_keys.get(task_id)
        if key is None:
            return
        if key == "":
            self.contact_sheet_error = first_line(error)
            self._done()
            return
        record = self.records[key]
        record["status"], record["error"] = FAILED, first_line(error)
        self.mesh_finished.emit(key, record)
        self._maybe_finish()

    def _on_cancelled(self, task_id: str, name: str) -> None:
        key = self._task_keys.get(task_id)
        if key is None:
            return
        if key == "":
            self.contact_sheet_error = "cancelled"
            self._done()
            return
        record = self.records[key]
        record["status"], record["error"] = CANCELLED, "cancelled"
        self.mesh_finished.emit(key, record)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if any(r["status"] not in (COMPLETED, FAILED, CANCELLED) for r in self.records.values()):
            return
        if (
            self.want_contact_sheet
            and self.records
            and "" not in self._task_keys.values()
            and not getattr(self.manager, "is_shut_down", False)
        ):
            rows = []
            for record in self.records.values():
                result = record["result"] or {}
                rows.append(
                    {
                        "name": record["name"],
                        "before_png": result.get("before_png"),
                        "after_png": result.get("after_png"),
                        "error": record["error"],
                    }
                )
            try:
                task_id = self.manager.submit_task(
                    "contact sheet", contact_sheet_png, self._sheet_done, args=(rows,)
                )
            except RuntimeError as exc:  # the manager was shut down meanwhile
                self.contact_sheet_error = str(exc)
            else:
                self._task_keys[task_id] = ""
                return
        self._done()

    def _sheet_done(self, png: bytes) -> None:
        self.contact_sheet = png
        self._done()

    def _done(self) -> None:
        if self.is_finished:
            return
        self.is_finished = True
        for signal, slot in (
            (self.manager.task_failed, self._on_failed),
            (self.manager.task_cancelled, self._on_cancelled),
        ):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        if self.out_dir is not None:
            try:
                self.write_outputs(self.out_dir)
            except OSError as exc:  # the run is over all the same: say so, do not hang
                self.output_error = f"could not write to {self.out_dir}: {exc}"
        self.finished.emit(self.records)

    # ------------------------------------------------------------------ results
    @property
    def succeeded(self) -> bool:
        """Whether every mesh completed."""
        return all(r["status"] == COMPLETED for r in self.records.values())

    def summary(self) -> dict[str, Any]:
        """The JSON-able summary of the run (renderings left out)."""
        meshes = []
        for record in self.records.values():
            entry = {k: record[k] for k in ("name", "path", "status", "stage", "error")}
            result = record["result"]
            if result is not None:
                entry.update(
                    {k: v for k, v in result.items() if k not in ("before_png", "after_png")}
                )
            meshes.append(entry)
        return {
            "operations": self.operations,
            "options": self.options,
            "succeeded": self.succeeded,
            "contact_sheet_error": self.contact_sheet_error,
            "meshes": meshes,
        }

    def write_outputs(self, out_dir: Path) -> None:
        """Write ``summary.json`` and ``contact_sheet.png`` into ``out_dir``.

        The processed meshes are written by the workers, into ``out_dir/meshes``.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        if self.contact_sheet is not None:
            (out_dir / "contact_sheet.png").write_bytes(self.contact_sheet)
