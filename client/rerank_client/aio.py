"""The asyncio client, for callers that run many requests at once on one event loop."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any

import grpc
from typing_extensions import Unpack
from grpc_health.v1 import health_pb2, health_pb2_grpc

from . import convert
from .options import RerankOptions, ScoreOptions
from rerank_proto import rerank_pb2 as pb
from rerank_proto import rerank_pb2_grpc as pb_grpc
from .channel import Tls, auth_metadata, channel_options, target_of
from .client import DEFAULT_MAX_MESSAGE_BYTES, Metadata
from .types import ModelList, RerankError, RerankResult, ScoreResult


class AsyncRerankClient:
    """The asyncio twin of :class:`~rerank_client.RerankClient`; the same arguments and results.

    Use it inside a running event loop (``async with AsyncRerankClient(target) as client``). Failed
    calls raise :class:`~rerank_client.RerankError`. ``connections`` (this client only) opens that many
    connections to each address and spreads calls over them: a server run with ``--frontends N`` gives
    each connection to one front end, so one busy caller reaches them all with N or more.
    """

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        timeout: float | None = 30.0,
        metadata: Metadata = (),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        token: str | None = None,
        tls: Tls | None = None,
        retries: int = 3,
        wait_for_ready: bool = False,
        connections: int = 1,
    ) -> None:
        if connections < 1:
            raise ValueError(f"connections must be at least 1, got {connections}")
        self.target = target_of(target)
        self.timeout = timeout
        self.metadata = tuple(metadata) + auth_metadata(token)

        def channel(options: list[tuple[str, object]]) -> Any:
            if tls:
                return grpc.aio.secure_channel(self.target, tls.credentials(), options=options)
            return grpc.aio.insecure_channel(self.target, options=options)

        # Several connections to each address: a server's front-end processes (rerank-server --frontends)
        # each take whole connections, so one connection reaches one of them. Each channel then keeps
        # its own connections instead of sharing gRPC's process-wide ones.
        private: list[tuple[str, object]] = [("grpc.use_local_subchannel_pool", 1)] if connections > 1 else []
        self._channels = [channel(channel_options(max_message_bytes, retries, wait_for_ready) + private) for _ in range(connections)]
        self._stubs = itertools.cycle([pb_grpc.RerankerStub(c) for c in self._channels])
        # Calls skip replicas that report NOT_SERVING (see service_config); asking for health must not.
        # This channel connects only when health() is first called.
        self._health_channel = channel(channel_options(max_message_bytes, 0, health_checked=False))
        self._health = health_pb2_grpc.HealthStub(self._health_channel)

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channels."""
        for c in self._channels:
            await c.close()
        await self._health_channel.close()

    def _options(self, timeout: float | None, metadata: Metadata | None) -> dict[str, Any]:
        return {
            "timeout": self.timeout if timeout is None else timeout,
            "metadata": self.metadata + tuple(metadata or ()),
        }

    async def _call(self, method: Any, request: Any, timeout: float | None, metadata: Metadata | None) -> Any:
        try:
            return await method(request, **self._options(timeout, metadata))
        except grpc.RpcError as exc:
            raise convert.as_error(exc, self.target) from exc

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **options: Unpack[RerankOptions],
    ) -> RerankResult:
        """Rank ``documents`` for ``query``, best first (see :meth:`RerankClient.rerank`)."""
        request = convert.rerank_request(query, documents, **options)
        call = next(self._stubs).Rerank(request, **self._options(timeout, metadata))
        try:
            response = await call
            return convert.rerank_result(response, convert.attempts_of(await call.trailing_metadata()))
        except grpc.RpcError as exc:
            raise convert.as_error(exc, self.target) from exc

    async def score(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **options: Unpack[ScoreOptions],
    ) -> ScoreResult:
        """Score (query, document) pairs in input order (see :meth:`RerankClient.score`)."""
        request = convert.score_request(pairs, **options)
        return convert.score_result(await self._call(next(self._stubs).Score, request, timeout, metadata))

    async def rerank_stream(
        self,
        requests: AsyncIterator[pb.RerankRequest] | Iterable[pb.RerankRequest],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> AsyncIterator[pb.RerankResponse]:
        """Send many requests on one RerankStream and yield the raw responses as each finishes.

        Build requests with :func:`rerank_client.convert.rerank_request`; match responses by
        ``request_id``. A response for a failed request has ``error`` set;
        :func:`rerank_client.convert.rerank_result` turns it into a result or raises its error.
        """
        call = next(self._stubs).RerankStream(requests, **self._options(timeout, metadata))
        try:
            async for response in call:
                yield response
        except grpc.RpcError as exc:
            raise convert.as_error(exc, self.target) from exc

    async def rerank_many(
        self,
        requests: Iterable[tuple[str, Sequence[str]]],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **options: Unpack[RerankOptions],
    ) -> AsyncIterator[tuple[int, RerankResult | RerankError]]:
        """Rank many ``(query, documents)`` requests over one RerankStream (see :meth:`RerankClient.rerank_many`)."""
        async for response in self.rerank_stream(convert.stream_requests(requests, options), timeout=timeout, metadata=metadata):
            yield convert.stream_result(response)

    async def list_models(self, *, timeout: float | None = None, metadata: Metadata | None = None) -> ModelList:
        """The models the server serves, with their limits."""
        return convert.model_list(await self._call(next(self._stubs).ListModels, pb.ListModelsRequest(), timeout, metadata))

    async def health(self, *, timeout: float | None = None) -> str:
        """The server's overall health status: "SERVING", "NOT_SERVING", ..."""
        response = await self._call(self._health.Check, health_pb2.HealthCheckRequest(service=""), timeout, None)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    async def wait_until_serving(self, timeout: float = 60.0) -> None:
        """Poll health until the server is SERVING (its models are loaded); raise after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                last = await self.health(timeout=min(5.0, max(0.1, deadline - time.monotonic())))
                if last == "SERVING":
                    return
            except RerankError as exc:
                last = exc.details
            await asyncio.sleep(0.2)
        raise RerankError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{self.target} not SERVING after {timeout:.0f}s ({last})", self.target)
