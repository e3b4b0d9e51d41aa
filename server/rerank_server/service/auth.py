"""Bearer-token authentication as a gRPC server interceptor; health checks stay open."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

# Load balancers and orchestrators probe health without credentials.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)


def read_tokens(path: str | Path) -> list[str]:
    """The accepted tokens: one per non-empty line, ``TOKEN`` or ``NAME:TOKEN`` (several allow rotating
    them without downtime; a name says which caller a token is, for fair turns and metrics)."""
    tokens = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not tokens:
        raise ValueError(f"--auth-token-file {path} holds no token")
    return tokens


def caller_from_header(headers: Mapping[str, str], tenant_header: str) -> str:
    """The caller a ``tenant_header`` names, cut to 64 printable characters ("" when absent)."""
    return "".join(c for c in headers.get(tenant_header, "") if c.isprintable())[:64]


def caller_name(headers: Mapping[str, str], tokens: BearerTokens | None, tenant_header: str) -> str:
    """Who a request comes from, with or without tokens (see :meth:`BearerTokens.caller`)."""
    return tokens.caller(headers, tenant_header) if tokens is not None else caller_from_header(headers, tenant_header)


class BearerTokens:
    """The accepted bearer tokens (``TOKEN`` or ``NAME:TOKEN``), compared in constant time: one check for
    every transport."""

    def __init__(self, lines: Sequence[str]) -> None:
        named = [line.partition(":") if ":" in line else ("", "", line) for line in lines]
        self._tokens = [(name.strip(), token.strip().encode()) for name, _, token in named]

    @property
    def named(self) -> bool:
        """Whether any token has a name (then callers are named by their tokens)."""
        return any(name for name, _ in self._tokens)

    def name_of(self, authorization: str | None) -> str | None:
        """The name of the accepted token in an ``authorization`` value ("" if unnamed), None if refused."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        # Compare against every token in constant time: timing reveals nothing about them.
        matches = [hmac.compare_digest(given.strip().encode(), token) for _, token in self._tokens]
        return next((name for (name, _), match in zip(self._tokens, matches) if match), None)

    def caller(self, headers: Mapping[str, str], tenant_header: str) -> str:
        """Who a request comes from: its token's name where tokens are named (not forgeable), else the
        ``tenant_header`` (cut to 64 printable characters), else "" (a caller that does not say)."""
        if self.named:
            return self.name_of(headers.get("authorization")) or ""
        return caller_from_header(headers, tenant_header)

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``authorization`` value is ``Bearer <an accepted token>``."""
        return self.name_of(authorization) is not None


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls whose ``authorization`` metadata is not ``Bearer <an accepted token>``."""

    def __init__(self, tokens: BearerTokens) -> None:
        self._tokens = tokens

    def _accepted(self, metadata: Sequence[tuple[str, Any]] | None) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                return self._tokens.accepts(value.decode() if isinstance(value, bytes) else str(value))
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Pass authorised (and health) calls on; answer the rest with UNAUTHENTICATED."""
        method = handler_call_details.method or ""
        if method.startswith(OPEN_METHOD_PREFIXES) or self._accepted(handler_call_details.invocation_metadata):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        return _refusal(handler)


REFUSAL = "missing or wrong bearer token: send metadata 'authorization: Bearer <token>' (rerank --header authorization='Bearer TOKEN')"


async def _drain(requests: Any) -> None:
    async for _ in requests:
        pass


def _ignore(data: bytes) -> None:
    """The deserializer of a refused call: drops the bytes unread."""
    return None


def _refusal(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that fails with UNAUTHENTICATED."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)

    async def streaming(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        # Ending a stream while the caller is still sending races with its half-close, and gRPC core
        # then reports INTERNAL instead of our status: read what it sends first (for a second at most).
        if hasattr(requests, "__aiter__"):
            with contextlib.suppress(asyncio.TimeoutError, grpc.RpcError):
                await asyncio.wait_for(_drain(requests), 1.0)
        context.set_code(grpc.StatusCode.UNAUTHENTICATED)
        context.set_details(REFUSAL)
        return
        yield  # makes this an async generator, as a streaming handler must be

    async def unread(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(unary)
    # The refused caller's message is never parsed (a 15 MB body would otherwise be decoded into a
    # request object first, only to be dropped); a unary call's is not even received: served as a
    # client stream that is never read, gRPC core holds at most its flow-control window of it, so
    # unauthenticated callers cannot make the server hold their bodies (64 x 15 MB: +760 MB before).
    kwargs = {"request_deserializer": _ignore, "response_serializer": handler.response_serializer}
    if handler.unary_unary or handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unread, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
