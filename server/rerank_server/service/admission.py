"""What every transport (gRPC, HTTP) shares about letting requests in and accounting for them:
readiness, draining, the cap on requests in progress, deadlines, and the count, metrics and log line
of every answered request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping

import grpc

from ..engine import ModelRegistry, ServedModel, Usage
from .auth import BearerTokens
from .errors import RequestError
from .metrics import Metrics

request_log = logging.getLogger("rerank_server.requests")

DRAINING = "the server is shutting down; retry on another replica"
LOADING = "models are still loading; retry shortly"


class Admission:
    """One per server, shared by its transports, so a limit or a drain holds across all of them.

    ``ready`` stays False while models load (requests are refused with UNAVAILABLE); ``draining`` is
    set at shutdown (likewise). ``counts`` holds the requests answered so far by (method, status
    code name).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        max_request_time_s: float | None = None,
        max_concurrent: int | None = None,
        metrics: Metrics | None = None,
        log_requests: bool = False,
        tokens: BearerTokens | None = None,
        tenant_header: str = "x-rerank-tenant",
    ) -> None:
        self.registry = registry
        self.tokens = tokens
        self.tenant_header = tenant_header
        self.max_request_time_s = max_request_time_s
        # Requests in progress at most (a stream's each count). Checked here rather than by gRPC's own
        # maximum_concurrent_rpcs, which also counts every client's long-lived health watch.
        self.max_concurrent = max_concurrent
        self.metrics = metrics
        self.log_requests = log_requests
        self.ready = False
        self.draining = False
        self.counts: Counter[tuple[str, str]] = Counter()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Count a request as in flight while it runs; once draining, refuse it with UNAVAILABLE instead,
        before it counts, so that draining can finish while callers keep arriving; past
        ``max_concurrent`` requests in progress, refuse it with RESOURCE_EXHAUSTED."""
        if self.draining:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, DRAINING)
        if self.max_concurrent is not None and self._in_flight >= self.max_concurrent:
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server is at its limit of {self.max_concurrent} requests in progress (--max-concurrent-rpcs); retry with backoff",
            )
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no request is in progress (or ``timeout`` passes); True if idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def tenant(self, headers: Mapping[str, str]) -> str:
        """Who a request comes from: its token's name where tokens are named (not forgeable), else the
        tenant header (cut to 64 printable characters), else "" (a caller that does not say)."""
        if self.tokens is not None and self.tokens.named:
            return self.tokens.name_of(headers.get("authorization")) or ""
        value = headers.get(self.tenant_header, "")
        return "".join(c for c in value if c.isprintable())[:64]

    def model(self, name: str) -> ServedModel:
        """The served model a request names (empty: the default); UNAVAILABLE while models load."""
        if not self.ready:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, LOADING)
        return self.registry.get(name)

    def deadline(self, caller_remaining_s: float | None) -> float | None:
        """The earlier of the caller's deadline and --max-request-time, on the engine's monotonic clock."""
        limits = [caller_remaining_s, self.max_request_time_s]
        remaining = min((r for r in limits if r is not None), default=None)
        return None if remaining is None else time.monotonic() + remaining

    def answered(self, method: str, code: str, started: float, request_id: str, model: str, pairs: int = 0, error: str = "") -> None:
        """Count, measure and (with --log-requests) log one answered request; ``code`` is a gRPC status name."""
        seconds = time.monotonic() - started
        self.counts[(method, code)] += 1
        if self.metrics is not None:
            self.metrics.observe_request(method, code, seconds)
        if self.log_requests:
            fields = {"method": method, "code": code, "request_id": request_id, "model": model, "pairs": pairs, "ms": round(seconds * 1000.0, 2)}
            if error:
                fields["error"] = error
            request_log.info("%s %s %s", method, code, request_id or "-", extra=fields)

    def count_truncated(self, model: str, usage: Usage) -> None:
        """Add a request's documents cut to the model's length to the metrics."""
        if self.metrics is not None and usage.truncated_documents:
            self.metrics.truncated.labels(model).inc(usage.truncated_documents)
