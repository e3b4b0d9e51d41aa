"""The HTTP/JSON front door: the rerank APIs RAG frameworks already speak, on the same engine as gRPC.

- ``POST /v1/rerank`` and ``/v2/rerank``: Cohere's rerank API (what LangChain, LlamaIndex, LiteLLM and
  Open WebUI call with a base URL); ``relevance_score`` is the sigmoid of the model's score, in (0, 1).
- ``POST /rerank``: Hugging Face text-embeddings-inference's (TEI) rerank API ({query, texts}); a body with
  ``documents`` instead is Infinity's (Cohere's body at that path: LiteLLM's ``infinity/`` provider).
- ``POST /v1/ranking``: NVIDIA NIM's ranking API ({query: {text}, passages: [{text}]} -> {rankings}).
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
import math
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import grpc
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..batching import BatchingError, Priority, WouldMissDeadline
from ..engine import Caller, EmbedRequest, Engine, NotServing, Options, RerankRequest, RerankResult
from ..engine.results import EmbedResult
from ..models import ModelKind, Normalization
from .auth import REFUSAL, BearerTokens, caller_name
from .errors import RequestError, invalid, to_status
from .http_connections import accept_burst, accept_queue, refuse_new_connections, uvicorn_options
from .http_models import (
    CohereRerankRequest,
    NimRankingRequest,
    OpenAIEmbeddingRequest,
    TeiEmbedRequest,
    TeiRerankRequest,
    openapi_document,
    parse,
)
from .ports import family
from .settings import ConnectionConfig, SecurityConfig
from .validation import check_documents

log = logging.getLogger(__name__)

# What the HTTP port serves, for the start-up log line.
ENDPOINTS = "Cohere POST /v1/rerank, TEI POST /rerank, NIM POST /v1/ranking, POST /v1/embeddings, /health, /v1/models, /docs, /metrics"

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

T = TypeVar("T")
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
        connections: ConnectionConfig = ConnectionConfig(),
    ) -> None:
        self.engine = engine
        self.connections = connections
        self.metrics_text = metrics_text  # the Prometheus text: this process's, or the engine process's
        self.tokens = tokens
        self.tenant_header = tenant_header
        self.max_documents = max_documents
        self.max_body_bytes = max_body_bytes
        self.security = security
        self.port: int | None = None
        self._server: Any = None
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/rerank", self._endpoint("POST /v1/rerank", self._cohere_v1), methods=["POST"]),
                Route("/v2/rerank", self._endpoint("POST /v2/rerank", self._cohere_v2), methods=["POST"]),
                Route("/rerank", self._endpoint("POST /rerank", self._tei), methods=["POST"]),
                Route("/v1/ranking", self._endpoint("POST /v1/ranking", self._nim), methods=["POST"]),
                Route("/v1/embeddings", self._endpoint("POST /v1/embeddings", self._openai_embeddings), methods=["POST"]),
                Route("/embed", self._endpoint("POST /embed", self._tei_embed), methods=["POST"]),
                Route("/health", self._health, methods=["GET"]),
                Route("/info", self._info, methods=["GET"]),
                Route("/openapi.json", self._openapi, methods=["GET"]),
                Route("/docs", self._docs, methods=["GET"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ]
        )

    # --- serving ----------------------------------------------------------------------------------

    async def start(self, host: str, port: int, shared: bool = False) -> int:
        """Listen on ``host:port`` (0: a free port) and serve; returns the port. ``shared``: other front-end
        processes listen on the same port (SO_REUSEPORT), and the kernel spreads connections over them."""
        sock = socket.socket(family(host), socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen for HTTP on {host}:{port} ({exc.strerror}); pick another --http-port") from None
        sock.listen(accept_burst())
        tls: dict[str, Any] = {}
        if self.security.tls_cert:
            tls = {"ssl_certfile": self.security.tls_cert, "ssl_keyfile": self.security.tls_key}
            if self.security.tls_client_ca:
                tls |= {"ssl_ca_certs": self.security.tls_client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        limits = uvicorn_options(self.connections.http_header_timeout_s, self.connections.http_max_connections)
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5, **tls, **limits)
        self._server = _QuietSignals(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]), name="http")
        while not self._server.started:  # a start-up flag uvicorn sets; startup takes milliseconds
            if self._task.done():
                await self._task  # re-raise why it failed
            await asyncio.sleep(0.005)
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        return self.port

    async def stop(self) -> None:
        """Stop listening without resetting a connection that reached the server (see
        ``http_connections``), finish the requests in progress, and close the connections."""
        if self._server is not None and self._task is not None:
            if self._sock is not None and refuse_new_connections(self._sock):
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 1.0
                while accept_queue(self._sock) and loop.time() < deadline:
                    await asyncio.sleep(0.005)  # the event loop accepts them (and answers their requests)
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
                answer, model, pairs = await _unless_gone(request, handle(body, caller))
            except (asyncio.CancelledError, ClientDisconnect, _Gone) as exc:
                # The caller went away (mid-body, or while its work was queued: that work was dropped).
                self.engine.answered(method, "CANCELLED", started, request_id, str(body.get("model", "")))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return Response(status_code=499)
            except Exception as exc:
                code, message = to_status(exc)
                self.engine.answered(method, code.name, started, request_id, str(body.get("model", "")), error=message)
                return _error(method, code, message, exc)
            self.engine.answered(method, "OK", started, request_id, model, pairs)
            return JSONResponse(answer)

        async def closing_when_draining(request: Request) -> Response:
            response = await endpoint(request)
            if self.engine.draining:
                # Tell keep-alive clients not to send their next request on this connection, which closes
                # at shutdown: a request sent on it as it closes ends ConnectionResetError, not UNAVAILABLE.
                response.headers["connection"] = "close"
            return response

        return closing_when_draining

    def _authorize(self, request: Request) -> None:
        tokens = self.tokens
        if tokens is not None and not tokens.accepts(request.headers.get("authorization")):
            raise RequestError(grpc.StatusCode.UNAUTHENTICATED, REFUSAL.replace("metadata", "the header"))

    async def _json(self, request: Request) -> dict[str, Any]:
        """The request's JSON object, read only if within the body limit."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            raise UnsupportedMediaType(
                f"the body must be JSON sent with Content-Type: application/json, got {kind or 'no Content-Type'}"
            )
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
        except RecursionError:
            raise invalid("the body's JSON is nested too deep; send a flat JSON object") from None
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        return body

    async def _cohere_v1(self, body: dict[str, Any], caller: Caller) -> tuple[Any, str, int]:
        """Cohere's v1 rerank (see :meth:`_cohere`)."""
        return await self._cohere(body, caller, "1")

    async def _cohere_v2(self, body: dict[str, Any], caller: Caller) -> tuple[Any, str, int]:
        """Cohere's v2 rerank (see :meth:`_cohere`)."""
        return await self._cohere(body, caller, "2")

    async def _cohere(self, body: dict[str, Any], caller: Caller, version: str) -> tuple[Any, str, int]:
        """Cohere's rerank (:class:`CohereRerankRequest`) -> {id, results: [{index, relevance_score,
        document?}], meta}."""
        request = parse(CohereRerankRequest, body)
        documents = [_cohere_document(d, i, request.rank_fields) for i, d in enumerate(request.documents)]
        options = Options(
            top_k=request.top_n or 0,
            normalization=Normalization(request.normalization),
            max_document_tokens=request.max_tokens_per_doc,
            instruction=request.instruction,
            min_score=request.min_score,
        )
        result = await self._rerank(request.model, request.query, documents, options, caller)
        results = [
            {
                "index": d.index,
                "relevance_score": d.score,
                **({"document": _returned(request.documents[d.index], documents[d.index])} if request.return_documents else {}),
            }
            for d in result.documents
        ]
        meta: dict[str, Any] = {"api_version": {"version": version}, "billed_units": {"search_units": 1}, "tokens": {"input_tokens": result.usage.tokens}}
        if request.min_score is not None:
            meta["dropped_documents"] = result.dropped
        return {"id": str(uuid.uuid4()), "results": results, "meta": meta}, result.model, result.usage.pairs

    async def _tei(self, body: dict[str, Any], caller: Caller) -> tuple[Any, str, int]:
        """TEI's rerank (:class:`TeiRerankRequest`) -> [{index, score, text?}], best first. Texts longer
        than the model reads are refused unless ``truncate`` is true (TEI's default). A body with
        ``documents`` instead of ``texts`` is Infinity's /rerank, which takes Cohere's body."""
        if "texts" not in body and "documents" in body:
            return await self._infinity(body, caller)
        request = parse(TeiRerankRequest, body)
        normalization = Normalization(request.normalization or ("raw" if request.raw_scores else "sigmoid"))
        options = Options(
            top_k=request.top_n or 0,
            normalization=normalization,
            error_on_truncation=not request.truncate,
            truncation_switch=("truncate is false", "send truncate: true"),
            instruction=request.instruction,
        )
        result = await self._rerank(request.model, request.query, request.texts, options, caller)
        texts = request.texts
        answer = [{"index": d.index, "score": d.score, **({"text": texts[d.index]} if request.return_text else {})} for d in result.documents]
        return answer, result.model, result.usage.pairs

    async def _infinity(self, body: dict[str, Any], caller: Caller) -> tuple[Any, str, int]:
        """Infinity's rerank: Cohere's body -> {object, results: [{relevance_score, index, document?}],
        model, usage, id, created}; a returned document is its text, as Infinity returns it."""
        answer, model, pairs = await self._cohere(body, caller, "2")
        usage = answer["meta"]["tokens"]["input_tokens"]
        results = [
            {"relevance_score": r["relevance_score"], "index": r["index"], **({"document": _text_of(r["document"])} if "document" in r else {})}
            for r in answer["results"]
        ]
        return (
            {"object": "rerank", "results": results, "model": model, "usage": {"prompt_tokens": usage, "total_tokens": usage},
             "id": answer["id"], "created": int(time.time())},
            model,
            pairs,
        )

    async def _nim(self, body: dict[str, Any], caller: Caller) -> tuple[Any, str, int]:
        """NVIDIA NIM's ranking (:class:`NimRankingRequest`) -> {rankings: [{index, logit}]}, best first;
        the logit is the model's raw score. ``truncate`` NONE (the default) refuses passages longer than
        the model reads."""
        request = parse(NimRankingRequest, body)
        options = Options(
            normalization=Normalization.RAW,
            error_on_truncation=request.truncate == "NONE",
            truncation_switch=('truncate is "NONE"', 'send truncate: "END"'),
            instruction=request.instruction,
        )
        texts = [p.text for p in request.passages]
        result = await self._rerank(request.model, request.query.text, texts, options, caller)
        return {"rankings": [{"index": d.index, "logit": d.score} for d in result.documents]}, result.model, result.usage.pairs

    async def _openai_embeddings(self, body: dict[str, Any], caller: Caller) -> tuple[Any, str, int]:
        """OpenAI's embeddings (:class:`OpenAIEmbeddingRequest`) -> {object, data: [{object, index,
        embedding}], model, usage}."""
        request = parse(OpenAIEmbeddingRequest, body)
        result = await self._embed(request.model, request.input, caller, error_on_truncation=False)
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(result.embeddings.tolist())]
        usage = {"prompt_tokens": result.usage.tokens, "total_tokens": result.usage.tokens}
        return {"object": "list", "data": data, "model": result.model, "usage": usage}, result.model, result.usage.pairs

    async def _tei_embed(self, body: dict[str, Any], caller: Caller) -> tuple[Any, str, int]:
        """TEI's embed (:class:`TeiEmbedRequest`) -> [[float, ...], ...], in input order."""
        request = parse(TeiEmbedRequest, body)
        if not request.normalize:
            raise invalid("normalize false is not served: this server's embeddings are unit length (send normalize: true)")
        result = await self._embed(request.model, request.inputs, caller, error_on_truncation=not request.truncate)
        return result.embeddings.tolist(), result.model, result.usage.pairs

    async def _embed(self, model: str, inputs: str | list[str], caller: Caller, error_on_truncation: bool) -> EmbedResult:
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not texts:
            raise invalid("the inputs are empty; send at least one text")
        if len(texts) > self.max_documents:
            raise invalid(f"{len(texts)} inputs are more than this server's limit of {self.max_documents} (--max-documents); send fewer")
        for index, text in enumerate(texts):
            _valid_unicode(text, f"inputs[{index}]")
        return await self.engine.embed(EmbedRequest(texts, model, caller, error_on_truncation))

    async def _rerank(
        self, model: str, query: str, documents: list[str], options: Options, caller: Caller
    ) -> RerankResult:
        """Rank through the engine, after the checks every HTTP shape shares."""
        _valid_unicode(query, "query")
        for index, document in enumerate(documents):
            _valid_unicode(document, f"documents[{index}]")
        check_documents(query, documents, self.max_documents)
        return await self.engine.rerank(RerankRequest(query, documents, options, model, caller))

    async def _health(self, request: Request) -> Response:
        serving = self.engine.ready and not self.engine.draining
        headers = {} if not self.engine.draining else {"connection": "close"}
        return JSONResponse({"status": "SERVING" if serving else "NOT_SERVING"}, status_code=200 if serving else 503, headers=headers)

    async def _openapi(self, request: Request) -> Response:
        """The OpenAPI document, generated from the models requests are validated with."""
        return JSONResponse(openapi_document(_version()))

    async def _docs(self, request: Request) -> Response:
        """Swagger UI over /openapi.json (its script and styles come from a CDN, in the browser)."""
        return HTMLResponse(_SWAGGER_PAGE)

    async def _info(self, request: Request) -> Response:
        """TEI's /info: the default model's id, dtype, kind and limits, and this server's version."""
        if not self.engine.ready:
            return JSONResponse({"error": "models are still loading; retry shortly", "error_type": "Unhealthy"}, status_code=503)
        model = self.engine.registry.get("")
        info = model.info
        kind = {"classifier": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}} if info.kind is ModelKind.CROSS_ENCODER else {"embedding": {"pooling": "mean"}}
        return JSONResponse(
            {
                "model_id": info.source,
                "model_dtype": info.dtype,
                "model_type": kind,
                "max_input_length": info.max_seq_length,
                "max_client_batch_size": self.max_documents,
                "max_batch_tokens": model.limits.max_batch_tokens,
                "version": _version(),
                "served_model_name": info.name,
            }
        )

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
                "fingerprint": m.info.fingerprint,
                "calibration": m.scorer.calibration.method if m.scorer.calibration else None,
            }
            for m in registry
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _metrics(self, request: Request) -> Response:
        try:
            if not self.security.public_metrics:
                self._authorize(request)  # the metrics name callers and tokens
        except RequestError as exc:
            return JSONResponse({"message": exc.message}, status_code=401)
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


