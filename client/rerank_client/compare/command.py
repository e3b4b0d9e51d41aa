"""``rerank compare``: the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from ..channel import parse_headers
from ..cli import add_connection, tls_of
from ..types import RerankError
from ..version import add_version
from .analysis import QueryComparison
from .render import as_json, as_markdown, as_table
from .sources import LocalSource, ServerSource, Source, load_examples


LOCAL_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L-6-v2"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``compare`` on the ``rerank`` subcommand parser."""
    p = sub.add_parser(
        "compare",
        help="rank the same documents with a cross-encoder and with embedding cosine, and explain the differences",
        description=(
            "Score each query's documents with a cross-encoder and with the cosine similarity of an embedding model, "
            "print both top-3 lists side by side with their rank correlation and overlap, and for every rank where they "
            "differ the evidence: words shared with the query, length against the cross-encoder's max length, score margins."
        ),
        epilog=(
            "examples:\n"
            "  rerank compare --target 127.0.0.1:50051 --cross-encoder ce --embedding all-MiniLM-L6-v2\n"
            "  rerank compare --local --cross-encoder /models/ms-marco-MiniLM-L-6-v2 --format markdown\n"
            "  rerank compare --target 127.0.0.1:50051 --cross-encoder ce --data my-queries.json --format json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    p.add_argument("--data", help="JSON file {\"queries\": [{\"query\": ..., \"documents\": [...]}]} (default: the shipped example set)")
    p.add_argument("--target", help="a rerank-server serving both models (HOST:PORT)")
    p.add_argument("--local", action="store_true", help="load the models in this process instead (needs the server extra)")
    p.add_argument(
        "--cross-encoder",
        help=(
            "the cross-encoder: with --target its name on the server (default: the server's default model); with --local "
            f"a hub id or a local directory (default {LOCAL_CROSS_ENCODER})"
        ),
    )
    p.add_argument(
        "--embedding",
        help=(
            "the embedding model: with --target its name on the server (default all-MiniLM-L6-v2); with --local a hub id, "
            "a local directory, or 'bundled' for all-MiniLM-L6-v2 (default bundled)"
        ),
    )
    p.add_argument(
        "--calibration",
        action="append",
        default=[],
        metavar="ROLE=FILE",
        help=(
            "with --local: a calibration from rerank calibrate for the cross-encoder (cross=FILE) or the embedding model "
            "(embedding=FILE; the bundled one has its own). With both calibrated (through --target: both served with one), "
            "calibrated probabilities are shown side by side, with the pairs they disagree on most"
        ),
    )
    p.add_argument("--top-k", type=int, default=3, help="length of the top lists compared (default %(default)s)")
    p.add_argument("--format", choices=["table", "markdown", "json"], default="table", help="(default %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0, help="with --target: seconds per call (default %(default)s)")
    add_connection(p)
    p.set_defaults(run=run)
    return p


def _calibrations(values: list[str]) -> dict[str, str]:
    """``--calibration ROLE=FILE`` values by the local engine's model names (cross, embed)."""
    roles = {"cross": "cross", "cross-encoder": "cross", "embedding": "embed", "embed": "embed"}
    files = {}
    for value in values:
        role, sep, path = value.partition("=")
        if not sep or role.strip() not in roles or not path.strip():
            raise ValueError(f"--calibration {value!r}: give cross=FILE or embedding=FILE")
        files[roles[role.strip()]] = path.strip()
    return files


def _display(source: str) -> str:
    """A short name for a model source: the last part of a hub id or path."""
    return source.rstrip("/").rsplit("/", 1)[-1]


def compare(source: Source, queries: list[dict[str, Any]], top_k: int) -> list[QueryComparison]:
    """Score and explain every query."""
    comparisons = []
    for entry in queries:
        docs = list(entry["documents"])
        scored = source.score(entry["query"], docs)
        c = QueryComparison(
            entry["query"], docs, scored.cross, scored.embed, scored.tokens, scored.truncated, scored.max_length, top_k,
            cross_probabilities=scored.cross_probabilities, embed_probabilities=scored.embed_probabilities,
        )
        c.explain()
        comparisons.append(c)
    return comparisons


def run(args: argparse.Namespace, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin) -> int:
    """Run ``rerank compare`` with parsed arguments."""
    if bool(args.target) == bool(args.local):
        raise SystemExit("rerank compare: error: give either --target HOST:PORT (a server with both models) or --local")
    if args.calibration and not args.local:
        raise SystemExit("rerank compare: error: --calibration is for --local; a server's models have the calibrations it was started with")
    try:
        queries = load_examples(args.data)
        if args.local:
            cross, embedding = args.cross_encoder or LOCAL_CROSS_ENCODER, args.embedding or "bundled"
            source: Source = LocalSource(cross, embedding, calibrations=_calibrations(args.calibration))
            names = (_display(cross), _display(embedding))
        else:
            from ..client import RerankClient

            client = RerankClient(args.target, timeout=args.timeout, metadata=parse_headers(args.header), token=args.token, tls=tls_of(args))
            cross, embedding = args.cross_encoder or client.list_models().default_model, args.embedding or "all-MiniLM-L6-v2"
            source = ServerSource(client, cross, embedding)
            names = (cross, embedding)
        try:
            comparisons = compare(source, queries, args.top_k)
        finally:
            source.close()
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"rerank compare: error: {exc}") from None
    except RerankError as exc:
        raise SystemExit(f"rerank compare: error: {exc}") from None
    render = {"table": as_table, "markdown": as_markdown, "json": as_json}[args.format]
    out.write(render(comparisons, *names) + "\n")
    return 0
