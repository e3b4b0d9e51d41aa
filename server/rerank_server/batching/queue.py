"""The bounded queue of waiting work items, kept sorted by cost so batches can be cut by length."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import QueueFull
from .policy import BatchPolicy
from .ticket import Ticket, WorkItem


class WorkQueue:
    """Waiting items in two orders: by cost (to cut length-grouped batches) and by arrival (to find
    the oldest, whose wait decides when a partial batch must run).

    Admission is all or nothing: a submission that does not fit whole is refused, so a caller never
    gets half its pairs scored while the other half waits for room.
    """

    def __init__(self, capacity: int, max_cost: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, got {capacity}")
        if max_cost is not None and max_cost < 1:
            raise ValueError(f"queue max_cost must be at least 1, got {max_cost}")
        self.capacity = capacity
        self.max_cost = max_cost  # most queued work (sum of costs); an empty queue takes any one submission
        self._by_cost: list[WorkItem[Any]] = []
        self._keys: list[tuple[int, int]] = []
        self._costs: list[int] = []  # the keys' costs, kept alongside for the batch policy
        self._by_arrival: deque[WorkItem[Any]] = deque()  # may hold items already taken; skipped lazily
        self._total_cost = 0

    def __len__(self) -> int:
        return len(self._by_cost)

    @property
    def total_cost(self) -> int:
        """Sum of the costs of the waiting items."""
        return self._total_cost

    @property
    def free(self) -> int:
        """How many more items fit."""
        return self.capacity - len(self._by_cost)

    def check_room(self, count: int, cost: int = 0) -> None:
        """Raise :class:`QueueFull` unless ``count`` more items costing ``cost`` fit.

        The cost bound keeps what is queued to a known amount of model time, so that under overload new
        work is refused at once instead of accepted to time out; an empty queue takes any submission,
        or a request larger than the bound could never run.
        """
        if count > self.free:
            raise QueueFull(count, self.free, self.capacity)
        if self.max_cost is not None and self._total_cost and self._total_cost + cost > self.max_cost:
            raise QueueFull(count, self.free, self.capacity, self._total_cost, self.max_cost)

    def put(self, items: Sequence[WorkItem[Any]]) -> None:
        """Queue all of ``items`` or, raising :class:`QueueFull`, none of them."""
        self.check_room(len(items), sum(item.cost for item in items))
        for item in items:
            position = bisect.bisect_right(self._keys, item.key)
            self._keys.insert(position, item.key)
            self._costs.insert(position, item.cost)
            self._by_cost.insert(position, item)
            self._by_arrival.append(item)
            self._total_cost += item.cost

    def oldest(self) -> WorkItem[Any] | None:
        """The item that has waited longest, or None when the queue is empty."""
        while self._by_arrival and not self._by_arrival[0].queued:
            self._by_arrival.popleft()
        return self._by_arrival[0] if self._by_arrival else None

    def full_batch_ready(self, policy: BatchPolicy) -> bool:
        """Whether waiting longer cannot make the next batch bigger: it would close on size or tokens."""
        if len(self._by_cost) >= policy.max_batch_size:
            return True
        return policy.group_by_length and self._total_cost >= policy.max_batch_tokens

    def take_batch(self, policy: BatchPolicy) -> list[WorkItem[Any]]:
        """Remove and return the next batch: a run of similar cost holding at least one item of the
        oldest waiting submission (or, without length grouping, the oldest items in arrival order)."""
        oldest = self.oldest()
        if oldest is None:
            return []
        if not policy.group_by_length:
            return self._take_oldest(policy.max_batch_size)
        chosen = policy.select(self._costs, self._positions_of(oldest.ticket))
        batch = self._by_cost[chosen.start : chosen.stop]
        del self._by_cost[chosen.start : chosen.stop]
        del self._keys[chosen.start : chosen.stop]
        del self._costs[chosen.start : chosen.stop]
        for item in batch:
            item.queued = False
            self._total_cost -= item.cost
        return batch

    def _positions_of(self, ticket: Ticket[Any]) -> list[int]:
        """Where the queued items of ``ticket`` sit in cost order (the arrival deque holds them together,
        in order, from the oldest item on)."""
        positions: list[int] = []
        for item in self._by_arrival:
            if item.ticket is not ticket:
                if positions:
                    break
                continue
            if item.queued:
                positions.append(bisect.bisect_left(self._keys, item.key))
        return positions

    def _take_oldest(self, count: int) -> list[WorkItem[Any]]:
        batch: list[WorkItem[Any]] = []
        while self._by_arrival and len(batch) < count:
            item = self._by_arrival.popleft()
            if item.queued:
                batch.append(item)
        self.remove(batch)
        return batch

    def remove(self, items: Iterable[WorkItem[Any]]) -> int:
        """Take ``items`` out of the queue (those still in it); returns how many were removed."""
        removed = 0
        for item in items:
            if not item.queued:
                continue
            position = bisect.bisect_left(self._keys, item.key)
            del self._keys[position]
            del self._costs[position]
            del self._by_cost[position]
            item.queued = False
            self._total_cost -= item.cost
            removed += 1
        return removed
