"""Plain-Python results of the client: frozen dataclasses, no protobuf objects leak out."""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class RankedDocument:
    """One document of a ranking: its position in the request, its score and rank (0 is best)."""

    index: int
    score: float
    rank: int
    text: str  # empty unless return_documents was set
    truncated: bool  # the model saw only the beginning of this (query, document) pair
    windows: int = 1  # windows the document was scored in (more than 1 only with windowing)


@dataclass(frozen=True)
class Usage:
    """What a request cost: pairs scored, tokens read, documents truncated."""

    pairs: int
    tokens: int
    truncated_documents: int


@dataclass(frozen=True)
class Timing:
    """Server-side time in milliseconds: waiting (tokenizing, queueing), in the model, and in all."""

    queue_ms: float
    inference_ms: float
    total_ms: float


@dataclass(frozen=True)
class RerankResult:
    """A ranking, best first, and the model that made it."""

    results: list[RankedDocument]
    model: str
    usage: Usage
    timing: Timing
    request_id: str
    attempts: int = 1  # more than 1: the client retried the call (UNAVAILABLE) before this answer
    dropped: int = 0  # documents left out for scoring below the request's min_score

    @property
    def indices(self) -> list[int]:
        """The request's document indices, best first."""
        return [r.index for r in self.results]


@dataclass(frozen=True)
class ScoreResult:
    """One score per pair, in input order."""

    scores: list[float]
    truncated: list[bool]
    model: str
    usage: Usage
    timing: Timing
    request_id: str


@dataclass(frozen=True)
class BatchingLimits:
    """The batching limits a served model runs with."""

    max_batch_size: int
    max_batch_tokens: int
    max_wait_ms: float
    max_queued_pairs: int
    default_deadline_s: float = 0.0  # the deadline of a request that sets none (0: an older server)
    max_request_time_s: float = 0.0  # the longest a request may take (0: no cap)
    tokens_per_second: float = 0.0  # the model's running speed (0: not known)


@dataclass(frozen=True)
class ModelInfo:
    """A served model."""

    name: str
    kind: str  # "cross-encoder" or "bi-encoder"
    source: str
    max_seq_length: int
    device: str
    dtype: str
    batching: BatchingLimits
    is_default: bool
    backend: str = "torch"  # what runs the network: torch, onnx or openvino
    takes_instruction: bool = False  # requests may give it an instruction (Qwen3-Reranker and kin)
    memory_bytes: int = 0  # what its weights take on its device
    fingerprint: str = ""  # the checkpoint's, whatever its device and precision (a calibration names it)
    calibration: str = ""  # "platt" or "isotonic" when it serves calibrated scores ("": it does not)


@dataclass(frozen=True)
class ModelList:
    """What ListModels returns."""

    models: list[ModelInfo]
    default_model: str
    max_documents: int


class RerankError(Exception):
    """A call failed; ``code`` is the gRPC status code and ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str, target: str = "") -> None:
        self.code = code
        self.details = details
        self.target = target
        super().__init__(f"{code.name}: {details}")
