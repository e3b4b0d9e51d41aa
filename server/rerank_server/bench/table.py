"""The benchmark's one table of side-by-side ratios."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One comparison: a contender against its baseline, measured in the same run."""

    comparison: str
    contender: str
    baseline: str
    unit: str
    value: float
    baseline_value: float
    goal: float | None  # the ratio the comparison aims for; None: reported only

    @property
    def ratio(self) -> float:
        """contender / baseline."""
        return self.value / self.baseline_value if self.baseline_value else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "comparison": self.comparison,
            "contender": self.contender,
            "baseline": self.baseline,
            "unit": self.unit,
            "value": round(self.value, 3),
            "baseline_value": round(self.baseline_value, 3),
            "ratio": round(self.ratio, 3),
            "goal": self.goal,
            "met": None if self.goal is None else self.ratio >= self.goal,
        }


def markdown_table(rows: list[Row], latency: dict[str, dict[str, float]]) -> str:
    """The ratio table, then the open-loop latency table."""
    lines = [
        "| comparison | contender | baseline | contender | baseline | ratio | goal |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        goal = "-" if r.goal is None else f">= {r.goal:g}x {'(met)' if r.ratio >= r.goal else '(not met)'}"
        lines.append(
            f"| {r.comparison} | {r.contender} | {r.baseline} | {r.value:.1f} {r.unit} | {r.baseline_value:.1f} {r.unit} | {r.ratio:.2f}x | {goal} |"
        )
    if latency:
        lines += ["", "| open-loop load | offered req/s | achieved req/s | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|---:|---:|"]
        for share, m in latency.items():
            lines.append(f"| {share} of max throughput | {m['rate']:.2f} | {m['achieved_req_per_s']:.2f} | {m['p50']:.0f} | {m['p95']:.0f} | {m['p99']:.0f} |")
    return "\n".join(lines) + "\n"
