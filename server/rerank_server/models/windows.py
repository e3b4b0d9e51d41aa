"""Splitting long documents (their token ids) into overlapping windows, and folding window scores back per document."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Scores, ScoringPlan
from .encoding import Ids


class Aggregation(enum.Enum):
    """How a document's window scores become its score."""

    MAX = "max"  # a document is as relevant as its most relevant passage
    MEAN = "mean"
    FIRST = "first"


@dataclass(frozen=True)
class Windowing:
    """Per-request windowing: token overlap between windows (0: a quarter), aggregation, and the most
    windows the whole request may make (0: no limit; the engine sets the server's limit)."""

    overlap_tokens: int = 0
    aggregation: Aggregation = Aggregation.MAX
    max_windows: int = 0


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


def split_documents(documents: Sequence[Ids], window_tokens: int, windowing: Windowing) -> list[list[Ids]]:
    """Each document's windows (its ids sliced), after checking the request's overlap and window count.

    An overlap as large as the window would step one token at a time (a few KB of text would become
    thousands of windows): refused, as is a request whose windows exceed ``windowing.max_windows``;
    both before any window is built.
    """
    if windowing.overlap_tokens >= window_tokens:
        raise UnscorableInput(
            f"windowing.overlap_tokens {windowing.overlap_tokens} is not smaller than the window of {window_tokens} "
            "document tokens next to this query; send a smaller overlap (0 picks a quarter of the window)"
        )
    slices = [window_slices(len(d), window_tokens, windowing.overlap_tokens) for d in documents]
    count = sum(len(s) for s in slices)
    if windowing.max_windows and count > windowing.max_windows:
        raise UnscorableInput(
            f"the documents make {count} windows, more than the {windowing.max_windows} pairs one request may create "
            "(--max-request-pairs); send fewer or shorter documents, a smaller overlap, or split the request"
        )
    return [[d[s] for s in ss] for d, ss in zip(documents, slices)]


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
