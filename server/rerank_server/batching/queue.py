"""The bounded queue of waiting work items, kept sorted by cost so batches can be cut by length."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from .claim import Claim
from .errors import QueueFull
from .policy import BatchPolicy
from .scheduling import Scheduler
from .ticket import Ticket, WorkItem


class Batch(list[WorkItem[Any]]):
    """A batch taken from the queue: its items, and how many of each request's items it holds and their
    tokens, counted once as they left the queue (the batcher's per-request bookkeeping reads them
    instead of walking the items again, several times a batch)."""

    __slots__ = ("counts", "tokens")

    def __init__(self, items: Iterable[WorkItem[Any]], counts: dict[Ticket[Any], int], tokens: int) -> None:
        super().__init__(items)
        self.counts = counts  # items of each request in the batch
        self.tokens = tokens  # the items' costs summed


class WorkQueue:
    """Waiting items in two orders: by cost (to cut length-grouped batches) and by arrival (to find
    the oldest, whose wait decides when a partial batch must run).

    Admission is all or nothing: a submission that does not fit whole is refused, so a caller never
    gets half its pairs scored while the other half waits for room. Room can be *reserved* before a
    submission's items exist (while its texts are tokenized): reserved room counts as taken, so that
    requests admitted together cannot overfill the queue, and it turns into items with :meth:`put`.
    """

    def __init__(self, capacity: int, tenant_share: float = 1.0) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, got {capacity}")
        if not 0.0 < tenant_share <= 1.0:
            raise ValueError(f"tenant_share must be in (0, 1], got {tenant_share}")
        self.capacity = capacity
        self.tenant_share = tenant_share  # of capacity, the most one named caller may hold
        self._tickets: dict[Ticket[Any], list[WorkItem[Any]]] = {}  # tickets with items still queued, and their items
        self._left: dict[Ticket[Any], int] = {}  # how many of each ticket's items are still queued
        # Held room (queued items and reservations) by caller, and held work (tokens) by priority and caller.
        self._tenant_items: dict[str, int] = {}
        self._group_cost: dict[tuple[int, str], int] = {}
        self._reserved = 0  # items reserved and not yet put
        self._by_cost: list[WorkItem[Any]] = []
        self._keys: list[int] = []
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
        """How many more items fit (reserved room counts as taken)."""
        return self.capacity - len(self._by_cost) - self._reserved

    def check_room(self, count: int, tenant: str = "") -> None:
        """Raise :class:`QueueFull` unless ``count`` more items fit (for ``tenant``).

        The bound keeps the memory queued work holds to a known size. A named tenant may hold at most
        ``tenant_share`` of it, so that one caller's flood leaves room for the others.
        """
        if count > self.free:
            raise QueueFull(count, self.free, self.capacity)
        if tenant and self.tenant_share < 1.0:
            items = self._tenant_items.get(tenant, 0)
            limit = max(1, int(self.capacity * self.tenant_share))
            if items + count > limit:
                raise QueueFull(count, limit - items, limit, tenant=tenant)

    @property
    def held_cost(self) -> int:
        """Held work (sum of costs, reservations included) of every priority and caller."""
        return sum(self._group_cost.values())

    def cost_ahead(self, claim: Claim, own: int, callers: int = 1) -> int:
        """Held work (reservations included) that runs before a new submission of ``claim`` costing ``own``
        is done, its own included: all of the higher priorities', and at its priority, as callers take
        turns by pairs served, its own caller's (``mine``, the new included) and each other caller's up
        to ``mine``; and at least ``callers x mine`` when that many callers are taking turns (callers
        whose requests keep coming take their turns even when little of theirs is queued right now)."""
        mine = self._group_cost.get(claim.group, 0) + own
        higher = turns = 0
        for (priority, tenant), cost in self._group_cost.items():
            if priority < claim.priority:
                higher += cost
            elif priority == claim.priority and tenant != claim.tenant:
                turns += min(cost, mine)
        return higher + max(mine + turns, callers * mine)

    def reserve(self, count: int, cost: int, claim: Claim) -> None:
        """Hold room for ``count`` items costing about ``cost`` of ``claim``, or raise :class:`QueueFull`."""
        self.check_room(count, claim.tenant)
        self._hold(count, cost, claim, +1)

    def release(self, count: int, cost: int, claim: Claim) -> None:
        """Give back room held by :meth:`reserve`."""
        self._hold(count, cost, claim, -1)

    def _hold(self, count: int, cost: int, claim: Claim, sign: int) -> None:
        self._reserved += sign * count
        self._tenant_items[claim.tenant] = self._tenant_items.get(claim.tenant, 0) + sign * count
        self._group_cost[claim.group] = self._group_cost.get(claim.group, 0) + sign * cost

    def put(self, items: Sequence[WorkItem[Any]], cost: int | None = None) -> None:
        """Queue all of ``items`` (of one ticket) or, raising :class:`QueueFull`, none of them; ``cost``:
        their costs summed, when the caller has it already."""
        if not items:
            return
        ticket = items[0].ticket
        self.check_room(len(items), ticket.claim.tenant)
        keys, costs, by_cost = self._keys, self._costs, self._by_cost
        for item in items:
            position = bisect.bisect_right(keys, item.key)
            keys.insert(position, item.key)
            costs.insert(position, item.cost)
            by_cost.insert(position, item)
        self._by_arrival.extend(items)
        self._count(ticket.claim, len(items), sum(item.cost for item in items) if cost is None else cost)
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

    def take_batch(self, policy: BatchPolicy, scheduler: Scheduler | None = None, now: float = 0.0) -> Batch:
        """Remove and return the next batch; without length grouping, the oldest items in arrival order.

        The ``scheduler`` picks whose request the batch must advance (without one, the oldest request's).
        The batch is that caller's run of similar cost holding an item of that request, as long as the
        limits allow; where it leaves room, the best-fitting items of other callers of the same priority
        fill it (see :meth:`_fill`), so that fair turns do not shrink batches: a turn decides who goes
        first, not who may ride along. (Taking the chosen request's own items first instead, its items
        padded to its longest, cost throughput and expired more requests under a flood: measured.)
        """
        oldest = self.oldest()
        if oldest is None:
            return Batch((), {}, 0)
        if not policy.group_by_length:
            return self._take_oldest(policy.max_batch_size)
        chosen = oldest.ticket if scheduler is None else scheduler.choose(self._tickets, now)
        group = chosen.claim.group
        alone = all(t.claim.group == group for t in self._tickets)
        # The run is chosen among the turn's caller's items only, so that the turn advances that caller
        # as far as a batch allows; with one kind of work waiting, every item takes part.
        pool = range(len(self._by_cost)) if alone else [i for i, item in enumerate(self._by_cost) if item.ticket.claim.group == group]
        costs = self._costs if alone else [self._costs[i] for i in pool]
        where = {position: at for at, position in enumerate(pool)} if not alone else None
        anchors = [p if where is None else where[p] for p in self._positions_of(chosen)]
        taken = [pool[i] for i in policy.select(costs, anchors)]
        if not alone:
            taken = self._fill(taken, policy, chosen.claim.priority)
        waiting = list(self._tickets)
        batch = self._delete(taken)
        if scheduler is not None:
            served: dict[tuple[int, str], int] = {}
            for ticket, count in batch.counts.items():
                served[ticket.claim.group] = served.get(ticket.claim.group, 0) + count
            scheduler.served(served, waiting)
        return batch

    def _fill(self, taken: list[int], policy: BatchPolicy, priority: int) -> list[int]:
        """``taken`` (ascending positions of a run) topped up with other items of ``priority``, best fit first.

        Items no longer than the run's longest add no padding: the longest of them first. Then longer
        ones, shortest first, while the padding an item adds to the batch (every item padded to it) stays
        within one batch's fixed cost, :attr:`BatchPolicy.batch_overhead_tokens`: cheaper than leaving it
        for a batch of its own. The scan is bounded, so a queue of thousands of other priorities' items
        costs the event loop little.
        """
        count, longest = len(taken), self._costs[taken[-1]]
        chosen = set(taken)
        scan = 4 * policy.max_batch_size
        below = taken[-1] - 1
        below_end = max(-1, below - scan)
        added: list[int] = []
        while below > below_end and count < policy.max_batch_size and (count + 1) * longest <= policy.max_batch_tokens:
            if below not in chosen and self._by_cost[below].ticket.claim.priority == priority:
                added.append(below)
                count += 1
            below -= 1
        above, above_end = taken[-1] + 1, min(len(self._costs), taken[-1] + 1 + scan)
        while above < above_end and count < policy.max_batch_size:
            cost = self._costs[above]
            if (count + 1) * cost > policy.max_batch_tokens or count * (cost - longest) > policy.batch_overhead_tokens:
                break
            if self._by_cost[above].ticket.claim.priority == priority:
                added.append(above)
                count, longest = count + 1, cost
            above += 1
        return sorted(chosen.union(added)) if added else taken

    def _positions_of(self, ticket: Ticket[Any]) -> list[int]:
        """Where the queued items of ``ticket`` sit in cost order."""
        return [bisect.bisect_left(self._keys, item.key) for item in self._tickets.get(ticket, ()) if item.queued]

    def _delete(self, positions: list[int]) -> Batch:
        """Take the items at ``positions`` (ascending) out of the cost-ordered lists; they are returned."""
        if positions and positions[-1] - positions[0] + 1 == len(positions):
            # A run (the usual batch): one slice each, not thousands of single deletions on the event loop.
            start, stop = positions[0], positions[-1] + 1
            items = self._by_cost[start:stop]
            del self._by_cost[start:stop], self._keys[start:stop], self._costs[start:stop]
        else:
            items = [self._by_cost[position] for position in positions]
            for position in reversed(positions):
                del self._by_cost[position], self._keys[position], self._costs[position]
        # The running totals change once per ticket, not once per item (a batch holds thousands).
        left: dict[Ticket[Any], list[int]] = {}  # ticket: [items, cost] taken
        for item in items:
            item.queued = False
            taken = left.get(item.ticket)
            if taken is None:
                left[item.ticket] = [1, item.cost]
            else:
                taken[0] += 1
                taken[1] += item.cost
        tokens = 0
        for ticket, (count, cost) in left.items():
            self._count(ticket.claim, -count, -cost)
            tokens += cost
            remaining = self._left[ticket] - count
            if remaining:
                self._left[ticket] = remaining
            else:
                del self._left[ticket], self._tickets[ticket]
        return Batch(items, {ticket: count for ticket, (count, _) in left.items()}, tokens)

    def _count(self, claim: Claim, items: int, cost: int) -> None:
        """Keep the running totals (cost, per caller, per priority) as ``items`` of ``claim`` costing
        ``cost`` enter (positive) or leave (negative)."""
        self._total_cost += cost
        self._tenant_items[claim.tenant] = self._tenant_items.get(claim.tenant, 0) + items
        self._group_cost[claim.group] = self._group_cost.get(claim.group, 0) + cost

    def _take_oldest(self, count: int) -> Batch:
        oldest: list[WorkItem[Any]] = []
        while self._by_arrival and len(oldest) < count:
            item = self._by_arrival.popleft()
            if item.queued:
                oldest.append(item)
        taken = self._delete(self._positions(oldest))
        return Batch(oldest, taken.counts, taken.tokens)  # in arrival order

    def remove(self, items: Iterable[WorkItem[Any]]) -> int:
        """Take ``items`` out of the queue (those still in it); returns how many were removed."""
        return len(self._delete(self._positions(items)))

    def _positions(self, items: Iterable[WorkItem[Any]]) -> list[int]:
        """Where the queued ones of ``items`` sit in cost order, ascending."""
        return sorted(bisect.bisect_left(self._keys, item.key) for item in items if item.queued)
