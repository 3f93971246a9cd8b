"""The pool backends: where tasks run, and how what they report gets back (Qt-free).

``ProcessBackend`` runs chunks of pickled tasks on a spawn ``ProcessPoolExecutor``;
``ThreadBackend`` runs I/O tasks on a thread pool. Both report by calling ``post`` with
plain tuples, from any thread; the Qt bridge turns those into signals on the GUI thread.

Data flow of the process backend (one *generation* is one executor and its channel)::

    GUI thread            submitter thread     executor            worker process
    ----------            ----------------     --------            --------------
    submit(chunk) -queue-> executor.submit ---> call queue -------> run_chunk(items)
                                                                      |  started / progress /
    post(("event", gen, ev)) <------ reader thread <---- channel <----+  output / done events
    post(("chunk_done", ...)) <----- future done callback (executor's manager thread)
    post(("gen_closed", ...)) <----- retire thread, once a broken or retired generation's
                                     workers have all exited and its channel is drained

A result's large buffers skip the channel: the worker puts them in shared memory and the
reader thread maps them (``transfer``).

When a worker dies, the executor breaks; the generation is retired and the next chunk
goes to a fresh generation, so a crash never stops the manager.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import multiprocessing.context
import multiprocessing.sharedctypes
import multiprocessing.spawn
import os
import queue
import threading
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from . import transfer, worker

Post = Callable[[tuple[Any, ...]], None]

#: Generation number that I/O tasks report under.
IO_GENERATION = 0

_CANCEL_SLOTS = 256


# --------------------------------------------------------------------------- spawn
_spawning = threading.local()  # set while this thread spawns one of our workers
_stdlib_preparation_data = multiprocessing.spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    """What a spawned child is told to prepare; for our workers, never the main script.

    Spawn normally makes the child import ``__main__`` again (as ``__mp_main__``), which
    runs a GUI script without an ``if __name__ == "__main__":`` guard a second time. Tasks
    defined in ``__main__`` travel by value (cloudpickle), so our workers need none of it.
    Other spawns in the process are left as they are: the flag is per thread.
    """
    data: dict[str, Any] = _stdlib_preparation_data(name)
    if getattr(_spawning, "worker", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


multiprocessing.spawn.get_preparation_data = _preparation_data


class _SpawnProcess(multiprocessing.context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        _spawning.worker = True
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            _spawning.worker = False


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SpawnProcess


SPAWN = _SpawnContext()


class _Executor(ProcessPoolExecutor):
    """A ProcessPoolExecutor that always replaces a worker that exited at its task limit.

    CPython gh-115634 (3.11 up to recent 3.13/3.14 releases): the replacement path asks an
    idle-worker semaphore that can hold stale tokens, so no replacement is spawned and the
    queued work stalls. The manager thread is the only caller of the replacement path.
    """

    def _adjust_process_count(self) -> None:
        manager = getattr(self, "_executor_manager_thread", None)
        if threading.current_thread() is manager:
            processes = self._processes
            if processes is not None and len(processes) < self._max_workers:  # type: ignore[attr-defined]
                self._spawn_process()  # type: ignore[attr-defined]
            return
        super()._adjust_process_count()


# --------------------------------------------------------------------------- generations
class _Generation:
    """One executor, its event channel and the thread that reads the channel."""

    def __init__(
        self,
        number: int,
        backend: ProcessBackend,
    ) -> None:
        self.number = number
        self.backend = backend
        self.channel = SPAWN.SimpleQueue()
        self.executor = _Executor(
            max_workers=backend.max_workers,
            mp_context=SPAWN,
            initializer=worker.init_worker,
            initargs=(self.channel, backend.cancel_flags, os.getpid(), backend.nice),
            max_tasks_per_child=backend.max_tasks_per_child,
        )
        self.processes: MutableMapping[int, Any] = self.executor._processes
        self.in_flight = 0
        self.retiring = False
        self.reader = threading.Thread(
            target=self._read, name=f"mosaic-parallel-reader-{number}", daemon=True
        )
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                event = self.channel.get()
            except (EOFError, OSError):
                break
            except Exception:  # a message cut short by a killed worker
                continue
            for one in event if isinstance(event, list) else (event,):
                if one[0] == "done":
                    one = transfer.rebuild_done(one)
                self.backend.post(("event", self.number, one))
        exitcodes = {pid: p.exitcode for pid, p in list(self.processes.items())}
        self.backend.post(("gen_closed", self.number, exitcodes))

    def retire(self, kill: bool) -> threading.Thread:
        """Stop this generation in the background; ``gen_closed`` is posted at the end."""
        self.retiring = True
        if kill:
            self.kill_all()
        thread = threading.Thread(
            target=self._close, name=f"mosaic-parallel-retire-{self.number}", daemon=True
        )
        thread.start()
        return thread

    def kill_all(self) -> None:
        for p in list(self.processes.values()):
            with contextlib.suppress(Exception):
                p.kill()

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self.executor.shutdown(wait=True, cancel_futures=True)
        for p in list(self.processes.values()):
            with contextlib.suppress(Exception):
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join(5)
        # Every writer is gone: closing ours lets the reader drain the rest and see EOF.
        with contextlib.suppress(Exception):
            self.channel._writer.close()  # type: ignore[attr-defined]
        self.reader.join()
        with contextlib.suppress(Exception):
            self.channel.close()

    def pids(self) -> list[int]:
        return list(self.processes)


class Backend(Protocol):
    """What the bridge needs of a backend for process tasks (local pool or cluster)."""

    #: Replace a worker after this many messages; chunks of tiny tasks are off when set.
    max_tasks_per_child: int | None
    #: Where events go; the bridge swaps in a no-op at shutdown.
    post: Post

    @property
    def capacity(self) -> int:
        """Chunks that may be in flight at once."""

    def in_flight(self) -> int:
        """Chunks handed over and not yet returned."""

    def start(self) -> int:
        """Start workers ahead of the first task."""

    def submit(self, items: Sequence[tuple[int, bytes]]) -> int:
        """Run a chunk of ``(serial, payload)``; returns the generation it went to."""

    def request_cancel(self, serial: int) -> None:
        """Ask a task to stop at its next ``report_progress``, or not to start."""

    def kill_worker(self, number: int, pid: int) -> bool:
        """Stop the worker running a task; its generation then closes."""

    def worker_pids(self) -> list[int]:
        """Process ids of local workers (empty for a cluster)."""

    def forget(self, number: int) -> None:
        """Drop a closed generation."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop every worker."""


