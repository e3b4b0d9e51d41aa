"""The ``rerank`` command: rank documents with a running server, list its models, check its health.

``rerank --target HOST:PORT "query" doc1 doc2 ...`` is short for ``rerank rank ...``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from .channel import Tls, parse_headers
from .client import RerankClient
from .types import RerankError, RerankResult
from .version import add_version

DEFAULT_TARGET = "127.0.0.1:50051"


def add_connection(parser: argparse.ArgumentParser) -> None:
    """How to reach a server: metadata, bearer token, TLS (every command that calls one has them)."""
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata sent with every call; may repeat",
    )
    parser.add_argument("--token", default=os.environ.get("RERANK_TOKEN"), help="bearer token for a server with --auth-token-file (default: $RERANK_TOKEN)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS, trusting the system's CAs (implied by --tls-ca)")
    parser.add_argument("--tls-ca", help="PEM CA bundle to trust for the server's certificate")
    parser.add_argument("--tls-cert", help="PEM client certificate, for a server that requires mutual TLS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")


def tls_of(args: argparse.Namespace) -> Tls | None:
    """The TLS settings the connection flags ask for (None: plaintext)."""
    return Tls(args.tls_ca, args.tls_cert, args.tls_key) if (args.tls or args.tls_ca or args.tls_cert) else None


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_version(parser)
    parser.add_argument("--target", default=DEFAULT_TARGET, help="server address HOST:PORT; without :PORT, port 50051 (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before the call gives up (default %(default)s)")
    add_connection(parser)


def build_parser() -> argparse.ArgumentParser:
    """The ``rerank`` command line."""
    parser = argparse.ArgumentParser(
        prog="rerank",
        description="Client for a rerank-grpc server. Without a subcommand, runs 'rank'.",
        epilog=(
            "examples:\n"
            '  rerank --target 127.0.0.1:50051 "where did the cat sit?" "on the mat" "stocks fell"\n'
            '  rerank "best pizza in town" --file examples/docs.txt --top-k 3 --json\n'
            '  cat examples/docs.txt | rerank "best pizza in town" -\n'
            "  rerank models --target 127.0.0.1:50051"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    rank = sub.add_parser("rank", help="rank documents for a query (the default command)", description="Rank documents for a query and print them best first.")
    _add_common(rank)
    rank.add_argument("query", help="the query to rank the documents against")
    rank.add_argument("documents", nargs="*", help="documents to rank; '-' reads them from stdin, one per line")
    rank.add_argument("--file", "-f", help="read documents from this file, one per line (added after any given as arguments)")
    rank.add_argument("--top-k", type=int, default=0, help="show only the best K (default: all)")
    rank.add_argument("--model", default="", help="model name on the server (default: the server's default model)")
    rank.add_argument(
        "--normalization",
        choices=["raw", "sigmoid", "calibrated"],
        default="raw",
        help="raw model scores, their sigmoid in (0, 1), or calibrated P(relevant) for a model served with a calibration (default %(default)s)",
    )
    rank.add_argument(
        "--min-score", type=float, default=None, help="leave out documents scoring below this, in --normalization's scale (e.g. 0.5 with calibrated)"
    )
    rank.add_argument("--error-on-truncation", action="store_true", help="fail instead of truncating documents longer than the model reads")
    rank.add_argument("--windows", action="store_true", help="score documents longer than the model reads in overlapping windows instead of truncating them")
    rank.add_argument("--aggregation", choices=["max", "mean", "first"], default="max", help="with --windows: how window scores make a document's score (default %(default)s)")
    rank.add_argument(
        "--instruction",
        default="",
        help="what the documents are judged for, for an instruction-following reranker such as Qwen3-Reranker (default: the model's own)",
    )
    rank.add_argument("--json", action="store_true", help="print a JSON list of {index, rank, score, text, truncated, windows} objects")
    rank.set_defaults(run=_run_rank)

    models = sub.add_parser("models", help="list the server's models and their batching limits")
    _add_common(models)
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(run=_run_models)

    health = sub.add_parser("health", help="print the server's health; with --wait, wait until it is SERVING")
    _add_common(health)
    health.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to this long for SERVING; exit 1 if it never is")
    health.set_defaults(run=_run_health)

    from .loadtest.command import add_parser as add_loadtest

    add_loadtest(sub)
    from .compare.command import add_parser as add_compare

    add_compare(sub)
    from .calibrate.command import add_parser as add_calibrate

    add_calibrate(sub)
    from .batch.command import add_parser as add_batch

    add_batch(sub)
    return parser


def _client(args: argparse.Namespace) -> RerankClient:
    return RerankClient(args.target, timeout=args.timeout, metadata=parse_headers(args.header), token=args.token, tls=tls_of(args))


def _read_lines(stream: TextIO) -> list[str]:
    return [line.rstrip("\n") for line in stream if line.strip()]


def _documents(args: argparse.Namespace, stdin: TextIO) -> list[str]:
    documents: list[str] = []
    for doc in args.documents:
        documents.extend(_read_lines(stdin) if doc == "-" else [doc])
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as handle:
                documents.extend(_read_lines(handle))
        except OSError as exc:
            raise SystemExit(f"rerank: error: cannot read --file: {exc}") from None
    if not documents and not args.file and not stdin.isatty():
        documents = _read_lines(stdin)
    if not documents:
        raise SystemExit("rerank: error: no documents: give them as arguments, with --file, or on stdin ('-')")
    return documents


def _table(result: RerankResult, documents: Sequence[str], width: int = 80) -> str:
    lines = [f"{'rank':>4}  {'score':>10}  {'index':>5}  document"]
    for r in result.results:
        text = documents[r.index].replace("\n", " ")
        if len(text) > width:
            text = text[: width - 1] + "…"
        mark = " [truncated]" if r.truncated else (f" [{r.windows} windows]" if r.windows > 1 else "")
        lines.append(f"{r.rank:>4}  {r.score:>10.4f}  {r.index:>5}  {text}{mark}")
    t = result.timing
    lines.append(
        f"model {result.model}: {result.usage.pairs} pairs, {result.usage.tokens} tokens, "
        f"{t.total_ms:.1f} ms on the server ({t.queue_ms:.1f} queue, {t.inference_ms:.1f} inference)"
        + (f"; {result.dropped} below --min-score left out" if result.dropped else "")
    )
    return "\n".join(lines)


def _run_rank(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    if args.top_k < 0:
        raise SystemExit(f"rerank: error: --top-k must be 0 (all) or more, got {args.top_k}")
    documents = _documents(args, stdin)
    with _client(args) as client:
        result = client.rerank(
            args.query,
            documents,
            top_k=args.top_k,
            model=args.model,
            normalization=args.normalization,
            error_on_truncation=args.error_on_truncation,
            windows=args.windows,
            aggregation=args.aggregation,
            instruction=args.instruction,
            **({"min_score": args.min_score} if args.min_score is not None else {}),
        )
    if args.json:
        rows = [
            {"index": r.index, "rank": r.rank, "score": r.score, "text": documents[r.index], "truncated": r.truncated, "windows": r.windows}
            for r in result.results
        ]
        json.dump(rows, out, indent=2)
        out.write("\n")
    else:
        out.write(_table(result, documents) + "\n")
    return 0


def _run_models(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    with _client(args) as client:
        listing = client.list_models()
    if args.json:
        from dataclasses import asdict

        json.dump(asdict(listing), out, indent=2)
        out.write("\n")
        return 0
    for m in listing.models:
        b = m.batching
        default = " (default)" if m.is_default else ""
        out.write(
            f"{m.name}{default}: {m.kind} from {m.source}, max {m.max_seq_length} tokens, {m.device}/{m.dtype}/{m.backend}"
            + (f", {m.memory_bytes / 2**20:,.0f} MiB" if m.memory_bytes else "")
            + ("; takes an instruction" if m.takes_instruction else "")
            + (f"; calibrated ({m.calibration})" if m.calibration else "")
            + "; "
            f"batches of <= {b.max_batch_size} pairs / {b.max_batch_tokens} tokens / {b.max_wait_ms:g} ms; "
            f"admits what can finish by its deadline (default {b.default_deadline_s:g} s"
            + (f", at most {b.max_request_time_s:g} s" if b.max_request_time_s else "")
            + (f"; running at {b.tokens_per_second:,.0f} tokens/s" if b.tokens_per_second else "")
            + f"), queue bound {b.max_queued_pairs} pairs\n"
        )
    out.write(f"max documents per request: {listing.max_documents}\n")
    return 0


def _run_health(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    with _client(args) as client:
        if args.wait > 0:
            client.wait_until_serving(args.wait)
            status = "SERVING"
        else:
            status = client.health()
    out.write(status + "\n")
    return 0 if status == "SERVING" else 1


_SUBCOMMANDS = {"rank", "models", "health", "loadtest", "compare", "calibrate", "batch"}


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin) -> int:
    """Entry point of the ``rerank`` command; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version"):
        # Options before the command (rerank --target H models) or before the query (rerank --model M "q" docs).
        command = next((a for a in args_list if a in _SUBCOMMANDS), None)
        if command is not None:
            args_list.remove(command)
        args_list.insert(0, command or "rank")
    if args_list and args_list[0] not in _SUBCOMMANDS and args_list[0] not in ("-h", "--help", "--version"):
        word = args_list[0]
        close = difflib.get_close_matches(word, sorted(_SUBCOMMANDS), n=1, cutoff=0.7)
        if close and " " not in word:  # a mistyped command, not a query: refuse rather than rank it
            print(
                f"rerank: error: unknown command {word!r}; did you mean {close[0]!r}? "
                f"(to rank documents for the query {word!r}, write: rerank rank {word} ...)",
                file=sys.stderr,
            )
            return 2
        args_list.insert(0, "rank")
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help(out)
        return 2
    run: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.run
    try:
        return run(args, out, stdin)
    except RerankError as exc:
        print(f"rerank: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"rerank: error: {exc}", file=sys.stderr)
        return 2


def entry() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())
