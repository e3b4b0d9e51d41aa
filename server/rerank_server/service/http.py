"""The HTTP/JSON front door: the rerank APIs RAG frameworks already speak, on the same engine as gRPC.

- ``POST /v1/rerank`` and ``/v2/rerank``: Cohere's rerank API (what LangChain, LlamaIndex, LiteLLM and
  Open WebUI call with a base URL); ``relevance_score`` is the sigmoid of the model's score, in (0, 1).
- ``POST /rerank``: Hugging Face text-embeddings-inference's (TEI) rerank API.
- ``GET /health``, ``GET /v1/models``, ``GET /metrics`` (Prometheus).

Starlette (routing, requests, responses) served by uvicorn, on the server's own event loop: handlers
await the engine directly, as the gRPC servicer does, with the same admission, limits, deadlines, auth
and status codes (mapped to HTTP: 400, 401, 404, 413, 429, 503, 504; errors are JSON naming the fix).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..batching import Priority
from ..engine import Caller, Engine, NotServing, Options, RerankRequest, RerankResult
from ..models import Normalization
from .auth import REFUSAL, BearerTokens, caller_name
from .errors import RequestError, invalid, to_status
from .settings import SecurityConfig
from .validation import check_documents

log = logging.getLogger(__name__)

TIMEOUT_HEADER = "x-request-timeout"  # seconds the caller will wait, as gRPC's deadline does

_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.INTERNAL: 500,
}

Handler = Callable[[dict[str, Any], Caller], Awaitable[tuple[Any, str, int]]]


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status a gRPC status code is answered with."""
    return _HTTP_STATUS.get(code, 500)


