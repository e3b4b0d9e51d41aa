"""Open-loop steps of rising rate, to find where the server saturates."""

from __future__ import annotations

from collections.abc import Sequence

from .report import Report

# A step is saturated when the server answers less than this share of the offered rate...
THROUGHPUT_SHORTFALL = 0.9
# ...or its p99 latency is this many times that of the lightest step.
LATENCY_BLOWUP = 3.0


def sweep_rates(top: float, steps: int) -> list[float]:
    """``steps`` evenly spaced rates up to ``top`` (e.g. 6 steps to 60: 10, 20, ... 60)."""
    return [round(top * (i + 1) / steps, 3) for i in range(steps)]


def saturation_step(steps: Sequence[Report]) -> int | None:
    """Index of the first step where throughput stops following the offered rate or latency blows up."""
    if not steps:
        return None
    base_p99 = steps[0].latency_ms["p99"]
    for i, step in enumerate(steps):
        offered = step.offered_rate or 0.0
        short = step.requests_per_s < THROUGHPUT_SHORTFALL * offered
        slow = base_p99 == base_p99 and step.latency_ms["p99"] > LATENCY_BLOWUP * base_p99  # NaN-safe
        if short or slow:
            return i
    return None
