"""The rerank.v1.Reranker servicer: validate, plan, batch, rank, respond."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from rerank_client._pb import rerank_pb2 as pb
from rerank_client._pb import rerank_pb2_grpc as pb_grpc

from ..batching import Completed
from ..models import ModelKind, ScoringPlan
from ..runtime import ModelRegistry, ServedModel
from .errors import RequestError, to_status
from .metrics import Metrics
from .ranking import ranked_indices
from .validation import check_rerank, check_score, check_truncation

log = logging.getLogger(__name__)
request_log = logging.getLogger("rerank_server.requests")

_Response = TypeVar("_Response")
_DRAINING = "the server is shutting down; retry on another replica"

_KINDS = {ModelKind.CROSS_ENCODER: pb.MODEL_KIND_CROSS_ENCODER, ModelKind.BI_ENCODER: pb.MODEL_KIND_BI_ENCODER}


@dataclass(frozen=True)
class _Scored:
    """A plan and what the batcher made of it."""

    plan: ScoringPlan
    completed: Completed[Any]
    accepted_at: float


class RerankerServicer(pb_grpc.RerankerServicer):
    """Implements Rerank, Score, RerankStream and ListModels over a :class:`ModelRegistry`.

    ``ready`` stays False while models load; calls then fail with UNAVAILABLE. ``counts`` holds the
    requests answered so far by (method, status code name); a RerankStream request counts on its own.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        max_documents: int,
        max_request_time_s: float | None = None,
        metrics: Metrics | None = None,
        log_requests: bool = False,
    ) -> None:
        self.registry = registry
        self.max_documents = max_documents
        self.max_request_time_s = max_request_time_s
        self.metrics = metrics
        self.log_requests = log_requests
        self.draining = False  # set at shutdown: new requests are refused with UNAVAILABLE
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.ready = False
        self.counts: Counter[tuple[str, str]] = Counter()

    # --- RPCs -------------------------------------------------------------------------------------

    async def Rerank(self, request: pb.RerankRequest, context: grpc.aio.ServicerContext) -> pb.RerankResponse:
        """Rank the documents of one request."""
        return await self._unary("Rerank", request, lambda: self._rerank(request, self._deadline(context)), context)

    async def Score(self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext) -> pb.ScoreResponse:
        """Score arbitrary pairs, in input order."""
        return await self._unary("Score", request, lambda: self._score(request, self._deadline(context)), context)

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no request is in progress (or ``timeout`` passes); True if idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    @contextlib.contextmanager
    def _admitted(self) -> Iterator[None]:
        """Count a request as in flight while it runs; once draining, refuse it with UNAVAILABLE instead,
        before it counts, so that draining can finish while callers keep arriving."""
        if self.draining:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, _DRAINING)
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _unary(
        self, method: str, request: Any, work: Callable[[], Awaitable[_Response]], context: grpc.aio.ServicerContext
    ) -> _Response:
        started = time.monotonic()
        try:
            with self._admitted():
                response = await work()
        except asyncio.CancelledError:
            self._answered(method, grpc.StatusCode.CANCELLED, request, None, started)
            raise
        except Exception as exc:
            code, message = to_status(exc)
            self._answered(method, code, request, None, started, message)
            await context.abort(code, message)
            raise  # unreachable: abort raises
        self._answered(method, grpc.StatusCode.OK, request, response, started)
        return response

    def _answered(
        self, method: str, code: grpc.StatusCode, request: Any, response: Any, started: float, error: str = ""
    ) -> None:
        """Count, measure and (with --log-requests) log one answered request."""
        seconds = time.monotonic() - started
        self.counts[(method, code.name)] += 1
        if self.metrics is not None:
            self.metrics.observe_request(method, code.name, seconds)
        if self.log_requests:
            fields = {
                "method": method,
                "code": code.name,
                "request_id": request.request_id,
                "model": response.model if response is not None else request.model,
                "pairs": response.usage.pairs if response is not None else 0,
                "ms": round(seconds * 1000.0, 2),
            }
            if error:
                fields["error"] = error
            request_log.info("%s %s %s", method, code.name, request.request_id or "-", extra=fields)

    async def RerankStream(
        self, request_iterator: AsyncIterator[pb.RerankRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RerankResponse]:
        """Run every request of the stream concurrently and send each response as soon as it is ready.

        A request that fails gets a response with ``error`` set; the stream and the other requests go on.
        """
        responses: asyncio.Queue[pb.RerankResponse | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(request: pb.RerankRequest) -> None:
            started = time.monotonic()
            try:
                with self._admitted():
                    response = await self._rerank(request, self._deadline(context))
                self._answered("RerankStream", grpc.StatusCode.OK, request, response, started)
            except Exception as exc:
                code, message = to_status(exc)
                response = pb.RerankResponse(
                    request_id=request.request_id, error=pb.Error(code=code.value[0], message=message)
                )
                self._answered("RerankStream", code, request, None, started, message)
            await responses.put(response)

        async def read() -> None:
            position = 0
            async for request in request_iterator:
                if not request.request_id:
                    request.request_id = f"#{position}"
                position += 1
                task = asyncio.create_task(answer(request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:  # every request read has been answered once this returns
                await asyncio.gather(*list(tasks))
            await responses.put(None)

        reader = asyncio.create_task(read())
        try:
            while (response := await responses.get()) is not None:
                yield response
            await reader  # re-raise a failure to read the stream
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()

    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        """Every served model with its kind, limits, device and dtype."""
        if not self.ready:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "models are still loading; wait for the health check")
        default = self.registry.default_name
        return pb.ListModelsResponse(
            models=[self._model_info(m, m.info.name == default) for m in self.registry],
            default_model=default,
            max_documents=self.max_documents,
        )

    # --- the request path -------------------------------------------------------------------------

    def _deadline(self, context: grpc.aio.ServicerContext) -> float | None:
        """The earlier of the caller's deadline and --max-request-time, on the batcher's monotonic clock."""
        limits = [context.time_remaining(), self.max_request_time_s]
        remaining = min((r for r in limits if r is not None), default=None)
        return None if remaining is None else time.monotonic() + remaining

    def _model(self, name: str) -> ServedModel:
        if not self.ready:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, "models are still loading; retry shortly")
        return self.registry.get(name)

    async def _run(
        self,
        served: ServedModel,
        make_plan: Callable[[], ScoringPlan],
        error_on_truncation: bool,
        what: str,
        deadline: float | None,
    ) -> _Scored:
        accepted = time.monotonic()
        # Tokenizing is real work on long documents: keep it off the event loop.
        plan = await asyncio.to_thread(make_plan)
        if error_on_truncation:
            check_truncation(plan, served.info.max_seq_length, what)
        if self.metrics is not None and any(plan.truncated):
            self.metrics.truncated.labels(served.info.name).inc(sum(plan.truncated))
        completed = await served.batcher.submit(plan.items, plan.costs, deadline)
        return _Scored(plan, completed, accepted)

    async def _rerank(self, request: pb.RerankRequest, deadline: float | None) -> pb.RerankResponse:
        served = self._model(request.model)
        job = check_rerank(request, self.max_documents)
        scored = await self._run(
            served,
            lambda: served.scorer.plan_rerank(job.query, job.documents, job.windowing),
            request.error_on_truncation,
            "documents",
            deadline,
        )
        scores = served.scorer.normalize(scored.plan.combine(scored.completed.results), job.normalization)
        truncated = scored.plan.truncated
        windows = scored.plan.windows or [1] * len(job.documents)
        results = [
            pb.RankedDocument(
                index=i,
                score=float(scores[i]),
                rank=rank,
                text=job.documents[i] if request.return_documents else "",
                truncated=truncated[i],
                windows=windows[i],
            )
            for rank, i in enumerate(ranked_indices(scores, job.top_k))
        ]
        return pb.RerankResponse(
            results=results,
            model=served.info.name,
            usage=_usage(scored.plan),
            timing=_timing(scored),
            request_id=request.request_id,
        )

    async def _score(self, request: pb.ScoreRequest, deadline: float | None) -> pb.ScoreResponse:
        served = self._model(request.model)
        job = check_score(request, self.max_documents)
        scored = await self._run(
            served, lambda: served.scorer.plan_pairs(job.pairs), request.error_on_truncation, "pairs", deadline
        )
        scores = served.scorer.normalize(scored.plan.combine(scored.completed.results), job.normalization)
        return pb.ScoreResponse(
            scores=[float(s) for s in scores],
            truncated=scored.plan.truncated,
            model=served.info.name,
            usage=_usage(scored.plan),
            timing=_timing(scored),
            request_id=request.request_id,
        )

    @staticmethod
    def _model_info(model: ServedModel, is_default: bool) -> pb.ModelInfo:
        info, limits = model.info, model.limits
        return pb.ModelInfo(
            name=info.name,
            kind=_KINDS[info.kind],
            source=info.source,
            max_seq_length=info.max_seq_length,
            device=info.device,
            dtype=info.dtype,
            backend=info.backend,
            batching=pb.BatchingLimits(
                max_batch_size=limits.max_batch_size,
                max_batch_tokens=limits.max_batch_tokens,
                max_wait_ms=limits.max_wait_ms,
                max_queued_pairs=limits.max_queued_pairs,
            ),
            is_default=is_default,
        )




def _usage(plan: ScoringPlan) -> pb.Usage:
    return pb.Usage(pairs=len(plan.truncated), tokens=sum(plan.pair_tokens), truncated_documents=sum(plan.truncated))


def _timing(scored: _Scored) -> pb.Timing:
    total = time.monotonic() - scored.accepted_at
    inference = scored.completed.inference_s
    return pb.Timing(queue_ms=max(0.0, total - inference) * 1000.0, inference_ms=inference * 1000.0, total_ms=total * 1000.0)
