"""``rerank batch INPUT -o OUTPUT``: score a file of records through a fleet or in-process, resumably."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from dataclasses import asdict
from typing import Any, TextIO

from ..channel import Tls, parse_headers
from ..cli import add_connection, tls_of
from ..version import add_version
from .backends import RETRY_FOR_S, Backend, FleetBackend, LocalBackend
from .journal import JobIdentity, Journal
from .records import survey
from .runner import Job, JobStopped, Progress

DEFAULT_CONCURRENCY = 32  # records in flight: enough for a server to fill its batches from one job


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``batch`` on the ``rerank`` subcommand parser."""
    p = sub.add_parser(
        "batch",
        help="score a file of records (JSONL or Parquet) through servers or in-process, resumably",
        description=(
            "Score every record of INPUT and write it, with its scores, ranks and usage, to OUTPUT as it completes. "
            "A record is {\"id\", \"query\", \"documents\": [...]} or one pair {\"id\", \"query\", \"document\"} (JSONL lines "
            "or Parquet rows; without an id, its line number). Killed at any point (Ctrl-C, SIGKILL, a lost server), the "
            "same command resumes: it scores only the records OUTPUT lacks, and OUTPUT ends with each record exactly once."
        ),
        epilog=(
            "examples:\n"
            "  rerank batch queries.jsonl -o scored.jsonl --target 10.0.0.5:50051 --target 10.0.0.6:50051\n"
            "  rerank batch candidates.parquet -o scored.parquet --local cross-encoder/ms-marco-MiniLM-L-6-v2\n"
            "  rerank batch examples/labelled-pairs.jsonl -o scored.jsonl --local bundled --on-error skip"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    p.add_argument("input", help="records to score: .jsonl, or .parquet (needs pyarrow: '.[batch]')")
    p.add_argument("-o", "--output", required=True, help="where results go: .jsonl, or .parquet (written when every record is in)")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        help="a server to send records to; repeat for a fleet (round-robin, with the client's retries), or one resolver name (dns:///name:port)",
    )
    p.add_argument("--model", default="", help="with --target: the model's name there (default: the fleet's default model)")
    p.add_argument("--local", metavar="SOURCE", help="score in this process with the server's engine instead: a model directory, hub id, or 'bundled'")
    p.add_argument("--device", default="auto", help="with --local: where the model runs (default %(default)s)")
    p.add_argument("--dtype", default="auto", help="with --local: the precision it runs at (default %(default)s)")
    p.add_argument(
        "--backend",
        choices=["auto", "torch", "onnx", "openvino"],
        default="auto",
        help="with --local: what runs the model, as rerank-server --backend (default %(default)s: OpenVINO on a CPU where installed)",
    )
    p.add_argument("--normalization", choices=["raw", "sigmoid", "calibrated"], default="raw", help="scores written (default %(default)s)")
    p.add_argument("--instruction", default="", help="for an instruction-following reranker: what the documents are judged for")
    p.add_argument(
        "--priority",
        choices=["bulk", "interactive"],
        default="bulk",
        help="with --target: bulk (the default) goes after interactive traffic on shared servers and keeps a share of them",
    )
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="records in flight at once (default %(default)s); bounds memory too")
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="a malformed or refused record: stop the job (default), or report it with its line number and go on",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="with --target: seconds per call before it is retried (default %(default)s)")
    p.add_argument(
        "--retry-for",
        type=float,
        default=RETRY_FOR_S,
        metavar="SECONDS",
        help="how long a record is retried while the fleet is unavailable or overloaded before the job stops, resumable (default %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (the JSON summary is still printed)")
    add_connection(p)
    p.set_defaults(run=run)
    return p


def _backend(args: argparse.Namespace, options: dict[str, Any]) -> Backend:
    if args.local:
        return LocalBackend(args.local, args.device, args.dtype, options, args.backend)
    tls: Tls | None = tls_of(args)
    connection = {"metadata": parse_headers(args.header), "token": args.token, "tls": tls}
    return FleetBackend(args.target, args.model, {**options, "priority": args.priority}, args.timeout, connection)


async def run_job(args: argparse.Namespace, errors: TextIO) -> dict[str, Any]:
    """Survey the input, open (or resume) the output, score what is missing; the summary as a dict."""
    found = survey(args.input)
    if found.errors and args.on_error == "stop":
        first = found.errors[0]
        raise JobStopped(f"{first} (--on-error skip scores the other records and reports this one)")
    options = {"normalization": args.normalization, **({"instruction": args.instruction} if args.instruction else {})}
    backend = _backend(args, options)
    try:
        if isinstance(backend, FleetBackend):
            await backend.start()
        identity = JobIdentity(args.input, found.sha256, backend.model, backend.fingerprint, options)
        journal = Journal(args.output, identity)
        done = journal.open()
        progress = Progress(found.records, found.pairs, errors if not args.quiet else io.StringIO())
        job = Job(args.input, journal, backend, args.concurrency, args.on_error, progress, errors, args.retry_for)
        started = time.perf_counter()
        try:
            outcome = await job.run(done)
        except JobStopped as exc:
            journal.close()
            written = job.outcome.written + job.outcome.already
            raise JobStopped(
                f"stopped: {exc}. {written} of {found.records} records are in {args.output}; run the same command again to resume"
            ) from None
        journal.finish()
    finally:
        await backend.close()
    seconds = time.perf_counter() - started
    return {
        "input": args.input,
        "output": args.output,
        "model": backend.model,
        "records": found.records,
        **asdict(outcome),
        "seconds": round(seconds, 3),
        "pairs_per_s": round(outcome.pairs / seconds, 1) if seconds > 0 else 0.0,
        "complete": True,
    }


def run(args: argparse.Namespace, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin) -> int:
    """Run ``rerank batch`` with parsed arguments; prints a JSON summary, exits non-zero when stopped."""
    if bool(args.target) == bool(args.local):
        raise SystemExit("rerank batch: error: give --target HOST:PORT (repeat it for a fleet) or --local SOURCE")
    if args.concurrency < 1:
        raise SystemExit("rerank batch: error: --concurrency must be 1 or more")
    try:
        summary = asyncio.run(run_job(args, sys.stderr))
    except JobStopped as exc:
        print(f"rerank batch: {exc}", file=sys.stderr)
        return 130 if "interrupted" in str(exc) else 1
    except (ValueError, OSError) as exc:
        raise SystemExit(f"rerank batch: error: {exc}") from None
    out.write(json.dumps(summary) + "\n")
    return 0