class ProcessBackend:
    """Runs task chunks in spawn worker processes, replacing a broken pool transparently.

    Parameters
    ----------
    max_workers
        Worker processes per generation.
    post
        Called from any thread with ``("event", gen, event)``, ``("chunk_done", gen,
        serials, error)`` and ``("gen_closed", gen, {pid: exitcode})``.
    max_tasks_per_child
        Replace a worker after this many chunks (``None``: never).
    nice
        Added to the workers' scheduling niceness (0 leaves it as it is).
    """

    def __init__(
        self,
        max_workers: int,
        post: Post,
        *,
        max_tasks_per_child: int | None = None,
        nice: int = 0,
    ) -> None:
        self.max_workers = max_workers
        self.post = post
        self.max_tasks_per_child = max_tasks_per_child
        self.nice = nice
        self.cancel_flags = multiprocessing.sharedctypes.RawArray("q", _CANCEL_SLOTS)
        self._cancel_next = 0
        self._lock = threading.Lock()
        self._current: _Generation | None = None
        self._generations: dict[int, _Generation] = {}
        self._next_number = IO_GENERATION + 1
        self._closed = False
        # executor.submit writes to a pipe, may spawn a worker, and waits for the GIL that
        # the reader and manager threads hold: a thread of its own keeps that off the GUI.
        self._to_submit: queue.SimpleQueue[tuple[_Generation, list[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._submitter: threading.Thread | None = None

    # capacity ---------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Chunks that may be in flight in the current generation at once."""
        return 2 * self.max_workers

    def in_flight(self) -> int:
        """Chunks handed to the current generation and not yet returned."""
        gen = self._current
        return gen.in_flight if gen is not None and not gen.retiring else 0

    # generations ------------------------------------------------------------
    def _generation(self) -> _Generation:
        with self._lock:
            if self._closed:
                raise RuntimeError("the process backend has been shut down")
            gen = self._current
            if gen is None or gen.retiring:
                gen = _Generation(self._next_number, self)
                self._next_number += 1
                self._generations[gen.number] = gen
                self._current = gen
            return gen

    def start(self) -> int:
        """Start a generation's workers ahead of the first task; returns its number."""
        gen = self._generation()
        for _ in range(self.max_workers):
            self._enqueue(gen, [])
        return gen.number

    def submit(self, items: Sequence[tuple[int, bytes]]) -> int:
        """Send a chunk of ``(serial, payload)`` to a worker; returns the generation number.

        The chunk is handed to the executor by the submitter thread. Should that generation
        have broken meanwhile, the chunk's tasks are settled when it closes, like any other
        task of a broken generation.
        """
        gen = self._generation()
        self._enqueue(gen, list(items))
        return gen.number

    def _enqueue(self, gen: _Generation, items: list[tuple[int, bytes]]) -> None:
        with self._lock:
            gen.in_flight += 1
            if self._submitter is None:
                self._submitter = threading.Thread(
                    target=self._submit_loop, name="mosaic-parallel-submit", daemon=True
                )
                self._submitter.start()
        self._to_submit.put((gen, items))

    def _submit_loop(self) -> None:
        while (job := self._to_submit.get()) is not None:
            gen, items = job
            if self._closed:  # shut down: nothing more starts
                continue
            serials = [serial for serial, _ in items]
            try:
                future = gen.executor.submit(worker.run_chunk, items)
            except (BrokenProcessPool, RuntimeError) as exc:
                with self._lock:
                    gen.in_flight -= 1
                self._break(gen)
                if serials:
                    self.post(("chunk_done", gen.number, serials, BrokenProcessPool(str(exc))))
                continue
            future.add_done_callback(functools.partial(self._chunk_done, gen, serials))

    def _chunk_done(self, gen: _Generation, serials: list[int], future: Future[Any]) -> None:
        with self._lock:
            gen.in_flight -= 1
        error = RuntimeError("cancelled") if future.cancelled() else future.exception()
        if isinstance(error, BrokenProcessPool):
            # The executor terminates the other workers itself (SIGTERM), which tells
            # them apart from the one that died first.
            self._break(gen)
        if serials:
            self.post(("chunk_done", gen.number, serials, error))

    def _break(self, gen: _Generation) -> None:
        with self._lock:
            if gen.retiring:
                return
            if self._current is gen:
                self._current = None
        gen.retire(kill=False)

    def forget(self, number: int) -> None:
        """Drop a closed generation."""
        self._generations.pop(number, None)

    # cancellation -----------------------------------------------------------
    def request_cancel(self, serial: int) -> None:
        """Ask the task ``serial`` to stop at its next ``report_progress`` (or not to start)."""
        with self._lock:
            self.cancel_flags[self._cancel_next % _CANCEL_SLOTS] = serial
            self._cancel_next += 1

    def kill_worker(self, number: int, pid: int) -> bool:
        """Kill one worker of generation ``number``; the generation then breaks and closes."""
        gen = self._generations.get(number)
        proc = gen.processes.get(pid) if gen is not None else None
        if proc is None:
            return False
        with contextlib.suppress(Exception):
            proc.kill()
        return True

    def worker_pids(self) -> list[int]:
        """Process ids of the workers of every generation still open."""
        return [pid for gen in list(self._generations.values()) for pid in gen.pids()]

    # shutdown ---------------------------------------------------------------
    def shutdown(self, wait: bool = True) -> None:
        """Kill every worker; with ``wait``, return once they have all exited."""
        with self._lock:
            self._closed = True
            self._current = None
            generations = list(self._generations.values())
            submitter, self._submitter = self._submitter, None
        if submitter is not None:  # let a submission under way finish, so its workers are known
            self._to_submit.put(None)
            submitter.join(10)
        threads = [gen.retire(kill=True) for gen in generations if not gen.retiring]
        for gen in generations:
            gen.kill_all()
        if wait:
            for thread in threads:
                thread.join(10)
            for gen in generations:
                for p in list(gen.processes.values()):
                    with contextlib.suppress(Exception):
                        p.join(5)


class ThreadBackend:
    """Runs I/O tasks on a thread pool in this process, reporting through ``post``."""

    def __init__(self, max_workers: int, post: Post) -> None:
        self.post = post
        self.max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="mosaic-parallel-io")
        self._cancelled: set[int] = set()

    @property
    def capacity(self) -> int:
        """I/O tasks that may be handed to the threads at once."""
        return self.max_workers

    def submit(
        self, serial: int, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Any]:
        """Run ``func(*args, **kwargs)`` on a thread, reporting under ``serial``."""
        future = self._executor.submit(self._run, serial, func, args, kwargs)
        future.add_done_callback(functools.partial(self._future_done, serial))
        return future

    def _future_done(self, serial: int, future: Future[Any]) -> None:
        """Only a future that did not run the task needs a word (``_run`` reports the rest)."""
        error = RuntimeError("cancelled at shutdown") if future.cancelled() else future.exception()
        if error is not None:
            self.post(("chunk_done", IO_GENERATION, [serial], error))

    def request_cancel(self, serial: int) -> None:
        """Ask the I/O task ``serial`` to stop at its next ``report_progress``."""
        self._cancelled.add(serial)

    def _send(self, event: worker.Event) -> None:
        self.post(("event", IO_GENERATION, event))

    def _run(
        self, serial: int, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if serial in self._cancelled:
            self._cancelled.discard(serial)
            self._send(("done", serial, "cancelled", None, [], 0.0))
            return
        self._send(("started", serial, os.getpid()))
        context = worker._TaskContext(serial, self._send, self._cancelled.__contains__)
        worker._local.context = context
        try:
            done = worker.run_task(
                serial,
                lambda: (func, args, kwargs),
                context,
                encode=None,
                capture_warnings=False,
            )
        finally:
            worker._local.context = None
            self._cancelled.discard(serial)
        self._send(done)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel queued I/O tasks; running threads finish on their own."""
        self._executor.shutdown(wait=wait, cancel_futures=True)
