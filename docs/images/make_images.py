"""Regenerate the README images (offscreen Qt).

Run ``python docs/images/make_images.py``.

Writes ``demo_window.png`` (the demo window mid-run on the bundled mesh, a copy of it and a
missing file, with one worker) and ``contact_sheet.png`` (the headless demo's contact sheet
of the bundled mesh).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Render both images into this folder."""
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    from mosaic_parallel import BackgroundTaskManager
    from mosaic_parallel.demo import bundled_mesh_path
    from mosaic_parallel.demo.headless import run_headless
    from mosaic_parallel.demo.window import DemoWindow

    app = QApplication.instance() or QApplication([])
    manager = BackgroundTaskManager(max_workers=1)  # one worker: the second mesh waits
    spot = bundled_mesh_path()
    tmpdir = tempfile.mkdtemp()
    copy = Path(tmpdir) / "spot-copy.obj"
    copy.write_bytes(spot.read_bytes())
    window = DemoWindow(manager, [spot, copy, Path("scans/membrane_017.obj")])
    window.show()
    window.start_run()
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(20)

    def check() -> None:
        run = window.run
        done = [r for r in run.records.values() if r["status"] == "completed"]
        info = [manager.task_info.get(r["task_id"]) for r in run.records.values()]
        moving = [i for i in info if i and i["status"] == "running" and (i["progress"] or 0) > 0.3]
        if done and moving:
            loop.quit()

    poll.timeout.connect(check)
    poll.start()
    QTimer.singleShot(60_000, loop.quit)
    loop.exec()
    window.grab().save(str(HERE / "demo_window.png"))
    window.cancel_run()
    manager.shutdown(wait=True)

    with tempfile.TemporaryDirectory() as tmp:
        code = run_headless([spot], tmp, workers=2)
        (HERE / "contact_sheet.png").write_bytes((Path(tmp) / "contact_sheet.png").read_bytes())
    del app
    sys.exit(code)


if __name__ == "__main__":
    main()
