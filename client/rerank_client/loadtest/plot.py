"""Pictures of a run (needs matplotlib: pip install '.[plot]' in the rerank-grpc checkout)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .report import Report


def pyplot() -> Any:
    """matplotlib's pyplot for files (no display); exits with the install hint where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("rerank loadtest: error: --plot needs matplotlib: pip install '.[plot]' in the rerank-grpc checkout") from None
    return plt


def plot_timeline(report: Report, path: str | Path) -> None:
    """Latency percentiles (and errors) over the run, window by window."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    t = [w.start_s for w in report.timeline]
    for name, values in (
        ("p50", [w.p50_ms for w in report.timeline]),
        ("p95", [w.p95_ms for w in report.timeline]),
        ("p99", [w.p99_ms for w in report.timeline]),
    ):
        ax.plot(t, values, marker=".", label=name)
    ax.set_xlabel("seconds into the run (by request start)")
    ax.set_ylabel("latency (ms)")
    errors = [w.errors for w in report.timeline]
    if any(errors):
        ax2 = ax.twinx()
        ax2.bar(t, errors, width=0.4, alpha=0.25, color="red", label="errors")
        ax2.set_ylabel("errors per window")
    shape = f"{report.offered_rate:g} req/s offered" if report.mode == "open" else f"{report.concurrency} callers"
    ax.set_title(f"{report.mode} loop, {shape}: {report.requests_per_s:.1f} req/s, {report.pairs_per_s:.0f} pairs/s")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(steps: Sequence[Report], saturation: int | None, path: str | Path) -> None:
    """Latency percentiles against achieved throughput, one point per offered rate."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = [s.requests_per_s for s in steps]
    for key in ("p50", "p95", "p99"):
        ax.plot(x, [s.latency_ms[key] for s in steps], marker="o", label=key)
    for s in steps:
        if not math.isnan(s.latency_ms["p99"]):
            ax.annotate(f"{s.offered_rate:g}/s", (s.requests_per_s, s.latency_ms["p99"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if saturation is not None:
        ax.axvline(steps[saturation].requests_per_s, color="red", linestyle="--", label=f"saturation (~{steps[saturation].requests_per_s:.1f} req/s)")
    ax.set_yscale("log")
    ax.set_xlabel("achieved throughput (successful req/s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("open-loop sweep: latency against throughput")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
