"""Splitting long documents (their token ids) into overlapping windows, and folding window scores back per document."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Scores, ScoringPlan


class Aggregation(enum.Enum):
    """How a document's window scores become its score."""

    MAX = "max"  # a document is as relevant as its most relevant passage
    MEAN = "mean"
    FIRST = "first"


@dataclass(frozen=True)
class Windowing:
    """Per-request windowing: on/off, token overlap between windows (0: a quarter), aggregation."""

    overlap_tokens: int = 0
    aggregation: Aggregation = Aggregation.MAX


def window_slices(tokens: int, window_tokens: int, overlap_tokens: int) -> list[slice]:
    """Token slices of windows of ``window_tokens`` tokens, consecutive ones sharing ``overlap_tokens``
    (0: a quarter of a window). The last window ends with the document; a document that fits is one."""
    if tokens <= window_tokens:
        return [slice(0, tokens)]
    overlap = overlap_tokens or window_tokens // 4
    stride = max(1, window_tokens - min(overlap, window_tokens - 1))
    slices = []
    start = 0
    while True:
        end = min(start + window_tokens, tokens)
        slices.append(slice(start, end))
        if end == tokens:
            return slices
        start += stride


def aggregate(window_scores: Scores, windows_per_document: Sequence[int], how: Aggregation) -> Scores:
    """One score per document from its consecutive windows' scores."""
    out = np.empty(len(windows_per_document), dtype=np.float32)
    start = 0
    for i, n in enumerate(windows_per_document):
        chunk = window_scores[start : start + n]
        out[i] = chunk.max() if how is Aggregation.MAX else chunk.mean() if how is Aggregation.MEAN else chunk[0]
        start += n
    return out


def per_document(window_plan: ScoringPlan, counts: Sequence[int], how: Aggregation) -> ScoringPlan:
    """Turn a plan with one pair per window into one that reports per document.

    Items and costs stay per window (the batcher schedules windows like any pair); tokens and
    truncation are summed per document, and ``combine`` aggregates each document's window scores.
    """

    def fold(values: Sequence[float] | Sequence[bool]) -> list[Any]:
        out, start = [], 0
        for n in counts:
            out.append(values[start : start + n])
            start += n
        return out

    def combine(results: Sequence[Any]) -> Scores:
        return aggregate(np.asarray(window_plan.combine(results), dtype=np.float32), counts, how)

    return ScoringPlan(
        items=window_plan.items,
        costs=window_plan.costs,
        pair_tokens=[int(sum(chunk)) for chunk in fold(window_plan.pair_tokens)],
        truncated=[bool(any(chunk)) for chunk in fold(window_plan.truncated)],
        combine=combine,
        windows=list(counts),
    )


class UnscorableInput(ValueError):
    """A request the model cannot score as asked (the transport reports INVALID_ARGUMENT)."""


def window_size(max_length: int, query_tokens: int, specials: int) -> int:
    """Document tokens per window next to the query; refuses a query that leaves no room."""
    room = max_length - query_tokens - specials
    if room < 16:
        raise UnscorableInput(
            f"the query takes {query_tokens} of the model's {max_length} tokens, leaving no room for document "
            "windows; shorten the query to use windowing"
        )
    return room
