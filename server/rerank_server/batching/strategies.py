"""The batching strategies a model can be served with, behind one interface, chosen in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .batcher import BatcherStats, BatchRecord, Completed, MicroBatcher, Reservation
from .claim import NO_CLAIM, Claim
from .policy import BatchPolicy
from .scheduling import FairShare
from .speed import SpeedEstimate
from .stages import BatchStages
from .unbatched import PerRequestRunner

STRATEGIES = ("length", "arrival", "none")


class Batcher(Protocol):
    """What the engine needs of a batcher, whatever its strategy."""

    name: str
    stats: BatcherStats
    speed: SpeedEstimate
    on_batch: Callable[[BatchRecord], None] | None

    @property
    def queued(self) -> int:
        """Items waiting for the model."""
        ...

    @property
    def capacity(self) -> int:
        """Most items that may wait at once."""
        ...

    @property
    def queued_seconds(self) -> float:
        """Estimated model time of the work waiting and in flight."""
        ...

    def start(self) -> None:
        """Start serving on the running event loop."""
        ...

    async def admit(self, count: int, claim: Claim = NO_CLAIM, cost: int | None = None) -> Reservation:
        """Admit a request of ``count`` items and hold its room, or refuse it (QueueFull, WouldMissDeadline);
        awaited, since where the queue lives in another process admission is a round trip."""
        ...

    async def submit(
        self, payloads: Sequence[Any], costs: Sequence[int], claim: Claim = NO_CLAIM, reservation: Reservation | None = None
    ) -> Completed[Any]:
        """Queue ``payloads`` and wait for their results."""
        ...

    async def aclose(self, drain: bool = True) -> None:
        """Stop taking work; with ``drain``, finish what is queued."""
        ...


class LocalBatcher(Batcher, Protocol):
    """A batcher whose queue is in this process: it admits at once, without awaiting."""

    def reserve(self, count: int, claim: Claim = NO_CLAIM, cost: int | None = None) -> Reservation:
        """Admit a request of ``count`` items and hold its room, or refuse it (QueueFull, WouldMissDeadline)."""
        ...

    def enqueue(
        self, payloads: Sequence[Any], costs: Sequence[int], claim: Claim = NO_CLAIM, reservation: Reservation | None = None
    ) -> asyncio.Future[Completed[Any]]:
        """Queue ``payloads`` and return the future of their results (cancel it to withdraw them)."""
        ...


def create_batcher(
    strategy: str,
    model: BatchStages[Any, Any] | Callable[[list[Any]], Sequence[Any]] | Sequence[BatchStages[Any, Any]],
    policy: BatchPolicy,
    *,
    max_queued: int,
    name: str,
    pipeline_depth: int = 2,
    share: FairShare | None = None,
    tenant_share: float = 1.0,
    speed: SpeedEstimate | None = None,
) -> LocalBatcher:
    """A batcher for ``strategy``: ``length`` (length-grouped, token-budgeted batches: what to serve with),
    ``arrival`` (first come first batched, by count only) or ``none`` (one model call per request). The
    last two are the baselines benchmarks compare against; ``policy`` is assumed to match ``strategy``.
    The rest configure the batched strategies: ``share`` splits the device between priorities,
    ``tenant_share`` is the most of the queue one named caller may hold, and ``speed`` (the model's
    running speed, seeded by a start-up measurement) refuses deadlines the queue would outlast."""
    if strategy not in STRATEGIES:
        raise ValueError(f"batching strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "none":  # the baseline runs on one device
        return PerRequestRunner(model[0] if isinstance(model, Sequence) else model, max_queued=max_queued, name=name)
    return MicroBatcher(
        model,
        policy,
        max_queued=max_queued,
        name=name,
        pipeline_depth=pipeline_depth,
        share=share,
        tenant_share=tenant_share,
        speed=speed,
    )
