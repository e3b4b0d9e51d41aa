"""Summaries of a run: throughput, status codes, latency percentiles, server-side time, a timeline."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .callers import Sample
from .runner import RunResult

PERCENTILES = (50, 90, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    """p50/p90/p95/p99, max and mean of latencies in milliseconds."""
    summary = {f"p{q}": percentile(latencies_ms, q) for q in PERCENTILES}
    summary["max"] = max(latencies_ms) if latencies_ms else math.nan
    summary["mean"] = sum(latencies_ms) / len(latencies_ms) if latencies_ms else math.nan
    return summary


@dataclass(frozen=True)
class Window:
    """Requests that started within one slice of the run."""

    start_s: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Report:
    """What a load test measured; ``to_dict`` is the --json output."""

    mode: str
    targets: list[str]
    concurrency: int | None
    offered_rate: float | None  # open loop: the arrival rate asked for
    send_rate: float  # requests actually sent per second of sending
    sent: int
    completed: int
    unfinished: int
    ok: int
    by_code: dict[str, int]
    duration_s: float
    requests_per_s: float  # successful requests per second of wall time
    pairs_per_s: float
    latency_ms: dict[str, float]  # of successful requests
    server_queue_ms: dict[str, float]
    server_inference_ms: dict[str, float]
    timeline: list[Window]
    retried: int = 0  # answered calls the client had to retry (another replica took them)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _timeline(samples: Sequence[Sample], span: float) -> list[Window]:
    width = max(0.5, span / 40.0)
    buckets: dict[int, list[Sample]] = {}
    for s in samples:
        buckets.setdefault(int(s.start // width), []).append(s)
    windows = []
    for index in sorted(buckets):
        group = buckets[index]
        ok = [s.latency * 1000.0 for s in group if s.code == "OK"]
        windows.append(
            Window(
                start_s=index * width,
                requests=len(group),
                errors=sum(s.code != "OK" for s in group),
                p50_ms=percentile(ok, 50),
                p95_ms=percentile(ok, 95),
                p99_ms=percentile(ok, 99),
            )
        )
    return windows


def build_report(run: RunResult, targets: Sequence[str]) -> Report:
    """Summarise a run."""
    ok = [s for s in run.samples if s.code == "OK"]
    wall = max(run.wall_s, 1e-9)
    return Report(
        mode=run.mode,
        targets=list(targets),
        concurrency=run.concurrency,
        offered_rate=run.rate,
        send_rate=run.sent / max(run.send_s, 1e-9),
        sent=run.sent,
        completed=len(run.samples),
        unfinished=run.unfinished,
        retried=sum(1 for s in ok if s.attempts > 1),
        ok=len(ok),
        by_code=dict(sorted(Counter(s.code for s in run.samples).items())),
        duration_s=run.wall_s,
        requests_per_s=len(ok) / wall,
        pairs_per_s=sum(s.pairs for s in ok) / wall,
        latency_ms=latency_summary([s.latency * 1000.0 for s in ok]),
        server_queue_ms=latency_summary([s.queue_ms for s in ok]),
        server_inference_ms=latency_summary([s.inference_ms for s in ok]),
        timeline=_timeline(run.samples, run.wall_s),
    )


def render(report: Report) -> str:
    """The human-readable summary printed at the end of a run."""
    lat, q, inf = report.latency_ms, report.server_queue_ms, report.server_inference_ms
    if report.mode == "open":
        shape = f"open loop, {report.offered_rate:g} req/s offered, {report.send_rate:.1f} req/s sent"
    else:
        shape = f"closed loop, {report.concurrency} callers"
    codes = ", ".join(f"{code} {n}" for code, n in report.by_code.items()) or "none"
    lines = [
        f"{shape} against {', '.join(report.targets)} for {report.duration_s:.1f}s",
        f"requests: {report.sent} sent, {report.completed} answered ({codes})"
        + (f", {report.unfinished} unfinished" if report.unfinished else "")
        + (f", {report.retried} answered after a retry" if report.retried else ""),
        f"throughput: {report.requests_per_s:.1f} req/s, {report.pairs_per_s:.0f} pairs/s",
        "latency ms: " + "  ".join(f"{k} {v:.1f}" for k, v in lat.items() if k != "mean"),
        f"server ms (p50): queue {q['p50']:.1f}, inference {inf['p50']:.1f}"
        f"   (mean: queue {q['mean']:.1f}, inference {inf['mean']:.1f})",
    ]
    return "\n".join(lines)