class HttpFrontDoor:
    """The Starlette application and the uvicorn server that runs it on the current event loop."""

    def __init__(
        self,
        engine: Engine,
        metrics_text: Callable[[], Awaitable[bytes]],
        max_documents: int,
        max_body_bytes: int,
        security: SecurityConfig,
        tokens: BearerTokens | None = None,
        tenant_header: str = "x-rerank-tenant",
    ) -> None:
        self.engine = engine
        self.metrics_text = metrics_text  # the Prometheus text: this process's, or the engine process's
        self.tokens = tokens
        self.tenant_header = tenant_header
        self.max_documents = max_documents
        self.max_body_bytes = max_body_bytes
        self.security = security
        self.port: int | None = None
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/rerank", self._endpoint("POST /v1/rerank", self._cohere), methods=["POST"]),
                Route("/v2/rerank", self._endpoint("POST /v2/rerank", self._cohere), methods=["POST"]),
                Route("/rerank", self._endpoint("POST /rerank", self._tei), methods=["POST"]),
                Route("/health", self._health, methods=["GET"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ]
        )

    # --- serving ----------------------------------------------------------------------------------

    async def start(self, host: str, port: int, shared: bool = False) -> int:
        """Listen on ``host:port`` (0: a free port) and serve; returns the port. ``shared``: other front-end
        processes listen on the same port (SO_REUSEPORT), and the kernel spreads connections over them."""
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen for HTTP on {host}:{port} ({exc.strerror}); pick another --http-port") from None
        sock.listen(2048)
        tls: dict[str, Any] = {}
        if self.security.tls_cert:
            tls = {"ssl_certfile": self.security.tls_cert, "ssl_keyfile": self.security.tls_key}
            if self.security.tls_client_ca:
                tls |= {"ssl_ca_certs": self.security.tls_client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5, **tls)
        self._server = _QuietSignals(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]), name="http")
        while not self._server.started:  # a start-up flag uvicorn sets; startup takes milliseconds
            if self._task.done():
                await self._task  # re-raise why it failed
            await asyncio.sleep(0.005)
        self.port = int(sock.getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Finish the requests in progress and stop listening."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    # --- endpoints --------------------------------------------------------------------------------

    def _endpoint(self, method: str, handle: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A JSON POST endpoint: auth, body limit, JSON, deadline, admission, accounting, errors."""

        async def endpoint(request: Request) -> Response:
            started = time.monotonic()
            request_id = request.headers.get("x-request-id", "")
            body: dict[str, Any] = {}
            try:
                self._authorize(request)
                body = await self._json(request)
                caller = Caller(caller_name(request.headers, self.tokens, self.tenant_header), _priority(body), _timeout(request))
                answer, model, pairs = await handle(body, caller)
            except asyncio.CancelledError:
                self.engine.answered(method, "CANCELLED", started, request_id, str(body.get("model", "")))
                raise
            except Exception as exc:
                code, message = to_status(exc)
                self.engine.answered(method, code.name, started, request_id, str(body.get("model", "")), error=message)
                return JSONResponse({"message": message, "error": {"code": code.name, "message": message}}, status_code=http_status(code))
            self.engine.answered(method, "OK", started, request_id, model, pairs)
            return JSONResponse(answer)

        return endpoint

    def _authorize(self, request: Request) -> None:
        tokens = self.tokens
        if tokens is not None and not tokens.accepts(request.headers.get("authorization")):
            raise RequestError(grpc.StatusCode.UNAUTHENTICATED, REFUSAL.replace("metadata", "the header"))

    async def _json(self, request: Request) -> dict[str, Any]:
        """The request's JSON object, read only if within the body limit."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(int(declared), self.max_body_bytes)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(size, self.max_body_bytes)
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks) or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid(f"the body is not JSON ({exc}); send a JSON object with Content-Type: application/json") from None
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        return body

    async def _cohere(self, body: dict[str, Any], caller: Caller) -> tuple[Any, str, int]:
        """Cohere's rerank: {query, documents (strings or {text}), model, top_n, return_documents,
        max_tokens_per_doc} -> {id, results: [{index, relevance_score, document?}], meta}."""
        query = _field(body, "query", str)
        documents = [_document_text(d, i) for i, d in enumerate(_field(body, "documents", list))]
        top_n = _optional(body, "top_n", int)
        max_tokens = _optional(body, "max_tokens_per_doc", int)
        for name, value in (("top_n", top_n), ("max_tokens_per_doc", max_tokens)):
            if value is not None and value < 1:
                raise invalid(f"{name} must be at least 1, got {value}")
        options = Options(top_k=top_n or 0, normalization=Normalization.SIGMOID, max_document_tokens=max_tokens)
        result = await self._rerank(body, query, documents, options, caller)
        with_text = bool(_optional(body, "return_documents", bool))
        results = [
            {"index": d.index, "relevance_score": d.score, **({"document": {"text": documents[d.index]}} if with_text else {})}
            for d in result.documents
        ]
        meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}, "tokens": {"input_tokens": result.usage.tokens}}
        return {"id": str(uuid.uuid4()), "results": results, "meta": meta}, result.model, result.usage.pairs

    async def _tei(self, body: dict[str, Any], caller: Caller) -> tuple[Any, str, int]:
        """TEI's rerank: {query, texts, raw_scores, return_text, truncate} -> [{index, score, text?}], best
        first. ``truncate`` false refuses texts longer than the model reads (TEI's own rule); left out, it
        truncates (as TEI started with --auto-truncate)."""
        query = _field(body, "query", str)
        texts = _field(body, "texts", list)
        if not all(isinstance(t, str) for t in texts):
            raise invalid("texts must be a list of strings")
        raw = bool(_optional(body, "raw_scores", bool))
        truncate = _optional(body, "truncate", bool)
        options = Options(normalization=Normalization.RAW if raw else Normalization.SIGMOID, error_on_truncation=truncate is False)
        result = await self._rerank(body, query, texts, options, caller)
        with_text = bool(_optional(body, "return_text", bool))
        answer = [{"index": d.index, "score": d.score, **({"text": texts[d.index]} if with_text else {})} for d in result.documents]
        return answer, result.model, result.usage.pairs

    async def _rerank(self, body: dict[str, Any], query: str, documents: list[str], options: Options, caller: Caller) -> RerankResult:
        model = str(_optional(body, "model", str) or "")
        check_documents(query, documents, self.max_documents)
        return await self.engine.rerank(RerankRequest(query, documents, options, model, caller))

    async def _health(self, request: Request) -> Response:
        serving = self.engine.ready and not self.engine.draining
        return JSONResponse({"status": "SERVING" if serving else "NOT_SERVING"}, status_code=200 if serving else 503)

    async def _models(self, request: Request) -> Response:
        try:
            self._authorize(request)
        except RequestError as exc:
            return JSONResponse({"message": exc.message}, status_code=401)
        if not self.engine.ready:
            return JSONResponse({"message": "models are still loading; retry shortly"}, status_code=503)
        registry = self.engine.registry
        data = [
            {
                "id": m.info.name,
                "object": "model",
                "owned_by": "rerank-grpc",
                "kind": m.info.kind.value,
                "max_seq_length": m.info.max_seq_length,
                "device": m.info.device,
                "dtype": m.info.dtype,
                "backend": m.info.backend,
                "default": m.info.name == registry.default_name,
            }
            for m in registry
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _metrics(self, request: Request) -> Response:
        try:
            text = await self.metrics_text()
        except NotServing as exc:
            return JSONResponse({"message": str(exc)}, status_code=503)
        return Response(text, media_type=CONTENT_TYPE_LATEST)


class _QuietSignals(uvicorn.Server):
    """uvicorn's Server without its signal handling: rerank-server handles SIGTERM and SIGINT itself and
    drains both transports together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _timeout(request: Request) -> float | None:
    value = request.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise invalid(f"{TIMEOUT_HEADER} {value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise RequestError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{TIMEOUT_HEADER} {value} has already passed")
    return seconds


def _priority(body: dict[str, Any]) -> int:
    """A request's priority: "interactive" (the default) or "bulk", or as Cohere's API has it, a number
    where 0 is the most urgent (0: interactive, more: bulk)."""
    value = body.get("priority")
    if value is None or value == "interactive":
        return Priority.INTERACTIVE
    if value == "bulk" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return Priority.BULK
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return Priority.INTERACTIVE
    raise invalid(f"priority must be \"interactive\", \"bulk\" or a number of 0 or more (0 is interactive), got {value!r}")


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"the body is {size} bytes, more than this server's limit of {limit} (--max-message-bytes); send fewer or shorter documents",
    )


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        raise invalid(f"{name} is missing")
    if not isinstance(value, kind):
        raise invalid(f"{name} must be a {'string' if kind is str else 'list' if kind is list else kind.__name__}")
    return value


def _optional(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise invalid(f"{name} must be {'true or false' if kind is bool else 'a number' if kind is int else 'a string'}")
    return value


def _document_text(document: Any, index: int) -> str:
    """A Cohere document: a string, or an object whose ``text`` is the string."""
    if isinstance(document, str):
        return document
    if isinstance(document, dict) and isinstance(document.get("text"), str):
        return str(document["text"])
    raise invalid(f"documents[{index}] must be a string or an object with a 'text' string")
