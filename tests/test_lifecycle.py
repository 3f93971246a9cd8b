"""What a fresh interpreter sees: imports, the singleton, __main__ tasks, quitting and dying."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

PRELUDE = """
import os, sys, json
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
"""

# Runs the event loop until every given task has a terminal signal (or 60 s pass).
WAIT = """
def wait_all(manager, ids, seconds=60):
    from qtpy.QtCore import QCoreApplication, QTimer, QElapsedTimer
    app = QCoreApplication.instance()
    clock = QElapsedTimer(); clock.start()
    def check():
        ends = ("completed", "failed", "cancelled")
        done = all(manager.task_info[t]["status"] in ends for t in ids)
        if done or clock.elapsed() > seconds * 1000:
            app.quit()
        else:
            QTimer.singleShot(10, check)
    QTimer.singleShot(0, check)
    app.exec()
"""


def run_script(
    tmp_path,
    body: str,
    *,
    name: str = "script.py",
    timeout: float = 90,
    stdin: str | None = None,
    args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, *args, str(path)]
        if not args or args[-1] != "-"
        else [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env=env,
    )


def test_import_is_qt_free_and_manager_needs_nothing_else_first(tmp_path):
    proc = run_script(
        tmp_path,
        PRELUDE
        + """
import mosaic_parallel
qt = [m for m in sys.modules if m.split(".")[0] in ("PyQt6", "PySide6", "qtpy")]
print("qt after import:", qt)
from qtpy.QtCore import QCoreApplication
app = QCoreApplication([])
manager = mosaic_parallel.BackgroundTaskManager(max_workers=1)
"""
        + WAIT
        + """
tid = manager.submit_task("t", lambda: 40 + 2)
wait_all(manager, [tid])
print("result:", manager.task_info[tid]["status"])
manager.shutdown()
""",
    )
    assert proc.returncode == 0, proc.stderr
    assert "qt after import: []" in proc.stdout
    assert "result: completed" in proc.stdout


def test_manager_without_qt_application_raises_clear_error(tmp_path):
    proc = run_script(
        tmp_path,
        PRELUDE
        + """
from mosaic_parallel import BackgroundTaskManager
try:
    BackgroundTaskManager()
except RuntimeError as exc:
    print("error:", exc)
""",
    )
    assert proc.returncode == 0, proc.stderr
    assert "error:" in proc.stdout and "QCoreApplication" in proc.stdout


def test_singleton_and_module_level_functions(tmp_path):
    proc = run_script(
        tmp_path,
        PRELUDE
        + """
from qtpy.QtCore import QCoreApplication
app = QCoreApplication([])
import mosaic_parallel as mp
from mosaic_parallel import BackgroundTaskManager, submit_task, submit_task_batch, submit_io_task
"""
        + WAIT
        + """
manager = BackgroundTaskManager.instance()
assert manager is BackgroundTaskManager.instance()
results = {}
def power(base, exponent=1):
    mp.report_progress(message="powering", current=1, total=1)
    return base ** exponent
a = submit_task("power", power, lambda r: results.__setitem__("a", r), 3, exponent=4)
b = submit_io_task("io", lambda x: x * 2, lambda r: results.__setitem__("b", r), 21)
spec = {"name": "p", "func": power, "args": (2,), "kwargs": {"exponent": 10}}
batch = submit_task_batch([spec], max_concurrent=1)
c = [t for t in manager.task_info if manager.task_info[t]["batch_id"] == batch][0]
wait_all(manager, [a, b, c])
print(json.dumps([results.get("a"), results.get("b"), manager.task_info[c]["status"]]))
manager._shutdown()
assert BackgroundTaskManager.instance() is not manager
BackgroundTaskManager.instance().shutdown()
""",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [81, 42, "completed"]


def test_functions_and_classes_from_main_script_without_guard(tmp_path):
    # No `if __name__ == "__main__":` guard: the workers must not run this script.
    proc = run_script(
        tmp_path,
        PRELUDE
        + """
print("main ran", flush=True)
from qtpy.QtCore import QCoreApplication
app = QCoreApplication([])
from mosaic_parallel import BackgroundTaskManager
"""
        + WAIT
        + """
class Point:
    def __init__(self, x):
        self.x = x
def shift(point, by):
    return Point(point.x + by)
manager = BackgroundTaskManager(max_workers=2)
ids = [manager.submit_task(f"shift {i}", shift, args=(Point(i), 10)) for i in range(3)]
wait_all(manager, ids)
print("statuses", [manager.task_info[t]["status"] for t in ids])
manager.shutdown()
""",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("main ran") == 1
    assert "statuses ['completed', 'completed', 'completed']" in proc.stdout


def test_function_typed_into_an_interactive_session(tmp_path):
    session = textwrap.dedent(
        PRELUDE
        + """
from qtpy.QtCore import QCoreApplication
app = QCoreApplication([])
from mosaic_parallel import BackgroundTaskManager
manager = BackgroundTaskManager(max_workers=1)
got = []
manager.task_completed.connect(lambda tid, name, result: (got.append(result), app.quit()))
def typed_here(x):
    return x * 11

tid = manager.submit_task("typed", typed_here, args=(3,))
app.exec()
print("interactive result", got)
manager.shutdown()
"""
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-i"],
        input=session,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env=env,
    )
    assert "interactive result [33]" in proc.stdout, proc.stderr


def _pids_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [
            p
            for p in pids
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive:
            return True
        time.sleep(0.1)
    return False


LONG_TASKS = """
from qtpy.QtCore import QCoreApplication, QTimer
app = QCoreApplication([])
import psutil, time
from mosaic_parallel import BackgroundTaskManager
manager = BackgroundTaskManager(max_workers=2)
ids = [manager.submit_task(f"long {i}", time.sleep, args=(60,)) for i in range(3)]
def report():
    kids = [p.pid for p in psutil.Process().children(recursive=True)]
    if len(manager.worker_pids()) < 2 or manager.task_info[ids[0]]["status"] != "running":
        QTimer.singleShot(20, report)
        return
    print("children", json.dumps(kids), flush=True)
    QTimer.singleShot(0, FINISH)
QTimer.singleShot(0, report)
"""


@pytest.mark.parametrize(
    "finish",
    [
        "lambda: app.quit()",  # aboutToQuit
        "lambda: (manager.shutdown(), app.quit())",  # called
        "lambda: sys.exit(0)",  # interpreter exit without shutdown, from inside the loop
    ],
)
def test_no_child_process_survives_quitting(tmp_path, finish):
    proc = run_script(
        tmp_path,
        PRELUDE
        + f"FINISH = {finish}\n"
        + LONG_TASKS
        + """
app.exec()
print("loop left", flush=True)
""",
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("children"))
    kids = json.loads(line.split(" ", 1)[1])
    assert len(kids) >= 2
    assert _pids_gone(kids, timeout=5), "worker or helper processes outlived the GUI process"


def test_workers_exit_when_the_gui_process_is_killed(tmp_path):
    script = tmp_path / "victim.py"
    script.write_text(
        textwrap.dedent(PRELUDE + "FINISH = lambda: None\n" + LONG_TASKS + "app.exec()\n")
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        line = ""
        deadline = time.monotonic() + 60
        while not line.startswith("children") and time.monotonic() < deadline:
            line = proc.stdout.readline()
        kids = json.loads(line.split(" ", 1)[1])
        assert len(kids) >= 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    gone = _pids_gone(kids, timeout=5)
    for pid in kids:  # clean up whatever is left before failing
        if psutil.pid_exists(pid):
            psutil.Process(pid).kill()
    assert gone, "workers kept running after their GUI process was killed"
