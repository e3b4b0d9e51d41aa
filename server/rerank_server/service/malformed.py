"""Malformed request bytes get INVALID_ARGUMENT with a reason, not gRPC's bare INTERNAL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from .auth import OPEN_METHOD_PREFIXES


class Malformed:
    """Stands in for a request whose bytes did not parse (on a stream the servicer answers it in-stream)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def message(self, type_name: str) -> str:
        """What the caller is told."""
        return f"the request is not a valid {type_name} message ({self.reason}); regenerate the client from protos/rerank/v1/rerank.proto"


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, ValueError, UnicodeDecodeError) as exc:
            return Malformed(str(exc) or type(exc).__name__)

    return parse


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Parses requests itself so that bytes which are not the method's message (a client built from
    another proto, invalid UTF-8 in a string field) are refused with INVALID_ARGUMENT and a reason.

    It must be the last interceptor: then the handlers it sees are the servicer's own, the same for every
    call of a method, and each is wrapped once instead of on every request.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap the Reranker's unary and bidirectional-stream handlers; pass everything else through."""
        method = handler_call_details.method or ""
        if method in self._wrapped:
            return self._wrapped[method]
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: not cached, or any caller could grow the cache
            return handler
        self._wrapped[method] = _guard(method, handler)
        return self._wrapped[method]


def _guard(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` with a tolerant parser and an INVALID_ARGUMENT answer for what does not parse.

    A unary call is refused; a request stream's handler is given :class:`Malformed` in place of the
    message, which it answers in-stream: otherwise the stream's reader would die on the parse error and
    leave the caller waiting for a status that never comes.
    """
    if handler.request_deserializer is None or method.startswith(OPEN_METHOD_PREFIXES):
        return handler
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(
            handler.stream_stream,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    if not handler.unary_unary:
        return handler
    behavior = handler.unary_unary

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message(method.rsplit("/", 1)[-1]))
        return await behavior(request, context)

    return grpc.unary_unary_rpc_method_handler(
        guarded,
        request_deserializer=_tolerant(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )
