"""The manager on a Dask cluster: a real ``distributed.LocalCluster`` of two worker processes."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import warnings

import pytest

distributed = pytest.importorskip("distributed")

import itertools  # noqa: E402

import dask  # noqa: E402
from qtpy.QtCore import QTimer  # noqa: E402

from mosaic_parallel import BackgroundTaskManager, report_progress  # noqa: E402

pytestmark = pytest.mark.timeout(120)

TERMINAL = ("completed", "failed", "cancelled")


def _local_cluster(**options):
    options.setdefault("scheduler_port", 0)
    options.setdefault("n_workers", 2)
    options.setdefault("threads_per_worker", 1)
    return distributed.LocalCluster(
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # tests running side by side each get a port
        **options,
    )


@pytest.fixture(scope="module", autouse=True)
def _resource_tracker():
    """Start multiprocessing's resource tracker before any leftover-process check.

    Dask's worker processes start it, a child process that lives on.
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster shared by the tests of this module."""
    with _local_cluster() as local:
        yield local


@pytest.fixture
def own_cluster(make_manager):
    """A cluster of one's own, for tests that kill or close it.

    It is closed before the ``make_manager`` check for leftover processes.
    """
    made = []

    def make(**options):
        local = _local_cluster(**options)
        made.append(local)
        return local

    yield make
    for local in made:
        local.close()


@pytest.fixture
def on_cluster(cluster, make_manager):
    """A manager whose process tasks run on the shared cluster."""
    return make_manager(cluster=cluster.scheduler_address)


class Recorder:
    """Every signal of a manager, in order."""

    NAMES = (
        "task_started",
        "task_completed",
        "task_failed",
        "task_warning",
        "task_cancelled",
        "task_progress",
        "task_message",
        "task_output",
        "running_tasks",
    )

    def __init__(self, manager):
        self.events = []
        for name in self.NAMES:
            getattr(manager, name).connect(lambda *args, n=name: self.events.append((n, *args)))

    def of(self, name, task_id=None):
        return [e[1:] for e in self.events if e[0] == name and (task_id is None or e[1] == task_id)]


def wait_done(qtbot, manager, ids, timeout=60_000):
    qtbot.waitUntil(
        lambda: all(manager.task_info[t]["status"] in TERMINAL for t in ids), timeout=timeout
    )


# --------------------------------------------------------------------------- task functions
def double(x):
    return 2 * x


def where():
    return os.getpid()


def fails():
    def inner_function_name():
        raise ValueError("remote boom")

    inner_function_name()


def chatty(n):
    print("to stdout")
    print("to stderr", file=sys.stderr)
    warnings.warn("mind the gap", stacklevel=2)
    warnings.warn("mind the gap", stacklevel=2)
    warnings.warn("something else", DeprecationWarning, stacklevel=2)
    for i in range(n):
        report_progress(message=f"step {i + 1}", current=i + 1, total=n)
    return "ok"


def steps(n, delay=0.05):
    """A cooperative task: it reports after every step, so it can be cancelled."""
    begun = time.time()
    for i in range(n):
        time.sleep(delay)
        report_progress(current=i + 1, total=n)
    return (begun, time.time())


# --------------------------------------------------------------------------- tests
def test_completes_with_result_and_callback(qtbot, on_cluster):
    rec = Recorder(on_cluster)
    results = []
    task_id = on_cluster.submit_task("double", double, callback=results.append, args=(21,))
    wait_done(qtbot, on_cluster, [task_id])
    assert rec.of("task_started", task_id) == [(task_id, "double")]
    assert rec.of("task_completed", task_id) == [(task_id, "double", 42)]
    assert results == [42]
    assert on_cluster.task_info[task_id]["status"] == "completed"
    backend = on_cluster._processes
    assert backend.in_flight() == 0 and not backend._generations  # nothing left tracked


def test_runs_on_the_cluster_and_io_stays_local(qtbot, on_cluster, cluster):
    remote = on_cluster.submit_task("where", where)
    local = on_cluster.submit_io_task("where", where)
    rec = Recorder(on_cluster)
    wait_done(qtbot, on_cluster, [remote, local])
    results = {e[1]: e[3] for e in rec.events if e[0] == "task_completed"}
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        worker_pids = set(client.run(os.getpid).values())
    assert results[local] == os.getpid()
    assert results[remote] in worker_pids
    assert on_cluster.worker_pids() == []


def test_failure_carries_the_remote_traceback(qtbot, on_cluster):
    rec = Recorder(on_cluster)
    task_id = on_cluster.submit_task("fails", fails)
    wait_done(qtbot, on_cluster, [task_id])
    [(_, _name, error)] = rec.of("task_failed", task_id)
    assert error.startswith("ValueError: remote boom")
    assert "Traceback" in error and "inner_function_name" in error
    assert on_cluster.task_info[task_id]["error"] == error


def test_progress_messages_output_and_warnings(qtbot, on_cluster):
    rec = Recorder(on_cluster)
    task_id = on_cluster.submit_task("chatty", chatty, args=(3,))
    wait_done(qtbot, on_cluster, [task_id])
    assert on_cluster.task_info[task_id]["status"] == "completed"
    assert [m[2] for m in rec.of("task_message", task_id)] == ["step 1", "step 2", "step 3"]
    progress = rec.of("task_progress", task_id)
    assert progress and progress[-1][2:] == (1.0, 3, 3)
    assert on_cluster.get_task_output(task_id) == {"stdout": "to stdout\n", "stderr": "to stderr\n"}
    streams = {(e[1], e[2]) for e in rec.of("task_output", task_id)}
    assert streams == {("stdout", "to stdout\n"), ("stderr", "to stderr\n")}
    assert sorted(w[2] for w in rec.of("task_warning", task_id)) == [
        "DeprecationWarning: something else",
        "UserWarning: mind the gap (repeated 2 times)",
    ]
    # Signals keep their order: started, progress..., completed, then the warnings.
    kinds = [e[0] for e in rec.events if e[0] != "running_tasks"]
    assert kinds[0] == "task_started"
    assert kinds.index("task_completed") > max(
        i for i, k in enumerate(kinds) if k in ("task_progress", "task_message", "task_output")
    )


def big_result(n):
    print("before the result")
    return b"x" * n


def test_large_result_is_fetched_with_its_output(qtbot, on_cluster):
    rec = Recorder(on_cluster)
    task_id = on_cluster.submit_task("big", big_result, args=(200_000,))
    wait_done(qtbot, on_cluster, [task_id])
    [(_, _, result)] = rec.of("task_completed", task_id)
    assert result == b"x" * 200_000
    assert on_cluster.get_task_output(task_id)["stdout"] == "before the result\n"


def test_batch_max_concurrent(qtbot, on_cluster):
    rec = Recorder(on_cluster)
    tasks = [{"name": f"s{i}", "func": steps, "args": (4,)} for i in range(4)]
    batch = on_cluster.submit_task_batch(tasks, max_concurrent=1)
    ids = [t for t, info in on_cluster.task_info.items() if info["batch_id"] == batch]
    assert len(ids) == 4
    wait_done(qtbot, on_cluster, ids)
    assert max(e[1] for e in rec.events if e[0] == "running_tasks") == 1
    spans = sorted(e[3] for e in rec.events if e[0] == "task_completed")
    assert len(spans) == 4
    for (_, end), (begin, _) in itertools.pairwise(spans):
        assert begin >= end  # never two at once, even on the remote side


def test_cancel_queued_and_running(qtbot, on_cluster):
    rec = Recorder(on_cluster)
    # Two worker threads: two tasks run, the third waits in the Dask scheduler.
    running = [on_cluster.submit_task(f"long{i}", steps, args=(2000,)) for i in range(2)]
    waiting = on_cluster.submit_task("waiting", steps, args=(2000,))
    qtbot.waitUntil(lambda: len(rec.of("task_started")) == 2, timeout=30_000)
    assert {e[0] for e in rec.of("task_started")} == set(running)

    assert on_cluster.cancel_task(waiting)
    assert on_cluster.task_info[waiting]["status"] == "cancelled"  # at once
    for task_id in running:
        assert on_cluster.cancel_task(task_id)
    wait_done(qtbot, on_cluster, running)
    assert [on_cluster.task_info[t]["status"] for t in running] == ["cancelled", "cancelled"]
    assert sorted(e[0] for e in rec.of("task_cancelled")) == sorted([*running, waiting])
    assert not rec.of("task_failed")
    # The workers stopped at report_progress and are free again.
    after = [on_cluster.submit_task(f"after{i}", double, args=(i,)) for i in range(2)]
    wait_done(qtbot, on_cluster, after, timeout=15_000)
    assert [on_cluster.task_info[t]["status"] for t in after] == ["completed", "completed"]
    assert not rec.of("task_started", waiting)


def test_timeout_fails_the_task(qtbot, on_cluster):
    rec = Recorder(on_cluster)
    slow = on_cluster.submit_task("slow", steps, args=(2000,), timeout=1.0)
    quick = on_cluster.submit_task("quick", double, args=(1,), timeout=30)
    wait_done(qtbot, on_cluster, [slow, quick])
    [(_, _, error)] = rec.of("task_failed", slow)
    assert "timed out after 1 s" in error
    assert on_cluster.task_info[quick]["status"] == "completed"
    assert len(rec.of("task_started", slow)) == 1


def test_worker_killed_mid_task_is_rerun(qtbot, make_manager, own_cluster):
    local = own_cluster()
    manager = make_manager(cluster=local.scheduler_address)
    rec = Recorder(manager)
    pids = []
    manager.task_started.connect(lambda *_: pids.append(None))
    task_id = manager.submit_task("victim", steps, args=(30,))
    qtbot.waitUntil(lambda: manager._tasks[task_id].pid is not None, timeout=30_000)
    victim_pid = manager._tasks[task_id].pid
    os.kill(victim_pid, signal.SIGKILL)
    wait_done(qtbot, manager, [task_id])
    status = manager.task_info[task_id]["status"]
    if status == "failed":  # allowed: fail clearly rather than hang
        assert "KilledWorker" in manager.task_info[task_id]["error"]
    else:
        assert status == "completed"
        assert manager._tasks[task_id].pid != victim_pid  # it ran again elsewhere
    assert len(rec.of("task_completed") + rec.of("task_failed")) == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_does_not_freeze_and_reconnects(qtbot, make_manager, own_cluster):
    port = _free_port()
    beats = []
    heartbeat = QTimer()
    heartbeat.setInterval(20)
    heartbeat.timeout.connect(lambda: beats.append(time.monotonic()))
    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):
        manager = make_manager(cluster=f"tcp://127.0.0.1:{port}")
        rec = Recorder(manager)
        heartbeat.start()
        begun = time.monotonic()
        ids = [manager.submit_task(f"t{i}", double, args=(i,)) for i in range(3)]
        wait_done(qtbot, manager, ids, timeout=30_000)
        waited = time.monotonic() - begun
        heartbeat.stop()
        # The GUI's event loop kept running while the backend tried to connect.
        assert waited > 2.0 and len(beats) > 20
        gaps = [b - a for a, b in itertools.pairwise(beats)]
        assert max(gaps) < 1.5, f"the event loop stalled for {max(gaps):.2f} s"
        errors = [e[2] for e in rec.of("task_failed")]
        assert len(errors) == 3
        assert all(
            f"could not connect to the Dask scheduler at tcp://127.0.0.1:{port}" in e
            for e in errors
        )

        # The next submission connects again: now a scheduler listens there.
        own_cluster(scheduler_port=port)
        again = manager.submit_task("again", double, args=(5,))
        wait_done(qtbot, manager, [again], timeout=30_000)
        assert manager.task_info[again]["status"] == "completed"


def test_lost_connection_fails_running_tasks_clearly(qtbot, make_manager, own_cluster):
    local = own_cluster()
    manager = make_manager(cluster=local.scheduler_address)
    rec = Recorder(manager)
    task_id = manager.submit_task("orphan", steps, args=(2000,))
    qtbot.waitUntil(lambda: bool(rec.of("task_started", task_id)), timeout=30_000)
    local.close()
    wait_done(qtbot, manager, [task_id], timeout=60_000)
    [(_, _, error)] = rec.of("task_failed", task_id)
    assert "connection to the Dask scheduler" in error and "lost" in error


def test_accepts_a_cluster_object_a_client_and_the_environment_variable(
    qtbot, make_manager, cluster, monkeypatch
):
    with pytest.raises(TypeError, match="cluster must be"):
        make_manager(cluster=42)
    manager = make_manager(cluster=cluster)  # the LocalCluster object itself
    task_id = manager.submit_task("double", double, args=(3,))
    wait_done(qtbot, manager, [task_id])
    assert manager.task_info[task_id]["status"] == "completed"

    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        manager = make_manager(cluster=client)
        task_id = manager.submit_task("double", double, args=(4,))
        wait_done(qtbot, manager, [task_id])
        assert manager.task_info[task_id]["status"] == "completed"
        manager.shutdown()
        assert client.status == "running"  # the user's client is left open

    monkeypatch.setenv("MOSAIC_PARALLEL_CLUSTER", cluster.scheduler_address)
    monkeypatch.setattr(BackgroundTaskManager, "_instance", None)  # whatever other tests made
    singleton = BackgroundTaskManager.instance()
    try:
        from mosaic_parallel.cluster import DaskBackend

        assert isinstance(singleton._processes, DaskBackend)
        task_id = singleton.submit_task("where", where)
        wait_done(qtbot, singleton, [task_id])
        assert singleton.task_info[task_id]["status"] == "completed"
    finally:
        singleton.shutdown()


def test_shutdown_releases_tasks_on_the_cluster(qtbot, make_manager, cluster):
    manager = make_manager(cluster=cluster.scheduler_address)
    rec = Recorder(manager)
    task_id = manager.submit_task("long", steps, args=(2000,))
    qtbot.waitUntil(lambda: bool(rec.of("task_started", task_id)), timeout=30_000)
    manager.shutdown(wait=True)
    assert rec.of("task_cancelled", task_id)
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:

        def ours_left():
            return [
                k
                for keys in client.processing().values()
                for k in keys
                if str(k).startswith("mosaic-parallel-")
            ]

        qtbot.waitUntil(lambda: not ours_left(), timeout=15_000)


def interleaved(label, n):
    for i in range(n):
        print(f"{label} {i}")
        print(f"{label} err {i}", file=sys.stderr)
        warnings.warn(f"from {label}", stacklevel=2)
        time.sleep(0.01)
    return label


def test_two_tasks_in_one_worker_process_keep_their_output_apart(qtbot, make_manager, own_cluster):
    local = own_cluster(n_workers=1, threads_per_worker=2)
    manager = make_manager(cluster=local.scheduler_address)
    rec = Recorder(manager)
    ids = {label: manager.submit_task(label, interleaved, args=(label, 30)) for label in "AB"}
    wait_done(qtbot, manager, list(ids.values()))
    pids = {manager._tasks[t].pid for t in ids.values()}
    assert len(pids) == 1  # one worker process ran both, in two threads
    kinds = [e[0] for e in rec.events if e[0] in ("task_started", "task_completed")]
    assert kinds[:2] == ["task_started", "task_started"]  # they ran at the same time
    for label, task_id in ids.items():
        assert manager.task_info[task_id]["status"] == "completed"
        output = manager.get_task_output(task_id)
        assert output["stdout"] == "".join(f"{label} {i}\n" for i in range(30))
        assert output["stderr"] == "".join(f"{label} err {i}\n" for i in range(30))
        assert [w[2] for w in rec.of("task_warning", task_id)] == [
            f"UserWarning: from {label} (repeated 30 times)"
        ]


def test_task_that_cannot_be_rebuilt_on_the_worker_fails_clearly(
    qtbot, on_cluster, tmp_path, monkeypatch
):
    (tmp_path / "only_here_module.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_here_module

    rec = Recorder(on_cluster)
    task_id = on_cluster.submit_task("only here", only_here_module.f)
    wait_done(qtbot, on_cluster, [task_id])
    [(_, _, error)] = rec.of("task_failed", task_id)
    assert "could not be rebuilt on the Dask worker" in error
    assert "only_here_module" in error
