"""The batching core: pure asyncio, knows neither gRPC nor torch.

Callers :meth:`MicroBatcher.submit` work items with a token cost; the batcher groups the items of many
concurrent callers into batches cut by a :class:`BatchPolicy`, runs each batch through the model's
synchronous :class:`BatchStages` (collate, forward, fetch; pipelined on worker threads) and hands every
caller back its own results in its own order. :func:`create_batcher` picks the strategy.
"""

from .batcher import BatcherStats, Completed, MicroBatcher, Reservation
from .claim import NO_CLAIM, Claim
from .errors import BatcherClosed, BatchingError, DeadlineExceeded, QueueFull, WouldMissDeadline
from .policy import BatchPolicy
from .scheduling import FairShare, Priority, Scheduler
from .speed import SpeedEstimate
from .stages import BatchStages
from .strategies import STRATEGIES, Batcher, LocalBatcher, create_batcher

__all__ = [
    "NO_CLAIM",
    "STRATEGIES",
    "BatchPolicy",
    "BatchStages",
    "Batcher",
    "BatcherClosed",
    "BatcherStats",
    "BatchingError",
    "Claim",
    "Completed",
    "DeadlineExceeded",
    "FairShare",
    "LocalBatcher",
    "MicroBatcher",
    "Priority",
    "QueueFull",
    "Reservation",
    "Scheduler",
    "SpeedEstimate",
    "WouldMissDeadline",
    "create_batcher",
]
