"""What the engine is asked and what it answers, as plain values: every transport converts to and from these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import Normalization
from ..models.windows import Windowing


@dataclass(frozen=True)
class Options:
    """How one request is to be scored.

    Attributes:
        top_k: return only the best ``top_k`` documents (0: all); Rerank only.
        normalization: raw model scores, their sigmoid, or P(relevant) under the model's calibration.
        windowing: split documents longer than the model reads into windows (None: truncate); Rerank only.
        error_on_truncation: refuse the request if any pair is longer than the model reads.
        max_document_tokens: read at most this many tokens of each document (None: what the model reads);
            Rerank without windowing only.
        truncation_switch: how the caller's API says texts must not be cut, and how to let them be (the
            refusal names both: each API has its own field for it).
        instruction: what the documents are judged for, for an instruction-following reranker (empty: the
            model's default); a model that takes none refuses it.
        min_score: drop documents scoring below this (in ``normalization``) after ranking (None: keep all);
            Rerank only.

    Who asks and by when (deadline, priority, caller) is the request's :class:`Claim`, apart from these.
    """

    top_k: int = 0
    normalization: Normalization = Normalization.RAW
    windowing: Windowing | None = None
    error_on_truncation: bool = False
    max_document_tokens: int | None = None
    truncation_switch: tuple[str, str] = ("error_on_truncation is set", "unset error_on_truncation")
    instruction: str = ""
    min_score: float | None = None


@dataclass(frozen=True)
class Usage:
    """What a request cost: pairs scored, tokens the model read for them, documents cut short."""

    pairs: int
    tokens: int
    truncated_documents: int


@dataclass(frozen=True)
class Timing:
    """Where a request's time went, in milliseconds."""

    queue_ms: float
    inference_ms: float
    total_ms: float


@dataclass(frozen=True)
class RankedDocument:
    """One document of a Rerank answer, best first."""

    index: int
    score: float
    rank: int
    truncated: bool
    windows: int


@dataclass(frozen=True)
class RerankResult:
    """A Rerank answer; ``dropped`` documents scored below the request's ``min_score``."""

    model: str
    documents: list[RankedDocument]
    usage: Usage
    timing: Timing
    dropped: int = 0


@dataclass(frozen=True)
class EmbedResult:
    """An Embed answer: each text's unit-length embedding (a bi-encoder's), in input order."""

    model: str
    embeddings: Any  # float32 array, one row a text
    usage: Usage  # pairs: texts embedded; truncated_documents: texts cut to the model's length
    timing: Timing


@dataclass(frozen=True)
class ScoreResult:
    """A Score answer: one score per pair, in input order."""

    model: str
    scores: list[float]
    truncated: list[bool]
    usage: Usage
    timing: Timing
