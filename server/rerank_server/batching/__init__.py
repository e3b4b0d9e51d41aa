"""The batching core: pure asyncio, knows neither gRPC nor torch.

Callers :meth:`MicroBatcher.submit` work items with a token cost; the batcher groups the items of many
concurrent callers into batches cut by a :class:`BatchPolicy`, runs each batch through a synchronous
function on a worker thread and hands every caller back its own results in its own order.
"""

from .batcher import BatcherStats, Completed, MicroBatcher
from .errors import BatcherClosed, BatchingError, DeadlineExceeded, QueueFull
from .policy import BatchPolicy

__all__ = [
    "BatchPolicy",
    "BatcherClosed",
    "BatcherStats",
    "BatchingError",
    "Completed",
    "DeadlineExceeded",
    "MicroBatcher",
    "QueueFull",
]
