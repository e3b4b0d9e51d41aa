"""Building request messages and reading responses; shared by the sync and asyncio clients."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import grpc
from typing_extensions import Unpack

from rerank_proto import rerank_pb2 as pb
from .options import RerankOptions, ScoreOptions
from .types import (
    BatchingLimits,
    ModelInfo,
    ModelList,
    RankedDocument,
    RerankError,
    RerankResult,
    ScoreResult,
    Timing,
    Usage,
)

NORMALIZATIONS = {"raw": pb.NORMALIZATION_RAW, "sigmoid": pb.NORMALIZATION_SIGMOID, "calibrated": pb.NORMALIZATION_CALIBRATED}
PRIORITIES = {"interactive": pb.PRIORITY_INTERACTIVE, "bulk": pb.PRIORITY_BULK}
AGGREGATIONS = {"max": pb.AGGREGATION_MAX, "mean": pb.AGGREGATION_MEAN, "first": pb.AGGREGATION_FIRST}
_KINDS = {pb.MODEL_KIND_CROSS_ENCODER: "cross-encoder", pb.MODEL_KIND_BI_ENCODER: "bi-encoder"}


def _priority(name: str) -> pb.Priority.ValueType:
    try:
        return PRIORITIES[name]
    except KeyError:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, got {name!r}") from None


def _normalization(name: str) -> pb.Normalization.ValueType:
    try:
        return NORMALIZATIONS[name]
    except KeyError:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {name!r}") from None


def rerank_request(query: str, documents: Sequence[str], **o: Unpack[RerankOptions]) -> pb.RerankRequest:
    """A RerankRequest; options left out take their defaults here, and only here."""
    if isinstance(documents, str):
        raise TypeError("documents must be a list of strings, not one string")
    aggregation = o.get("aggregation", "max")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
    min_score = o.get("min_score")
    if min_score is not None and min_score != min_score:
        raise ValueError("min_score is NaN; give a number, or leave it out to keep every result")
    return pb.RerankRequest(
        query=query,
        documents=list(documents),
        top_k=o.get("top_k", 0),
        model=o.get("model", ""),
        return_documents=o.get("return_documents", False),
        normalization=_normalization(o.get("normalization", "raw")),
        error_on_truncation=o.get("error_on_truncation", False),
        request_id=o.get("request_id", ""),
        windowing=pb.Windowing(enabled=o.get("windows", False), overlap_tokens=o.get("window_overlap", 0), aggregation=AGGREGATIONS[aggregation]),
        priority=_priority(o.get("priority", "interactive")),
        instruction=o.get("instruction", ""),
        min_score=min_score,
    )


def score_request(pairs: Iterable[tuple[str, str]], **o: Unpack[ScoreOptions]) -> pb.ScoreRequest:
    """A ScoreRequest from (query, document) pairs; options left out take their defaults here."""
    return pb.ScoreRequest(
        pairs=[pb.Pair(query=q, document=d) for q, d in pairs],
        model=o.get("model", ""),
        normalization=_normalization(o.get("normalization", "raw")),
        error_on_truncation=o.get("error_on_truncation", False),
        request_id=o.get("request_id", ""),
        priority=_priority(o.get("priority", "interactive")),
        instruction=o.get("instruction", ""),
    )


def _usage(msg: pb.Usage) -> Usage:
    return Usage(pairs=msg.pairs, tokens=msg.tokens, truncated_documents=msg.truncated_documents)


def _timing(msg: pb.Timing) -> Timing:
    return Timing(queue_ms=msg.queue_ms, inference_ms=msg.inference_ms, total_ms=msg.total_ms)


def stream_requests(requests: Iterable[tuple[str, Sequence[str]]], options: RerankOptions) -> Iterator[pb.RerankRequest]:
    """RerankStream messages for ``(query, documents)`` requests, each with its position as request_id."""
    for position, (query, documents) in enumerate(requests):
        message = rerank_request(query, documents, **options)
        message.request_id = str(position)
        yield message


def stream_result(msg: pb.RerankResponse) -> tuple[int, RerankResult | RerankError]:
    """(position, result) of a response to :func:`stream_requests`; a failed request's error in place of a result."""
    try:
        return int(msg.request_id), rerank_result(msg)
    except RerankError as exc:
        return int(msg.request_id), exc


ATTEMPT_KEY = "rerank-attempt"  # trailing metadata the server sets on the answer to a retried call


def attempts_of(trailing_metadata: Iterable[tuple[str, Any]] | None) -> int:
    """Which attempt of a call was answered (1 unless the client retried it)."""
    for key, value in trailing_metadata or ():
        if key == ATTEMPT_KEY and str(value).isdigit():
            return int(value)
    return 1


def rerank_result(msg: pb.RerankResponse, attempts: int = 1) -> RerankResult:
    """A RerankResult from a response; a stream response carrying an error raises :class:`RerankError`."""
    if msg.HasField("error"):
        raise RerankError(status_code(msg.error.code), msg.error.message)
    return RerankResult(
        results=[RankedDocument(r.index, r.score, r.rank, r.text, r.truncated, r.windows or 1) for r in msg.results],
        model=msg.model,
        usage=_usage(msg.usage),
        timing=_timing(msg.timing),
        request_id=msg.request_id,
        attempts=attempts,
        dropped=msg.dropped,
    )


def score_result(msg: pb.ScoreResponse) -> ScoreResult:
    """A ScoreResult from a response."""
    return ScoreResult(
        scores=list(msg.scores),
        truncated=list(msg.truncated),
        model=msg.model,
        usage=_usage(msg.usage),
        timing=_timing(msg.timing),
        request_id=msg.request_id,
    )


def model_list(msg: pb.ListModelsResponse) -> ModelList:
    """A ModelList from a response."""
    return ModelList(
        models=[
            ModelInfo(
                name=m.name,
                kind=_KINDS.get(m.kind, "unknown"),
                source=m.source,
                max_seq_length=m.max_seq_length,
                device=m.device,
                dtype=m.dtype,
                batching=BatchingLimits(
                    m.batching.max_batch_size,
                    m.batching.max_batch_tokens,
                    m.batching.max_wait_ms,
                    m.batching.max_queued_pairs,
                    m.batching.default_deadline_s,
                    m.batching.max_request_time_s,
                    m.batching.tokens_per_second,
                ),
                is_default=m.is_default,
                backend=m.backend or "torch",
                takes_instruction=m.takes_instruction,
                memory_bytes=m.memory_bytes,
                fingerprint=m.fingerprint,
                calibration=m.calibration,
            )
            for m in msg.models
        ],
        default_model=msg.default_model,
        max_documents=msg.max_documents,
    )


def _code_tuple(value: int) -> tuple[int, str]:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code.value
    return grpc.StatusCode.UNKNOWN.value


def status_code(value: int) -> grpc.StatusCode:
    """The StatusCode with numeric ``value`` (UNKNOWN for an unknown number)."""
    return grpc.StatusCode(_code_tuple(value))


def as_error(exc: grpc.RpcError, target: str) -> RerankError:
    """A RerankError from a failed call, with a hint where the raw status would leave users guessing."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    if code is grpc.StatusCode.UNAVAILABLE and "backend unhealthy" in details:
        details = (
            f"{target} is not serving: its models are still loading or it is shutting down "
            f"(wait with `rerank health --wait`, or add replicas) ({details})"
        )
    elif code is grpc.StatusCode.UNAVAILABLE and ("connect" in details.lower() or "unavailable" in details.lower()):
        details = f"cannot reach {target}: is rerank-server running there? ({details})"
    return RerankError(code, details, target)
