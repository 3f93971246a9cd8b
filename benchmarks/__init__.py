"""Benchmarks of mosaic_parallel against thread pools and the raw executors (issue 4).

Run ``python -m benchmarks.run`` (``make bench``) or ``python -m benchmarks.run --size smoke``
(``make bench-smoke``); see ``benchmarks/README.md``.
"""
