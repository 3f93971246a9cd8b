"""The shape of a benchmark's figures: one ``metric`` dict per line of the results table."""

from __future__ import annotations

import math
from typing import Any


def metric(
    figure: int,
    name: str,
    unit: str,
    ours: float,
    op: str | None,
    target: float | None,
    contenders: dict[str, float] | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One line of figure ``figure`` (1-7 of issue 4): our value, its target (``op``: ``"<="``, ``"<"`` or ``">="``) and the others'."""
    met: bool | None
    if op is None or target is None or ours is None or math.isnan(ours):
        met = None
    elif op == "<=":
        met = ours <= target
    elif op == "<":
        met = ours < target
    else:
        met = ours >= target
    return {
        "figure": figure,
        "name": name,
        "unit": unit,
        "ours": ours,
        "op": op,
        "target": target,
        "met": met,
        "contenders": contenders or {},
        "note": note,
    }
