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
    return {p.pid for p in psutil.Process().children(recursive=True)}


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
    for pid in left:
        psutil.Process(pid).kill()
    assert not left, f"child processes left behind: {left}"


@pytest.fixture
def manager(make_manager):
    """A manager with two worker processes."""
    return make_manager()
