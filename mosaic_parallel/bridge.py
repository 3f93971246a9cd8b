"""The Qt bridge: ``BackgroundTaskManager`` turns what the pool backends report into Qt signals.

It keeps the task table on the GUI thread and emits every signal there.

Backends call ``_post`` from their own threads; ``_post`` appends to an inbox and wakes the
GUI thread through a queued signal. ``_drain`` then handles the inbox in slices of a few
milliseconds, dispatches queued tasks to the backends, and emits the signals. Nothing runs
while the manager is idle.
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cloudpickle
from qtpy.QtCore import QCoreApplication, QObject, Qt, QTimer, Signal, Slot

from . import pool
from .worker import OutputTail

__all__ = ["BackgroundTaskManager"]

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})

#: Characters of stdout and of stderr kept per task (the tail; older text is dropped).
OUTPUT_LIMIT = 1_000_000
_TICK_BUDGET = 0.004  # seconds of signal work per event-loop turn
_SAFETY_POLL_MS = 1000
_MAX_TIMER_SECONDS = 86_400.0  # deadlines further away are checked again after a day


def _warn_about_broken_binding() -> None:
    import qtpy

    if qtpy.API_NAME == "PySide6" and getattr(qtpy, "PYSIDE_VERSION", "") == "6.12.0":
        warnings.warn(
            "PySide6 6.12.0 drops a reference to True on every signal emit and aborts the "
            "interpreter after a few hundred signals; use PySide6 6.11.3 or a later release.",
            RuntimeWarning,
            stacklevel=3,
        )


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(eq=False)
class _Task:
    serial: int
    task_id: str
    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    callback: Callable[[Any], Any] | None
    batch_id: str | None
    is_io: bool
    timeout: float | None
    output_limit: int
    status: str = QUEUED
    payload: bytes | None = None
    generation: int | None = None  # the pool generation it is dispatched to, if any
    pid: int | None = None
    attempts: int = 0
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    progress: float | None = None
    message: str | None = None
    deadline: float | None = None  # monotonic; timeout or end of the cancel grace period
    kill_reason: str | None = None
    cancel_requested: bool = False
    stdout: OutputTail = field(init=False)
    stderr: OutputTail = field(init=False)

    def __post_init__(self) -> None:
        self.stdout = OutputTail(self.output_limit)
        self.stderr = OutputTail(self.output_limit)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.task_id,
            "name": self.name,
            "status": self.status,
            "batch_id": self.batch_id,
            "is_io": self.is_io,
            "submitted": self.submitted,
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
            "progress": self.progress,
            "message": self.message,
            "attempts": self.attempts,
        }


@dataclass(eq=False)
class _Batch:
    batch_id: str
    max_concurrent: int | None
    active: int = 0  # tasks of this batch handed to a backend and not yet returned


class _TaskInfo(Mapping[str, dict[str, Any]]):
    """A read-only view ``task_id -> dict`` of the manager's tasks."""

    def __init__(self, tasks: dict[str, _Task]) -> None:
        self._tasks = tasks

    def __getitem__(self, task_id: str) -> dict[str, Any]:
        return self._tasks[task_id].info()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)


# Managers not yet shut down. Held strongly: a manager dropped while its backends' threads
# still hold its ``_post`` would be destroyed on one of those threads, which Qt forbids.
_live_managers: set[BackgroundTaskManager] = set()


def _stop_all_at_exit() -> None:
    for manager in list(_live_managers):
        manager._stop_backends(wait=True)


try:  # run before concurrent.futures' own exit hook, which would wait for running tasks
    threading._register_atexit(_stop_all_at_exit)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):  # pragma: no cover
    import atexit

    atexit.register(_stop_all_at_exit)


