"""The engine process alone on ``sim:null``: its CPU a pair, without the front ends' noise.

The whole server's figure for the engine (``rerank-bench --host-path``, row 10) moves 15-40% from one
hour to the next on a 2-core machine, because the tokenizer threads beside it evict its caches. Here the
front ends are played by this process: pre-tokenized requests of 20 pairs (200-400 tokens each) over
real engine connections, paced as two tokenizer threads would pace them. Figures repeat within 5%, so
a change to the engine's loop or stages can be measured in alternating rounds.

    .venv/bin/python scripts/engine_alone_bench.py MODEL_DIR [--connections 2] [--callers 64] [--seconds 10]

MODEL_DIR: a cross-encoder directory, e.g. the one ``rerank-bench --model-dir DIR`` builds.
``--hogs N`` starts N processes that sweep 64 MB arrays beside it (what the tokenizers do to its caches).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import os
import random
import tempfile
import time

import numpy as np

from rerank_server.batching import Claim
from rerank_server.bench.hostpath import cpu_by_role
from rerank_server.cli import config_from_args
from rerank_server.engine.link import EngineLink, RemoteBatcher
from rerank_server.models.encoding import Encoded
from rerank_server.processes.engine import engine_main


def _hog(seconds: float) -> None:
    array = np.random.rand(8_000_000)
    end = time.time() + seconds
    while time.time() < end:
        array.sum()
        time.sleep(0.0005)


async def drive(path: str, connections: int, callers: int, seconds: float, tokenize_s: float, engine: int) -> None:
    """Closed-loop callers over ``connections`` to the engine at ``path``; print its CPU a pair."""
    links = [await EngineLink.connect(path) for _ in range(connections)]
    batchers = [RemoteBatcher(link, links[0].models[0].name) for link in links]
    rng = random.Random(0)
    requests = [
        [Encoded(np.arange(n, dtype=np.int32) % 30000, (np.arange(n) > n // 3).astype(np.int8), False, 0) for n in (rng.randint(200, 400) for _ in range(20))]
        for _ in range(64)
    ]
    tokenizers = asyncio.Semaphore(2)  # two tokenizer threads' pace
    pairs = 0

    async def caller(index: int) -> None:
        nonlocal pairs
        batcher = batchers[index % connections]
        for turn in itertools.count(index):
            items = requests[turn % len(requests)]
            async with tokenizers:
                await asyncio.sleep(tokenize_s)
            costs = [len(item.ids) for item in items]
            reservation = await batcher.admit(len(items), Claim(), sum(costs))
            await batcher.submit(items, costs, reservation=reservation)
            pairs += len(items)

    tasks = [asyncio.create_task(caller(i)) for i in range(callers)]
    await asyncio.sleep(2.0)  # warm-up
    before, pairs_before, start = cpu_by_role(engine), pairs, time.monotonic()
    await asyncio.sleep(seconds)
    after, scored, wall = cpu_by_role(engine), pairs - pairs_before, time.monotonic() - start
    for task in tasks:
        task.cancel()
    per_pair = {role: (after[role] - before.get(role, 0.0)) / scored * 1e6 for role in after}
    # The engine is the only process measured, so cpu_by_role calls its event loop the one-process main thread.
    shown = ", ".join(f"{role.replace('main thread (front end and engine in one)', 'event loop')} {us:.1f}" for role, us in sorted(per_pair.items()) if us)
    print(f"{scored / wall:.0f} pairs/s; engine process CPU a pair {sum(per_pair.values()):.1f} us ({shown})", flush=True)


def main() -> None:
    """Start the engine process on sim:null and drive it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a cross-encoder directory")
    parser.add_argument("--connections", type=int, default=2, help="front ends played (default 2)")
    parser.add_argument("--callers", type=int, default=64, help="closed-loop callers (default 64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds after a 2 s warm-up (default 10)")
    parser.add_argument("--tokenize-s", type=float, default=0.0066, help="seconds a request holds one of two tokenizer slots (default 0.0066: about the full server's rate on a 2-core CPU)")
    parser.add_argument("--hogs", type=int, default=0, help="cache-evicting processes to run beside it (default 0)")
    args = parser.parse_args()
    config = config_from_args(["--model", f"bench=cross-encoder:{args.model_dir}", "--device", "sim:null", "--frontends", str(args.connections)])
    context = mp.get_context("spawn")
    hogs = [context.Process(target=_hog, args=(args.seconds + 30.0,), daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    path = os.path.join(tempfile.mkdtemp(), "engine.sock")
    control, child = context.Pipe()
    engine = context.Process(target=engine_main, args=(config, path, child), name="rerank-engine")
    engine.start()
    message = control.recv()
    if message[0] != "ready":
        raise SystemExit(f"the engine did not start: {message}")
    try:
        asyncio.run(drive(path, args.connections, args.callers, args.seconds, args.tokenize_s, engine.pid or 0))
    finally:
        control.close()
        engine.join(10)
        for process in [engine, *hogs]:
            process.kill()


if __name__ == "__main__":
    main()
