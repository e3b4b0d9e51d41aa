"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import grpc
from typing_extensions import Unpack
from grpc_health.v1 import health_pb2, health_pb2_grpc

from . import convert
from .options import RerankOptions, ScoreOptions
from .channel import Tls, auth_metadata, channel_options, target_of
from rerank_proto import rerank_pb2 as pb
from rerank_proto import rerank_pb2_grpc as pb_grpc
from .types import ModelList, RerankError, RerankResult, ScoreResult

Metadata = Sequence[tuple[str, str]]
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class RerankClient:
    """A blocking client for one rerank-grpc server (or a load-balanced name).

    Args:
        target: ``host:port``, any gRPC target such as ``dns:///name:port``, or a list of ``ip:port``;
            several addresses (listed or resolved) are balanced round-robin.
        timeout: default deadline of every call in seconds; None waits without limit.
        metadata: (key, value) pairs sent with every call.
        max_message_bytes: largest message this client sends or accepts.
        token: a bearer token for servers started with --auth-token-file.
        tls: TLS settings (:class:`rerank_client.channel.Tls`); None connects in plaintext.
        retries: how often a call that failed with UNAVAILABLE (nothing ran: a replica went away) is
            sent again, with exponential backoff, possibly to another replica.
        wait_for_ready: a call made while no server is reachable waits for one (up to its timeout)
            instead of failing at once with UNAVAILABLE: for rolling restarts.

    Every method raises :class:`RerankError` (with ``.code``, a ``grpc.StatusCode``) when a call fails.
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
    ) -> None:
        self.target = target_of(target)
        self.timeout = timeout
        self.metadata = tuple(metadata) + auth_metadata(token)

        def channel(options: list[tuple[str, object]]) -> Any:
            if tls:
                return grpc.secure_channel(self.target, tls.credentials(), options=options)
            return grpc.insecure_channel(self.target, options=options)

        self._channel = channel(channel_options(max_message_bytes, retries, wait_for_ready))
        self._stub = pb_grpc.RerankerStub(self._channel)
        # Calls skip replicas that report NOT_SERVING (see service_config); asking for health must not.
        # This channel connects only when health() is first called.
        self._health_channel = channel(channel_options(max_message_bytes, 0, health_checked=False))
        self._health = health_pb2_grpc.HealthStub(self._health_channel)

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the channels."""
        self._channel.close()
        self._health_channel.close()

    def _call(self, method: Any, request: Any, timeout: float | None, metadata: Metadata | None) -> Any:
        try:
            return method(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self.metadata + tuple(metadata or ()),
            )
        except grpc.RpcError as exc:
            raise convert.as_error(exc, self.target) from exc

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **options: Unpack[RerankOptions],
    ) -> RerankResult:
        """Rank ``documents`` for ``query``, best first; ``options`` are :class:`~rerank_client.options.RerankOptions`
        (``top_k``, ``model``, ``normalization``, ``windows``, ...). ``timeout`` and ``metadata`` are this call's."""
        request = convert.rerank_request(query, documents, **options)
        response, call = self._call(self._stub.Rerank.with_call, request, timeout, metadata)
        return convert.rerank_result(response, convert.attempts_of(call.trailing_metadata()))

    def score(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **options: Unpack[ScoreOptions],
    ) -> ScoreResult:
        """Score (query, document) pairs; scores come back in input order (CrossEncoder.predict). ``options``
        are :class:`~rerank_client.options.ScoreOptions`."""
        request = convert.score_request(pairs, **options)
        return convert.score_result(self._call(self._stub.Score, request, timeout, metadata))

    def rerank_many(
        self,
        requests: Iterable[tuple[str, Sequence[str]]],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **options: Unpack[RerankOptions],
    ) -> Iterator[tuple[int, RerankResult | RerankError]]:
        """Rank many ``(query, documents)`` requests over one RerankStream, all with ``options``.

        Yields ``(position, result)`` as each request finishes (fastest first, not in order); a request
        that failed yields its :class:`RerankError` in place of a result, and the others go on. A failure
        of the stream itself raises.
        """
        responses = self._stub.RerankStream(
            convert.stream_requests(requests, options), timeout=self.timeout if timeout is None else timeout, metadata=self.metadata + tuple(metadata or ())
        )
        try:
            for response in responses:
                yield convert.stream_result(response)
        except grpc.RpcError as exc:
            raise convert.as_error(exc, self.target) from exc

    def list_models(self, *, timeout: float | None = None, metadata: Metadata | None = None) -> ModelList:
        """The models the server serves, with their limits."""
        return convert.model_list(self._call(self._stub.ListModels, pb.ListModelsRequest(), timeout, metadata))

    def health(self, *, timeout: float | None = None) -> str:
        """The server's overall health status: "SERVING", "NOT_SERVING", ..."""
        response = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=""), timeout, None)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_until_serving(self, timeout: float = 60.0) -> None:
        """Poll health until the server is SERVING (its models are loaded); raise after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                last = self.health(timeout=min(5.0, max(0.1, deadline - time.monotonic())))
                if last == "SERVING":
                    return
            except RerankError as exc:
                last = exc.details
            time.sleep(0.2)
        raise RerankError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{self.target} not SERVING after {timeout:.0f}s ({last})", self.target)
