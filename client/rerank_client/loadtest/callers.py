"""Sending one request, unary or over a shared RerankStream, and recording what happened."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from .. import convert
from rerank_proto import rerank_pb2 as pb
from ..aio import AsyncRerankClient
from ..channel import Tls
from ..types import RerankError
from .workload import RequestSpec


@dataclass(frozen=True)
class Sample:
    """One finished request: when it started (seconds into the run), how long it took, how it ended."""

    start: float
    latency: float
    code: str  # a grpc.StatusCode name
    pairs: int
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    attempts: int = 1  # more than 1: the client's retry policy sent it again before this answer


class Caller(Protocol):
    """Sends a request and waits for its outcome."""

    async def call(self, spec: RequestSpec, started: float) -> Sample:
        """Send ``spec``; ``started`` is its start time in seconds into the run."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def _failed(started: float, t0: float, spec: RequestSpec, code: grpc.StatusCode) -> Sample:
    return Sample(started, time.perf_counter() - t0, code.name, len(spec.documents))


def _request(spec: RequestSpec, request_id: str = "") -> pb.RerankRequest:
    return convert.rerank_request(spec.query, spec.documents, top_k=spec.top_k, model=spec.model, request_id=request_id, priority=spec.priority)


class UnaryCaller:
    """Calls Rerank through one client over every target: the client's own round-robin balancing and
    UNAVAILABLE retries (``retries`` of them; 0 shows raw failures), as production callers get them."""

    def __init__(
        self,
        targets: Sequence[str],
        timeout: float | None,
        metadata: Sequence[tuple[str, str]] = (),
        retries: int = 3,
        token: str | None = None,
        tls: Tls | None = None,
        connections: int = 1,
    ) -> None:
        self._client = AsyncRerankClient(
            list(targets), timeout=timeout, metadata=metadata, retries=retries, token=token, tls=tls, connections=connections
        )

    async def call(self, spec: RequestSpec, started: float) -> Sample:
        """One unary Rerank call."""
        client = self._client
        t0 = time.perf_counter()
        try:
            result = await client.rerank(spec.query, spec.documents, top_k=spec.top_k, model=spec.model, priority=spec.priority)
        except RerankError as exc:
            return _failed(started, t0, spec, exc.code)
        return Sample(
            started,
            time.perf_counter() - t0,
            "OK",
            result.usage.pairs,
            result.timing.queue_ms,
            result.timing.inference_ms,
            result.attempts,
        )

    async def aclose(self) -> None:
        """Close the channel."""
        await self._client.close()


class _Stream:
    """One RerankStream with many requests in flight, answered by request_id."""

    def __init__(self, client: AsyncRerankClient) -> None:
        self._client = client
        self._outbox: asyncio.Queue[pb.RerankRequest | None] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[pb.RerankResponse]] = {}
        self._ids = itertools.count()
        self._reader: asyncio.Task[None] | None = None

    async def _requests(self) -> AsyncIterator[pb.RerankRequest]:
        while (request := await self._outbox.get()) is not None:
            yield request

    async def _read(self) -> None:
        try:
            async for response in self._client.rerank_stream(self._requests(), timeout=None):
                future = self._waiting.pop(response.request_id, None)
                if future is not None and not future.done():
                    future.set_result(response)
            failure: BaseException = RerankError(grpc.StatusCode.UNAVAILABLE, "stream ended", self._client.target)
        except RerankError as exc:
            failure = exc
        for future in self._waiting.values():  # the stream broke: everyone still waiting fails with it
            if not future.done():
                future.set_exception(failure)
        self._waiting.clear()
        self._reader = None

    async def send(self, request: pb.RerankRequest, timeout: float | None) -> pb.RerankResponse:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        request.request_id = f"lt-{next(self._ids)}"
        future: asyncio.Future[pb.RerankResponse] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = future
        await self._outbox.put(request)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(request.request_id, None)

    async def aclose(self) -> None:
        await self._outbox.put(None)
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)
        await self._client.close()


