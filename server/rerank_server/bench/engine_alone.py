"""The engine process alone on ``sim:null``: the pairs a second it takes, and its CPU a pair.

Its front ends are played by the measuring process: closed-loop callers sending pre-tokenized requests
over real engine connections (the wire, admission, queue, batches and stage threads are the server's
own). Unpaced, this is the ceiling of the process every front end feeds, i.e. what the host path can
hand one device when the front ends have the cores to tokenize that fast: the number issue 18 set out
to raise (one event loop for everything capped a GPU at about 7,700 pairs a second). Paced as two
tokenizer threads pace it (``tokenize_s``), its CPU a pair is what it costs in a 2-core server; there
the engine sleeps between requests and pays a wake-up (and caches gone cold) for each, so that figure
falls as the load rises.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing as mp
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..batching import Claim
from ..models.encoding import Encoded
from .cpu import cpu_by_role

def _hog(seconds: float) -> None:
    """Sweep a 64 MB array until ``seconds`` have passed: what tokenizer threads do to a neighbour's caches."""
    array = np.random.rand(8_000_000)
    end = time.time() + seconds
    while time.time() < end:
        array.sum()
        time.sleep(0.0005)


def synthetic_requests(count: int = 64, pairs: int = 20, tokens: tuple[int, int] = (200, 400), seed: int = 0) -> list[list[Encoded]]:
    """``count`` requests of ``pairs`` encoded pairs of ``tokens`` token ids each (types: 0 then 1); the
    lengths drawn as the script's earlier runs in docs/bench drew them."""
    rng = random.Random(seed)
    return [
        [Encoded(np.arange(n, dtype=np.int32) % 30000, (np.arange(n) > n // 3).astype(np.int8), False, 0) for n in (rng.randint(*tokens) for _ in range(pairs))]
        for _ in range(count)
    ]


async def _drive(path: str, requests: Sequence[Sequence[Encoded]], connections: int, callers: int, seconds: float, warmup_s: float, tokenize_s: float, engine: int) -> dict[str, Any]:
    """Closed-loop callers over ``connections`` to the engine at ``path``: pairs a second and CPU a pair by role."""
    from ..engine.link import EngineLink, RemoteBatcher

    links = [await EngineLink.connect(path) for _ in range(connections)]
    batchers = [RemoteBatcher(link, links[0].models[0].name) for link in links]
    tokenizers = asyncio.Semaphore(2)  # two tokenizer threads' pace, when paced
    pairs = 0

    async def caller(index: int) -> None:
        nonlocal pairs
        batcher = batchers[index % connections]
        for turn in itertools.count(index):
            items = requests[turn % len(requests)]
            if tokenize_s > 0:
                async with tokenizers:
                    await asyncio.sleep(tokenize_s)
            costs = [item.cost for item in items]
            reservation = await batcher.admit(len(items), Claim(), sum(costs))
            await batcher.submit(items, costs, reservation=reservation)
            pairs += len(items)

    tasks = [asyncio.create_task(caller(i)) for i in range(callers)]
    try:
        await asyncio.sleep(warmup_s)
        before, pairs_before, start = cpu_by_role(engine), pairs, time.monotonic()
        await asyncio.sleep(seconds)
        after, scored, wall = cpu_by_role(engine), pairs - pairs_before, time.monotonic() - start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in links:
            link.close()
    scored = max(scored, 1)
    per_pair = {role: round((after[role] - before.get(role, 0.0)) / scored * 1e6, 1) for role in after}
    return {"pairs_per_s": round(scored / wall, 1), "cpu_us_per_pair": per_pair, "cpu_us_per_pair_total": round(sum(per_pair.values()), 1)}


def run_engine_alone(
    model_dir: Path,
    requests: Sequence[Sequence[Encoded]],
    seconds: float,
    *,
    connections: int = 2,
    callers: int = 64,
    tokenize_s: float = 0.0,
    hogs: int = 0,
    warmup_s: float = 2.0,
) -> dict[str, Any]:
    """Start the engine process on ``sim:null`` serving the cross-encoder at ``model_dir``, drive it with
    ``requests`` (round robin) from ``callers`` closed loops over ``connections``, each request held
    ``tokenize_s`` in one of two tokenizer slots first (0: unpaced), beside ``hogs`` cache-evicting
    processes; returns its pairs a second and CPU a pair by role (the keys of ``hostpath``'s runs)."""
    from ..cli import config_from_args
    from ..processes.engine import engine_main

    config = config_from_args(["--model", f"bench=cross-encoder:{model_dir}", "--device", "sim:null", "--frontends", str(connections)])
    context = mp.get_context("spawn")
    neighbours = [context.Process(target=_hog, args=(warmup_s + seconds + 60.0,), daemon=True) for _ in range(hogs)]
    for hog in neighbours:
        hog.start()
    path = os.path.join(tempfile.mkdtemp(prefix="rerank-engine-alone-"), "engine.sock")
    control, child = context.Pipe()
    engine = context.Process(target=engine_main, args=(config, path, child), name="rerank-engine")
    engine.start()
    try:
        message = control.recv()
        if message[0] != "ready":
            raise RuntimeError(f"the engine process did not start: {message}")
        figures = asyncio.run(_drive(path, requests, connections, callers, seconds, warmup_s, tokenize_s, engine.pid or 0))
    finally:
        control.close()  # the engine's signal to drain and stop
        engine.join(30)
        for process in [engine, *neighbours]:
            process.kill()
    paced = f"paced by 2 tokenizer slots of {tokenize_s * 1e3:g} ms" if tokenize_s > 0 else "unpaced"
    return {"label": f"sim:null, engine process alone ({callers} callers, {paced})", **figures}
