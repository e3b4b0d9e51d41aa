"""Assembling the gRPC server: the Reranker servicer, health checking and reflection on one port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import generate_latest

from rerank_proto import rerank_pb2 as pb
from rerank_proto import rerank_pb2_grpc as pb_grpc

from ..engine import Engine, ModelRegistry, ServedModel, TokenizerPool, default_tokenizer_threads
from ..engine.link import EngineLink, ForwardedObservations
from ..engine.metrics import Metrics
from ..models import Scorer
from ..models.device import device_kind
from .auth import BearerTokenInterceptor, BearerTokens, read_tokens
from .http import HttpFrontDoor
from .malformed import MalformedRequestInterceptor
from .ports import check_free
from .servicer import RerankerServicer
from .settings import SecurityConfig, ServerConfig

log = logging.getLogger(__name__)

# How long calls the servicer is refusing as the server stops get to receive their UNAVAILABLE.
_REFUSALS_GRACE_S = 1.0

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Reranker"].full_name


class RerankServer:
    """A running gRPC server. Health reports NOT_SERVING until :meth:`mark_ready`, so a load balancer
    sends no traffic while models load, and again from the start of :meth:`stop`.

    ``shared``: this process is one of several front ends on the same ports (SO_REUSEPORT), whose models
    are served by an engine process (see :meth:`attach`); ``tokenizer_threads`` is then its share.
    """

    def __init__(self, config: ServerConfig, shared: bool = False, tokenizer_threads: int | None = None) -> None:
        self.config = config
        self.shared = shared
        self.registry = ModelRegistry()
        threads = tokenizer_threads or config.tokenizer_threads or default_tokenizer_threads(device_kind(config.device, config.backend))
        self.tokenizers = TokenizerPool(threads)
        self.metrics = Metrics(self.registry)
        self.metrics_port: int | None = None
        tokens = BearerTokens(read_tokens(config.security.auth_token_file)) if config.security.auth_token_file else None
        self.engine = Engine(self.registry, config.admission, self.metrics, config.log_requests)
        self.servicer = RerankerServicer(self.engine, config.max_documents, config.stream_window, tokens, config.tenant_header)
        self.health = health.aio.HealthServicer()
        options = [
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            # Front ends share the port on purpose; otherwise two servers on one port would split traffic silently.
            ("grpc.so_reuseport", int(shared)),
            *config.connections.grpc_options(),
        ]
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if tokens is not None:
            interceptors.append(BearerTokenInterceptor(tokens))
        # Last, so that it wraps the servicer's own handlers (the same objects every call) and can cache them.
        interceptors.append(MalformedRequestInterceptor())
        self._server = grpc.aio.server(options=options, interceptors=interceptors)
        pb_grpc.add_RerankerServicer_to_server(self.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server,
        )
        self.host = config.host
        self.port = self._bind(config)
        self.http: HttpFrontDoor | None = None
        self._forwarded: ForwardedObservations | None = None
        if config.http_port is not None:
            self.http = HttpFrontDoor(
                self.engine,
                self._metrics_text,
                config.max_documents,
                config.max_message_bytes,
                config.security,
                tokens,
                config.tenant_header,
                config.connections,
            )

    async def _metrics_text(self) -> bytes:
        return generate_latest(self.metrics.registry)

    def attach(self, link: EngineLink) -> None:
        """Report requests to, and serve the metrics of, the engine process at the other end of ``link``
        (its metrics count every front end's requests)."""
        self.engine.observer = self._forwarded = ForwardedObservations(link)
        if self.http is not None:
            self.http.metrics_text = link.metrics_text

    def _bind(self, config: ServerConfig) -> int:
        address = config.address
        problem = f"cannot listen on {address}: the port is in use or the host is not an address of this machine"
        if config.port and not self.shared:
            check_free(config.host, config.port, f"{problem}; pick another --port or --host")  # before gRPC logs its own line
        try:
            if config.security.tls_cert:
                port = self._server.add_secure_port(address, _credentials(config.security))
            else:
                port = self._server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc's "Failed to bind to address"
            raise OSError(f"{problem}; pick another --port or --host") from exc
        if port == 0:
            raise OSError(f"{problem}; pick another --port or --host")
        return port

    @property
    def http_port(self) -> int | None:
        """The HTTP API's port once it listens (None: not served)."""
        return self.http.port if self.http is not None else None

    @property
    def target(self) -> str:
        """host:port for a client of this server."""
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Start serving (health: NOT_SERVING until models are added and :meth:`mark_ready` is called)."""
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.start()
        if self.http is not None:
            assert self.config.http_port is not None
            await self.http.start(self.config.host, self.config.http_port, self.shared)
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.config.host, self.config.metrics_port)

    def serve(self, scorer: Scorer | Sequence[Scorer], tokens_per_s: float | None = None) -> ServedModel:
        """Serve ``scorer`` with the configured batching; ``tokens_per_s``, its speed measured at start-up,
        seeds the running estimate deadlines are admitted by. The first one served is the default."""
        model = ServedModel.create(scorer, self.config.batching, self.tokenizers, self.config.request_limits, tokens_per_s)
        self.add_model(model)
        return model

    def add_model(self, model: ServedModel) -> None:
        """Serve ``model``; the first one added is the default."""
        self.registry.add(model)
        self.metrics.watch(model)
        model.batcher.start()

    async def mark_ready(self) -> None:
        """All models are loaded: take traffic."""
        if not len(self.registry):
            raise RuntimeError("no model to serve")
        for alias, name in self.config.aliases:
            self.registry.alias(alias, name)
        self.engine.ready = True
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float | None, close_port: bool = True) -> None:
        """Refuse new calls, let in-flight ones finish for up to ``grace`` seconds, then stop the batchers.

        Health turns NOT_SERVING and new calls get a clean UNAVAILABLE from the servicer (which clients
        retry elsewhere) while the port stays open: through draining, then for ``settle_s`` more while
        clients and load balancers notice, so that calls still arriving are refused, not cut.

        Stopping the gRPC server itself cuts the calls gRPC has received and not yet handed to the
        servicer with CANCELLED (grpc/grpc#41785), which clients do not retry: measured, 1-17 calls a run
        under load. A process that exits next passes ``close_port=False`` and leaves the port to the
        operating system: the connections close and those calls end UNAVAILABLE, which clients retry.
        Every accepted call has been answered by then either way.
        """
        await self.health.enter_graceful_shutdown()
        self.engine.draining = True
        idle = await self.engine.wait_idle(grace)
        if idle:
            await asyncio.sleep(self.config.settle_s)  # a production pause, not synchronisation: clients re-resolve
        if close_port:
            # A short grace lets refusals already on their way finish; with the grace spent, what still runs is cut.
            await self._server.stop(_REFUSALS_GRACE_S if idle else 0)
        if self.http is not None:
            await self.http.stop()
        await self.registry.aclose(drain=True)
        self.tokenizers.close()
        if self._forwarded is not None:
            self._forwarded.flush()


def _credentials(security: SecurityConfig) -> grpc.ServerCredentials:
    """TLS credentials; with a client CA, clients must present a certificate it signed (mutual TLS)."""
    assert security.tls_cert and security.tls_key
    key = open(security.tls_key, "rb").read()
    chain = open(security.tls_cert, "rb").read()
    client_ca = open(security.tls_client_ca, "rb").read() if security.tls_client_ca else None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None)
