"""The worker side: what runs a task and reports on it, inside a pool process or an I/O thread.

This module never imports Qt. It sends plain tuples (see ``Event`` below) to whoever
started the worker, and offers :func:`report_progress` to the task's own code.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle

from . import transfer

__all__ = [
    "OUTPUT_TAIL_CHARS",
    "TaskCancelled",
    "report_progress",
]

#: Events a task sends to its manager, as plain tuples (picklable, Qt-free):
#:
#: ``("started", serial, pid)``
#: ``("progress", serial, fraction_or_None, current, total, message_or_None)``
#: ``("output", serial, stream, text)``           stream is "stdout" or "stderr"
#: ``("done", serial, kind, data, warnings, seconds)``
#:     kind "ok": data is the result (pickled bytes in a process, the object in a thread);
#:     kind "error": data is the error text; kind "cancelled": data is None.
Event = tuple[Any, ...]
Send = Callable[[Event], None]

#: Environment variables that cap BLAS and OpenMP thread pools in a worker.
THREAD_LIMIT_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
)

#: How much output a worker buffers per stream between two flushes; older text is dropped.
OUTPUT_TAIL_CHARS = 1_000_000
_OUTPUT_FLUSH_CHARS = 64 * 1024
_FLUSH_INTERVAL = 0.05  # seconds between two progress or output messages of one task
_CANCEL_CHECK_INTERVAL = 0.02


class TaskCancelled(BaseException):
    """Raised inside a task by :func:`report_progress` once the task has been cancelled.

    It derives from ``BaseException`` so that a task's own ``except Exception`` does not
    swallow it. A task may catch it to clean up, but should re-raise it.
    """


class OutputTail:
    """The last ``limit`` characters of a stream of text.

    Older text is dropped in bulk once twice the limit is held, so a write costs O(1)
    however much a task prints; ``dropped`` counts what went.
    """

    __slots__ = ("dropped", "limit", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        """Append ``text``."""
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * self.limit:
            joined = "".join(self.parts)
            self.dropped += len(joined) - self.limit
            self.parts = [joined[-self.limit :]]
            self.size = self.limit

    def text(self) -> str:
        """The last ``limit`` characters."""
        return "".join(self.parts)[-self.limit :]

    def take(self) -> str:
        """The text kept, preceded by a note of what was dropped; the buffer is emptied."""
        joined = "".join(self.parts)
        kept = joined[-self.limit :]
        dropped = self.dropped + len(joined) - len(kept)
        self.parts, self.size, self.dropped = [], 0, 0
        return f"[... {dropped} characters dropped ...]\n{kept}" if dropped else kept


class _TaskContext:
    """What a running task needs to report: its serial, a sender and a cancellation check."""

    def __init__(self, serial: int, send: Send, cancelled: Callable[[int], bool]) -> None:
        self.serial = serial
        self._send = send
        self._cancelled = cancelled
        self._lock = threading.Lock()
        self._last_sent = 0.0
        self._last_check = 0.0
        self._last_output = 0.0
        self._pending_progress: tuple[float, int, int] | None = None
        self._output = {
            "stdout": OutputTail(OUTPUT_TAIL_CHARS),
            "stderr": OutputTail(OUTPUT_TAIL_CHARS),
        }

    # progress ---------------------------------------------------------------
    def progress(
        self, fraction: float | None, message: str | None, current: int, total: int
    ) -> None:
        now = time.monotonic()
        if now - self._last_check >= _CANCEL_CHECK_INTERVAL:
            self._last_check = now
            if self._cancelled(self.serial):
                raise TaskCancelled(f"task {self.serial} was cancelled")
        with self._lock:
            if message is not None:
                # A new message goes out at once, with whatever progress is pending.
                if fraction is not None:
                    self._pending_progress = (fraction, current, total)
                self._flush_progress_locked(message)
                return
            if fraction is None:
                return
            self._pending_progress = (fraction, current, total)
            if now - self._last_sent >= _FLUSH_INTERVAL or (total > 0 and current >= total):
                self._flush_progress_locked(None)

    def _flush_progress_locked(self, message: str | None) -> None:
        pending = self._pending_progress
        self._pending_progress = None
        if pending is None and message is None:
            return
        fraction, current, total = pending if pending is not None else (None, 0, 0)
        self._last_sent = time.monotonic()
        self._send(("progress", self.serial, fraction, current, total, message))

    # output -----------------------------------------------------------------
    def write(self, stream: str, text: str) -> None:
        with self._lock:
            tail = self._output[stream]
            tail.add(text)
            # Big writes go out early, but at most once per flush interval: a task that
            # prints faster than that keeps only the tail (the watch thread flushes it).
            if (
                tail.size >= _OUTPUT_FLUSH_CHARS
                and time.monotonic() - self._last_output >= _FLUSH_INTERVAL
            ):
                self._flush_output_locked(stream)

    def _flush_output_locked(self, stream: str) -> None:
        tail = self._output[stream]
        if not tail.size:
            return
        text = tail.take()
        self._last_output = time.monotonic()
        self._send(("output", self.serial, stream, text))

    def flush(self) -> None:
        """Send whatever progress and output is pending."""
        with self._lock:
            self._flush_progress_locked(None)
            self._flush_output_locked("stdout")
            self._flush_output_locked("stderr")


class CapturedStream:
    """``sys.stdout`` or ``sys.stderr`` of a worker: what a task writes goes to its context.

    Text written outside a task goes to ``fallback``, the stream that was there before, which
    also answers everything else asked of the stream (``fileno``, ``encoding``, ...).
    ``context`` finds the writing task's context (default: this thread's, else this pool
    process's task).
    """

    def __init__(
        self,
        name: str,
        fallback: Any,
        context: Callable[[], _TaskContext | None] | None = None,
    ) -> None:
        self._name = name
        self._fallback = fallback
        self._context = context or _current_context

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        ctx = self._context()
        if ctx is None:
            return int(self._fallback.write(text) or 0) if self._fallback is not None else len(text)
        ctx.write(self._name, str(text))
        return len(text)

    def writelines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._context() is None and self._fallback is not None:
            with contextlib.suppress(Exception):
                self._fallback.flush()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._fallback, attr)


_local = threading.local()
_process_context: _TaskContext | None = None  # the task of this worker process


def _current_context() -> _TaskContext | None:
    return getattr(_local, "context", None) or _process_context


def report_progress(
    progress: float | None = None,
    message: str | None = None,
    current: int | None = None,
    total: int | None = None,
) -> None:
    """Report a task's progress to the GUI; a no-op outside a task.

    Parameters
    ----------
    progress
        Fraction done, from 0 to 1. When omitted and both ``current`` and ``total`` are
        given, it is ``current / total``.
    message
        A short status text; it reaches ``task_message``.
    current, total
        Steps done and steps in all; they reach ``task_progress``.

    Raises
    ------
    TaskCancelled
        When the task has been cancelled: the task stops here (cooperative cancellation).

    Notes
    -----
    Numeric progress is sent at most every 50 ms (the latest value wins, and the last
    step is always sent); a new message is sent at once.
    """
    ctx = _current_context()
    if ctx is None:
        return
    cur, tot = _count(current), _count(total)
    fraction: float | None = None
    if progress is not None:
        fraction = float(progress)
    elif cur is not None and tot:
        fraction = cur / tot
    if fraction is not None and math.isnan(fraction):
        fraction = None  # unknown, like a count that is NaN
    if fraction is not None:
        fraction = min(max(fraction, 0.0), 1.0)
    ctx.progress(fraction, None if message is None else str(message), cur or 0, tot or 0)


def _count(value: float | None) -> int | None:
    """A step count as an int; ``None`` when it is missing or not finite (NaN, infinity)."""
    if value is None:
        return None
    number = float(value)
    return int(number) if math.isfinite(number) else None


# --------------------------------------------------------------------------- running
def describe_exception(exc: BaseException) -> str:
    """``Type: message`` followed by the traceback, as text that needs no unpickling."""
    try:
        text = str(exc)
        head = f"{type(exc).__qualname__}: {text}" if text else type(exc).__qualname__
    except Exception:  # an exception whose __str__ raises
        head = f"{type(exc).__qualname__}: <message could not be shown>"
    body = "".join(traceback.format_exception(exc))
    return f"{head}\n\n{body}"


def _fold_warnings(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    counts: dict[str, int] = {}
    for w in caught:
        key = f"{w.category.__name__}: {w.message}"
        counts[key] = counts.get(key, 0) + 1
    return [key if n == 1 else f"{key} (repeated {n} times)" for key, n in counts.items()]


def run_task(
    serial: int,
    load: Callable[[], tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]],
    context: _TaskContext,
    *,
    encode: Callable[[Any], Any] | None,
    capture_warnings: bool = True,
) -> Event:
    """Run one task and return its ``done`` event; it never raises.

    ``encode`` turns the result into what is sent back (``None``: the object itself).
    ``capture_warnings`` is for worker processes only: ``warnings.catch_warnings`` changes
    process-wide state, so I/O threads in the GUI process leave warnings alone.
    """
    start = time.perf_counter()
    caught: list[warnings.WarningMessage] = []
    try:
        if capture_warnings:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                func, args, kwargs = load()
                result = func(*args, **kwargs)
        else:
            func, args, kwargs = load()
            result = func(*args, **kwargs)
        if encode is not None:
            try:
                data: Any = encode(result)
            except Exception as exc:
                raise ResultNotPicklable(
                    f"the result of type {type(result).__qualname__} could not be pickled "
                    f"to send it back: {type(exc).__name__}: {exc}"
                ) from exc
        else:
            data = result
        kind = "ok"
    except TaskCancelled:
        kind, data = "cancelled", None
    except BaseException as exc:
        kind, data = "error", describe_exception(exc)
    context.flush()
    return ("done", serial, kind, data, _fold_warnings(caught), time.perf_counter() - start)


class ResultNotPicklable(TypeError):
    """A task's result could not be pickled to be sent back to the GUI process."""


