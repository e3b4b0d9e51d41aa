"""The transports' settings: the network, TLS and tokens, connections, and the whole server's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.settings import AdmissionConfig, BatchingConfig, RequestLimits
from ..models.loading import DEFAULT_MODEL, ModelSpec, parse_model_arg

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class SecurityConfig:
    """TLS (mutual when a client CA is given) and bearer-token authentication."""

    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    auth_token_file: str | None = None
    public_metrics: bool = False  # GET /metrics on the HTTP port without a token (it names callers and tokens)


@dataclass(frozen=True)
class ConnectionConfig:
    """HTTP/2 connection management: keepalive pings and a maximum connection age.

    A maximum age makes clients reconnect now and then, so that behind a load balancer or a headless
    Kubernetes service they re-resolve and spread onto new replicas.
    """

    keepalive_time_s: float = 60.0
    keepalive_timeout_s: float = 20.0
    max_connection_age_s: float | None = None
    max_connection_age_grace_s: float = 30.0
    max_streams_per_connection: int = 1024
    # HTTP/1.1 (the HTTP API): a connection that has not sent a whole request's headers this long after it
    # opened (or after its last answer) is closed, so silent and slowloris connections do not pile up;
    # connections past the cap are closed at once (None: half the process's file-descriptor limit),
    # so that HTTP clients cannot take the descriptors the gRPC port needs.
    http_header_timeout_s: float = 10.0
    http_max_connections: int | None = None

    def grpc_options(self) -> list[tuple[str, int]]:
        """As gRPC channel arguments."""
        options = [
            ("grpc.keepalive_time_ms", int(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            # Calls (streams) one connection may have open at once: one client cannot hold the server's
            # memory with thousands of idle streams.
            ("grpc.max_concurrent_streams", self.max_streams_per_connection),
            # gRPC core drops calls from its pending queue early (random early detection from 1,000 pending,
            # all past 3,000) when the event loop falls behind, as under a flood of calls with 1 ms deadlines:
            # healthy calls then ended CANCELLED before reaching the servicer. The servicer's own limits
            # (queue, concurrency) refuse overload with a status instead.
            ("grpc.server.max_pending_requests", 50_000),
            ("grpc.server.max_pending_requests_hard_limit", 100_000),
        ]
        if self.max_connection_age_s:
            options += [
                ("grpc.max_connection_age_ms", int(self.max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(self.max_connection_age_grace_s * 1000)),
            ]
        return options


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``rerank-server`` is started with."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    models: tuple[ModelSpec, ...] = field(default_factory=lambda: (parse_model_arg(DEFAULT_MODEL),))
    aliases: tuple[tuple[str, str], ...] = ()  # (alias, model name): other names requests may use
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "auto"
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    tokenizer_threads: int | None = None  # per front end; None: default_tokenizer_threads for the device
    frontends: int | None = None  # front-end processes; None: default_frontends for the device (1: one process does all)
    max_documents: int = 1000
    max_message_bytes: int = 16 * 1024 * 1024
    grace_s: float = 30.0
    trust_remote_code: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    log_requests: bool = False
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    stream_window: int = 64  # requests of one RerankStream read and not yet answered, at most
    tenant_header: str = "x-rerank-tenant"  # the metadata that names a caller
    settle_s: float = 1.0  # at shutdown, once idle: how long new calls still get UNAVAILABLE before the port closes
    security: SecurityConfig = field(default_factory=lambda: SecurityConfig())
    connections: ConnectionConfig = field(default_factory=lambda: ConnectionConfig())
    metrics_port: int | None = None
    http_port: int | None = None  # the HTTP/JSON API (Cohere, TEI); None: off

    @property
    def address(self) -> str:
        """host:port as gRPC binds it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"
