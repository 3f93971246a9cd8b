"""mosaic_parallel: run CPU-heavy work in worker processes and get it back as Qt signals.

Importing the package does not import Qt: the Qt bridge (``BackgroundTaskManager``) is
loaded on first use, so worker processes, which import this package to run tasks, stay
Qt-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .convenience import submit_io_task, submit_task, submit_task_batch
from .worker import TaskCancelled, report_progress

if TYPE_CHECKING:
    from .bridge import BackgroundTaskManager

__version__ = "0.1.0"

__all__ = [
    "BackgroundTaskManager",
    "TaskCancelled",
    "__version__",
    "report_progress",
    "submit_io_task",
    "submit_task",
    "submit_task_batch",
]


def __getattr__(name: str) -> Any:
    if name == "BackgroundTaskManager":
        from .bridge import BackgroundTaskManager

        return BackgroundTaskManager
    raise AttributeError(f"module 'mosaic_parallel' has no attribute {name!r}")
