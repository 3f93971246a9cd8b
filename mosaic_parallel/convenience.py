"""Module-level shortcuts that submit to the application-wide manager (Qt loads lazily)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["submit_io_task", "submit_task", "submit_task_batch"]


def _manager() -> Any:
    from .bridge import BackgroundTaskManager

    return BackgroundTaskManager.instance()


def submit_task(
    name: str,
    func: Callable[..., Any],
    callback: Callable[[Any], Any] | None = None,
    *args: Any,
    **kwargs: Any,
) -> str:
    """Run ``func(*args, **kwargs)`` in a worker process of the application-wide manager.

    Returns the task id. See :meth:`BackgroundTaskManager.submit_task`.
    """
    return str(_manager().submit_task(name, func, callback, args=args, kwargs=kwargs))


def submit_io_task(
    name: str,
    func: Callable[..., Any],
    callback: Callable[[Any], Any] | None = None,
    *args: Any,
    **kwargs: Any,
) -> str:
    """Run ``func(*args, **kwargs)`` on an I/O thread of the application-wide manager.

    Returns the task id. See :meth:`BackgroundTaskManager.submit_io_task`.
    """
    return str(_manager().submit_io_task(name, func, callback, args=args, kwargs=kwargs))


def submit_task_batch(
    tasks: list[dict[str, Any]], max_concurrent: int | None = None, batch_id: str | None = None
) -> str:
    """Submit a batch to the application-wide manager; returns the batch id.

    See :meth:`BackgroundTaskManager.submit_task_batch`.
    """
    return str(
        _manager().submit_task_batch(tasks, max_concurrent=max_concurrent, batch_id=batch_id)
    )
