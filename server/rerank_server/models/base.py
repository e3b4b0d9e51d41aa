"""What every scorer offers the rest of the server, and the values it passes around."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float32]

if TYPE_CHECKING:
    from .windows import Windowing


class ModelKind(str, enum.Enum):
    """How a model scores a pair."""

    CROSS_ENCODER = "cross-encoder"
    BI_ENCODER = "bi-encoder"


class Normalization(enum.Enum):
    """How raw model output is reported."""

    RAW = "raw"  # exactly what sentence-transformers' predict returns (cosine for a bi-encoder)
    SIGMOID = "sigmoid"  # the logistic sigmoid of the logit (or of the cosine)


@dataclass(frozen=True)
class ModelInfo:
    """What ListModels reports about a loaded model."""

    name: str
    kind: ModelKind
    source: str
    max_seq_length: int
    device: str
    dtype: str
    backend: str = "torch"  # what runs the network: torch, onnx (ONNX Runtime) or openvino


@dataclass(frozen=True)
class ScoringPlan:
    """A request broken into batchable items, and how to turn their results into one score per pair.

    Attributes:
        items: the payloads the batcher queues (a pair for a cross-encoder, a text for a bi-encoder).
        costs: tokens each item costs the model after truncation; the batcher pads by these.
        pair_tokens: tokens read for each (query, document) pair, after truncation.
        truncated: whether each pair was longer than the model reads.
        combine: item results (in item order) -> one raw score per pair.
        windows: windows each document was scored in (empty: one each, no windowing).
    """

    items: list[Any]
    costs: list[int]
    pair_tokens: list[int]
    truncated: list[bool]
    combine: Callable[[Sequence[Any]], Scores]
    windows: list[int] = field(default_factory=list)


class Scorer(Protocol):
    """A loaded model. ``plan_*`` and ``run_batch`` are synchronous; callers run them off the event loop."""

    info: ModelInfo

    def plan_rerank(self, query: str, documents: Sequence[str], windowing: Windowing | None = None) -> ScoringPlan:
        """Tokenize one query against many documents and measure every pair; with ``windowing``,
        documents longer than the model reads are split into overlapping windows."""
        ...

    def plan_pairs(self, pairs: Sequence[tuple[str, str]]) -> ScoringPlan:
        """Tokenize independent (query, document) pairs and measure them."""
        ...

    def run_batch(self, items: list[Any]) -> list[Any]:
        """Run the model on one batch of items; one result per item, in order."""
        ...

    def normalize(self, raw: Scores, normalization: Normalization) -> Scores:
        """Turn raw scores from ``combine`` into the reported scores."""
        ...


def sigmoid(values: Scores) -> Scores:
    """The logistic function, computed without overflow for large negative inputs."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    positive = values >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-values[positive]))
    exp = np.exp(values[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out.astype(np.float32)
