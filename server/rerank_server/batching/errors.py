"""Why the batcher refused or abandoned a submission; the transport maps each to a status code."""

from __future__ import annotations


class BatchingError(Exception):
    """Base class of the batcher's own failures (not the model's)."""


class QueueFull(BatchingError):
    """The bounded queue has no room for a whole submission; nothing of it was queued.

    ``queued_cost`` and ``max_cost`` are set when it was the queued work (tokens), not the count of
    items, that was at its limit.
    """

    def __init__(
        self, requested: int, free: int, capacity: int, queued_cost: int = 0, max_cost: int | None = None, tenant: str = ""
    ) -> None:
        self.requested = requested
        self.free = free
        self.capacity = capacity
        self.tenant = tenant
        whose = f"caller {tenant!r}'s share of its queue" if tenant else "its queue"
        if max_cost is not None:
            reason = f"{whose} already holds {queued_cost} of the {max_cost} tokens of work it takes"
        else:
            reason = f"{requested} pairs do not fit in {whose} ({free} of {capacity} places free)"
        super().__init__(f"the server is overloaded: {reason}; retry with backoff or send fewer documents per request")


class DeadlineExceeded(BatchingError):
    """The submission's deadline passed before all of its items were processed."""


class BatcherClosed(BatchingError):
    """The batcher is shutting down and takes no new work."""


class WouldMissDeadline(DeadlineExceeded):
    """Refused at admission: the work queued ahead would outlast the request's deadline."""

    def __init__(self, wait_s: float, left_s: float) -> None:
        self.wait_s = wait_s
        self.left_s = left_s
        super().__init__(
            f"refused at once: the work queued ahead of this request takes about {wait_s * 1000:.0f} ms at the model's "
            f"speed, and its deadline is {max(left_s, 0.0) * 1000:.0f} ms away; retry later, with a longer deadline, "
            "or at a higher priority"
        )
