"""Timed runs: the model in-process, and the server driven over loopback by the load generator."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rerank_client.loadtest.callers import HttpCaller, UnaryCaller
from rerank_client.loadtest.report import Report, build_report
from rerank_client.loadtest.runner import closed_loop, open_loop
from rerank_client.loadtest.workload import RequestSpec

from ..process import ServerProcess
from .model import flops_per_pair


@dataclass(frozen=True)
class Throughput:
    """Pairs scored over a timed span, and the useful model FLOPs they took."""

    label: str
    pairs: int
    tokens: int
    seconds: float
    flops: float

    @property
    def pairs_per_s(self) -> float:
        """Pairs per second."""
        return self.pairs / self.seconds

    @property
    def gflops_per_s(self) -> float:
        """Useful (unpadded) model GFLOP per second."""
        return self.flops / self.seconds / 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "label": self.label,
            "pairs": self.pairs,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "pairs_per_s": round(self.pairs_per_s, 2),
            "gflops_per_s": round(self.gflops_per_s, 2),
        }


BatchRun = Callable[[list[tuple[str, str]]], Any]


def predict_batches(model: Any) -> BatchRun:
    """One ``CrossEncoder.predict`` call per batch (its default activation, as a user would call it)."""
    return lambda batch: model.predict(batch, batch_size=len(batch), show_progress_bar=False)


def scorer_batches(scorer: Any) -> BatchRun:
    """A served scorer on text pairs, tokenizing each batch first as ``predict`` does: the same work."""
    from ..models.inprocess import score_text_pairs

    return lambda batch: score_text_pairs(scorer, batch)


def inprocess(
    run: BatchRun, pairs: Sequence[tuple[str, str]], lengths: Sequence[int], batch_size: int, label: str, shape: dict[str, int]
) -> tuple[Throughput, np.ndarray]:
    """``run`` over ``pairs`` in batches of ``batch_size`` (after a warm-up batch), scores in input order.

    Pairs are batched in order of token length, as ``predict`` itself sorts a long input, so every
    contender pads alike. ``shape`` is the model's layers, hidden and intermediate sizes, for FLOPs.
    """
    order = sorted(range(len(pairs)), key=lambda i: lengths[i])
    run([pairs[i] for i in order[:batch_size]])
    scores = np.empty(len(pairs), dtype=np.float64)
    start = time.perf_counter()
    for at in range(0, len(order), batch_size):
        chunk = order[at : at + batch_size]
        scores[chunk] = np.asarray(run([pairs[i] for i in chunk]), dtype=np.float64).reshape(-1)
    seconds = time.perf_counter() - start
    flops = sum(flops_per_pair(n, **shape) for n in lengths)
    return Throughput(label, len(pairs), sum(lengths), seconds, flops), scores


def server_env() -> dict[str, str]:
    """The server process's environment: offline, quiet."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false", "RERANK_LOG_LEVEL": "WARNING"}


@contextlib.contextmanager
def running_server(model_dir: Path, *flags: str) -> Iterator[str]:
    """A ``rerank-server`` process serving ``model_dir`` as "bench"; yields its target."""
    with ServerProcess("--model", f"bench=cross-encoder:{model_dir}", *flags, env=server_env(), ready_timeout=300) as server:
        yield server.target


