"""Why the batcher refused or abandoned a submission; the transport maps each to a status code."""

from __future__ import annotations


class BatchingError(Exception):
    """Base class of the batcher's own failures (not the model's)."""


class QueueFull(BatchingError):
    """The bounded queue has no room for a whole submission; nothing of it was queued."""

    def __init__(self, requested: int, free: int, capacity: int) -> None:
        self.requested = requested
        self.free = free
        self.capacity = capacity
        super().__init__(
            f"the server is overloaded: {requested} pairs do not fit in its queue "
            f"({free} of {capacity} places free); retry with backoff or send fewer documents per request"
        )


class DeadlineExceeded(BatchingError):
    """The submission's deadline passed before all of its items were processed."""


class BatcherClosed(BatchingError):
    """The batcher is shutting down and takes no new work."""
