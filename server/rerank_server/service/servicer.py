"""The rerank.v1.Reranker servicer: protobuf in, the engine's gateway, protobuf out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from rerank_proto import rerank_pb2 as pb
from rerank_proto import rerank_pb2_grpc as pb_grpc

from ..engine import Caller, Engine, Options, RerankRequest, ScoreRequest, ServedModel, Timing, Usage
from ..engine.settings import AdmissionConfig
from ..models import ModelKind
from .auth import BearerTokens, caller_name
from .errors import invalid, to_status
from .malformed import Malformed
from .validation import check_rerank, check_score

log = logging.getLogger(__name__)

_Response = TypeVar("_Response")

_KINDS = {ModelKind.CROSS_ENCODER: pb.MODEL_KIND_CROSS_ENCODER, ModelKind.BI_ENCODER: pb.MODEL_KIND_BI_ENCODER}


class RerankerServicer(pb_grpc.RerankerServicer):
    """Implements Rerank, Score, RerankStream and ListModels: protobuf to the engine and back.

    Admission (readiness, draining, the concurrency cap, deadlines), scoring and accounting are the
    :class:`Engine`'s, shared with the other transports; a RerankStream request counts on its own.
    """

    def __init__(
        self,
        engine: Engine,
        max_documents: int,
        stream_window: int = 64,
        tokens: BearerTokens | None = None,
        tenant_header: str = "x-rerank-tenant",
    ) -> None:
        self.engine = engine
        self.max_documents = max_documents
        self.stream_window = stream_window  # requests of one stream read and not yet answered, at most
        self.tokens = tokens
        self.tenant_header = tenant_header

    @property
    def counts(self) -> Counter[tuple[str, str]]:
        """Requests answered so far, by (method, status code name), across transports."""
        return self.engine.counts

    # --- RPCs -------------------------------------------------------------------------------------

    async def Rerank(self, request: pb.RerankRequest, context: grpc.aio.ServicerContext) -> pb.RerankResponse:
        """Rank the documents of one request."""
        return await self._unary("Rerank", request, lambda: self._rerank(request, context), context)

    async def Score(self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext) -> pb.ScoreResponse:
        """Score arbitrary pairs, in input order."""
        return await self._unary("Score", request, lambda: self._score(request, context), context)

    async def _unary(
        self, method: str, request: Any, work: Callable[[], Awaitable[_Response]], context: grpc.aio.ServicerContext
    ) -> _Response:
        started = time.monotonic()
        try:
            response = await work()
        except asyncio.CancelledError:
            self._answered(method, _why_cancelled(context), request, None, started)
            raise
        except Exception as exc:
            code, message = to_status(exc)
            self._answered(method, code, request, None, started, message)
            await context.abort(code, message)
            raise  # unreachable: abort raises
        self._answered(method, grpc.StatusCode.OK, request, response, started)
        _tell_attempt(context)
        return response

    def _answered(
        self, method: str, code: grpc.StatusCode, request: Any, response: Any, started: float, error: str = ""
    ) -> None:
        """Account for one answered request (see :meth:`Engine.answered`)."""
        model = response.model if response is not None else request.model
        pairs = response.usage.pairs if response is not None else 0
        self.engine.answered(method, code.name, started, request.request_id, model, pairs, error)

    async def RerankStream(
        self, request_iterator: AsyncIterator[pb.RerankRequest | Malformed], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RerankResponse]:
        """Run the requests of a stream concurrently and send each response as soon as it is ready.

        A request that fails (a message that does not parse included) gets a response with ``error``
        set; the stream and the other requests go on. At most ``stream_window`` requests are read and
        not yet answered: a caller that stops reading its responses stops the server reading its
        requests (gRPC flow control then holds the caller's sends), so neither side's memory grows.
        """
        responses: asyncio.Queue[pb.RerankResponse | None] = asyncio.Queue()
        window = asyncio.Semaphore(self.stream_window)
        tasks: set[asyncio.Task[None]] = set()

        async def answer(request: pb.RerankRequest) -> None:
            started = time.monotonic()
            try:
                response = await self._rerank(request, context)
                self._answered("RerankStream", grpc.StatusCode.OK, request, response, started)
            except Exception as exc:
                response = self._stream_error(request, exc, started)
            await responses.put(response)

        async def read() -> None:
            position = 0
            try:
                async for request in request_iterator:
                    await window.acquire()
                    if isinstance(request, Malformed):
                        await responses.put(self._stream_error(pb.RerankRequest(request_id=f"#{position}"), invalid(request.message("RerankRequest")), time.monotonic()))
                    else:
                        if not request.request_id:
                            request.request_id = f"#{position}"
                        task = asyncio.create_task(answer(request))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    position += 1
                while tasks:  # every request read has been answered once this returns
                    await asyncio.gather(*list(tasks))
            finally:
                await responses.put(None)  # ends the stream, also when reading failed

        reader = asyncio.create_task(read())
        try:
            while (response := await responses.get()) is not None:
                yield response
                window.release()
            await reader  # re-raise a failure to read the stream
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()

    def _stream_error(self, request: pb.RerankRequest, exc: Exception, started: float) -> pb.RerankResponse:
        """The in-stream response for a request that failed, counted and logged as its status."""
        code, message = to_status(exc)
        self._answered("RerankStream", code, request, None, started, message)
        return pb.RerankResponse(request_id=request.request_id, error=pb.Error(code=code.value[0], message=message))

    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        """Every served model with its kind, limits, device and dtype."""
        if not self.engine.ready:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "models are still loading; wait for the health check")
        registry = self.engine.registry
        default = registry.default_name
        return pb.ListModelsResponse(
            models=[self._model_info(m, m.info.name == default, self.engine.admission) for m in registry],
            default_model=default,
            max_documents=self.max_documents,
        )

    # --- the request path -------------------------------------------------------------------------

    def _caller(self, context: grpc.aio.ServicerContext, priority: int) -> Caller:
        """Who calls (token name or tenant header), how urgently, and the deadline gRPC carries."""
        metadata = context.invocation_metadata() or ()
        headers = {key: value if isinstance(value, str) else value.decode(errors="replace") for key, value in metadata}
        return Caller(caller_name(headers, self.tokens, self.tenant_header), priority, context.time_remaining())

    async def _rerank(self, request: pb.RerankRequest, context: grpc.aio.ServicerContext) -> pb.RerankResponse:
        job = check_rerank(request, self.max_documents)
        options = Options(
            job.top_k, job.normalization, job.windowing, request.error_on_truncation, instruction=request.instruction, min_score=job.min_score
        )
        result = await self.engine.rerank(RerankRequest(job.query, job.documents, options, request.model, self._caller(context, job.priority)))
        results = [
            pb.RankedDocument(
                index=d.index,
                score=d.score,
                rank=d.rank,
                text=job.documents[d.index] if request.return_documents else "",
                truncated=d.truncated,
                windows=d.windows,
            )
            for d in result.documents
        ]
        return pb.RerankResponse(
            results=results,
            model=result.model,
            usage=_usage(result.usage),
            timing=_timing(result.timing),
            request_id=request.request_id,
            dropped=result.dropped,
        )

    async def _score(self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext) -> pb.ScoreResponse:
        job = check_score(request, self.max_documents)
        options = Options(normalization=job.normalization, error_on_truncation=request.error_on_truncation, instruction=request.instruction)
        result = await self.engine.score(ScoreRequest(job.pairs, options, request.model, self._caller(context, job.priority)))
        return pb.ScoreResponse(
            scores=result.scores,
            truncated=result.truncated,
            model=result.model,
            usage=_usage(result.usage),
            timing=_timing(result.timing),
            request_id=request.request_id,
        )

    @staticmethod
    def _model_info(model: ServedModel, is_default: bool, admission: AdmissionConfig) -> pb.ModelInfo:
        info, limits = model.info, model.limits
        return pb.ModelInfo(
            name=info.name,
            kind=_KINDS[info.kind],
            source=info.source,
            max_seq_length=info.max_seq_length,
            device=info.device,
            dtype=info.dtype,
            backend=info.backend,
            takes_instruction=model.scorer.instructions.accepts,
            memory_bytes=info.memory_bytes,
            fingerprint=info.fingerprint,
            calibration=model.scorer.calibration.method if model.scorer.calibration else "",
            batching=pb.BatchingLimits(
                max_batch_size=limits.max_batch_size,
                max_batch_tokens=limits.max_batch_tokens,
                max_wait_ms=limits.max_wait_ms,
                max_queued_pairs=limits.max_queued_pairs,
                default_deadline_s=admission.default_deadline_s,
                max_request_time_s=admission.max_request_time_s or 0.0,
                tokens_per_second=model.batcher.speed.tokens_per_s or 0.0,
            ),
            is_default=is_default,
        )



# Trailing metadata on the answer to a retried call: which attempt it was (clients read the same key).
ATTEMPT_KEY = "rerank-attempt"


def _tell_attempt(context: grpc.aio.ServicerContext) -> None:
    """Say which attempt was answered when the client retried the call (gRPC's retry policy sends
    ``grpc-previous-rpc-attempts``), so that callers and load tests can count retried calls."""
    previous = next((v for k, v in context.invocation_metadata() or () if k == "grpc-previous-rpc-attempts"), None)
    if previous is not None and str(previous).isdigit():
        context.set_trailing_metadata(((ATTEMPT_KEY, str(int(previous) + 1)),))


def _why_cancelled(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """A call gRPC cancelled under us: DEADLINE_EXCEEDED when its caller's deadline has passed (what the
    caller sees), CANCELLED when the caller went away."""
    remaining = context.time_remaining()
    return grpc.StatusCode.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0 else grpc.StatusCode.CANCELLED


def _usage(usage: Usage) -> pb.Usage:
    return pb.Usage(pairs=usage.pairs, tokens=usage.tokens, truncated_documents=usage.truncated_documents)


def _timing(timing: Timing) -> pb.Timing:
    return pb.Timing(queue_ms=timing.queue_ms, inference_ms=timing.inference_ms, total_ms=timing.total_ms)
