"""Who asks, how urgently and by when: one request's claim on the model, stated once.

A request's deadline, priority and caller decide whether it is admitted, whose turn a batch serves and
which of a caller's requests goes first. They travel together as one :class:`Claim`, from the transport
through the engine to the queue, instead of three positional arguments at every call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Priority(enum.IntEnum):
    """How urgently a request is wanted; lower values go first."""

    INTERACTIVE = 0  # someone waits for it: the default
    BULK = 1  # re-scoring, evaluation, backfills: may wait, never starves


@dataclass(frozen=True)
class Claim:
    """One request's claim on the model.

    Attributes:
        deadline: a time on the batcher's clock after which nobody wants the answer (None: none at all).
        priority: :class:`Priority`; lower goes first.
        tenant: the caller, for fair turns and its share of the queue ("": a caller that does not say).
        default_deadline: the deadline is the server's default for callers that set none, not the
            caller's own: a request that cannot meet it is refused as overload (the caller may retry
            with backoff), not as a deadline it asked for.
    """

    deadline: float | None = None
    priority: int = int(Priority.INTERACTIVE)
    tenant: str = ""
    default_deadline: bool = False

    group: tuple[int, str] = field(init=False, repr=False, compare=False)
    """(priority, tenant): whose turn the scheduler tracks (kept, not rebuilt: the queue reads it per item)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "group", (self.priority, self.tenant))


NO_CLAIM = Claim()
