"""Pacing requests: a closed loop of N callers, or an open loop of Poisson arrivals at a fixed rate."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

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


class RequestPool:
    """Requests drawn up front from a workload, then picked at random for each send."""

    def __init__(self, workload: Workload, seed: int) -> None:
        self._rng = random.Random(seed)
        self._specs = [workload.draw(self._rng) for _ in range(POOL_SIZE)]

    def next(self) -> RequestSpec:
        """The next request to send."""
        return self._specs[self._rng.randrange(len(self._specs))]


NextRequest = Callable[[], RequestSpec]


def _record(counters: LiveCounters, samples: list[Sample], sample: Sample) -> None:
    samples.append(sample)
    counters.done += 1
    if sample.code != "OK":
        counters.errors += 1


async def closed_loop(
    caller: Caller,
    next_request: NextRequest,
    *,
    concurrency: int,
    duration: float | None,
    requests: int | None,
    on_start: Callable[[LiveCounters], None] | None = None,
) -> RunResult:
    """``concurrency`` callers, each sending its next request when its last one returns.

    Stops after ``duration`` seconds or ``requests`` requests, whichever comes first.
    """
    counters = LiveCounters()
    samples: list[Sample] = []
    t_start = time.perf_counter()
    if on_start:
        on_start(counters)

    def more() -> bool:
        if requests is not None and counters.sent >= requests:
            return False
        return duration is None or time.perf_counter() - t_start < duration

    async def worker() -> None:
        while more():
            counters.sent += 1
            _record(counters, samples, await caller.call(next_request(), time.perf_counter() - t_start))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t_start
    return RunResult("closed", samples, wall, wall, counters.sent, 0, concurrency=concurrency)


async def open_loop(
    caller: Caller,
    next_request: NextRequest,
    *,
    rate: float,
    duration: float | None,
    requests: int | None,
    drain_s: float,
    seed: int = 0,
    on_start: Callable[[LiveCounters], None] | None = None,
) -> RunResult:
    """Requests (from ``next_request``) arrive as a Poisson process at ``rate`` per second, whether or not earlier ones returned.

    A slow server therefore cannot slow the senders down and hide its queueing delay (coordinated
    omission). After the last arrival, answers are awaited for up to ``drain_s`` seconds; what is still
    unanswered then is cancelled and counted as unfinished.
    """
    counters = LiveCounters()
    arrivals = random.Random(seed + 1)
    samples: list[Sample] = []
    in_flight: set[asyncio.Task[None]] = set()
    t_start = time.perf_counter()
    if on_start:
        on_start(counters)

    async def one(spec: RequestSpec, at: float) -> None:
        _record(counters, samples, await caller.call(spec, at))

    at = 0.0
    last_send = 0.0
    while True:
        at += arrivals.expovariate(rate)
        if (duration is not None and at >= duration) or (requests is not None and counters.sent >= requests):
            break
        delay = at - (time.perf_counter() - t_start)
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(next_request(), at))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        counters.sent += 1
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
    return RunResult("open", samples, wall, last_send, counters.sent, unfinished, rate=rate)
