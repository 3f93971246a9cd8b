"""The Dask backend: runs process tasks on a ``distributed`` cluster instead of local workers.

``DaskBackend`` offers the interface of :class:`mosaic_parallel.pool.ProcessBackend`, so the
Qt bridge drives it unchanged. It never imports Qt, and the bridge never waits on the network:
every call that talks to the scheduler runs on one backend thread.

Data flow::

    GUI thread           backend thread            scheduler           Dask worker (thread)
    ----------           --------------            ---------           --------------------
    submit(items) -----> command queue --------->  client.submit ----> _run_remote(...)
                         (connects first)                                |
    post(("event",...)) <-- topic handler <------- log-event <-----------+ started / progress /
                            (client loop thread)                         | output, live
    post(("event",...)) <-- backend thread <------ future result <------+ every event again,
                            (missing events, then "done")                  then "done"

Live events travel as Dask structured events (``Worker.log_event`` / ``Client.subscribe_topic``);
the future's result repeats them (output and the latest progress, bounded), numbered, so
whatever the live channel lost or delivered late is filled in, in order, before ``done``.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import itertools
import os
import queue
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle

from . import transfer, worker

__all__ = ["DaskBackend"]

Post = Callable[[tuple[Any, ...]], None]

#: Generation numbers of the Dask backend start here (the local pool counts from 1).
_FIRST_GENERATION = 1_000_000
#: Chunks (futures) in flight before the cluster's size is known.
_DEFAULT_CAPACITY = 8
#: Progress events a task keeps for its result (the live channel normally delivers them all).
_KEPT_PROGRESS = 64
#: Pickled results up to this size also travel with the live events (no extra fetch).
_LIVE_RESULT_BYTES = 8 * 1024
#: Seconds ``shutdown(wait=True)`` waits for the backend thread to close the connection.
_SHUTDOWN_WAIT = 5.0
#: Seconds between two counts of the cluster's worker threads.
_CAPACITY_CHECK_INTERVAL = 5.0


# --------------------------------------------------------------------------- worker side
def _thread_context() -> worker._TaskContext | None:
    """The context of the task running on this thread of a Dask worker, if any."""
    return getattr(worker._local, "context", None)


_warn_local = threading.local()
_install_lock = threading.Lock()
_installed = False
_running: set[worker._TaskContext] = set()  # contexts of the tasks running in this process


def _flush_running() -> None:
    """Send the running tasks' pending output and progress every 50 ms, as pool workers do."""
    while True:
        time.sleep(worker._FLUSH_INTERVAL)
        for context in list(_running):
            with contextlib.suppress(Exception):
                context.flush()


