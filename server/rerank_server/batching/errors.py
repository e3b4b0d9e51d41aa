"""Why the batcher refused or abandoned a submission; the transport maps each to a status code."""

from __future__ import annotations


class BatchingError(Exception):
    """Base class of the batcher's own failures (not the model's).

    Messages are stable (the same refusal reads the same whatever the queue held), so that load testers
    and log tools group them; the live numbers are in :attr:`details` (HTTP sends them as headers).
    """

    @property
    def details(self) -> dict[str, object]:
        """The numbers behind the refusal, for an API's error body."""
        return {}


class QueueFull(BatchingError):
    """The bounded queue has no room for a whole submission; nothing of it was queued."""

    def __init__(self, requested: int, free: int, capacity: int, tenant: str = "") -> None:
        self.requested = requested
        self.free = free
        self.capacity = capacity
        self.tenant = tenant
        whose = f"caller {tenant!r}'s share of its queue (--tenant-queue-share)" if tenant else f"its queue (--max-queued-pairs {capacity})"
        super().__init__(f"the server is overloaded: this request's pairs do not fit in {whose}; retry with backoff or send fewer documents per request")

    @property
    def details(self) -> dict[str, object]:
        """Pairs asked for, places free and the queue's capacity."""
        return {"requested_pairs": self.requested, "free_places": max(self.free, 0), "capacity": self.capacity}


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
                "the server is overloaded: the work queued ahead of this request and its own would take longer than a request "
                "may wait (--default-deadline); retry with backoff or on another replica"
            )
        else:
            message = (
                "refused at once: the work queued ahead of this request and its own would take longer, at the model's speed, "
                "than its deadline allows; retry later, with a longer deadline, or at a higher priority"
            )
        super().__init__(message)

    @property
    def details(self) -> dict[str, object]:
        """Seconds of work ahead (with this request's own) and seconds to its deadline."""
        return {"work_seconds": round(self.wait_s, 3), "deadline_seconds": round(max(self.left_s, 0.0), 3)}