class PayloadNotLoadable(TypeError):
    """A task's function or arguments could not be rebuilt in the worker."""


# --------------------------------------------------------------------------- pool worker
class _WorkerState:
    """Per-process state of a pool worker, set by :func:`init_worker`."""

    channel: Any = None
    cancel_flags: Any = None


def _is_cancelled(serial: int) -> bool:
    flags = _WorkerState.cancel_flags
    return flags is not None and serial in flags[:]


def _send(event: Event) -> None:
    _WorkerState.channel.put(event)


def init_worker(channel: Any, cancel_flags: Any, parent_pid: int, nice: int) -> None:
    """Prepare a pool process: thread limits, captured streams, priority, parent watch."""
    for name in THREAD_LIMIT_VARIABLES:
        os.environ[name] = "1"
    _WorkerState.channel = channel
    _WorkerState.cancel_flags = cancel_flags
    try:  # Ctrl-C in a terminal goes to the GUI process; it decides what to stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):
        pass
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass
    sys.stdout = CapturedStream("stdout", sys.__stdout__)
    sys.stderr = CapturedStream("stderr", sys.__stderr__)
    threading.Thread(
        target=_watch, args=(parent_pid,), name="mosaic-parallel-watch", daemon=True
    ).start()


def _parent_alive(parent_pid: int) -> bool:
    if os.getppid() != parent_pid:
        return False
    try:
        import psutil

        return bool(psutil.pid_exists(parent_pid))
    except ImportError:  # pragma: no cover - psutil is a dependency
        return True


