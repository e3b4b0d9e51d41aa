"""``rerank loadtest``: the command line around the runner, report and plots."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, replace
from typing import Any, TextIO

from ..aio import AsyncRerankClient
from ..channel import Tls, parse_headers
from ..cli import add_connection, tls_of
from ..types import RerankError
from ..version import add_version
from .callers import Caller, HttpCaller, StreamCaller, UnaryCaller, http_base_url, http_client_settings
from .corpus import Corpus
from .plot import plot_sweep, plot_timeline
from .progress import ProgressBar
from .report import Report, build_report, render
from .runner import RequestPool, RunResult, closed_loop, open_loop
from .sweep import saturation_step, sweep_rates
from .traffic import TENANT_HEADER, TrafficClass, parse_traffic

# Open loop without deadlines: how long to wait for the last answers after the last send.
DRAIN_S = 120.0
from .workload import Workload, parse_range


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``loadtest`` on the ``rerank`` subcommand parser."""
    p = sub.add_parser(
        "loadtest",
        help="drive a running server with closed- or open-loop load and report throughput and latency",
        description=(
            "Load-test one or more Reranker servers. Closed loop (--concurrency N): N callers, each sending its "
            "next request when its last one returns. Open loop (--rate R): Poisson arrivals at R requests/s "
            "whatever the server does, so a slow server cannot hide its queueing delay. Stops by itself after "
            "--duration seconds or --requests requests."
        ),
        epilog=(
            "examples:\n"
            "  rerank loadtest --target 127.0.0.1:50051 --concurrency 16 --duration 30\n"
            "  rerank loadtest --target a:50051 --target b:50051 --rate 40 --duration 60 --plot latency.png\n"
            "  rerank loadtest --target 127.0.0.1:50051 --sweep --rate 60 --duration 10 --plot sweep.png --json sweep.json\n"
            "  rerank loadtest --target 127.0.0.1:50051 --duration 30 --traffic users:rate=2,documents=10-20,timeout=2 \\\n"
            "      --traffic backfill:concurrency=16,documents=50-100,priority=bulk,tenant=etl"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    p.add_argument("--target", action="append", default=[], help="server HOST:PORT; repeat to spread requests round-robin")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int, help="closed loop: this many callers (default 8)")
    load.add_argument("--rate", type=float, help="open loop: requests per second (Poisson arrivals); with --sweep, the top rate")
    p.add_argument("--duration", type=float, help="seconds to send for (default 10 unless --requests is given)")
    p.add_argument("--requests", type=int, help="stop after sending this many requests")
    p.add_argument(
        "--connections",
        type=int,
        default=1,
        help="gRPC connections to each target, calls spread over them: reach every front end of a server run with --frontends N (default %(default)s)",
    )
    p.add_argument("--stream", action="store_true", help="send the requests over RerankStream (one stream per target) instead of unary Rerank")
    p.add_argument(
        "--protocol",
        choices=("grpc", "http"),
        default="grpc",
        help="grpc (default), or http: POST /v1/rerank of the server's HTTP API (--target is its --http-port, or a URL)",
    )
    p.add_argument("--documents", default="10-100", help="documents per request: a count or a range LOW-HIGH (default %(default)s)")
    p.add_argument("--corpus", help="file with one document per line (default: built-in English text of 20-400 tokens)")
    p.add_argument("--top-k", type=int, default=0, help="top_k of every request (default: all)")
    p.add_argument("--model", default="", help="model name on the server (default: its default model)")
    p.add_argument("--error-fraction", type=float, default=0.0, help="share of requests sent invalid on purpose (empty query), to check error handling under load")
    p.add_argument(
        "--timeout",
        type=float,
        help=(
            "deadline of each request in seconds (default: none, so the server's own default deadline applies and "
            "the server decides when it is overloaded, as for most callers)"
        ),
    )
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        help=(
            "UNAVAILABLE retries per call, over the targets round-robin, as RerankClient makes them; 0 to see raw failures "
            "(unary calls; default %(default)s)"
        ),
    )
    p.add_argument("--drain", type=float, help=f"open loop: seconds to wait for answers after the last send (default: --timeout, else {DRAIN_S:g})")
    p.add_argument("--seed", type=int, default=0, help="random seed for requests and arrivals (default %(default)s)")
    p.add_argument("--json", metavar="FILE", help="write the whole report as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw latency percentiles over time (with --sweep: latency against throughput)")
    p.add_argument(
        "--traffic",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help=(
            "a class of traffic to run at the same time as the others (repeat), reported apart: keys concurrency=N or "
            "rate=R, documents=LOW-HIGH, priority=interactive|bulk, tenant=NAME (sent as x-rerank-tenant), timeout=SECONDS; "
            "e.g. --traffic users:rate=4,documents=5-20,timeout=1 --traffic backfill:concurrency=16,priority=bulk,tenant=etl"
        ),
    )
    p.add_argument("--sweep", action="store_true", help="run open-loop steps of rising rate up to --rate and mark where the server saturates")
    p.add_argument("--sweep-steps", type=int, default=6, help="steps of a sweep (default %(default)s)")
    add_connection(p)
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=run)
    return p


