"""Round trip of a tiny task through a Dask LocalCluster beside the local process pool.

Run: ``python benchmarks/bench_cluster.py [--rounds 100]``. Both managers run in one
process, one after the other, on the same machine; each task is submitted after the
previous one's ``task_completed`` arrived, so the figure is latency, not throughput. A plain
``client.submit(f).result()`` on the same cluster is printed for reference (Dask's own floor).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def tiny(x: int) -> int:
    return x + 1


def round_trips(app, manager, rounds: int, warmup: int = 5) -> list[float]:
    """Seconds from ``submit_task`` to ``task_completed``, one task at a time."""
    done: list[float] = []
    manager.task_completed.connect(lambda *_: done.append(time.perf_counter()))
    seconds = []
    for i in range(warmup + rounds):
        before = len(done)
        start = time.perf_counter()
        manager.submit_task("tiny", tiny, args=(i,))
        while len(done) == before:
            app.processEvents()
            time.sleep(0.0002)
        if i >= warmup:
            seconds.append(done[-1] - start)
    return seconds


def chatter(n: int) -> int:
    from mosaic_parallel import report_progress

    for i in range(n):
        report_progress(message=f"message {i}")
    return n


def message_stream(app, manager, n: int) -> tuple[float, int]:
    """Seconds from submitting a task that sends ``n`` messages to its ``task_completed``,
    and how many ``task_message`` signals arrived (all of them: messages are never merged).
    """
    got: list[str] = []
    finished: list[float] = []
    manager.task_message.connect(lambda *args: got.append(args[2]))
    manager.task_completed.connect(lambda *_: finished.append(time.perf_counter()))
    start = time.perf_counter()
    manager.submit_task("chatter", chatter, args=(n,))
    while not finished:
        app.processEvents()
        time.sleep(0.0002)
    return finished[0] - start, len(got)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()

    from distributed import Client, LocalCluster
    from qtpy.QtCore import QCoreApplication

    from mosaic_parallel import BackgroundTaskManager

    app = QCoreApplication.instance() or QCoreApplication([])
    local = BackgroundTaskManager(max_workers=2, start_workers=True)
    local_s = round_trips(app, local, args.rounds)
    local_m = message_stream(app, local, args.messages)
    local.shutdown()

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        remote = BackgroundTaskManager(cluster=cluster.scheduler_address, start_workers=True)
        remote_s = round_trips(app, remote, args.rounds)
        remote_m = message_stream(app, remote, args.messages)
        remote.shutdown()
        with Client(cluster, set_as_default=False) as client:  # Dask alone, for reference
            raw_s = []
            for i in range(5 + args.rounds):
                start = time.perf_counter()
                client.submit(tiny, i, pure=False).result()
                raw_s.append(time.perf_counter() - start)
            raw_s = raw_s[5:]

    lm, rm = statistics.median(local_s), statistics.median(remote_s)
    print(f"tiny task round trip, median of {args.rounds} (after 5 warm-up tasks):")
    print(f"  local process pool (2 workers):     {lm * 1000:7.2f} ms")
    print(f"  Dask LocalCluster (2 worker procs): {rm * 1000:7.2f} ms")
    print(
        f"  plain Dask client.submit().result() on the same cluster: "
        f"{statistics.median(raw_s) * 1000:.2f} ms"
    )
    print(f"  ratio cluster / local: {rm / lm:.1f}x")
    print(f"one task sending {args.messages} report_progress messages, submit to completed:")
    print(f"  local process pool: {local_m[0] * 1000:8.1f} ms, {local_m[1]} messages arrived")
    print(f"  Dask LocalCluster:  {remote_m[0] * 1000:8.1f} ms, {remote_m[1]} messages arrived")


if __name__ == "__main__":
    main()