def free_port() -> int:
    """A loopback port free right now (for a server flag that takes a port number)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def drive_closed(
    target: str,
    specs: Sequence[RequestSpec],
    concurrency: int,
    duration: float,
    label: str,
    mean_pair_flops: float,
    mean_pair_tokens: float,
    protocol: str = "grpc",
    connections: int = 1,
) -> tuple[Throughput, Report]:
    """Closed-loop load cycling through ``specs`` for ``duration`` seconds (after one warm-up request);
    ``protocol`` http drives the HTTP API's /v1/rerank at ``target`` instead of gRPC; gRPC calls are
    spread over ``connections`` connections (to reach every front end of a server)."""

    async def go() -> Any:
        caller: Any = HttpCaller([target], timeout=600.0) if protocol == "http" else UnaryCaller([target], timeout=600.0, connections=connections)
        try:
            await caller.call(specs[0], 0.0)  # warm-up: first-call costs are not throughput
            cycle = itertools.cycle(specs)
            return await closed_loop(caller, lambda: next(cycle), concurrency=concurrency, duration=duration, requests=None)
        finally:
            await caller.aclose()

    run = asyncio.run(go())
    report = build_report(run, [target])
    pairs = sum(s.pairs for s in run.samples if s.code == "OK")
    throughput = Throughput(label, pairs, round(pairs * mean_pair_tokens), run.wall_s, pairs * mean_pair_flops)
    return throughput, report


def drive_open(target: str, specs: Sequence[RequestSpec], rate: float, duration: float, seed: int) -> Report:
    """Open-loop Poisson load at ``rate`` requests/s for ``duration`` seconds."""

    async def go() -> Any:
        caller = UnaryCaller([target], timeout=600.0)
        try:
            cycle = itertools.cycle(specs)
            return await open_loop(caller, lambda: next(cycle), rate=rate, duration=duration, requests=None, drain_s=120.0, seed=seed)
        finally:
            await caller.aclose()

    return build_report(asyncio.run(go()), [target])


def ranking_agreement(reference: np.ndarray, other: np.ndarray, sizes: Sequence[int], k: int = 10) -> dict[str, float]:
    """Mean per-request Spearman correlation and top-``k`` overlap of two score vectors over the same pairs."""
    from scipy.stats import spearmanr

    rhos, overlaps = [], []
    start = 0
    for size in sizes:
        a, b = reference[start : start + size], other[start : start + size]
        start += size
        if size < 2:
            continue
        rho = spearmanr(a, b).statistic
        rhos.append(1.0 if np.isnan(rho) else float(rho))
        top = min(k, size)
        overlaps.append(len(set(np.argsort(-a)[:top]) & set(np.argsort(-b)[:top])) / top)
    return {"spearman": float(np.mean(rhos)), f"top{k}_overlap": float(np.mean(overlaps))}


def encode_pairs(scorer: Any, pairs: Sequence[tuple[str, str]]) -> list[Any]:
    """The model inputs of ``pairs``, tokenized ahead (for forward-only runs)."""
    from ..models.inprocess import plan_text_pairs

    return plan_text_pairs(scorer, pairs).items


def length_batches(items: Sequence[Any], batch_size: int, max_tokens: int) -> list[list[Any]]:
    """``items`` sorted by length and cut into runs of at most ``batch_size`` items and ``max_tokens``
    padded tokens: the best case for padding, as a ceiling should be."""
    ordered = sorted(items, key=lambda item: item.cost)
    batches: list[list[Any]] = []
    for item in ordered:
        if batches and len(batches[-1]) < batch_size and (len(batches[-1]) + 1) * item.cost <= max_tokens:
            batches[-1].append(item)
        else:
            batches.append([item])
    return batches


def forward_ceiling(scorer: Any, items: Sequence[Any], batch_size: int, max_tokens: int) -> float:
    """Pairs/s of the network alone on pre-tokenized, length-sorted, pre-collated batches.

    Every batch is collated (and on a GPU copied to it) before the clock starts, all forwards are
    queued back to back and fetched after: what the device can do with no server around it.
    """
    batches = length_batches(items, batch_size, max_tokens)
    inputs = [scorer.collate(batch) for batch in batches]
    scorer.fetch(scorer.forward(inputs[-1]))  # warm-up: kernels chosen, memory pooled
    start = time.perf_counter()
    outputs = [scorer.forward(batch) for batch in inputs]
    for output in outputs:
        scorer.fetch(output)
    return len(items) / (time.perf_counter() - start)


def tokenizer_throughput(encoder: Any, pairs: Sequence[tuple[str, str]], threads: int) -> float:
    """Pairs/s tokenized and built into model inputs by ``threads`` threads, in the engine's chunks."""
    from concurrent.futures import ThreadPoolExecutor

    from ..engine.pool import CHUNK_TEXTS

    def work(chunk: Sequence[tuple[str, str]]) -> int:
        ids = encoder.ids([t for pair in chunk for t in pair])
        return len([encoder.pair(ids[i], ids[i + 1]) for i in range(0, len(ids), 2)])

    chunks = [pairs[at : at + CHUNK_TEXTS // 2] for at in range(0, len(pairs), CHUNK_TEXTS // 2)]
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        done = sum(pool.map(work, chunks))
        seconds = time.perf_counter() - start
    return done / seconds


@dataclass(frozen=True)
class TrafficRun:
    """One class of open-loop traffic for :func:`drive_classes`."""

    label: str
    specs: Sequence[RequestSpec]
    rate: float  # requests a second
    priority: str = "interactive"
    tenant: str = ""
    timeout: float = 600.0  # each request's deadline


def drive_classes(target: str, runs: Sequence[TrafficRun], duration: float, seed: int = 0) -> dict[str, tuple[Report, Any]]:
    """Every class at once, in open loop for ``duration`` seconds (no retries: refusals are counted);
    each class's report and raw run (its samples, refused ones included)."""
    from dataclasses import replace

    async def go() -> Any:
        callers = [UnaryCaller([target], timeout=r.timeout, metadata=[("x-rerank-tenant", r.tenant)] if r.tenant else [], retries=0) for r in runs]

        async def one(index: int, run: TrafficRun, caller: UnaryCaller) -> Any:
            cycle = itertools.cycle([replace(spec, priority=run.priority) for spec in run.specs])
            return await open_loop(caller, lambda: next(cycle), rate=run.rate, duration=duration, requests=None, drain_s=120.0, seed=seed + index)

        try:
            return await asyncio.gather(*(one(i, r, c) for i, (r, c) in enumerate(zip(runs, callers))))
        finally:
            await asyncio.gather(*(c.aclose() for c in callers))

    results = asyncio.run(go())
    return {r.label: (build_report(result, [target]), result) for r, result in zip(runs, results)}
