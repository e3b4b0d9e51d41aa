"""``rerank calibrate``: fit a model's raw scores to P(relevant) on labelled pairs, and write the file a
server serves calibrated scores from (``rerank-server --calibration NAME=FILE``)."""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from ..channel import parse_headers
from ..cli import add_connection, tls_of
from ..types import RerankError
from ..version import add_version, version
from .fitting import BINS, METHODS, FitError, FittedMap, Quality, check_labels, check_scores, fit, held_out
from .labels import LabelError, LabelledPairs, read_labelled
from .scoring import LocalScorer, PairScorer, ScoredModel, ServerScorer, score_all

FORMAT = "rerank-calibration/1"  # what rerank-server reads (rerank_server.models.calibration)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``calibrate`` on the ``rerank`` subcommand parser."""
    p = sub.add_parser(
        "calibrate",
        help="fit a model's scores to P(relevant) on labelled pairs, for calibrated scores people can threshold",
        description=(
            "Score labelled (query, document) pairs with a model, fit a monotone map from its raw score to the probability "
            "that a pair is relevant (Platt scaling or isotonic regression, with scikit-learn), report how well calibrated "
            "the result is on pairs held out from fitting (expected calibration error and Brier score, against the sigmoid "
            "of the raw score), and write the calibration file rerank-server serves NORMALIZATION_CALIBRATED from. The "
            "ranking never changes: the map is monotone."
        ),
        epilog=(
            "examples:\n"
            "  rerank calibrate examples/labelled-pairs.jsonl --local bundled -o minilm.calibration.json\n"
            "  rerank calibrate labels.tsv --target 127.0.0.1:50051 --model ce --method isotonic --plot reliability.png\n"
            "  rerank calibrate qrels/test.tsv --queries queries.jsonl --corpus corpus.jsonl --target 127.0.0.1:50051\n"
            "then: rerank-server --model ce=DIR --calibration ce=ce.calibration.json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    p.add_argument(
        "data",
        help=(
            "labelled pairs: .jsonl ({\"query\", \"document\", \"label\"} a line, or {\"query\", \"documents\", \"labels\"}), "
            ".tsv (query<TAB>document<TAB>label), or qrels with --queries and --corpus; labels 0/1 or graded 0-3"
        ),
    )
    p.add_argument("--queries", help="with qrels as DATA: the queries by id (BEIR queries.jsonl, or id<TAB>text)")
    p.add_argument("--corpus", help="with qrels as DATA: the documents by id (BEIR corpus.jsonl, or id<TAB>text)")
    p.add_argument("--target", help="score with a model of this rerank-server (HOST:PORT)")
    p.add_argument("--model", default="", help="with --target: the model's name there (default: the server's default model)")
    p.add_argument("--local", metavar="SOURCE", help="score in this process instead: a model directory, a hub id, or 'bundled' (needs the server extra)")
    p.add_argument("--device", default="auto", help="with --local: where the model runs (default %(default)s)")
    p.add_argument("--dtype", default="float32", help="with --local: the precision it runs at (default %(default)s)")
    p.add_argument("--instruction", default="", help="the instruction pairs are scored with, for an instruction-following reranker")
    p.add_argument("--method", choices=METHODS, default="platt", help="Platt scaling (smooth, 2 parameters) or isotonic regression (any monotone shape, needs more data) (default %(default)s)")
    p.add_argument("--folds", type=int, default=5, help="folds, by query, that held-out quality is measured over (default %(default)s)")
    p.add_argument(
        "--relevant-from",
        type=float,
        default=None,
        help="the label from which a pair counts as relevant (default: 1 for 0/1 labels, 2 for graded ones, as TREC's binary measures)",
    )
    p.add_argument("-o", "--output", help="the calibration file to write (default: MODEL.calibration.json)")
    p.add_argument("--plot", metavar="PNG", help="also draw a reliability diagram, before and after (needs matplotlib: '.[plot]')")
    p.add_argument("--json", action="store_true", help="print the calibration file's content instead of the report")
    p.add_argument("--timeout", type=float, default=300.0, help="with --target: seconds per Score call (default %(default)s)")
    add_connection(p)
    p.set_defaults(run=run)
    return p


def calibration_document(model: ScoredModel, fitted: FittedMap, data: LabelledPairs, relevant: list[int], relevant_from: float, quality: Quality) -> dict[str, Any]:
    """The calibration file's content: what a server reads (format, model fingerprint, method, parameters) and
    what people and tools read (the data it was fitted on, its held-out quality)."""
    return {
        "format": FORMAT,
        "model": {"name": model.name, "source": model.source, "kind": model.kind, "fingerprint": model.fingerprint, "dtype": model.dtype, "device": model.device},
        "input": "the model's raw score (NORMALIZATION_RAW)",
        "method": fitted.method,
        "parameters": fitted.parameters,
        "data": {
            "file": data.name,
            "sha256": data.sha256,
            "pairs": len(relevant),
            "relevant": sum(relevant),
            "queries": len({q for q, _ in data.pairs}),
            "relevant_from": relevant_from,
        },
        "quality": {"evaluation": quality.evaluation, "bins": BINS, "sigmoid": quality.before.as_dict(), "calibrated": quality.after.as_dict()},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "by": f"rerank calibrate (rerank-grpc {version()})",
    }


def report(document: dict[str, Any], output: str) -> str:
    """The human summary of a calibration: data, held-out figures, where it was written and how to serve it."""
    model, data, quality = document["model"], document["data"], document["quality"]
    before, after = quality["sigmoid"], quality["calibrated"]
    return "\n".join(
        [
            f"calibrated {model['name']} ({model['kind']}, {model['fingerprint'][:19]}...) with {document['method']} on {data['file']}: "
            f"{data['pairs']} pairs, {data['relevant']} relevant (label >= {data['relevant_from']:g}), {data['queries']} queries",
            f"held out ({quality['evaluation']}):{'ECE':>12}{'Brier':>9}",
            f"  {'sigmoid of the raw score':<52}{before['ece']:>7.3f}{before['brier']:>9.3f}",
            f"  {'calibrated':<52}{after['ece']:>7.3f}{after['brier']:>9.3f}",
            f"wrote {output}; serve it with: rerank-server --model {model['name']}={model['source']} --calibration {model['name']}={output}",
        ]
    )


def _default_output(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip("/").rsplit("/", 1)[-1]) + ".calibration.json"


def _scorer(args: argparse.Namespace) -> PairScorer:
    if args.local:
        return LocalScorer(args.local, args.device, args.dtype, args.instruction)
    from ..client import RerankClient

    client = RerankClient(args.target, timeout=args.timeout, metadata=parse_headers(args.header), token=args.token, tls=tls_of(args))
    try:
        return ServerScorer(client, args.model, args.instruction)
    except BaseException:
        client.close()
        raise


def run(args: argparse.Namespace, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin) -> int:
    """Run ``rerank calibrate`` with parsed arguments."""
    if bool(args.target) == bool(args.local):
        raise SystemExit("rerank calibrate: error: give either --target HOST:PORT (a server serving the model) or --local SOURCE")
    if args.folds < 2:
        raise SystemExit("rerank calibrate: error: --folds must be 2 or more (quality is measured on pairs held out from fitting)")
    try:
        data = read_labelled(args.data, args.queries, args.corpus)
        relevant_from = args.relevant_from if args.relevant_from is not None else (2.0 if data.graded else 1.0)
        relevant = data.relevant(relevant_from)
        check_labels(relevant, args.folds)  # before any pair is scored
        scorer = _scorer(args)
        try:
            raw = score_all(scorer, data.pairs)
        finally:
            scorer.close()
        check_scores(raw)
        fitted = fit(raw, relevant, args.method)
        quality = held_out(raw, relevant, [q for q, _ in data.pairs], args.method, args.folds)
    except (LabelError, FitError, ValueError, OSError, RerankError) as exc:
        raise SystemExit(f"rerank calibrate: error: {exc}") from None
    output = args.output or _default_output(scorer.model.name)
    document = calibration_document(scorer.model, fitted, data, relevant, relevant_from, quality)
    Path(output).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        from .plot import plot_reliability

        plot_reliability(quality, f"{scorer.model.name}, {args.method}", args.plot)
    out.write((json.dumps(document, indent=2) if args.json else report(document, output)) + "\n")
    return 0