def _fail(message: str) -> SystemExit:
    return SystemExit(f"rerank loadtest: error: {message}")


def _validate(args: argparse.Namespace) -> Workload:
    if not args.target:
        raise _fail("give at least one --target HOST:PORT of a running rerank-server")
    if args.rate is not None and args.rate <= 0:
        raise _fail(f"--rate must be more than 0 requests per second, got {args.rate:g}")
    if args.concurrency is not None and args.concurrency < 1:
        raise _fail(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.connections < 1:
        raise _fail(f"--connections must be at least 1, got {args.connections}")
    if args.sweep and args.rate is None:
        raise _fail("--sweep needs --rate: the top rate of the sweep (find it with a closed-loop run first)")
    if args.duration is not None and args.duration <= 0:
        raise _fail("--duration must be positive")
    if args.requests is not None and args.requests < 1:
        raise _fail("--requests must be at least 1")
    if args.plot:  # before the run, not after it
        from .plot import pyplot

        pyplot()  # exits with the install hint where matplotlib is missing
    if args.stream and args.protocol == "http":
        raise _fail("--stream is a gRPC stream; leave it out with --protocol http")
    if args.traffic:
        if args.sweep or args.stream or args.rate is not None or args.concurrency is not None:
            raise _fail("--traffic classes set their own load: leave out --rate, --concurrency, --sweep and --stream")
        try:
            [parse_traffic(t) for t in args.traffic]
        except ValueError as exc:
            raise _fail(str(exc)) from None
    if args.retries < 0:
        raise _fail(f"--retries must be 0 or more, got {args.retries}")
    if not 0.0 <= args.error_fraction <= 1.0:
        raise _fail("--error-fraction must be between 0 and 1")
    if args.duration is None and args.requests is None:
        args.duration = 10.0
    try:
        corpus = Corpus.from_file(args.corpus) if args.corpus else Corpus.builtin()
        documents = parse_range(args.documents)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    return Workload(corpus, documents, args.top_k, args.model, args.error_fraction)


async def _preflight(targets: list[str], metadata: list[tuple[str, str]], token: str | None, tls: Tls | None) -> None:
    """Fail at once, with the reason, if a target is unreachable or not serving."""
    for target in targets:
        async with AsyncRerankClient(target, timeout=5.0, metadata=metadata, token=token, tls=tls) as client:
            try:
                status = await client.health()
            except RerankError as exc:
                raise _fail(exc.details) from None
        if status != "SERVING":
            raise _fail(f"{target} reports {status}: its models are not loaded yet (see `rerank health --wait`)")


async def _preflight_http(targets: list[str], metadata: list[tuple[str, str]], token: str | None, tls: Tls | None) -> None:
    """The HTTP API's /health of every target, before the run."""
    try:
        import httpx
    except ImportError:
        raise _fail("--protocol http needs httpx: pip install '.[http]' in the rerank-grpc checkout") from None
    for target in targets:
        try:
            async with httpx.AsyncClient(base_url=http_base_url(target, tls), timeout=5.0, **http_client_settings(metadata, token, tls)) as http:
                response = await http.get("/health")
        except httpx.HTTPError as exc:
            raise _fail(f"cannot reach {http_base_url(target)}: is rerank-server running there with --http-port? ({exc})") from None
        if response.status_code != 200:
            raise _fail(f"{http_base_url(target)}/health answered {response.status_code}: its models are not loaded yet, or it is shutting down")


async def _one_run(args: argparse.Namespace, workload: Workload, caller: Caller, rate: float | None, label: str) -> RunResult:
    bar = None if args.quiet else ProgressBar(label, args.duration, args.requests)
    start = bar.start if bar else None
    pool = RequestPool(workload, args.seed)
    try:
        if rate is not None:
            drain = args.drain if args.drain is not None else args.timeout if args.timeout is not None else DRAIN_S
            return await open_loop(
                caller, pool.next, rate=rate, duration=args.duration, requests=args.requests, drain_s=drain, seed=args.seed, on_start=start
            )
        return await closed_loop(
            caller, pool.next, concurrency=args.concurrency or 8, duration=args.duration, requests=args.requests, on_start=start
        )
    finally:
        if bar:
            bar.close()


async def _run(args: argparse.Namespace, workload: Workload, out: TextIO) -> int:
    try:
        metadata = parse_headers(args.header)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    caller: Caller
    token, tls = args.token, tls_of(args)
    if args.protocol == "http":
        await _preflight_http(args.target, metadata, token, tls)
    else:
        await _preflight(args.target, metadata, token, tls)
    if args.traffic:
        return await _run_traffic(args, workload, metadata, token, tls, out)
    if args.protocol == "http":
        try:
            caller = HttpCaller(args.target, args.timeout, metadata, token, tls)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    else:
        if args.stream:
            caller = StreamCaller(args.target, args.timeout, metadata, token, tls)
        else:
            caller = UnaryCaller(args.target, args.timeout, metadata, args.retries, token, tls, args.connections)
    try:
        if args.sweep:
            steps: list[Report] = []
            for rate in sweep_rates(args.rate, args.sweep_steps):
                run = await _one_run(args, workload, caller, rate, f"{rate:g} req/s")
                steps.append(build_report(run, args.target))
                out.write(render(steps[-1]) + "\n\n")
            knee = saturation_step(steps)
            out.write(
                f"saturation: from {steps[knee].offered_rate:g} req/s offered (~{steps[knee].requests_per_s:.1f} req/s achieved)\n"
                if knee is not None
                else "saturation: not reached; sweep to a higher --rate\n"
            )
            if args.json:
                with open(args.json, "w", encoding="utf-8") as handle:
                    json.dump({"steps": [s.to_dict() for s in steps], "saturation_step": knee}, handle, indent=2)
            if args.plot:
                plot_sweep(steps, knee, args.plot)
            return 0
        run = await _one_run(args, workload, caller, args.rate, "loadtest")
        report = build_report(run, args.target)
        out.write(render(report) + "\n")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(report.to_dict(), handle, indent=2)
        if args.plot:
            plot_timeline(report, args.plot)
        return 0
    finally:
        await caller.aclose()


async def _run_traffic(args: argparse.Namespace, base: Workload, metadata: list[tuple[str, str]], token: str | None, tls: Tls | None, out: TextIO) -> int:
    """Every --traffic class at once, each with its own caller (its tenant header), reported apart."""
    classes = [parse_traffic(t) for t in args.traffic]

    def caller_for(traffic: TrafficClass) -> Caller:
        meta = [*metadata, *([(TENANT_HEADER, traffic.tenant)] if traffic.tenant else [])]
        timeout = traffic.timeout or args.timeout
        if args.protocol == "http":
            return HttpCaller(args.target, timeout, meta, token, tls)
        return UnaryCaller(args.target, timeout, meta, args.retries, token, tls, args.connections)

    try:
        callers = [caller_for(t) for t in classes]
    except ValueError as exc:  # --protocol http without httpx
        raise _fail(str(exc)) from None

    async def one(index: int, traffic: TrafficClass, caller: Caller) -> RunResult:
        workload = replace(base, documents=traffic.documents, priority=traffic.priority, error_fraction=0.0)
        pool = RequestPool(workload, args.seed + index)
        if traffic.rate is not None:
            drain = args.drain if args.drain is not None else (traffic.timeout or args.timeout or DRAIN_S)
            return await open_loop(caller, pool.next, rate=traffic.rate, duration=args.duration, requests=args.requests, drain_s=drain, seed=args.seed + index)
        assert traffic.concurrency is not None
        return await closed_loop(caller, pool.next, concurrency=traffic.concurrency, duration=args.duration, requests=args.requests)

    try:
        runs = await asyncio.gather(*(one(i, t, c) for i, (t, c) in enumerate(zip(classes, callers))))
    finally:
        await asyncio.gather(*(c.aclose() for c in callers))
    reports = {t.name: build_report(run, args.target) for t, run in zip(classes, runs)}
    for traffic in classes:
        out.write(f"== {traffic.name}: {traffic.priority}, caller {traffic.tenant or '-'} ==\n{render(reports[traffic.name])}\n\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"classes": {t.name: {"traffic": asdict(t), **reports[t.name].to_dict()} for t in classes}}, handle, indent=2)
    if args.plot:
        stem, dot, suffix = args.plot.rpartition(".")
        for traffic in classes:
            plot_timeline(reports[traffic.name], f"{stem}-{traffic.name}.{suffix}" if dot else f"{args.plot}-{traffic.name}")
    return 0


def run(args: argparse.Namespace, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin) -> int:
    """Run ``rerank loadtest`` with parsed arguments."""
    workload = _validate(args)
    return asyncio.run(_run(args, workload, out))
