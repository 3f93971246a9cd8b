"""Writing the results: JSON, the Markdown table, the console table and the PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

FIGURES = {
    1: "Completion latency",
    2: "Tiny-task throughput",
    3: "GUI responsiveness",
    4: "CPU speedup",
    5: "Large results",
    6: "Idle cost",
    7: "Cold start",
}


def fmt(value: Any, unit: str = "") -> str:
    """A number for the table: few digits, thousands separated."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def all_metrics(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for bench in results["benchmarks"].values():
        rows.extend(bench.get("metrics", []))
    return sorted(rows, key=lambda m: m["figure"])


def _target(m: dict[str, Any]) -> str:
    if m["op"] is None:
        return "(info)"
    return f"{m['op']} {fmt(m['target'])} {m['unit']}"


def _met(m: dict[str, Any]) -> str:
    return {True: "yes", False: "**MISSED**", None: ""}[m["met"]]


def _load(values: Any) -> str:
    return "n/a" if not values else f"{values[0]:.1f}"


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}; size: {meta['size']}; {meta['cpus']} CPUs; Python "
        f"{meta['python']}; {meta['qt']}; commit {meta['commit']}; total "
        f"{meta['total_seconds']:.0f} s; load average before/after "
        f"{_load(meta.get('loadavg_before'))} / {_load(meta.get('loadavg_after'))} "
        "(shared machine: compare ratios within this run).",
        "",
        "| # | figure | target | mosaic_parallel | met | others, same run |",
        "|---|---|---|---|---|---|",
    ]
    for m in all_metrics(results):
        others = "<br>".join(f"{k}: {fmt(v)}" for k, v in m["contenders"].items())
        name = m["name"] + (f" ({m['note']})" if m["note"] else "")
        lines.append(
            f"| {m['figure']} | {name} | {_target(m)} | {fmt(m['ours'])} {m['unit']} | "
            f"{_met(m)} | {others} |"
        )
    errors = {k: b["error"] for k, b in results["benchmarks"].items() if "error" in b}
    for key, error in errors.items():
        lines += ["", f"**{key} failed:**", "", "```", error.strip()[-3000:], "```"]
    missing = [
        f"{n}. {t}"
        for n, t in FIGURES.items()
        if not any(m["figure"] == n for m in all_metrics(results))
    ]
    if missing:
        lines += ["", "Figures without a value: " + ", ".join(missing)]
    lines += [
        "",
        "![completion latency](latency.png)",
        "![speedup against worker count](speedup.png)",
        "![tiny-task throughput](throughput.png)",
        "",
    ]
    return "\n".join(lines)


def print_table(results: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is in the bench extra
        print(markdown(results))
        return
    table = Table(title=f"mosaic_parallel benchmarks ({results['meta']['size']})")
    for column in ("#", "figure", "target", "mosaic_parallel", "met", "others, same run"):
        table.add_column(column, overflow="fold")
    for m in all_metrics(results):
        table.add_row(
            str(m["figure"]),
            m["name"],
            _target(m),
            f"{fmt(m['ours'])} {m['unit']}",
            _met(m).strip("*"),
            "\n".join(f"{k}: {fmt(v)}" for k, v in m["contenders"].items()),
        )
    Console(width=160).print(table)


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Latency distribution, speedup against worker count and throughput, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    benches = results["benchmarks"]

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in benches.get("latency", {}).get("samples", {}).items():
        if values:
            data = sorted(values)
            ys = [(i + 1) / len(data) for i in range(len(data))]
            ax.step(data, ys, where="post", label=name)
    ax.axvline(2, color="grey", ls="--", lw=1, label="target median (2 ms)")
    ax.axvline(10, color="grey", ls=":", lw=1, label="target p99 (10 ms)")
    ax.set_xscale("log")
    ax.set_xlabel("worker return -> task_completed slot (ms)")
    ax.set_ylabel("fraction of tasks")
    ax.set_title("1. Completion latency distribution (CDF)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / "latency.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    speed = benches.get("speedup", {}).get("samples", {})
    fig, axes = plt.subplots(1, max(1, len(speed)), figsize=(11, 4.5), squeeze=False)
    for ax, (workload, data) in zip(axes[0], speed.items(), strict=False):
        ns = []
        for name, by_n in data["speedup"].items():
            ns = sorted(int(n) for n in by_n)
            ax.plot(ns, [by_n[str(n)] for n in ns], marker="o", label=name)
        if ns:
            ax.plot(ns, ns, color="grey", lw=1, label="ideal (N)")
            ax.plot(ns, [0.93 * n for n in ns], color="grey", ls="--", lw=1, label="target 0.93 N")
            ax.set_xticks(ns)
        ax.set_xlabel("workers N")
        ax.set_ylabel("speedup over serial")
        ax.set_title(f"4. {workload}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(out / "speedup.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    runs = benches.get("throughput", {}).get("samples", {}).get("runs", {})
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(runs)
    medians = [sorted(r["rate"] for r in runs[n])[len(runs[n]) // 2] for n in names]
    ax.barh(names, medians)
    ax.set_xlabel("no-op tasks per second (median)")
    ax.set_title("2. Tiny-task throughput, 2 workers")
    fig.tight_layout()
    written.append(out / "throughput.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "latest.json"
    json_path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    md_path = out / "latest.md"
    md_path.write_text(markdown(results))
    return [json_path, md_path, *plots(results, out)]
