"""The command line: ``python -m mosaic_parallel demo [MESH ...] [--headless] [--out DIR]``.

``demo`` also takes ``--workers N``, ``--operations`` and ``--target-faces``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per job (``demo``)."""
    parser = argparse.ArgumentParser(
        prog="python -m mosaic_parallel",
        description="Run CPU-heavy work of a Qt application in worker processes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="process meshes in the background (window, or terminal with --headless)",
        description="Load, smooth, decimate and analyse meshes through the task manager.",
    )
    demo.add_argument(
        "meshes",
        nargs="*",
        metavar="MESH",
        help="OBJ, PLY, STL or OFF files (default: the bundled spot.obj)",
    )
    demo.add_argument(
        "--headless",
        action="store_true",
        help="no window: progress bars in the terminal, results in --out",
    )
    demo.add_argument(
        "--out",
        default="demo-output",
        metavar="DIR",
        help="output folder for --headless (default: demo-output)",
    )
    demo.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (default: the CPUs available)",
    )
    demo.add_argument(
        "--operations",
        default=None,
        metavar="OPS",
        help="comma-separated subset of: decimate,smooth,curvature,sample,sdf",
    )
    demo.add_argument(
        "--target-faces",
        type=int,
        default=None,
        metavar="N",
        help="face count to decimate to (default 4000)",
    )
    return parser


def _has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return False
    needs_x_or_wayland = sys.platform.startswith(("linux", "freebsd"))
    if needs_x_or_wayland:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _demo(args: argparse.Namespace) -> int:
    try:
        from .demo import OPERATIONS, bundled_mesh_path
    except ImportError as exc:  # the demo extra is missing
        print(
            f"the demo needs its extra: pip install 'mosaic-parallel[demo]' ({exc})",
            file=sys.stderr,
        )
        return 2
    if args.workers is not None and args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    operations = list(OPERATIONS)
    if args.operations:
        operations = [op.strip() for op in args.operations.split(",") if op.strip()]
        unknown = set(operations) - set(OPERATIONS)
        if unknown:
            print(
                f"unknown operations {sorted(unknown)}; known: {','.join(OPERATIONS)}",
                file=sys.stderr,
            )
            return 2
    options = {}
    if args.target_faces is not None:
        options["target_faces"] = args.target_faces
    meshes = args.meshes or [str(bundled_mesh_path())]
    if args.headless or not _has_display():
        problem = _unwritable(Path(args.out))
        if problem:
            print(f"--out {args.out}: {problem}", file=sys.stderr)
            return 2
        from .demo.headless import run_headless

        return run_headless(meshes, args.out, args.workers, operations, options)
    from .demo.window import run_window

    return run_window(meshes, args.workers, operations, options)


def _unwritable(folder: Path) -> str | None:
    """Why results cannot be written into ``folder`` (created if missing), or ``None``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"cannot write there ({exc.strerror or exc})"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":
    sys.exit(main())
