"""Task functions for the tests; Qt-free, imported by worker processes by name."""

from __future__ import annotations

import os
import signal
import sys
import time
import warnings

from mosaic_parallel import report_progress


def add(a, b=0):
    return a + b


def pid():
    return os.getpid()


def sleep_then(seconds, value=None):
    time.sleep(seconds)
    return value


def spans(seconds):
    """(start, end) on the system-wide monotonic clock, measured inside the worker."""
    start = time.monotonic()
    time.sleep(seconds)
    return (start, time.monotonic())


def raise_value_error(text):
    raise ValueError(text)


def warn_twice_and_once():
    warnings.warn("twice", UserWarning, stacklevel=1)
    warnings.warn("twice", UserWarning, stacklevel=1)
    warnings.warn("once", DeprecationWarning, stacklevel=1)
    return "done"


def chatter(lines):
    for i in range(lines):
        print(f"out {i}")
    print("to stderr", file=sys.stderr)
    return lines


def print_many(megabytes):
    block = "x" * 1023 + "\n"
    for _ in range(megabytes * 1024):
        sys.stdout.write(block)
    print("THE END")
    return megabytes


def steps(total, delay=0.0):
    for i in range(total):
        time.sleep(delay)
        report_progress(message=f"step {i + 1}", current=i + 1, total=total)
    return total


def fraction_only():
    report_progress(0.25)
    report_progress(progress=0.5, message="half")
    return True


def loop_with_progress(seconds):
    """Runs until cancelled; reports progress often."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        report_progress(message="working")
        time.sleep(0.01)
    return "not cancelled"


def thread_limits():
    import numpy  # noqa: F401  (loaded after the limits are set)
    from threadpoolctl import threadpool_info

    env = {
        k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    return env, [info["num_threads"] for info in threadpool_info()]


def qt_modules():
    report_progress(0.5, "checking")
    return sorted(
        m
        for m in sys.modules
        if m.split(".")[0] in {"PyQt6", "PySide6", "PyQt5", "PySide2", "qtpy", "shiboken6"}
    )


def exit_after(seconds, code=1):
    time.sleep(seconds)
    os._exit(code)


def kill_self(seconds, signum=signal.SIGKILL):
    time.sleep(seconds)
    os.kill(os.getpid(), signum)
    time.sleep(5)


def segfault(seconds):
    import ctypes

    time.sleep(seconds)
    ctypes.string_at(0)  # a real segmentation fault inside C code


class Unbuildable(Exception):
    """An exception whose __init__ takes other arguments than it passes on."""

    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")


def raise_unbuildable():
    raise Unbuildable(1, 2)


def return_generator():
    return (i for i in range(3))


def return_lock():
    import threading

    return threading.Lock()


class BadState:
    def __getstate__(self):
        raise RuntimeError("refuses to be pickled")


class BadUnpickle:
    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise RuntimeError("refuses to be rebuilt")


def identity(x):
    return x


def big_array(megabytes):
    import numpy as np

    data = np.arange(megabytes * 2**20 // 8, dtype=np.float64)
    return {"array": data, "small": np.arange(5), "label": "big"}


def niceness():
    return os.nice(0)


def odd_progress():
    report_progress(current=float("nan"), total=10, message="odd")
    report_progress(progress=float("nan"))
    report_progress(current=1, total=float("inf"))
    return "fine"


def raise_bare():
    raise KeyError
