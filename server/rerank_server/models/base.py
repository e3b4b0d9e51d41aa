"""What every scorer offers the rest of the server, and the values it passes around."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float32]

if TYPE_CHECKING:
    from .calibration import Calibration
    from .encoding import Encoded, Ids, TextEncoder
    from .prompts import ChatFormat, Instructions
    from .windows import Windowing


class ModelKind(str, enum.Enum):
    """How a model scores a pair."""

    CROSS_ENCODER = "cross-encoder"
    BI_ENCODER = "bi-encoder"


class Normalization(enum.Enum):
    """How raw model output is reported."""

    RAW = "raw"  # exactly what sentence-transformers' predict returns (cosine for a bi-encoder)
    SIGMOID = "sigmoid"  # the logistic sigmoid of the logit (or of the cosine)
    CALIBRATED = "calibrated"  # P(relevant): RAW mapped by the model's calibration (see ``calibration``)


@dataclass(frozen=True)
class ModelInfo:
    """What ListModels reports about a loaded model."""

    name: str
    kind: ModelKind
    source: str
    max_seq_length: int
    device: str
    dtype: str
    backend: str = "torch"  # what runs the network: torch, onnx (ONNX Runtime), openvino, or simulated (--device sim:...)
    memory_bytes: int = 0  # what its weights take on its device
    fingerprint: str = ""  # the checkpoint's (see ``calibration.fingerprint``): the same on any device and precision


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

    @classmethod
    def one_per_pair(cls, items: list[Encoded]) -> ScoringPlan:
        """The plan of model inputs that are one pair each, whose results are the pairs' scores."""
        costs = [item.cost for item in items]
        return cls(items=items, costs=costs, pair_tokens=costs, truncated=[item.truncated for item in items], combine=as_scores)


def as_scores(results: Sequence[Any]) -> Scores:
    """Item results (one float each) as scores."""
    return np.asarray(results, dtype=np.float32)


class Scorer(Protocol):
    """A loaded model, synchronous throughout; callers run it off the event loop.

    A request's texts are tokenized once by ``encoder.ids`` (thread-safe: a pool of threads may call it
    at once), ``plan_*`` turns those ids into batchable items with their costs, and the batcher runs
    batches of items through ``collate`` -> ``forward`` -> ``fetch`` (see ``batching.stages``).
    """

    info: ModelInfo
    encoder: TextEncoder
    instructions: Instructions  # which instructions requests may give it, and its default
    chat: ChatFormat | None  # how pairs are rendered for a chat-template reranker (None: pairs of ids)
    calibration: Calibration | None  # its raw score -> P(relevant), when it was given one

    def plan_rerank(self, query: Ids, documents: Sequence[Ids], windowing: Windowing | None = None) -> ScoringPlan:
        """Items for one query against many documents (given as token ids); with ``windowing``,
        documents longer than the model reads are split into overlapping windows."""
        ...

    def plan_pairs(self, pairs: Sequence[tuple[str, str]], ids: Mapping[str, Ids]) -> ScoringPlan:
        """Items for independent (query, document) pairs; ``ids`` holds every text's token ids."""
        ...

    def collate(self, items: list[Any]) -> Any:
        """A batch of items as the network's inputs."""
        ...

    def forward(self, inputs: Any) -> Any:
        """Run the network on collated inputs (on a GPU this may only queue the work)."""
        ...

    def fetch(self, output: Any) -> list[Any]:
        """Wait for ``forward``'s output; one result per item, in order."""
        ...

    def run_batch(self, items: list[Any]) -> list[Any]:
        """``fetch(forward(collate(items)))`` on the calling thread."""
        ...

    def normalize(self, raw: Scores, normalization: Normalization) -> Scores:
        """Turn raw scores from ``combine`` into the reported RAW or SIGMOID scores (CALIBRATED is the
        engine's: ``calibration`` applied to RAW)."""
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