class BackgroundTaskManager(QObject):
    """Run functions in worker processes (or I/O threads) and report on them as Qt signals.

    Create it on the GUI thread after the ``QCoreApplication`` (or ``QApplication``).
    Signals are emitted on that thread; callbacks run there too.

    Parameters
    ----------
    max_workers
        Worker processes; default: the CPUs this process may use.
    io_workers
        Threads for :meth:`submit_io_task`; default 4.
    max_tasks_per_child
        Replace a worker process after it has run this many task chunks (``None``: never).
    cancel_grace
        Seconds a running task gets to stop at its next ``report_progress`` after
        :meth:`cancel_task`, before its worker process is terminated.
    resubmit_on_crash
        When a worker dies, the pool is replaced and the tasks that were running or queued
        in it *through no fault of their own* run again from the start. ``False`` fails
        them instead.
    max_finished
        Finished tasks kept in :attr:`task_info`; older ones are forgotten.
    output_limit
        Characters of stdout and of stderr kept per task (the tail).
    worker_nice
        Added to the worker processes' niceness (default 10), so that the GUI thread wins
        the CPU when workers saturate every core; on an otherwise idle machine workers
        still get all the CPU they can use. 0 leaves their priority as it is.
    start_workers
        Start the worker processes now rather than at the first task.
    cluster
        Run process tasks on a Dask cluster instead: a scheduler address such as
        ``"tcp://host:8786"``, a ``distributed.Client`` or a Dask cluster object such as
        dask-jobqueue's ``SLURMCluster`` (needs the ``cluster`` extra; see
        :mod:`mosaic_parallel.cluster`). I/O tasks still run here. ``max_workers``,
        ``max_tasks_per_child`` and ``worker_nice`` then do not apply.
    parent
        Qt parent object.

    Signals
    -------
    task_queued(task_id, name)
        A task was accepted.
    task_started(task_id, name)
        A worker began running it (again, if it is re-run after another task's crash).
    task_progress(task_id, name, fraction, current, total)
        From :func:`mosaic_parallel.report_progress`.
    task_message(task_id, name, message)
        From :func:`mosaic_parallel.report_progress` with a message.
    task_output(task_id, stream, text)
        Text the task wrote to ``"stdout"`` or ``"stderr"``.
    task_completed(task_id, name, result)
        The task returned ``result``; its callback runs right after.
    task_failed(task_id, name, error)
        The task raised, its worker died, or it could not be sent or returned;
        ``error`` starts with ``"Type: message"`` and ends with the worker's traceback.
    task_cancelled(task_id, name)
        The task was cancelled.
    task_warning(task_id, name, warning)
        After the terminal signal: each warning the task emitted (repeats folded), and a
        callback that raised.
    running_tasks(count)
        Tasks running now; emitted whenever it changes.

    Each task gets ``task_queued`` first and exactly one of ``task_completed``,
    ``task_failed`` and ``task_cancelled``.
    """

    task_queued = Signal(str, str)
    task_started = Signal(str, str)
    task_completed = Signal(str, str, object)
    task_failed = Signal(str, str, str)
    task_warning = Signal(str, str, str)
    task_cancelled = Signal(str, str)
    running_tasks = Signal(int)
    task_progress = Signal(str, str, float, int, int)
    task_message = Signal(str, str, str)
    task_output = Signal(str, str, str)

    _wake = Signal()

    _instance: ClassVar[BackgroundTaskManager | None] = None

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        io_workers: int = 4,
        max_tasks_per_child: int | None = None,
        cancel_grace: float = 2.0,
        resubmit_on_crash: bool = True,
        max_finished: int = 1000,
        output_limit: int = OUTPUT_LIMIT,
        worker_nice: int = 10,
        start_workers: bool = False,
        cluster: Any = None,
        parent: QObject | None = None,
    ) -> None:
        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError(
                "BackgroundTaskManager needs a Qt application object: create a "
                "QApplication (or QCoreApplication) before the manager."
            )
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        if io_workers < 1:
            raise ValueError(f"io_workers must be at least 1, not {io_workers}")
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError(f"max_tasks_per_child must be at least 1, not {max_tasks_per_child}")
        _warn_about_broken_binding()
        super().__init__(parent)
        self.max_workers = max_workers or _usable_cpus()
        self.cancel_grace = float(cancel_grace)
        self.resubmit_on_crash = resubmit_on_crash
        self.max_finished = max_finished
        self.output_limit = output_limit

        self._tasks: dict[str, _Task] = {}
        self._by_serial: dict[int, _Task] = {}
        self._batches: dict[str, _Batch] = {}
        self._lanes: dict[bool, collections.OrderedDict[str | None, collections.deque[_Task]]] = {
            False: collections.OrderedDict(),
            True: collections.OrderedDict(),
        }
        self._finished_order: collections.deque[str] = collections.deque()
        self._serials = itertools.count(1)
        self._token = uuid.uuid4().hex[:8]  # task ids of two managers never collide
        self._running = 0
        self._io_in_flight = 0
        self._avg_seconds: float | None = None
        self._barren_breaks = 0
        self._with_deadline: set[_Task] = set()
        self._shut_down = False
        self.task_info: Mapping[str, dict[str, Any]] = _TaskInfo(self._tasks)

        self._inbox: collections.deque[tuple[Any, ...]] = collections.deque()
        self._wake_pending = False
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg,unused-ignore]
        self._deadline_timer = QTimer(self)
        self._deadline_timer.setSingleShot(True)
        self._deadline_timer.timeout.connect(self._check_deadlines)
        self._continue_timer = QTimer(self)
        self._continue_timer.setSingleShot(True)
        self._continue_timer.setInterval(0)
        self._continue_timer.timeout.connect(self._drain)
        self._safety_timer = QTimer(self)
        self._safety_timer.setInterval(_SAFETY_POLL_MS)
        self._safety_timer.timeout.connect(self._drain)

        self._processes: pool.Backend
        if cluster is not None:  # the same interface, on a Dask cluster
            from .cluster import DaskBackend

            self._processes = DaskBackend(cluster, self._post)
        else:
            self._processes = pool.ProcessBackend(
                self.max_workers,
                self._post,
                max_tasks_per_child=max_tasks_per_child,
                nice=worker_nice,
            )
        self._threads = pool.ThreadBackend(io_workers, self._post)
        app.aboutToQuit.connect(self._on_about_to_quit)
        _live_managers.add(self)
        if start_workers:
            self._processes.start()

    # ------------------------------------------------------------------ singleton
    @classmethod
    def instance(cls) -> BackgroundTaskManager:
        """The application-wide manager, created on first use.

        It runs process tasks on the Dask cluster named by the environment variable
        ``MOSAIC_PARALLEL_CLUSTER`` (a scheduler address), when that is set.
        """
        current = cls._instance
        if current is None or current._shut_down:
            current = cls._instance = cls(cluster=os.environ.get("MOSAIC_PARALLEL_CLUSTER") or None)
        return current

    # ------------------------------------------------------------------ submitting
    def submit_task(
        self,
        name: str,
        func: Callable[..., Any],
        callback: Callable[[Any], Any] | None = None,
        batch_id: str | None = None,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """Run ``func(*args, **kwargs)`` in a worker process.

        Parameters
        ----------
        name
            Shown in signals and monitors.
        func
            Anything cloudpickle can serialize: module functions, lambdas, closures,
            functions defined in ``__main__``.
        callback
            Called on the GUI thread with the result, after ``task_completed``. It is not
            pickled, so a bound method of a widget is fine.
        batch_id
            Groups the task with others (see :meth:`submit_task_batch`).
        args, kwargs
            Arguments for ``func``.
        timeout
            Seconds the task may run; then it fails and its worker is replaced.

        Returns
        -------
        str
            The task id used in every signal.
        """
        return self._add(name, func, callback, batch_id, args, kwargs, timeout, is_io=False).task_id

    def submit_io_task(
        self,
        name: str,
        func: Callable[..., Any],
        callback: Callable[[Any], Any] | None = None,
        batch_id: str | None = None,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """Like :meth:`submit_task`, but run on a thread of this process, for file I/O.

        Nothing is pickled. ``report_progress`` and cooperative cancellation work; stdout,
        stderr and warnings are not captured (they are process-wide), and a running thread
        cannot be terminated: a timed-out or cancelled I/O task is reported at once and its
        late result is dropped.
        """
        return self._add(name, func, callback, batch_id, args, kwargs, timeout, is_io=True).task_id

    def submit_task_batch(
        self,
        tasks: list[dict[str, Any]],
        max_concurrent: int | None = None,
        batch_id: str | None = None,
    ) -> str:
        """Submit several process tasks as one batch.

        Parameters
        ----------
        tasks
            Dicts with the keys ``name`` and ``func``, and optionally ``args``, ``kwargs``,
            ``callback``, ``timeout`` and ``is_io``.
        max_concurrent
            At most this many tasks of the batch run at once (``None``: no limit).
        batch_id
            The batch's id; a new one is made when omitted.

        Returns
        -------
        str
            The batch id, found again in ``task_info[task_id]["batch_id"]``.
        """
        if max_concurrent is not None and max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        tasks = list(tasks)
        for i, spec in enumerate(tasks):
            if not isinstance(spec, Mapping):
                raise TypeError(f"task {i} of the batch is a {type(spec).__name__}, not a dict")
            unknown = set(spec) - {"name", "func", "args", "kwargs", "callback", "timeout", "is_io"}
            if unknown:
                raise TypeError(f"task {i} of the batch has unknown keys: {sorted(unknown)}")
            if "func" not in spec:
                raise TypeError(f"task {i} of the batch has no 'func'")
            try:
                self._check_task(
                    spec["func"], spec.get("callback"), spec.get("args", ()), spec.get("kwargs")
                )
                _seconds_or_none(spec.get("timeout"))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"task {i} of the batch: {exc}") from None
        if batch_id is not None and not isinstance(batch_id, str):
            raise TypeError(f"batch_id must be a string or None, not {type(batch_id).__name__}")
        batch_id = batch_id or f"batch-{uuid.uuid4().hex[:12]}"
        batch = self._batches.get(batch_id)
        if batch is None:
            batch = self._batches[batch_id] = _Batch(batch_id, max_concurrent)
        elif max_concurrent is not None:
            batch.max_concurrent = max_concurrent
        for i, spec in enumerate(tasks):
            self._add(
                str(spec.get("name", f"task {i}")),
                spec["func"],
                spec.get("callback"),
                batch_id,
                spec.get("args", ()),
                spec.get("kwargs"),
                spec.get("timeout"),
                is_io=bool(spec.get("is_io", False)),
            )
        return batch_id

    @staticmethod
    def _check_task(func: Any, callback: Any, args: Any, kwargs: Any) -> None:
        """Refuse, with a clear message, what cannot be a task."""
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, not {type(callback).__name__}")
        if isinstance(args, (str, bytes)) or not isinstance(args, (tuple, list)):
            raise TypeError(f"args must be a tuple or list, not {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")

    def _add(
        self,
        name: str,
        func: Callable[..., Any],
        callback: Callable[[Any], Any] | None,
        batch_id: str | None,
        args: Any,
        kwargs: Any,
        timeout: float | None,
        *,
        is_io: bool,
    ) -> _Task:
        if self._shut_down:
            raise RuntimeError("this BackgroundTaskManager has been shut down")
        self._check_task(func, callback, args, kwargs)
        if batch_id is not None and not isinstance(batch_id, str):
            raise TypeError(f"batch_id must be a string or None, not {type(batch_id).__name__}")
        timeout = _seconds_or_none(timeout)
        serial = next(self._serials)
        task = _Task(
            serial=serial,
            task_id=f"task-{serial}-{self._token}",
            name=str(name),
            func=func,
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            callback=callback,
            batch_id=batch_id,
            is_io=is_io,
            timeout=timeout,
            output_limit=self.output_limit,
        )
        if batch_id is not None and batch_id not in self._batches:
            self._batches[batch_id] = _Batch(batch_id, None)
        self._tasks[task.task_id] = task
        self._by_serial[serial] = task
        self._lanes[is_io].setdefault(batch_id, collections.deque()).append(task)
        self.task_queued.emit(task.task_id, task.name)
        self._request_drain()
        return task

    # ------------------------------------------------------------------ control
    def cancel_task(self, task_id: str) -> bool:
        """Cancel a task.

        A queued task is cancelled at once. A running task is asked to stop at its next
        ``report_progress``; if it has not stopped after ``cancel_grace`` seconds, its
        worker process is terminated (and the other tasks of that pool run again, see
        ``resubmit_on_crash``). ``task_cancelled`` follows exactly once.

        Returns
        -------
        bool
            ``True`` if the task was queued or running, ``False`` if it had finished or is
            unknown.
        """
        task = self._tasks.get(task_id)
        if task is None or task.status in TERMINAL:
            return False
        if task.cancel_requested:
            return True
        task.cancel_requested = True
        if task.generation is None:  # still in our queue
            self._lanes[task.is_io][task.batch_id].remove(task)
            self._finish(task, CANCELLED)
            return True
        backend = self._threads if task.is_io else self._processes
        backend.request_cancel(task.serial)
        if task.status == QUEUED:  # handed to a worker, not started: it will be skipped
            self._finish(task, CANCELLED)
        else:
            self._set_deadline(task, self.cancel_grace)
        self._arm_deadlines()
        return True

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every unfinished task of a batch; returns how many were cancelled."""
        ids = [t.task_id for t in self._tasks.values() if t.batch_id == batch_id]
        return sum(self.cancel_task(task_id) for task_id in ids)

    def batch_task_ids(self, batch_id: str) -> list[str]:
        """Ids of the tasks of a batch that the manager still knows, in submission order."""
        return [t.task_id for t in self._tasks.values() if t.batch_id == batch_id]

    def get_task_output(self, task_id: str) -> dict[str, str]:
        """The captured ``{"stdout": ..., "stderr": ...}`` of a task.

        Each holds the last ``output_limit`` characters; both are empty for an unknown task.
        """
        task = self._tasks.get(task_id)
        if task is None:
            return {"stdout": "", "stderr": ""}
        return {"stdout": task.stdout.text(), "stderr": task.stderr.text()}

    def clear_finished_tasks(self) -> list[str]:
        """Forget finished tasks; returns their ids."""
        ids = [t.task_id for t in self._tasks.values() if t.status in TERMINAL]
        for task_id in ids:
            self._forget(task_id)
        self._finished_order.clear()
        return ids

    def worker_pids(self) -> list[int]:
        """Process ids of the current worker processes."""
        return self._processes.worker_pids()

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, wait: bool = True) -> None:
        """Cancel every unfinished task and stop the workers.

        Queued and running tasks get ``task_cancelled``; worker processes are terminated.
        With ``wait``, return once they have exited. Called automatically when the
        application quits and when the interpreter exits.
        """
        if self._shut_down:
            return
        self._shut_down = True
        for task in list(self._tasks.values()):
            if task.status not in TERMINAL:
                self._finish(task, CANCELLED)
        for lanes in self._lanes.values():
            lanes.clear()
        self._deadline_timer.stop()
        self._safety_timer.stop()
        self._continue_timer.stop()
        # From now on nothing in another thread reaches this object, so that its last
        # reference, and with it the C++ QObject and its timers, goes on the GUI thread.
        self._processes.post = self._threads.post = _ignore
        self._stop_backends(wait)
        _live_managers.discard(self)
        app = QCoreApplication.instance()
        if app is not None:
            try:
                app.aboutToQuit.disconnect(self._on_about_to_quit)
            except (RuntimeError, TypeError):
                pass
        if BackgroundTaskManager._instance is self:
            BackgroundTaskManager._instance = None

    def _shutdown(self) -> None:
        """Alias of :meth:`shutdown`, kept for the Mosaic GUI."""
        self.shutdown()

    @property
    def is_shut_down(self) -> bool:
        """Whether :meth:`shutdown` has run."""
        return self._shut_down

    @Slot()
    def _on_about_to_quit(self) -> None:
        self.shutdown(wait=True)

    def _stop_backends(self, wait: bool) -> None:
        self._processes.shutdown(wait=wait)
        self._threads.shutdown(wait=False)

    # ------------------------------------------------------------------ inbox
    def _post(self, item: tuple[Any, ...]) -> None:
        """Called from any thread: queue ``item`` and wake the GUI thread."""
        self._inbox.append(item)
        self._request_drain()

    def _request_drain(self) -> None:
        """Make sure a drain will run: post a wake-up unless one is pending or running."""
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._wake.emit()
            except RuntimeError:  # the QObject is gone (interpreter exit)
                pass

    @Slot()
    def _drain(self) -> None:
        """Handle the inbox for one time slice, dispatch queued tasks, and re-arm timers.

        While a drain runs or is scheduled, ``_wake_pending`` stays up, so other threads do
        not post wake-ups. When there is more to do, the drain goes on from a zero-time
        timer rather than a posted event: Qt delivers posted events before timers, so a
        stream of them would starve the application's own timers.
        """
        self._wake_pending = True
        deadline = time.perf_counter() + _TICK_BUDGET
        inbox = self._inbox
        more = False
        while inbox:
            self._handle(inbox.popleft())
            if inbox and time.perf_counter() > deadline:
                more = True
                break
        if not self._shut_down:
            more = self._dispatch(deadline) or more
            busy = self._running or self._io_in_flight or self._processes.in_flight()
            if busy and not self._safety_timer.isActive():
                self._safety_timer.start()
            elif not busy and self._safety_timer.isActive():
                self._safety_timer.stop()
            self._arm_deadlines()
        if not more:
            self._wake_pending = False
            more = bool(inbox)  # added before the flag went down: nobody will wake us for it
        if more:
            self._wake_pending = True
            self._continue_timer.start()

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "event":
            self._on_event(item[1], item[2])
        elif kind == "chunk_done":
            self._on_chunk_done(item[1], item[2], item[3])
        elif kind == "gen_closed":
            self._on_generation_closed(item[1], item[2])

    # ------------------------------------------------------------------ events
    def _on_event(self, generation: int, event: tuple[Any, ...]) -> None:
        task = self._by_serial.get(event[1])
        if task is None or task.generation != generation:
            return  # from a pool that was replaced since, or a forgotten task
        what = event[0]
        if what == "started":
            task.pid = event[2]
            if task.cancel_requested:  # cancelled while waiting in a worker's chunk
                self._set_deadline(task, self.cancel_grace)
            elif task.status == QUEUED:
                task.started = time.time()
                if task.timeout is not None:
                    self._set_deadline(task, task.timeout)
                self._set_status(task, RUNNING)
                self.task_started.emit(task.task_id, task.name)
        elif what == "progress":
            if task.status != RUNNING:
                return
            _, _, fraction, current, total, message = event
            if fraction is not None:
                task.progress = fraction
                self.task_progress.emit(task.task_id, task.name, float(fraction), current, total)
            if message is not None:
                task.message = message
                self.task_message.emit(task.task_id, task.name, message)
        elif what == "output":
            _, _, stream, text = event
            (task.stdout if stream == "stdout" else task.stderr).add(text)
            if task.status == RUNNING:
                self.task_output.emit(task.task_id, stream, text)
        elif what == "done":
            _, _, outcome, data, caught, seconds = event
            self._release(task)
            self._barren_breaks = 0
            if not task.is_io:
                avg = self._avg_seconds
                self._avg_seconds = seconds if avg is None else 0.8 * avg + 0.2 * seconds
            if task.status in TERMINAL:
                return
            # A task that ends before it sees its cancellation is cancelled all the same.
            if task.cancel_requested or outcome == "cancelled":
                self._finish(task, CANCELLED)
            elif outcome == "ok":
                self._complete(task, data, caught)
            else:
                self._fail(task, data, caught)

    def _on_chunk_done(self, generation: int, serials: list[int], error: Any) -> None:
        if error is None or isinstance(error, BrokenProcessPool):
            return  # results come as events; a broken pool is settled when it closes
        text = f"{type(error).__name__}: {error}"
        for serial in serials:
            task = self._by_serial.get(serial)
            if task is not None and task.generation == generation:
                self._release(task)
                if task.status not in TERMINAL:
                    self._fail(task, f"the task could not be run: {text}", [])

    def _on_generation_closed(self, generation: int, exitcodes: dict[int, int | None]) -> None:
        self._processes.forget(generation)
        stranded = [t for t in self._by_serial.values() if t.generation == generation]
        culprit_found = False
        for task in sorted(stranded, key=lambda t: t.serial):
            self._release(task)
            code = exitcodes.get(task.pid) if task.pid is not None else None
            if task.status in TERMINAL:
                continue
            if task.kill_reason is not None:
                culprit_found = True
                if task.cancel_requested:
                    self._finish(task, CANCELLED)
                else:
                    self._fail(task, task.kill_reason, [])
            elif task.status == RUNNING and code is not None and code not in (0, -signal.SIGTERM):
                culprit_found = True
                self._fail(
                    task,
                    f"WorkerDied: the worker process running this task died: it {_how(code)}",
                    [],
                )
            elif task.status == RUNNING and task.attempts >= 2:
                self._fail(
                    task,
                    "WorkerDied: the worker process running this task was terminated "
                    f"({_how(code)}) on {task.attempts + 1} attempts",
                    [],
                )
            elif not self.resubmit_on_crash and task.status == RUNNING:
                self._fail(
                    task,
                    "WorkerLost: another task's worker died and broke the pool; this task was "
                    "not re-run (resubmit_on_crash=False)",
                    [],
                )
            else:
                self._requeue(task)
        if stranded and not culprit_found:
            self._barren_breaks += 1
            if self._barren_breaks >= 3:  # workers die without running anything: give up
                for task in list(self._by_serial.values()):
                    if task.status not in TERMINAL and not task.is_io:
                        if task.generation is None:
                            self._lanes[False][task.batch_id].remove(task)
                        self._fail(task, "WorkerDied: worker processes keep dying at start", [])
        self._request_drain()

    def _requeue(self, task: _Task) -> None:
        if task.status == RUNNING:
            task.attempts += 1
            self._set_status(task, QUEUED)
        task.pid = None
        self._set_deadline(task, None)
        self._lanes[False].setdefault(task.batch_id, collections.deque()).appendleft(task)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, deadline: float) -> bool:
        """Hand queued tasks to the backends while they have room and the tick has time.

        Returns whether it stopped for lack of time, with room left.
        """
        lanes = self._lanes[True]
        while lanes and self._io_in_flight < self._threads.capacity:
            task = self._next_ready(lanes)
            if task is None:
                break
            self._io_in_flight += 1
            task.generation = pool.IO_GENERATION
            self._threads.submit(task.serial, task.func, task.args, task.kwargs)
        lanes = self._lanes[False]
        while lanes and self._processes.in_flight() < self._processes.capacity:
            chunk: list[tuple[int, bytes]] = []
            size = self._chunk_size()
            while len(chunk) < size:  # a task that fails to pickle makes room for the next
                task = self._next_ready(lanes)
                if task is None:
                    break
                payload = self._payload(task)
                if payload is not None:
                    chunk.append((task.serial, payload))
            if not chunk:
                break
            try:
                generation = self._processes.submit(chunk)
            except RuntimeError as exc:
                for serial, _ in chunk:
                    task = self._by_serial[serial]
                    self._release(task)
                    self._fail(task, f"the task could not be started: {exc}", [])
                break
            for serial, _ in chunk:
                self._by_serial[serial].generation = generation
            if time.perf_counter() > deadline:
                return bool(lanes)
        return False

    def _next_ready(
        self, lanes: collections.OrderedDict[str | None, collections.deque[_Task]]
    ) -> _Task | None:
        """The first queued task whose batch has room, marked as taken from its lane."""
        for batch_id in list(lanes):
            lane = lanes[batch_id]
            if not lane:
                del lanes[batch_id]
                continue
            batch = self._batches.get(batch_id) if batch_id is not None else None
            if (
                batch is not None
                and batch.max_concurrent is not None
                and batch.active >= batch.max_concurrent
            ):
                continue
            task = lane.popleft()
            if not lane:
                del lanes[batch_id]
            if batch is not None:
                batch.active += 1
            task.generation = -1  # taken; the backend's generation follows
            return task
        return None

    def _chunk_size(self) -> int:
        """Tasks per message to a worker: one, unless tasks are known to be tiny."""
        avg = self._avg_seconds
        if avg is None or avg > 0.002 or self._processes.max_tasks_per_child is not None:
            return 1  # a worker's task limit counts messages, so recycling needs one each
        queued = sum(len(lane) for lane in self._lanes[False].values())
        return max(1, min(64, queued // self._processes.capacity))

    def _payload(self, task: _Task) -> bytes | None:
        """The pickled call, or ``None`` after failing the task when it does not pickle."""
        if task.payload is None:
            try:
                task.payload = cloudpickle.dumps((task.func, task.args, task.kwargs))
            except Exception as exc:
                self._release(task)
                self._fail(task, _unpicklable_message(task, exc), [])
                return None
        return task.payload

    def _release(self, task: _Task) -> None:
        """The task no longer occupies a worker slot or a batch slot."""
        if task.generation is None:
            return
        if task.is_io and task.generation == pool.IO_GENERATION:
            self._io_in_flight -= 1
        task.generation = None
        batch = self._batches.get(task.batch_id) if task.batch_id is not None else None
        if batch is not None:
            batch.active -= 1
        if task.status in TERMINAL and task.task_id not in self._tasks:
            self._by_serial.pop(task.serial, None)  # forgotten while it still occupied a worker

    # ------------------------------------------------------------------ deadlines
    def _set_deadline(self, task: _Task, seconds: float | None) -> None:
        if seconds is None:
            task.deadline = None
            self._with_deadline.discard(task)
        else:
            task.deadline = time.monotonic() + seconds
            self._with_deadline.add(task)

    def _arm_deadlines(self) -> None:
        for task in [t for t in self._with_deadline if t.generation is None]:
            self._set_deadline(task, None)  # no longer in a worker
        deadlines = [t.deadline for t in self._with_deadline if t.deadline is not None]
        if not deadlines:
            self._deadline_timer.stop()
            return
        wait = min(min(deadlines) - time.monotonic(), _MAX_TIMER_SECONDS)  # a QTimer takes int32 ms
        wait_ms = max(0, int(wait * 1000) + 1)
        self._deadline_timer.start(wait_ms)

    @Slot()
    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for task in list(self._with_deadline):
            if task.deadline is None or task.deadline > now or task.generation is None:
                continue
            self._set_deadline(task, None)
            if task.cancel_requested:
                reason = "cancelled"
            else:
                reason = f"TimeoutError: timed out after {task.timeout:g} s"
            if task.is_io:  # a thread cannot be stopped: report now, drop the result later
                self._threads.request_cancel(task.serial)
                if task.status not in TERMINAL:
                    if task.cancel_requested:
                        self._finish(task, CANCELLED)
                    else:
                        self._fail(task, reason, [])
            elif task.pid is not None:
                task.kill_reason = reason
                self._processes.kill_worker(task.generation, task.pid)
        self._arm_deadlines()

    # ------------------------------------------------------------------ outcomes
    def _set_status(self, task: _Task, status: str) -> None:
        before = task.status == RUNNING
        task.status = status
        after = status == RUNNING
        if before != after:
            self._running += 1 if after else -1
            self.running_tasks.emit(self._running)

    def _complete(self, task: _Task, result: Any, caught: list[str]) -> None:
        self._finish(task, COMPLETED, result=result)
        if task.callback is not None:
            try:
                task.callback(result)
            except Exception as exc:  # a faulty callback must not stop the manager
                self.task_warning.emit(
                    task.task_id,
                    task.name,
                    f"the callback raised {type(exc).__name__}: {exc}",
                )
        for text in caught:
            self.task_warning.emit(task.task_id, task.name, text)

    def _fail(self, task: _Task, error: str, caught: list[str]) -> None:
        task.error = error
        self._finish(task, FAILED)
        for text in caught:
            self.task_warning.emit(task.task_id, task.name, text)

    def _finish(self, task: _Task, status: str, result: Any = None) -> None:
        """Move a task to a terminal status and emit its one terminal signal."""
        self._set_status(task, status)
        task.finished = time.time()
        if status != CANCELLED:  # a cancelled task may still need its worker stopped
            self._set_deadline(task, None)
        task.func = _dropped
        task.args, task.kwargs, task.payload = (), {}, None
        if status == COMPLETED:
            self.task_completed.emit(task.task_id, task.name, result)
        elif status == FAILED:
            self.task_failed.emit(task.task_id, task.name, task.error or "")
        else:
            self.task_cancelled.emit(task.task_id, task.name)
        self._finished_order.append(task.task_id)
        while len(self._finished_order) > self.max_finished:
            self._forget(self._finished_order.popleft())

    def _forget(self, task_id: str) -> None:
        task = self._tasks.get(task_id)
        if task is None or task.status not in TERMINAL:
            return
        del self._tasks[task_id]
        if task.generation is None:  # still occupying a worker: keep its serial until it returns
            self._by_serial.pop(task.serial, None)


def _seconds_or_none(timeout: Any) -> float | None:
    """A task's timeout as positive seconds; ``None`` and infinity mean no limit."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__}"
        )
    if not timeout > 0:  # also NaN
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout}")
    return None if math.isinf(timeout) else float(timeout)


def _ignore(item: tuple[Any, ...]) -> None:
    """What backends report to after shutdown."""


def _dropped(*args: Any, **kwargs: Any) -> None:
    """Stands in for a finished task's function, so that its arguments can be freed."""


def _how(code: int | None) -> str:
    if code is None:
        return "ended, exit status unknown"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _unpicklable_message(task: _Task, exc: BaseException) -> str:
    """Name what could not be pickled: the function or the first argument that fails."""
    culprit = "its function"
    for label, value in (
        [("function", task.func)]
        + [(f"argument {i}", a) for i, a in enumerate(task.args)]
        + [(f"keyword argument {k!r}", v) for k, v in task.kwargs.items()]
    ):
        try:
            cloudpickle.dumps(value)
        except Exception:
            culprit = f"{label} (of type {type(value).__qualname__})"
            break
    return (
        f"PicklingError: the task could not be sent to a worker process: {culprit} "
        f"cannot be pickled ({type(exc).__name__}: {exc})"
    )