def _route_warning(
    message: Any,
    category: Any,
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    caught = getattr(_warn_local, "caught", None)
    if caught is None:
        _original_showwarning(message, category, filename, lineno, file, line)
        return
    caught.append(warnings.WarningMessage(message, category, filename, lineno, file, line))


_original_showwarning = warnings.showwarning


def _install_routing() -> None:
    """Once per worker process: per-thread capture of output and warnings.

    ``contextlib.redirect_stdout`` and ``warnings.catch_warnings`` change process-wide state
    and would mix up the tasks that a multi-threaded Dask worker runs at the same time, so
    the streams and the warning hook are replaced once, and route by thread.
    """
    global _installed, _original_showwarning
    with _install_lock:
        if _installed:
            return
        if not isinstance(sys.stdout, worker.CapturedStream):
            sys.stdout = worker.CapturedStream("stdout", sys.stdout, _thread_context)  # type: ignore[assignment,unused-ignore]
        if not isinstance(sys.stderr, worker.CapturedStream):
            sys.stderr = worker.CapturedStream("stderr", sys.stderr, _thread_context)  # type: ignore[assignment,unused-ignore]
        _original_showwarning = warnings.showwarning
        warnings.showwarning = _route_warning
        # Like the local pool: every warning is reported, not only its first occurrence.
        warnings.simplefilter("always")
        threading.Thread(target=_flush_running, name="mosaic-parallel-flush", daemon=True).start()
        _installed = True


def _key_cancelled(dask_worker: Any, key: Any) -> bool:
    """Whether the scheduler has released the running task's key (cancel or timeout)."""
    try:
        ts = dask_worker.state.tasks.get(key)
    except Exception:
        return False
    return ts is None or ts.state in ("cancelled", "released", "forgotten")


def _run_remote(topic: str, serial: int, payload: bytes) -> dict[str, Any]:
    """Run one task on a Dask worker; live events go to ``topic``, all of them in the result."""
    from distributed import get_worker

    dask_worker = get_worker()
    key = dask_worker.get_current_task()
    attempt = uuid.uuid4().hex
    numbers = itertools.count()
    kept: list[tuple[int, tuple[Any, ...]]] = []
    progress: collections.deque[tuple[int, tuple[Any, ...]]] = collections.deque(
        maxlen=_KEPT_PROGRESS
    )
    output_chars = 0

    def send(event: tuple[Any, ...], live: bool = True) -> None:
        nonlocal output_chars
        number = next(numbers)
        if event[0] == "progress":
            progress.append((number, event))
        elif event[0] != "done":
            kept.append((number, event))
            if event[0] == "output":
                output_chars += len(event[3])
                while output_chars > 2 * worker.OUTPUT_TAIL_CHARS and len(kept) > 1:
                    _, old = kept.pop(1)  # kept[0] is "started"
                    if old[0] == "output":
                        output_chars -= len(old[3])
        if live:
            with contextlib.suppress(Exception):
                dask_worker.log_event(topic, [attempt, number, list(event)])

    _install_routing()
    send(("started", serial, os.getpid()))
    context = worker._TaskContext(serial, send, lambda _serial: _key_cancelled(dask_worker, key))

    def load() -> Any:
        try:
            return cloudpickle.loads(payload)
        except Exception as exc:
            raise worker.PayloadNotLoadable(
                f"the task could not be rebuilt on the Dask worker: {type(exc).__name__}: {exc}"
            ) from exc

    caught: list[warnings.WarningMessage] = []
    worker._local.context = context
    _warn_local.caught = caught
    _running.add(context)
    try:
        done = worker.run_task(
            serial, load, context, encode=transfer.encode_inline, capture_warnings=False
        )
    finally:
        _running.discard(context)
        worker._local.context = None
        _warn_local.caught = None
    done = (*done[:4], worker._fold_warnings(caught), done[5])
    # A small outcome goes live too, which saves fetching the result; a cancelled task's
    # key was released, so its result would be dropped and live is the only way.
    if done[2] != "ok" or len(done[3]) <= _LIVE_RESULT_BYTES:
        send(done)
    events = sorted(kept + list(progress), key=lambda item: item[0])
    return {"attempt": attempt, "events": events, "done": done}


# --------------------------------------------------------------------------- GUI side
class _Tracked:
    """What the backend knows of one task it was given."""

    __slots__ = ("attempt", "cancelling", "future", "generation", "last", "serial", "started")

    def __init__(self, serial: int, generation: int) -> None:
        self.serial = serial
        self.generation = generation
        self.future: Any = None
        self.attempt: str | None = None
        self.last = -1  # number of the last event posted for this attempt
        self.started = False
        self.cancelling = False


class DaskBackend:
    """Runs tasks on a Dask cluster, with the interface of ``pool.ProcessBackend``.

    Parameters
    ----------
    cluster
        The scheduler's address (``"tcp://host:8786"``), a ``distributed.Client`` (used, never
        closed), or a cluster object such as ``LocalCluster`` or dask-jobqueue's
        ``SLURMCluster`` (its ``scheduler_address`` is used).
    post
        Called from any thread with ``("event", gen, event)``, ``("chunk_done", gen,
        serials, error)`` and ``("gen_closed", gen, {})``.
    connect_timeout
        Seconds to wait for the scheduler when connecting; default: Dask's
        ``distributed.comm.timeouts.connect`` setting.

    Notes
    -----
    Each :meth:`submit` is one generation, each task one Dask future. Nothing here blocks:
    the connection, submissions and cancellations happen on a backend thread. A task that
    cannot be sent, whose worker died on every retry (``KilledWorker``) or whose connection
    was lost is reported with ``chunk_done`` and an error, which fails it.
    """

    max_tasks_per_child: int | None = None  # Dask manages its own workers

    def __init__(self, cluster: Any, post: Post, *, connect_timeout: float | None = None) -> None:
        if importlib.util.find_spec("distributed") is None:
            raise ImportError(
                "running tasks on a Dask cluster needs dask.distributed: "
                'pip install "mosaic-parallel[cluster]"'
            )
        self.post = post
        self._user_client: Any = None
        if isinstance(cluster, str):
            self.address: str = cluster
        elif hasattr(cluster, "subscribe_topic"):  # a distributed.Client
            self._user_client = cluster
            self.address = str(getattr(cluster.scheduler, "address", None) or cluster)
        elif isinstance(getattr(cluster, "scheduler_address", None), str):  # a cluster object
            self.address = cluster.scheduler_address
        else:
            raise TypeError(
                "cluster must be a scheduler address, a distributed.Client or a Dask cluster "
                f"object, not {type(cluster).__name__}"
            )
        self.connect_timeout = connect_timeout
        self.topic = f"mosaic-parallel-{uuid.uuid4().hex}"
        self._client: Any = None
        self._lock = threading.RLock()
        self._commands: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._tracked: dict[int, _Tracked] = {}
        self._generations: dict[int, set[int]] = {}
        self._next_generation = _FIRST_GENERATION
        self._tickets = itertools.count(1)
        self._last_ticket = 0
        self._failed_upto = 0  # submissions queued up to this ticket fail with _failure
        self._failure: BaseException | None = None
        self._nthreads = 0
        self._capacity_checked = 0.0
        self._closed = False

    # capacity ---------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Tasks in flight at once: twice the cluster's worker threads once known."""
        return max(2, 2 * self._nthreads) if self._nthreads else _DEFAULT_CAPACITY

    def in_flight(self) -> int:
        """Tasks sent to the cluster and not yet settled."""
        with self._lock:
            return len(self._tracked)

    # submitting -------------------------------------------------------------
    def _command(self, *command: Any) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the Dask backend has been shut down")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="mosaic-parallel-dask", daemon=True
                )
                self._thread.start()
        self._commands.put(command)

    def start(self) -> int:
        """Connect to the scheduler in the background, ahead of the first task."""
        self._command("connect", next(self._tickets))
        return self._next_generation

    def submit(self, items: Sequence[tuple[int, bytes]]) -> int:
        """Queue ``(serial, payload)`` items for the cluster; returns their generation at once."""
        with self._lock:
            generation = self._next_generation
            self._next_generation += 1
            self._generations[generation] = {serial for serial, _ in items}
            for serial, _ in items:
                self._tracked[serial] = _Tracked(serial, generation)
            ticket = next(self._tickets)
            self._last_ticket = ticket
        self._command("submit", ticket, generation, list(items))
        return generation

    def request_cancel(self, serial: int) -> None:
        """Stop the task: dropped if it has not started, else at its next ``report_progress``.

        Its Dask key is released, which the task sees.
        """
        with self._lock:
            tracked = self._tracked.get(serial)
            if tracked is None or tracked.cancelling:
                return
            tracked.cancelling = True
        with contextlib.suppress(RuntimeError):
            self._command("cancel", serial)

    def kill_worker(self, generation: int, pid: int) -> bool:
        """Settle a generation whose task must stop; a running Dask task cannot be killed.

        The generation's futures are cancelled, their results dropped, and the generation is
        reported closed (the bridge settles its tasks).
        """
        with self._lock:
            serials = self._generations.pop(generation, None)
            if serials is None:
                return False
            futures = []
            for serial in serials:
                tracked = self._tracked.pop(serial, None)
                if tracked is not None and tracked.future is not None:
                    futures.append(tracked.future)
        if futures:
            with contextlib.suppress(RuntimeError):
                self._command("release", futures)
        self.post(("gen_closed", generation, {}))
        return True

    def worker_pids(self) -> list[int]:
        """Always empty: Dask workers are not processes of this machine to watch."""
        return []

    def forget(self, generation: int) -> None:
        """Drop a closed generation."""
        with self._lock:
            self._generations.pop(generation, None)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel every task on the cluster and close the connection (the cluster stays)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            futures = [t.future for t in self._tracked.values() if t.future is not None]
            self._tracked.clear()
            self._generations.clear()
            thread = self._thread
        self._commands.put(("release", futures))
        self._commands.put(("shutdown",))
        if wait and thread is not None:
            # Enough to close the connection politely; never wait out a connect timeout.
            thread.join(_SHUTDOWN_WAIT)

    # the backend thread -----------------------------------------------------
    def _timeout(self) -> float:
        if self.connect_timeout is not None:
            return float(self.connect_timeout)
        import dask.config
        from dask.utils import parse_timedelta

        return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect")))

    def _serve(self) -> None:
        while True:
            command = self._commands.get()
            what = command[0]
            try:
                if what == "shutdown":
                    self._close_client()
                    return
                if what == "connect":
                    self._connected(command[1])
                elif what == "submit":
                    self._submit(*command[1:])
                elif what == "cancel":
                    self._cancel(command[1])
                elif what == "release":
                    self._release_futures(command[1])
                elif what == "finished":
                    self._finished(*command[1:])
            except Exception as exc:
                if what == "submit":
                    self._fail_items(command[2], command[3], exc)
            # Hold no future while waiting: a held future pins its result on the cluster.
            command = None  # type: ignore[assignment]

    def _connected(self, ticket: int) -> Any:
        """The live client, connecting first if needed; ``None`` after a failure."""
        client = self._client
        if client is not None and client.status == "running":
            return client
        if ticket <= self._failed_upto:
            return None
        self._close_client()
        try:
            if self._user_client is not None:
                client = self._user_client
                if client.status != "running":
                    raise ConnectionError(f"the Dask client is {client.status}")
            else:
                from distributed import Client

                client = Client(  # type: ignore[no-untyped-call,unused-ignore]
                    self.address, timeout=self._timeout(), set_as_default=False
                )
            client.subscribe_topic(self.topic, self._on_live_event)
        except BaseException as exc:
            with self._lock:
                self._failed_upto = self._last_ticket
            self._failure = ConnectionError(
                f"could not connect to the Dask scheduler at {self.address}: "
                f"{type(exc).__name__}: {exc}"
            )
            return None
        self._client = client
        self._failure = None
        self._refresh_capacity(force=True)
        return client

    def _refresh_capacity(self, force: bool = False) -> None:
        """Count the cluster's worker threads (a round trip: at most every few seconds)."""
        now = time.monotonic()
        if not force and now - self._capacity_checked < _CAPACITY_CHECK_INTERVAL:
            return
        self._capacity_checked = now
        with contextlib.suppress(Exception):
            info = self._client.scheduler_info()
            self._nthreads = sum(w.get("nthreads", 1) for w in info["workers"].values())

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(self.topic)
        with self._lock:
            futures = [t.future for t in self._tracked.values() if t.future is not None]
        if futures:
            with contextlib.suppress(Exception):
                client.cancel(futures)
        if client is not self._user_client:
            with contextlib.suppress(Exception):
                client.close(timeout=5)

    def _submit(self, ticket: int, generation: int, items: list[tuple[int, bytes]]) -> None:
        client = self._connected(ticket)
        if client is None:
            self._fail_items(generation, items, self._failure or ConnectionError("not connected"))
            return
        self._refresh_capacity()
        for serial, payload in items:
            with self._lock:
                tracked = self._tracked.get(serial)
                if tracked is None or tracked.generation != generation:
                    continue
                if tracked.cancelling:  # cancelled before it was sent
                    self._untrack(tracked)
                    self.post(("event", generation, ("done", serial, "cancelled", None, [], 0.0)))
                    continue
            future = client.submit(
                _run_remote,
                self.topic,
                serial,
                payload,
                key=f"mosaic-parallel-{serial}-{uuid.uuid4().hex[:12]}",
                pure=False,
            )
            with self._lock:
                tracked.future = future
            future.add_done_callback(
                lambda f, s=serial, g=generation: self._commands.put(("finished", s, g, f))
            )

    def _fail_items(
        self, generation: int, items: list[tuple[int, bytes]], error: BaseException
    ) -> None:
        failed = []
        with self._lock:
            for serial, _ in items:
                tracked = self._tracked.get(serial)
                if tracked is not None and tracked.generation == generation:
                    self._untrack(tracked)
                    failed.append(serial)
        if failed:
            self.post(("chunk_done", generation, failed, error))

    def _cancel(self, serial: int) -> None:
        with self._lock:
            tracked = self._tracked.get(serial)
            if tracked is None:
                return
            started = tracked.started
            future = tracked.future
            if not started:  # not begun (as far as we know): drop it and free its slot
                self._untrack(tracked)
                self.post(
                    ("event", tracked.generation, ("done", serial, "cancelled", None, [], 0.0))
                )
        if future is not None:
            self._release_futures([future])

    def _release_futures(self, futures: list[Any]) -> None:
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                client.cancel(futures)

    def _finished(self, serial: int, generation: int, future: Any) -> None:
        with self._lock:
            tracked = self._tracked.get(serial)
            if tracked is None or tracked.generation != generation or tracked.future is not future:
                return
        status = future.status
        if status == "finished":
            try:
                outcome = future.result()
            except Exception as exc:
                self._settle_error(tracked, exc)
                return
            self._settle(tracked, outcome)
        elif status == "cancelled":
            if tracked.cancelling:
                return  # the task says "cancelled" live, or the bridge's grace period ends it
            client = self._client
            state = "lost" if client is None or client.status != "running" else "dropped"
            self._settle_error(
                tracked,
                ConnectionError(
                    f"the connection to the Dask scheduler at {self.address} was {state} "
                    "while the task was queued or running there; the next submission "
                    "connects again"
                ),
            )
        else:
            try:
                failure = future.exception()
            except BaseException as error:
                failure = error
            self._settle_error(tracked, failure)

    def _settle_error(self, tracked: _Tracked, error: BaseException) -> None:
        with self._lock:
            if self._tracked.get(tracked.serial) is not tracked:
                return
            self._untrack(tracked)
        self.post(("chunk_done", tracked.generation, [tracked.serial], error))

    def _settle(self, tracked: _Tracked, outcome: dict[str, Any]) -> None:
        """Post the events the live channel has not delivered, then ``done``."""
        done = transfer.rebuild_done(outcome["done"])
        with self._lock:
            if self._tracked.get(tracked.serial) is not tracked:
                return
            self._untrack(tracked)
            fresh = outcome["attempt"] != tracked.attempt
            for number, event in outcome["events"]:
                if fresh or number > tracked.last:
                    self.post(("event", tracked.generation, tuple(event)))
            self.post(("event", tracked.generation, done))

    def _untrack(self, tracked: _Tracked) -> None:
        """Forget a settled task (call with the lock held)."""
        self._tracked.pop(tracked.serial, None)
        serials = self._generations.get(tracked.generation)
        if serials is not None:
            serials.discard(tracked.serial)
            if not serials:
                del self._generations[tracked.generation]

    def _on_live_event(self, item: Any) -> None:
        """Topic handler, on the client's event-loop thread: post an event in order, once."""
        try:
            attempt, number, event = item[1]
            event = tuple(event)
            serial = event[1]
        except Exception:
            return
        with self._lock:
            tracked = self._tracked.get(serial)
            if tracked is None:
                return
            if attempt != tracked.attempt:
                if event[0] != "started":
                    return  # a late event of an earlier attempt (its worker died)
                tracked.attempt, tracked.last = attempt, -1
            if number <= tracked.last:
                return
            if event[0] == "done":
                if number != tracked.last + 1:
                    return  # an event went missing: the future's result settles the task
                event = transfer.rebuild_done(event)
                self._untrack(tracked)
            elif event[0] == "started":
                tracked.started = True
            tracked.last = number
            self.post(("event", tracked.generation, event))
