"""The engine's one gateway: every transport (gRPC, HTTP, the CLI's local mode, the embedded server)
hands it a request and awaits the answer, so that admission behaves the same whichever way a request came.

    Engine.rerank(RerankRequest) / Engine.score(ScoreRequest)
      readiness and draining  ->  requests in progress (--max-concurrent-rpcs)  ->  the model the request
      names  ->  its claim: the caller's deadline capped by --max-request-time, or the default deadline;
      its priority; its caller's name (past the cap, the shared one)  ->  the model's queue admits it
      only if it can finish by then (see ``MicroBatcher.reserve``)  ->  tokenize, queue, score, rank.

Accounting (counts by method and status, metrics, the request log) is here too; transports only map
wire formats and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..batching import Claim, Priority
from .callers import CallerNames
from .results import EmbedResult, Options, RerankResult, ScoreResult, Usage
from .served import ModelRegistry
from .settings import AdmissionConfig

request_log = logging.getLogger("rerank_server.requests")


class NotServing(Exception):
    """The engine takes no requests now: models are loading, or it is shutting down. Nothing ran; retry
    (on another replica)."""


class TooManyRequests(Exception):
    """More requests are in progress than the engine allows; nothing ran."""


DRAINING = "the server is shutting down; retry on another replica"
LOADING = "models are still loading; retry shortly"


@dataclass(frozen=True)
class Caller:
    """Who sends a request, how urgently, and how long they will wait, as the transport read it.

    Attributes:
        name: the caller (a token's name, or a header; "" when it does not say).
        priority: :class:`Priority`.
        timeout_s: seconds from now the caller will wait (None: it set no deadline).
    """

    name: str = ""
    priority: int = int(Priority.INTERACTIVE)
    timeout_s: float | None = None


@dataclass(frozen=True)
class RerankRequest:
    """Rank ``documents`` against ``query`` with the model called ``model`` ("" for the default)."""

    query: str
    documents: Sequence[str]
    options: Options = Options()
    model: str = ""
    caller: Caller = field(default_factory=Caller)


@dataclass(frozen=True)
class ScoreRequest:
    """Score each (query, document) pair with the model called ``model`` ("" for the default)."""

    pairs: Sequence[tuple[str, str]]
    options: Options = Options()
    model: str = ""
    caller: Caller = field(default_factory=Caller)


@dataclass(frozen=True)
class EmbedRequest:
    """Embed ``texts`` with the bi-encoder called ``model`` ("" for the first one served);
    ``error_on_truncation`` refuses texts longer than the model reads instead of cutting them."""

    texts: Sequence[str]
    model: str = ""
    caller: Caller = field(default_factory=Caller)
    error_on_truncation: bool = False


class RequestObserver(Protocol):
    """Where answered requests and cut documents are reported (the Prometheus metrics)."""

    def observe_request(self, method: str, code: str, seconds: float) -> None:
        """One answered request."""
        ...

    def observe_truncated(self, model: str, documents: int) -> None:
        """Documents cut to the model's length."""
        ...


def _cut(text: str, most: int = 128) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


class Engine:
    """The served models behind one admission, shared by every transport of a server.

    ``ready`` stays False while models load and ``draining`` is set at shutdown: requests are refused
    with :class:`NotServing` then. ``counts`` holds the requests answered so far by (method, status).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        admission: AdmissionConfig = AdmissionConfig(),
        observer: RequestObserver | None = None,
        log_requests: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.admission = admission
        self.observer = observer
        self.log_requests = log_requests
        self.ready = False
        self.draining = False
        self.counts: Counter[tuple[str, str]] = Counter()
        self.callers = CallerNames(admission.max_named_callers)
        self._clock = clock
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # --- the gateway ------------------------------------------------------------------------------

    async def rerank(self, request: RerankRequest) -> RerankResult:
        """Admit ``request`` and rank its documents, best first."""
        with self.admitted():
            served = self.registry.get(request.model)
            result = await served.rerank(request.query, request.documents, request.options, self.claim(request.caller))
        self._count_truncated(result.model, result.usage)
        return result

    async def score(self, request: ScoreRequest) -> ScoreResult:
        """Admit ``request`` and score its pairs, in input order."""
        with self.admitted():
            served = self.registry.get(request.model)
            result = await served.score(request.pairs, request.options, self.claim(request.caller))
        self._count_truncated(result.model, result.usage)
        return result

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """Admit ``request`` and embed its texts, in input order."""
        with self.admitted():
            served = self.registry.embedder(request.model)
            result = await served.embed(request.texts, self.claim(request.caller), request.error_on_truncation)
        self._count_truncated(result.model, result.usage)
        return result

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Count a request as in progress while it runs. Once draining, refuse it (before it counts, so
        that draining can finish while callers keep arriving); past ``max_concurrent`` requests in
        progress, refuse it with :class:`TooManyRequests`."""
        if not self.ready:
            raise NotServing(LOADING)
        if self.draining:
            raise NotServing(DRAINING)
        cap = self.admission.max_concurrent
        if cap is not None and self._in_flight >= cap:
            raise TooManyRequests(f"the server is at its limit of {cap} requests in progress (--max-concurrent-rpcs); retry with backoff")
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def claim(self, caller: Caller) -> Claim:
        """The request's claim on the model: its deadline on the engine's clock (the caller's, capped by
        ``max_request_time_s``, or ``default_deadline_s`` when it set none), priority and caller's name."""
        own = caller.timeout_s
        cap = self.admission.max_request_time_s
        seconds = min((s for s in (own, cap) if s is not None), default=self.admission.default_deadline_s)
        return Claim(self._clock() + seconds, caller.priority, self.callers(caller.name), default_deadline=own is None and cap is None)

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no request is in progress (or ``timeout`` passes); True if idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    # --- accounting -------------------------------------------------------------------------------

    def answered(self, method: str, code: str, started: float, request_id: str, model: str, pairs: int = 0, error: str = "") -> None:
        """Count, measure and (with ``log_requests``) log one answered request; ``code`` is a status name."""
        seconds = self._clock() - started
        self.counts[(method, code)] += 1
        if self.observer is not None:
            self.observer.observe_request(method, code, seconds)
        if self.log_requests:
            # A caller's request id and model name are cut, as in error messages: one caller's megabyte is
            # not written into every log line.
            request_id, model = _cut(request_id), _cut(model)
            fields = {"method": method, "code": code, "request_id": request_id, "model": model, "pairs": pairs, "ms": round(seconds * 1000.0, 2)}
            if error:
                fields["error"] = error
            request_log.info("%s %s %s", method, code, request_id or "-", extra=fields)

    def _count_truncated(self, model: str, usage: Usage) -> None:
        if self.observer is not None and usage.truncated_documents:
            self.observer.observe_truncated(model, usage.truncated_documents)

