"""Checks on incoming messages; each failure names the field and what would be accepted."""

from __future__ import annotations

import math
import re

from collections.abc import Sequence
from dataclasses import dataclass

from rerank_proto import rerank_pb2 as pb

from ..batching.scheduling import Priority
from ..engine import listing
from ..models import Normalization
from ..models.windows import Aggregation, Windowing
from .errors import invalid

_NORMALIZATIONS: dict[int, Normalization] = {
    pb.NORMALIZATION_RAW: Normalization.RAW,
    pb.NORMALIZATION_SIGMOID: Normalization.SIGMOID,
    pb.NORMALIZATION_CALIBRATED: Normalization.CALIBRATED,
}


def normalization(value: int) -> Normalization:
    """The model layer's Normalization for a wire value."""
    try:
        return _NORMALIZATIONS[value]
    except KeyError:
        raise invalid(
            f"normalization {value} is unknown; use NORMALIZATION_RAW (0), NORMALIZATION_SIGMOID (1) or NORMALIZATION_CALIBRATED (2)"
        ) from None


def min_score(value: float | None) -> float | None:
    """A request's threshold, which must be a number (NaN would drop everything and say nothing)."""
    if value is not None and math.isnan(value):
        raise invalid("min_score is NaN; send a number, or leave it unset to keep every result")
    return value


# Anything a tokenizer would turn into a token: not white space, not a control character (NUL and the
# C0/C1 controls are dropped by tokenizers, so a document of only those is as empty as "").
_VISIBLE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]")


def _blank(text: str) -> bool:
    """Nothing to read in ``text``; stops at its first visible character, so long texts cost nothing."""
    return _VISIBLE.search(text) is None


_AGGREGATIONS: dict[int, Aggregation] = {pb.AGGREGATION_MAX: Aggregation.MAX, pb.AGGREGATION_MEAN: Aggregation.MEAN, pb.AGGREGATION_FIRST: Aggregation.FIRST}


def windowing(message: pb.Windowing) -> Windowing | None:
    """The model layer's Windowing for a request's ``windowing`` field (None when off)."""
    if not message.enabled:
        return None
    if message.aggregation not in _AGGREGATIONS:
        raise invalid(f"windowing.aggregation {message.aggregation} is unknown; use AGGREGATION_MAX, _MEAN or _FIRST")
    return Windowing(message.overlap_tokens, _AGGREGATIONS[message.aggregation])


_PRIORITIES: dict[int, Priority] = {
    pb.PRIORITY_UNSPECIFIED: Priority.INTERACTIVE,
    pb.PRIORITY_INTERACTIVE: Priority.INTERACTIVE,
    pb.PRIORITY_BULK: Priority.BULK,
}


def priority(value: int) -> Priority:
    """The batcher's Priority for a wire value."""
    try:
        return _PRIORITIES[value]
    except KeyError:
        raise invalid(f"priority {value} is unknown; use PRIORITY_INTERACTIVE (1, the default) or PRIORITY_BULK (2)") from None


@dataclass(frozen=True)
class RerankInput:
    """A validated Rerank request."""

    query: str
    documents: list[str]
    top_k: int
    normalization: Normalization
    windowing: Windowing | None = None
    priority: Priority = Priority.INTERACTIVE
    min_score: float | None = None


def check_documents(query: str, documents: Sequence[str], max_documents: int) -> None:
    """A query, 1..max_documents documents, none of them empty: for every transport."""
    if _blank(query):
        raise invalid("query is empty; send the text to rank the documents against")
    count = len(documents)
    if count == 0:
        raise invalid("documents is empty; send at least one document to rank")
    if count > max_documents:
        raise invalid(
            f"{count} documents is more than this server's limit of {max_documents} per request "
            "(--max-documents); split them over several requests"
        )
    empty = [i for i, d in enumerate(documents) if _blank(d)]
    if empty:
        raise invalid(f"documents at index {listing(empty)} are empty; drop them or send their text")


def check_rerank(request: pb.RerankRequest, max_documents: int) -> RerankInput:
    """Validate a RerankRequest (see :func:`check_documents`) and convert its options."""
    check_documents(request.query, request.documents, max_documents)
    return RerankInput(
        request.query,
        list(request.documents),
        request.top_k,
        normalization(request.normalization),
        windowing(request.windowing),
        priority(request.priority),
        min_score(request.min_score if request.HasField("min_score") else None),
    )


@dataclass(frozen=True)
class ScoreInput:
    """A validated Score request."""

    pairs: list[tuple[str, str]]
    normalization: Normalization
    priority: Priority = Priority.INTERACTIVE


def check_score(request: pb.ScoreRequest, max_pairs: int) -> ScoreInput:
    """Validate a ScoreRequest: 1..max_pairs pairs, each with a query and a document."""
    count = len(request.pairs)
    if count == 0:
        raise invalid("pairs is empty; send at least one (query, document) pair")
    if count > max_pairs:
        raise invalid(f"{count} pairs is more than this server's limit of {max_pairs} per request (--max-documents)")
    bad = [i for i, p in enumerate(request.pairs) if _blank(p.query) or _blank(p.document)]
    if bad:
        raise invalid(f"pairs at index {listing(bad)} have an empty query or document")
    return ScoreInput([(p.query, p.document) for p in request.pairs], normalization(request.normalization), priority(request.priority))

