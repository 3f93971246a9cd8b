"""The demo in a terminal: one rich progress bar per task, a results table, files in ``--out``.

The manager reports through Qt signals, so this still runs a Qt event loop (a
``QCoreApplication`` is created when none exists); it needs no display.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .operations import OPERATIONS
from .runner import DemoRun

__all__ = ["results_table", "run_headless"]


def results_table(run: DemoRun) -> Table:
    """A rich table of a finished run: one row per mesh, failures with their reason."""
    table = Table(title="mosaic_parallel demo: results")
    for column in (
        "mesh",
        "status",
        "faces in -> out",
        "watertight",
        "area",
        "seconds",
        "output / reason",
    ):
        table.add_column(column, overflow="fold")
    for record in run.records.values():
        result = record["result"]
        if result is None:
            table.add_row(
                record["name"],
                f"[red]{record['status']}[/red]",
                "",
                "",
                "",
                "",
                f"[red]{record['error']}[/red]",
            )
            continue
        before, after = result["summary_before"], result["summary_after"]
        table.add_row(
            record["name"],
            "[green]completed[/green]",
            f"{before['faces']} -> {after['faces']}",
            f"{before['watertight']} -> {after['watertight']}",
            f"{after['area']:.4g}",
            f"{result['seconds']:.2f}",
            "; ".join(
                ([Path(result["output"]).name] if result["output"] else []) + list(result["notes"])
            ),
        )
    return table


def run_headless(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    workers: int | None = None,
    operations: Sequence[str] = OPERATIONS,
    options: dict[str, Any] | None = None,
    console: Console | None = None,
) -> int:
    """Run the demo without a window; returns the exit status (0: every mesh succeeded).

    Parameters
    ----------
    paths
        Mesh files.
    out_dir
        Receives ``meshes/*.processed.ply``, ``summary.json`` and ``contact_sheet.png``.
    workers
        Worker processes (default: the CPUs available).
    operations, options
        See :func:`~mosaic_parallel.demo.operations.process_mesh`.
    console
        Where to print (default: the terminal).
    """
    from qtpy.QtCore import QCoreApplication, QEventLoop, QTimer

    from ..bridge import BackgroundTaskManager

    console = console or Console()
    app = QCoreApplication.instance() or QCoreApplication(["mosaic_parallel-demo"])
    manager = BackgroundTaskManager(max_workers=workers)
    bars: dict[str, Any] = {}
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]:<9} {task.fields[message]}"),
        console=console,
    )

    def queued(task_id: str, name: str) -> None:
        bars[task_id] = progress.add_task(name, total=1.0, status="queued", message="")

    def update(task_id: str, **fields: Any) -> None:
        if task_id in bars:
            progress.update(bars[task_id], **fields)

    manager.task_queued.connect(queued)
    manager.task_started.connect(lambda tid, name: update(tid, status="running"))
    manager.task_progress.connect(lambda tid, name, f, c, t: update(tid, completed=f))
    manager.task_message.connect(lambda tid, name, msg: update(tid, message=msg[:50]))
    manager.task_completed.connect(
        lambda tid, name, result: update(tid, completed=1.0, status="done", message="")
    )
    manager.task_failed.connect(
        lambda tid, name, err: update(
            tid, status="FAILED", message=err.strip().split("\n", 1)[0][:60]
        )
    )
    manager.task_cancelled.connect(lambda tid, name: update(tid, status="cancelled"))

    run = DemoRun(manager, paths, operations, options, out_dir, max_concurrent=workers)
    loop = QEventLoop()
    run.finished.connect(loop.quit)
    # Ctrl-C: the handler only takes note (it may interrupt any Python code, the manager's
    # included); a timer, which also lets Python run at all while Qt waits, acts on it.
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))

    def check_interrupt() -> None:
        if interrupted:
            run.cancel()
            loop.quit()

    watch = QTimer()
    watch.timeout.connect(check_interrupt)
    watch.start(100)
    try:
        with progress:
            QTimer.singleShot(0, run.start)
            loop.exec()
    finally:
        watch.stop()
        signal.signal(signal.SIGINT, previous)
        manager.shutdown(wait=True)
    del app
    if interrupted:
        console.print("[red]interrupted: unfinished tasks were cancelled[/red]")
        return 130
    console.print(results_table(run))
    out = Path(out_dir)
    console.print(
        f"wrote {out / 'summary.json'}"
        + (f", {out / 'contact_sheet.png'}" if run.contact_sheet is not None else "")
        + f" and {sum(1 for r in run.records.values() if r['status'] == 'completed')} "
        f"processed mesh(es) in {out / 'meshes'}"
    )
    if run.output_error:
        console.print(f"[red]{run.output_error}[/red]")
        return 1
    if run.contact_sheet_error:
        console.print(f"[red]contact sheet failed: {run.contact_sheet_error}[/red]")
    failed = [r for r in run.records.values() if r["status"] != "completed"]
    if failed:
        console.print(f"[red]{len(failed)} of {len(run.records)} mesh(es) failed[/red]")
    return 0 if not failed and run.contact_sheet_error is None else 1
