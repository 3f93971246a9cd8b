"""Run the benchmarks, each in a fresh Python process, and write the results.

``python -m benchmarks.run [--size full|smoke] [--out DIR] [--only KEY ...]``
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import report

#: key -> module; each module has ``run(size) -> dict``.
BENCHMARKS = {
    "latency": "benchmarks.bench_latency",
    "throughput": "benchmarks.bench_throughput",
    "responsiveness": "benchmarks.bench_responsiveness",
    "speedup": "benchmarks.bench_speedup",
    "large": "benchmarks.bench_large",
    "idle": "benchmarks.bench_idle",
    "coldstart": "benchmarks.bench_coldstart",
}
TIMEOUT = {"full": 600, "smoke": 180}
ROOT = Path(__file__).resolve().parent.parent


def _child(key: str, size: str, path: Path) -> None:
    """Run one benchmark in this process and write its result dict to ``path``."""
    module = importlib.import_module(BENCHMARKS[key])
    result = module.run(size)
    path.write_text(json.dumps(result, default=float))


def _run_one(key: str, size: str) -> dict[str, Any]:
    """Run one benchmark in a fresh process; a process killed by a signal is run once more.

    The contenders include third-party pools (loky, pebble, raw executors) in the same
    process, so a crash there is reported in the result (``crashed_first``) and retried
    rather than failing the whole run; Python's faulthandler prints where it happened.
    """
    first = _run_once(key, size)
    if first.get("signal") is None:
        return first
    print(f"[bench] {key}: died by signal {first['signal']}; running it again", flush=True)
    print(first["error"][-3000:], file=sys.stderr, flush=True)
    result = _run_once(key, size)
    result["crashed_first"] = f"the first attempt died by signal {first['signal']}"
    return result


def _run_once(key: str, size: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{key}.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--child",
            key,
            "--size",
            size,
            "--json",
            str(path),
        ]
        env = dict(
            os.environ,
            QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
            PYTHONFAULTHANDLER="1",
        )
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT[size],
            )
        except subprocess.TimeoutExpired as exc:
            return {"key": key, "error": f"timed out after {exc.timeout} s", "metrics": []}
        took = time.perf_counter() - t0
        if proc.returncode != 0 or not path.exists():
            return {
                "key": key,
                "error": f"exit status {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr}",
                "signal": -proc.returncode if proc.returncode < 0 else None,
                "metrics": [],
            }
        result = json.loads(path.read_text())
        result["seconds"] = took
        return result


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("full", "smoke"), default="full")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS))
    parser.add_argument("--child", choices=sorted(BENCHMARKS), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.size, args.json)
        return 0

    from .common import qt_binding

    keys = args.only or list(BENCHMARKS)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    benchmarks = {}
    for key in keys:
        print(f"[bench] {key} ({args.size}) ...", flush=True)
        benchmarks[key] = _run_one(key, args.size)
        status = "FAILED" if "error" in benchmarks[key] else "ok"
        if "error" in benchmarks[key]:
            print(benchmarks[key]["error"], file=sys.stderr, flush=True)
        print(f"[bench] {key}: {status} in {benchmarks[key].get('seconds', 0):.1f} s", flush=True)
    results = {
        "meta": {
            "command": "python -m benchmarks.run "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "size": args.size,
            "cpus": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "python": platform.python_version(),
            "qt": qt_binding(),
            "commit": _commit(),
            "platform": platform.platform(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "total_seconds": time.perf_counter() - t0,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "benchmarks": benchmarks,
    }
    written = report.write(results, args.out)
    report.print_table(results)
    for path in written:
        print(f"[bench] wrote {path}")
    return 1 if any("error" in b for b in benchmarks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