class StreamCaller:
    """Sends every request over one long-lived RerankStream per target, round-robin."""

    def __init__(
        self, targets: Sequence[str], timeout: float | None, metadata: Sequence[tuple[str, str]] = (), token: str | None = None, tls: Tls | None = None
    ) -> None:
        self._timeout = timeout
        self._streams = [_Stream(AsyncRerankClient(t, timeout=None, metadata=metadata, token=token, tls=tls)) for t in targets]
        self._next = itertools.cycle(self._streams)

    async def call(self, spec: RequestSpec, started: float) -> Sample:
        """One request on a stream; a response with ``error`` set counts under its status code."""
        t0 = time.perf_counter()
        try:
            response = await next(self._next).send(_request(spec), self._timeout)
        except asyncio.TimeoutError:
            return _failed(started, t0, spec, grpc.StatusCode.DEADLINE_EXCEEDED)
        except RerankError as exc:
            return _failed(started, t0, spec, exc.code)
        if response.HasField("error"):
            return _failed(started, t0, spec, convert.status_code(response.error.code))
        return Sample(
            started,
            time.perf_counter() - t0,
            "OK",
            response.usage.pairs,
            response.timing.queue_ms,
            response.timing.inference_ms,
        )

    async def aclose(self) -> None:
        """Half-close every stream and close the channels."""
        await asyncio.gather(*(s.aclose() for s in self._streams))


# The status names HTTP answers stand for (the server maps its gRPC codes to these; see its HTTP API).
_HTTP_CODES = {
    200: "OK",
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def http_base_url(target: str, tls: Tls | None = None) -> str:
    """``host:port`` or a URL -> the base URL of a server's HTTP API (https with TLS)."""
    return target if target.startswith(("http://", "https://")) else f"{'https' if tls else 'http'}://{target}"


def http_client_settings(metadata: Sequence[tuple[str, str]], token: str | None, tls: Tls | None) -> dict[str, Any]:
    """httpx.AsyncClient keywords for the same headers, token and TLS as the gRPC callers get."""
    headers = dict(metadata) | ({"authorization": f"Bearer {token}"} if token else {})
    settings: dict[str, Any] = {"headers": headers}
    if tls is not None:
        settings["verify"] = tls.ca_file or True
        if tls.cert_file:
            settings["cert"] = (tls.cert_file, tls.key_file)
    return settings


class HttpCaller:
    """Calls the HTTP API's Cohere-compatible ``POST /v1/rerank``, round-robin over the targets (needs
    httpx: the http extra). Statuses are reported under the gRPC names they map from."""

    def __init__(
        self, targets: Sequence[str], timeout: float | None, metadata: Sequence[tuple[str, str]] = (), token: str | None = None, tls: Tls | None = None
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise ValueError("--protocol http needs httpx: pip install '.[http]' in the rerank-grpc checkout") from exc
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        settings = http_client_settings(metadata, token, tls)
        self._clients = [httpx.AsyncClient(base_url=http_base_url(t, tls), timeout=timeout, limits=limits, **settings) for t in targets]
        self._next = itertools.cycle(self._clients)
        self._timeout_error: type[Exception] = httpx.TimeoutException
        self._transport_error: type[Exception] = httpx.TransportError

    async def call(self, spec: RequestSpec, started: float) -> Sample:
        """One ``POST /v1/rerank``."""
        body: dict[str, object] = {"query": spec.query, "documents": spec.documents}
        if spec.top_k:
            body["top_n"] = spec.top_k
        if spec.model:
            body["model"] = spec.model
        if spec.priority != "interactive":
            body["priority"] = spec.priority
        t0 = time.perf_counter()
        try:
            response = await next(self._next).post("/v1/rerank", json=body)
        except self._timeout_error:
            return _failed(started, t0, spec, grpc.StatusCode.DEADLINE_EXCEEDED)
        except self._transport_error:
            return _failed(started, t0, spec, grpc.StatusCode.UNAVAILABLE)
        code = _HTTP_CODES.get(response.status_code, "INTERNAL")
        return Sample(started, time.perf_counter() - t0, code, len(spec.documents))

    async def aclose(self) -> None:
        """Close the connection pools."""
        await asyncio.gather(*(c.aclose() for c in self._clients))
