"""One caller's submission: its items, its future, its deadline and its timing."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .claim import NO_CLAIM, Claim

P = TypeVar("P")
R = TypeVar("R")

_sequence = itertools.count()


def set_result_if_pending(future: asyncio.Future[Any], value: Any) -> None:
    """Complete ``future`` unless a cancellation or an earlier outcome got there first."""
    if not future.done():
        future.set_result(value)


def set_exception_if_pending(future: asyncio.Future[Any], error: BaseException) -> None:
    """Fail ``future`` unless a cancellation or an earlier outcome got there first."""
    if not future.done():
        future.set_exception(error)


@dataclass(eq=False)
class Ticket(Generic[R]):
    """The batcher's record of one submission; ``future`` resolves to its results in input order, with
    their timing (a :class:`~.batcher.Completed`)."""

    size: int
    future: asyncio.Future[Any]
    enqueued_at: float
    claim: Claim = NO_CLAIM  # deadline, priority and caller
    results: list[R | None] = field(init=False)
    remaining: int = field(init=False)
    started_at: float | None = None  # when the model first started on one of its items
    timer: asyncio.TimerHandle | None = None  # fails it at its deadline

    def __post_init__(self) -> None:
        self.results = [None] * self.size
        self.remaining = self.size

    @property
    def deadline(self) -> float | None:
        """The claim's deadline."""
        return self.claim.deadline

    @property
    def priority(self) -> int:
        """The claim's priority."""
        return self.claim.priority

    @property
    def tenant(self) -> str:
        """The claim's caller."""
        return self.claim.tenant

    @property
    def abandoned(self) -> bool:
        """True once nobody waits for the results: the caller went away or the ticket failed."""
        return self.future.done()

    def expired(self, now: float) -> bool:
        """True when the deadline has passed at ``now``."""
        return self.deadline is not None and now >= self.deadline


class WorkItem(Generic[P]):
    """One unit of model work (a query-document pair, or a text to embed) of one ticket.

    A plain class with slots: the engine makes one per pair and reads a few fields of each several
    times, so it is kept to the attributes it needs (a dataclass's factory call per item showed up).
    """

    __slots__ = ("payload", "cost", "ticket", "index", "arrived", "key", "queued")

    def __init__(self, payload: P, cost: int, ticket: Ticket[Any], index: int, arrived: float) -> None:
        self.payload = payload
        self.cost = cost  # tokens the model reads for it: what padding is measured in
        self.ticket = ticket
        self.index = index  # position in the ticket's results
        self.arrived = arrived
        # The sort key, unique: by cost, then first come first. One int, not a (cost, sequence) tuple: the
        # queue bisects on it for every item queued, taken or removed, and ints compare in one step.
        self.key = cost << 64 | next(_sequence)
        self.queued = True