def _watch(parent_pid: int) -> None:
    """Flush pending progress and output; exit when the GUI process is gone."""
    ticks = 0
    while True:
        time.sleep(_FLUSH_INTERVAL)
        ctx = _process_context
        if ctx is not None:
            try:
                ctx.flush()
            except Exception:
                pass
        ticks += 1
        if ticks % 10 == 0 and not _parent_alive(parent_pid):
            os._exit(70)


def run_chunk(items: Sequence[tuple[int, bytes]]) -> None:
    """Run tasks one after another in this pool process, reporting each on the channel."""
    global _process_context
    pid = os.getpid()
    # A task's "done" waits to travel with the next task's "started": one message a task.
    # "started" itself is never held back, so a crash is always blamed on the right task.
    pending: list[Event] = []
    for serial, payload in items:
        if _is_cancelled(serial):
            pending.append(("done", serial, "cancelled", None, [], 0.0))
            continue
        pending.append(("started", serial, pid))
        _send_all(pending)
        pending = []
        context = _TaskContext(serial, _send, _is_cancelled)
        _process_context = context

        def load(payload: bytes = payload) -> Any:
            try:
                return cloudpickle.loads(payload)
            except Exception as exc:
                raise PayloadNotLoadable(
                    f"the task could not be rebuilt in the worker: {type(exc).__name__}: {exc}"
                ) from exc

        try:
            done = run_task(serial, load, context, encode=transfer.encode)
        finally:
            _process_context = None
        pending.append(done)
    _send_all(pending)


def _send_all(events: list[Event]) -> None:
    """Send events in one message: a list when there are several."""
    if len(events) == 1:
        _send(events[0])
    elif events:
        _WorkerState.channel.put(events)
