"""Why the batcher refused or abandoned a submission; the transport maps each to a status code."""

from __future__ import annotations


class BatchingError(Exception):
    """Base class of the batcher's own failures (not the model's)."""


class QueueFull(BatchingError):
    """The bounded queue has no room for a whole submission; nothing of it was queued."""

    def __init__(self, requested: int, free: int, capacity: int, tenant: str = "") -> None:
        self.requested = requested
        self.free = free
        self.capacity = capacity
        self.tenant = tenant
        whose = f"caller {tenant!r}'s share of its queue (--tenant-queue-share)" if tenant else "its queue (--max-queued-pairs)"
        super().__init__(
            f"the server is overloaded: {requested} pairs do not fit in {whose}, {max(free, 0)} of {capacity} places free; "
            "retry with backoff or send fewer documents per request"
        )


class DeadlineExceeded(BatchingError):
    """The submission's deadline passed before all of its items were processed."""


class BatcherClosed(BatchingError):
    """The batcher is shutting down and takes no new work."""


class WouldMissDeadline(DeadlineExceeded):
    """Refused at admission: the work queued ahead, plus the request's own, would outlast its deadline.

    ``default_deadline`` says the deadline was the server's default (the caller set none): the server
    is overloaded for it, rather than the caller asking too little time.
    """

    def __init__(self, wait_s: float, left_s: float, default_deadline: bool = False) -> None:
        self.wait_s = wait_s
        self.left_s = left_s
        self.default_deadline = default_deadline
        if default_deadline:
            message = (
                f"the server is overloaded: its queue holds about {wait_s:.0f} s of work with this request, more than the "
                f"{max(left_s, 0.0):.0f} s a request may wait (--default-deadline); retry with backoff or on another replica"
            )
        else:
            message = (
                f"refused at once: the work queued ahead of this request and its own take about {wait_s * 1000:.0f} ms at "
                f"the model's speed, and its deadline is {max(left_s, 0.0) * 1000:.0f} ms away; retry later, with a longer "
                "deadline, or at a higher priority"
            )
        super().__init__(message)
