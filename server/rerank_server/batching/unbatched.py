"""No cross-request batching: one model call per request. The baseline batching is measured against."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .batcher import BatcherStats, BatchRecord, Completed, Reservation
from .claim import NO_CLAIM, Claim
from .errors import BatcherClosed, DeadlineExceeded, QueueFull
from .speed import SpeedEstimate
from .stages import BatchStages, as_stages
from .threads import named_pool

P = TypeVar("P")
R = TypeVar("R")


class PerRequestRunner(Generic[P, R]):
    """Runs each submission as its own model call, one at a time, in arrival order.

    It has the micro-batcher's interface (``submit``, ``start``, ``aclose``, ``stats``, ``queued``), so
    the server can serve through it unchanged: this is "naive serving" behind the same gRPC front.
    """

    def __init__(self, model: BatchStages[P, R] | Callable[[list[P]], Sequence[R]], *, max_queued: int, name: str = "model") -> None:
        self.name = name
        self.stats = BatcherStats()
        self.capacity = max_queued
        self.on_batch: Callable[[BatchRecord], None] | None = None
        self._stages = as_stages(model)
        self._queued = 0
        self._queued_cost = 0  # tokens of the requests submitted and not yet answered
        self._calls = 0
        self.speed = SpeedEstimate()
        self._closing = False
        self._executor = named_pool(1, f"model-{name}")

    @property
    def queued(self) -> int:
        """Items submitted and not yet answered."""
        return self._queued

    def start(self) -> None:
        """Nothing to start: each call runs on submission."""

    @property
    def queued_seconds(self) -> float:
        """Estimated model time of the requests submitted and not yet answered."""
        return self.speed.seconds(self._queued_cost, self._calls)

    def reserve(self, count: int, claim: Claim = NO_CLAIM, cost: int | None = None) -> Reservation:
        """Admit ``count`` items if they fit (one model call per request: priorities, callers and deadlines
        play no part in this baseline); the room is taken when they are submitted."""
        self._check_room(count, claim)
        return Reservation(None, count, 0, claim)

    async def admit(self, count: int, claim: Claim = NO_CLAIM, cost: int | None = None) -> Reservation:
        """:meth:`reserve`, for callers written for a queue in another process (see ``engine.link``)."""
        return self.reserve(count, claim, cost)

    def _check_room(self, count: int, claim: Claim) -> None:
        if self._queued + count > self.capacity:
            self.stats.refused[claim.group] += 1
            raise QueueFull(count, self.capacity - self._queued, self.capacity)

    async def submit(
        self, payloads: Sequence[P], costs: Sequence[int], claim: Claim = NO_CLAIM, reservation: Reservation | None = None
    ) -> Completed[R]:
        """Run ``payloads`` as one model call once the calls before it are done."""
        if reservation is not None:
            claim = reservation.claim
            reservation.release()
        if self._closing:
            raise BatcherClosed(f"model {self.name!r} is shutting down")
        if not payloads:
            return Completed([], 0.0, 0.0)
        self._check_room(len(payloads), claim)
        deadline, tokens = claim.deadline, sum(costs)
        self._queued += len(payloads)
        self._queued_cost += tokens
        self._calls += 1
        self.stats.submissions += 1
        self.stats.items += len(payloads)
        enqueued = time.monotonic()
        started: list[float] = []

        def work() -> Sequence[R]:
            started.append(time.monotonic())
            stages = self._stages
            return stages.fetch(stages.forward(stages.collate(list(payloads))))

        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        try:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            results = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise DeadlineExceeded("deadline passed before the model answered") from None
        finally:
            self._queued -= len(payloads)
            self._queued_cost -= tokens
            self._calls -= 1
        finished = time.monotonic()
        self.speed.observe(tokens, finished - (started[0] if started else enqueued))
        self.stats.batches += 1
        self.stats.batched_items += len(payloads)
        self.stats.batch_tokens += tokens
        self.stats.padded_tokens += len(costs) * max(costs)
        if self.on_batch is not None:
            self.on_batch(BatchRecord(len(costs), tokens, len(costs) * max(costs), finished - (started[0] if started else enqueued), False))
        begin = started[0] if started else enqueued
        return Completed(list(results), begin - enqueued, finished - begin)

    def enqueue(
        self, payloads: Sequence[P], costs: Sequence[int], claim: Claim = NO_CLAIM, reservation: Reservation | None = None
    ) -> asyncio.Future[Completed[R]]:
        """:meth:`submit` as a future (a task here: this baseline is not built for an engine's load)."""
        return asyncio.ensure_future(self.submit(payloads, costs, claim, reservation))

    async def aclose(self, drain: bool = True) -> None:
        """Stop taking work; calls already submitted finish (``drain`` is accepted for symmetry)."""
        self._closing = True
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
