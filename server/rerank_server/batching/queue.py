"""The bounded queue of waiting work items, kept sorted by cost so batches can be cut by length."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import QueueFull
from .policy import BatchPolicy
from .scheduling import Scheduler
from .ticket import Ticket, WorkItem


class WorkQueue:
    """Waiting items in two orders: by cost (to cut length-grouped batches) and by arrival (to find
    the oldest, whose wait decides when a partial batch must run).

    Admission is all or nothing: a submission that does not fit whole is refused, so a caller never
    gets half its pairs scored while the other half waits for room.
    """

    def __init__(self, capacity: int, max_cost: int | None = None, tenant_share: float = 1.0) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, got {capacity}")
        if max_cost is not None and max_cost < 1:
            raise ValueError(f"queue max_cost must be at least 1, got {max_cost}")
        if not 0.0 < tenant_share <= 1.0:
            raise ValueError(f"tenant_share must be in (0, 1], got {tenant_share}")
        self.capacity = capacity
        self.max_cost = max_cost  # most queued work (sum of costs); an empty queue takes any one submission
        self.tenant_share = tenant_share  # of capacity and max_cost, the most one named caller may hold
        self._tickets: dict[Ticket[Any], list[WorkItem[Any]]] = {}  # tickets with items still queued, and their items
        self._left: dict[Ticket[Any], int] = {}  # how many of each ticket's items are still queued
        self._tenant_items: dict[str, int] = {}
        self._tenant_cost: dict[str, int] = {}
        self._priority_cost: dict[int, int] = {}
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

    def check_room(self, count: int, cost: int = 0, tenant: str = "") -> None:
        """Raise :class:`QueueFull` unless ``count`` more items costing ``cost`` fit (for ``tenant``).

        The cost bound keeps what is queued to a known amount of model time, so that under overload new
        work is refused at once instead of accepted to time out; an empty queue takes any submission,
        or a request larger than the bound could never run. A named tenant may hold at most
        ``tenant_share`` of either bound, so that one caller's flood leaves room for the others.
        """
        if count > self.free:
            raise QueueFull(count, self.free, self.capacity)
        if self.max_cost is not None and self._total_cost and self._total_cost + cost > self.max_cost:
            raise QueueFull(count, self.free, self.capacity, self._total_cost, self.max_cost)
        if tenant and self.tenant_share < 1.0:
            items, queued_cost = self._tenant_items.get(tenant, 0), self._tenant_cost.get(tenant, 0)
            limit = max(1, int(self.capacity * self.tenant_share))
            if items + count > limit:
                raise QueueFull(count, limit - items, limit, tenant=tenant)
            if self.max_cost is not None and queued_cost:
                cost_limit = max(1, int(self.max_cost * self.tenant_share))
                if queued_cost + cost > cost_limit:
                    raise QueueFull(count, limit - items, limit, queued_cost, cost_limit, tenant=tenant)

    def cost_ahead(self, priority: int) -> int:
        """Queued work (sum of costs) that goes before or with a new submission of ``priority``."""
        return sum(cost for p, cost in self._priority_cost.items() if p <= priority)

    def put(self, items: Sequence[WorkItem[Any]]) -> None:
        """Queue all of ``items`` (of one ticket) or, raising :class:`QueueFull`, none of them."""
        if not items:
            return
        ticket = items[0].ticket
        self.check_room(len(items), sum(item.cost for item in items), ticket.tenant)
        for item in items:
            position = bisect.bisect_right(self._keys, item.key)
            self._keys.insert(position, item.key)
            self._costs.insert(position, item.cost)
            self._by_cost.insert(position, item)
            self._by_arrival.append(item)
            self._counted(item, +1)
        self._tickets[ticket] = list(items)
        self._left[ticket] = len(items)

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

    def take_batch(self, policy: BatchPolicy, scheduler: Scheduler | None = None, now: float = 0.0) -> list[WorkItem[Any]]:
        """Remove and return the next batch: a run of similar cost holding at least one item of the
        request the ``scheduler`` picks (without one, the oldest), among the items of that request's
        priority and caller; without length grouping, the oldest items in arrival order."""
        oldest = self.oldest()
        if oldest is None:
            return []
        if not policy.group_by_length:
            return self._take_oldest(policy.max_batch_size)
        chosen = oldest.ticket if scheduler is None else scheduler.choose(self._tickets, now)
        group = (chosen.priority, chosen.tenant)
        alone = all((t.priority, t.tenant) == group for t in self._tickets)
        # Items of other priorities or callers are left out of the choice, so that the turns the
        # scheduler gives are what each gets; with one kind of work waiting, every item takes part.
        pool = range(len(self._by_cost)) if alone else [i for i, item in enumerate(self._by_cost) if (item.ticket.priority, item.ticket.tenant) == group]
        costs = self._costs if alone else [self._costs[i] for i in pool]
        where = {position: at for at, position in enumerate(pool)} if not alone else None
        anchors = [p if where is None else where[p] for p in self._positions_of(chosen)]
        run = policy.select(costs, anchors)
        taken = [pool[i] for i in run]
        batch = [self._by_cost[i] for i in taken]
        waiting = list(self._tickets)
        self._delete(taken)
        if scheduler is not None:
            scheduler.served({group: len(batch)}, waiting)
        return batch

    def _positions_of(self, ticket: Ticket[Any]) -> list[int]:
        """Where the queued items of ``ticket`` sit in cost order."""
        return [bisect.bisect_left(self._keys, item.key) for item in self._tickets.get(ticket, ()) if item.queued]

    def _delete(self, positions: list[int]) -> None:
        """Take the items at ``positions`` (ascending) out of the cost-ordered lists."""
        if positions and positions[-1] - positions[0] + 1 == len(positions):
            # A run (the usual batch): one slice each, not thousands of single deletions on the event loop.
            start, stop = positions[0], positions[-1] + 1
            items = self._by_cost[start:stop]
            del self._by_cost[start:stop], self._keys[start:stop], self._costs[start:stop]
        else:
            items = []
            for position in reversed(positions):
                items.append(self._by_cost[position])
                del self._by_cost[position], self._keys[position], self._costs[position]
        for item in items:
            self._counted(item, -1)

    def _counted(self, item: WorkItem[Any], sign: int) -> None:
        """Keep the running totals (cost, per caller, per priority, per ticket) as ``item`` enters or leaves."""
        ticket = item.ticket
        self._total_cost += sign * item.cost
        self._tenant_items[ticket.tenant] = self._tenant_items.get(ticket.tenant, 0) + sign
        self._tenant_cost[ticket.tenant] = self._tenant_cost.get(ticket.tenant, 0) + sign * item.cost
        self._priority_cost[ticket.priority] = self._priority_cost.get(ticket.priority, 0) + sign * item.cost
        if sign < 0:
            item.queued = False
            self._left[ticket] -= 1
            if not self._left[ticket]:
                del self._left[ticket], self._tickets[ticket]

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
        positions = sorted(bisect.bisect_left(self._keys, item.key) for item in items if item.queued)
        self._delete(positions)
        return len(positions)