_SWAGGER_PAGE = """<!doctype html>
<html><head><title>rerank-grpc HTTP API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rerank-grpc")
    except PackageNotFoundError:
        return "unknown"


def _timeout(request: Request) -> float | None:
    value = request.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise invalid(f"{TIMEOUT_HEADER} {value[:40]!r} is not a number of seconds")
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


class BodyTooLarge(RequestError):
    """A body over the server's limit: HTTP 413 (RESOURCE_EXHAUSTED where gRPC maps it)."""


class UnsupportedMediaType(RequestError):
    """A body not declared as JSON: HTTP 415."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)


class _Gone(Exception):
    """The HTTP client disconnected while its request was in progress."""


async def _unless_gone(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result, unless the client disconnects first: then ``work`` is cancelled (the batcher
    drops its queued pairs, as for a cancelled gRPC call) and :class:`_Gone` is raised."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        gone.cancel()
        raise
    gone.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise _Gone()


async def _disconnected(request: Request) -> None:
    """Return once the client has disconnected (the body is read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _error(method: str, code: grpc.StatusCode, message: str, exc: BaseException) -> Response:
    """An error in the shape of the API that was called: TEI's {error, error_type}, Cohere's and the
    others' {message}; 413 and 415 where HTTP has them, and 429 with ``Retry-After``.

    The body of one kind of refusal is the same bytes every time: load testers (AIPerf) group errors by
    the whole body, so the live numbers behind a refusal (places free, seconds of work ahead) travel as
    ``x-rerank-*`` headers instead."""
    status = 413 if isinstance(exc, BodyTooLarge) else 415 if isinstance(exc, UnsupportedMediaType) else http_status(code)
    headers = {}
    if status == 429:
        headers["Retry-After"] = str(_retry_after(exc))
    if isinstance(exc, BatchingError):
        headers |= {f"x-rerank-{key.replace('_', '-')}": str(value) for key, value in exc.details.items()}
    if method in ("POST /rerank", "POST /embed"):  # TEI's routes answer errors in TEI's shape
        body: dict[str, Any] = {"error": message, "error_type": _TEI_ERROR_TYPES.get(status, "Backend")}
    else:
        body = {"message": message, "error": {"code": code.name, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


# TEI's ErrorType, by the status it answers with.
_TEI_ERROR_TYPES = {400: "Validation", 413: "Validation", 415: "Validation", 422: "Validation", 429: "Overloaded", 503: "Unhealthy", 504: "Overloaded"}


def _retry_after(exc: BaseException) -> int:
    """Seconds to wait before retrying a refused request: the queue's own estimate of the work ahead
    beyond what the request could wait, for a deadline refusal; 1 otherwise (a full queue moves fast)."""
    if isinstance(exc, WouldMissDeadline):
        return max(1, min(60, math.ceil(exc.wait_s - exc.left_s)))
    return 1


def _valid_unicode(text: str, where: str) -> None:
    """Refuse text that cannot be UTF-8: JSON's escapes can carry a lone UTF-16 surrogate."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise invalid(f"{where} holds a lone UTF-16 surrogate ({text[exc.start]!r} at character {exc.start}); send valid Unicode") from None


def _too_large(size: int, limit: int) -> RequestError:
    return BodyTooLarge(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"the body is {size} bytes, more than this server's limit of {limit} (--max-message-bytes); send fewer or shorter documents",
    )


def _cohere_document(document: str | dict[str, Any], index: int, rank_fields: list[str] | None) -> str:
    """A Cohere document as the text the model reads: a string as it is; an object by its
    ``rank_fields`` (default: ``text``), each as a "field: value" line in that order, as Cohere reads them."""
    if isinstance(document, str):
        return document
    if rank_fields is None and isinstance(document.get("text"), str):
        return str(document["text"])
    fields = rank_fields or ["text"]
    lines = [f"{name}: {_field_text(document[name])}" for name in fields if name in document]
    if not lines:
        raise invalid(f"documents[{index}] has none of the fields {fields} to rank on; name them with rank_fields")
    return "\n".join(lines)


def _field_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _text_of(document: dict[str, Any]) -> str:
    """A returned Cohere document as Infinity returns it: its text."""
    text = document.get("text")
    return text if isinstance(text, str) else json.dumps(document, ensure_ascii=False)


def _returned(sent: Any, text: str) -> dict[str, Any]:
    """A result's ``document`` as Cohere returns it: the object sent, or {"text"} for a string."""
    return sent if isinstance(sent, dict) else {"text": text}

