"""Pacing requests: a closed loop of N callers, or an open loop of Poisson arrivals at a fixed rate."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .callers import Caller, Sample
from .workload import RequestSpec, Workload

# Requests are drawn up front and reused, so building them costs the generator nothing mid-run:
# on a small machine the load generator shares the CPU with the server it measures.
POOL_SIZE = 256


@dataclass
class LiveCounters:
    """What the progress display reads while the run goes on."""

    sent: int = 0
    done: int = 0
    errors: int = 0


@dataclass(frozen=True)
class RunResult:
    """Everything one run recorded."""

    mode: str  # "closed" or "open"
    samples: list[Sample]
    wall_s: float  # from the first send until the last answer (or the drain gave up)
    send_s: float  # from the first send until the last send
    sent: int
    unfinished: int  # still unanswered when an open-loop drain gave up
    concurrency: int | None = None
    rate: float | None = None


@dataclass
class _Pool:
    specs: list[RequestSpec]
    rng: random.Random
    counters: LiveCounters = field(default_factory=LiveCounters)

    @classmethod
    def draw(cls, workload: Workload, seed: int) -> _Pool:
        rng = random.Random(seed)
        return cls([workload.draw(rng) for _ in range(POOL_SIZE)], rng)

    def next(self) -> RequestSpec:
        return self.specs[self.rng.randrange(len(self.specs))]


def _record(counters: LiveCounters, samples: list[Sample], sample: Sample) -> None:
    samples.append(sample)
    counters.done += 1
    if sample.code != "OK":
        counters.errors += 1


async def closed_loop(
    caller: Caller,
    workload: Workload,
    *,
    concurrency: int,
    duration: float | None,
    requests: int | None,
    seed: int = 0,
    on_start: Callable[[LiveCounters], None] | None = None,
) -> RunResult:
    """``concurrency`` callers, each sending its next request when its last one returns.

    Stops after ``duration`` seconds or ``requests`` requests, whichever comes first.
    """
    pool = _Pool.draw(workload, seed)
    samples: list[Sample] = []
    t_start = time.perf_counter()
    if on_start:
        on_start(pool.counters)

    def more() -> bool:
        if requests is not None and pool.counters.sent >= requests:
            return False
        return duration is None or time.perf_counter() - t_start < duration

    async def worker() -> None:
        while more():
            pool.counters.sent += 1
            _record(pool.counters, samples, await caller.call(pool.next(), time.perf_counter() - t_start))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t_start
    return RunResult("closed", samples, wall, wall, pool.counters.sent, 0, concurrency=concurrency)


async def open_loop(
    caller: Caller,
    workload: Workload,
    *,
    rate: float,
    duration: float | None,
    requests: int | None,
    drain_s: float,
    seed: int = 0,
    on_start: Callable[[LiveCounters], None] | None = None,
) -> RunResult:
    """Requests arrive as a Poisson process at ``rate`` per second, whether or not earlier ones returned.

    A slow server therefore cannot slow the senders down and hide its queueing delay (coordinated
    omission). After the last arrival, answers are awaited for up to ``drain_s`` seconds; what is still
    unanswered then is cancelled and counted as unfinished.
    """
    pool = _Pool.draw(workload, seed)
    arrivals = random.Random(seed + 1)
    samples: list[Sample] = []
    in_flight: set[asyncio.Task[None]] = set()
    t_start = time.perf_counter()
    if on_start:
        on_start(pool.counters)

    async def one(spec: RequestSpec, at: float) -> None:
        _record(pool.counters, samples, await caller.call(spec, at))

    at = 0.0
    last_send = 0.0
    while True:
        at += arrivals.expovariate(rate)
        if (duration is not None and at >= duration) or (requests is not None and pool.counters.sent >= requests):
            break
        delay = at - (time.perf_counter() - t_start)
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(pool.next(), at))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        pool.counters.sent += 1
        last_send = time.perf_counter() - t_start
    unfinished = 0
    if in_flight:
        _, pending = await asyncio.wait(set(in_flight), timeout=drain_s)
        unfinished = len(pending)
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
    wall = time.perf_counter() - t_start
    return RunResult("open", samples, wall, last_send, pool.counters.sent, unfinished, rate=rate)
