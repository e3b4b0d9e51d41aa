"""The batching strategies a model can be served with, behind one interface, chosen in one place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .batcher import BatcherStats, BatchRecord, Completed, MicroBatcher
from .policy import BatchPolicy
from .stages import BatchStages
from .unbatched import PerRequestRunner

STRATEGIES = ("length", "arrival", "none")


class Batcher(Protocol):
    """What the engine needs of a batcher, whatever its strategy."""

    name: str
    stats: BatcherStats
    on_batch: Callable[[BatchRecord], None] | None

    @property
    def queued(self) -> int:
        """Items waiting for the model."""
        ...

    @property
    def capacity(self) -> int:
        """Most items that may wait at once."""
        ...

    def start(self) -> None:
        """Start serving on the running event loop."""
        ...

    def check_room(self, count: int) -> None:
        """Raise QueueFull now if ``count`` more items would not fit."""
        ...

    async def submit(self, payloads: Sequence[Any], costs: Sequence[int], deadline: float | None = None) -> Completed[Any]:
        """Queue ``payloads`` and wait for their results."""
        ...

    async def aclose(self, drain: bool = True) -> None:
        """Stop taking work; with ``drain``, finish what is queued."""
        ...


def create_batcher(
    strategy: str,
    model: BatchStages[Any, Any] | Callable[[list[Any]], Sequence[Any]],
    policy: BatchPolicy,
    *,
    max_queued: int,
    name: str,
    pipeline_depth: int = 2,
    max_queued_cost: int | None = None,
) -> Batcher:
    """A batcher for ``strategy``: ``length`` (length-grouped, token-budgeted batches: what to serve with),
    ``arrival`` (first come first batched, by count only) or ``none`` (one model call per request). The
    last two are the baselines benchmarks compare against; ``policy`` is assumed to match ``strategy``.
    ``max_queued_cost`` bounds the queued work in tokens (the length strategies; see :class:`WorkQueue`)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"batching strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "none":
        return PerRequestRunner(model, max_queued=max_queued, name=name)
    return MicroBatcher(model, policy, max_queued=max_queued, name=name, pipeline_depth=pipeline_depth, max_queued_cost=max_queued_cost)
