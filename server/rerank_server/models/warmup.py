"""Warming a model up before it takes traffic, and measuring how fast it scores.

A first batch of each length pays for kernel selection, memory pools and lazy initialisation (1.3 s
against 0.2 s after, measured on the bundled model). Running one batch per length bucket before health
reports SERVING keeps that out of the first callers' latency; a timed full batch after it gives the
model's speed on this machine, which sizes the queue in seconds of work.
"""

from __future__ import annotations

import time
from functools import cache
from importlib import resources

import numpy as np

from .base import Scorer

WARM_LENGTHS = (32, 128, 512)  # tokens a pair: short passages, the usual, the usual maximum


@cache
def calibration_text() -> str:
    """The server's own English text (several topics, a few thousand words): warm-up and int8 calibration."""
    return resources.files("rerank_server").joinpath("data/calibration.txt").read_text(encoding="utf-8")


def warm_up(scorer: Scorer, max_batch_size: int, max_batch_tokens: int) -> float:
    """Run one full batch per length in :data:`WARM_LENGTHS` (capped at the model's), then time one
    batch of 128-token pairs; returns the model's speed in tokens per second."""
    encoder = scorer.encoder
    text = encoder.ids([calibration_text()])[0]
    query = text[:8]
    specials = encoder.pair_specials

    def batch(length: int) -> list[object]:
        length = max(specials + len(query) + 1, min(length, encoder.max_length))
        count = max(1, min(max_batch_size, max_batch_tokens // length))
        size = length - specials - len(query)
        starts = np.linspace(0, max(0, len(text) - size), num=count, dtype=int)
        return scorer.plan_rerank(query, [text[s : s + size] for s in starts]).items[:count]

    for length in WARM_LENGTHS:
        scorer.run_batch(batch(length))
    timed = batch(128)
    started = time.perf_counter()
    scorer.run_batch(timed)
    seconds = time.perf_counter() - started
    return sum(item.cost for item in timed) / max(seconds, 1e-6)  # type: ignore[attr-defined]
