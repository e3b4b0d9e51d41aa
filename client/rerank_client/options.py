"""The options of one request, declared once: the sync client, the asyncio client and the CLI take them
as keyword arguments typed by these dictionaries (``client.rerank(q, docs, top_k=3)``), and
:mod:`rerank_client.convert` alone gives them their defaults and builds the message."""

from __future__ import annotations

from typing import TypedDict


class ScoreOptions(TypedDict, total=False):
    """Options of a Score request; every key may be left out.

    Attributes:
        model: the served model's name ("" or left out: the server's default model).
        normalization: "raw" (the model's own scores, the default), "sigmoid" (in (0, 1)) or "calibrated"
            (P(relevant) under the model's calibration: comparable across models; ``ModelInfo.calibration``
            says which models have one, and one without refuses it with INVALID_ARGUMENT).
        error_on_truncation: refuse pairs longer than the model reads instead of truncating them.
        request_id: echoed in the response and the server's request log.
        priority: "interactive" (the default: someone waits) or "bulk" (goes after interactive work,
            keeps a share of the model, never waits past the server's bound).
        instruction: what the documents are judged for, for an instruction-following reranker such as
            Qwen3-Reranker (left out: the model's default; ``ModelInfo.takes_instruction`` says whether a
            model takes one; one that does not refuses it with INVALID_ARGUMENT).
    """

    model: str
    normalization: str
    error_on_truncation: bool
    request_id: str
    priority: str
    instruction: str


class RerankOptions(ScoreOptions, total=False):
    """Options of a Rerank request: those of :class:`ScoreOptions`, and

    Attributes:
        top_k: return only the best ``top_k`` documents (0 or left out: all).
        return_documents: echo each document's text in its result.
        windows: score documents longer than the model reads in overlapping windows.
        window_overlap: tokens consecutive windows share (0: a quarter of a window).
        aggregation: how window scores make a document's score: "max" (default), "mean" or "first".
        min_score: drop documents scoring below this (in ``normalization``) after ranking;
            ``RerankResult.dropped`` counts them (left out: keep all).
    """

    top_k: int
    return_documents: bool
    windows: bool
    window_overlap: int
    aggregation: str
    min_score: float
