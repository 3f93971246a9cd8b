"""Test setup: offscreen Qt, one binding per run (QT_API), and no leftover child processes."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", os.environ.get("PYTEST_QT_API", "pyqt6"))
os.environ.setdefault("PYTEST_QT_API", os.environ["QT_API"])

import psutil
import pytest


def pytest_report_header(config: pytest.Config) -> str:
    import qtpy

    return f"Qt binding: {qtpy.API_NAME} {qtpy.QT_VERSION}"


def _children() -> set[int]:
    """Child processes, except multiprocessing's resource tracker.

    The tracker is one helper per interpreter, shared by every pool; it exits with the
    interpreter, and the tests of interpreter exit check that it does.
    """
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    return {p.pid for p in psutil.Process().children(recursive=True) if p.pid != tracker}


def _describe(pid: int) -> str:
    try:
        p = psutil.Process(pid)
        return f"{p.status()} {' '.join(p.cmdline())[:200]}"
    except psutil.Error as exc:
        return str(exc)


def wait_for_no_children(before: set[int], timeout: float = 10.0) -> set[int]:
    """Child processes started since ``before`` that are still alive after ``timeout``."""
    left: set[int] = set()
    procs = [psutil.Process(pid) for pid in _children() - before if psutil.pid_exists(pid)]
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
            left.add(p.pid)
    return left


@pytest.fixture
def make_manager(qapp):
    """Create managers for a test; each is shut down after it and leaves no process."""
    from mosaic_parallel import BackgroundTaskManager

    before = _children()
    made: list[BackgroundTaskManager] = []

    def make(**options):
        options.setdefault("max_workers", 2)
        manager = BackgroundTaskManager(**options)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.shutdown(wait=True)
    left = wait_for_no_children(before)
    info = {pid: _describe(pid) for pid in left}
    for pid in left:
        psutil.Process(pid).kill()
    assert not left, f"child processes left behind: {left}: {info}"


@pytest.fixture
def manager(make_manager):
    """A manager with two worker processes."""
    return make_manager()


SIGNALS = (
    "task_queued",
    "task_started",
    "task_progress",
    "task_message",
    "task_output",
    "task_completed",
    "task_failed",
    "task_cancelled",
    "task_warning",
    "running_tasks",
)
TERMINAL_SIGNALS = ("task_completed", "task_failed", "task_cancelled")


class Recorder:
    """Records every signal of a manager, in order, as (signal, *args) tuples."""

    def __init__(self, manager) -> None:
        self.manager = manager
        self.log: list[tuple] = []
        for name in SIGNALS:
            getattr(manager, name).connect(lambda *args, _n=name: self.log.append((_n, *args)))

    def of(self, task_id: str) -> list[tuple]:
        """The signals of one task (running_tasks excluded)."""
        return [e for e in self.log if e[0] != "running_tasks" and e[1] == task_id]

    def names(self, task_id: str) -> list[str]:
        return [e[0] for e in self.of(task_id)]

    def terminal(self, task_id: str) -> list[tuple]:
        return [e for e in self.of(task_id) if e[0] in TERMINAL_SIGNALS]

    def counts(self) -> list[int]:
        return [e[1] for e in self.log if e[0] == "running_tasks"]

    def finished(self, *task_ids: str) -> bool:
        return all(self.terminal(t) for t in task_ids)

    def wait(self, qtbot, *task_ids: str, timeout: float = 30.0) -> None:
        """Wait until every given task has its terminal signal."""
        qtbot.waitUntil(lambda: self.finished(*task_ids), timeout=int(timeout * 1000))

    def result(self, task_id: str):
        (entry,) = self.terminal(task_id)
        assert entry[0] == "task_completed", entry
        return entry[3]

    def error(self, task_id: str) -> str:
        (entry,) = self.terminal(task_id)
        assert entry[0] == "task_failed", entry
        return entry[3]


@pytest.fixture
def record():
    """``record(manager)`` starts recording a manager's signals."""
    return Recorder
