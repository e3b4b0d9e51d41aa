"""Who goes next: priorities with a guaranteed share and aging for bulk work, fair turns between callers,
and earliest deadline first within a caller.

The batch policy decides *which queued items* make a good batch (similar length, within the budget);
the scheduler decides *whose request* the next batch must advance. Together: interactive work goes
first, bulk work keeps a share and never waits past a bound, a caller flooding the queue cannot take
another caller's turns, and within one caller the request due first is served first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .claim import Priority
from .ticket import Ticket

__all__ = ["FairShare", "Group", "Priority", "Scheduler"]


Group = tuple[int, str]  # (priority, tenant): whose turn the scheduler tracks

# A caller with no request waiting for this long starts afresh when it comes back.
FORGET_S = 10.0
# A caller that had a request waiting this recently still competes (a closed loop between two requests).
ACTIVE_S = 1.0
# What a caller back from such a gap may be owed, in batches: the batches cut ahead while its last ones ran
# and those cut while its next request was tokenized (measured: 2 batches a cycle were not enough for a
# caller of 2 closed-loop requests against one of 10 to get its half). More lets a pause buy a longer run.
OWED_BATCHES = 4


@dataclass(frozen=True)
class FairShare:
    """How the device is shared when several kinds of work wait.

    Attributes:
        bulk_share: share of the served pairs bulk work gets while interactive work waits too
            (0.1: one pair in ten); when only one kind waits, it gets everything.
        bulk_max_wait_s: a bulk request that has waited this long is served as if it were interactive
            (aging): the bound on how long bulk work can be held back by priority.
    """

    bulk_share: float = 0.1
    bulk_max_wait_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.bulk_share <= 1.0:
            raise ValueError(f"bulk_share must be between 0 and 1, got {self.bulk_share}")
        if self.bulk_max_wait_s < 0:
            raise ValueError(f"bulk_max_wait_s must not be negative, got {self.bulk_max_wait_s}")


class Scheduler:
    """Picks the request each batch is cut around, from the requests with items still queued.

    1. The priority: interactive, unless bulk is owed its share of the pairs served while both waited,
       or a bulk request has waited ``bulk_max_wait_s`` (then it goes first, oldest first).
    2. Within the priority, the caller (tenant) that has been served the fewest pairs while callers
       competed: turns go round so that each backlogged caller gets an equal share of the pairs.
    3. Within the caller, the request whose deadline comes first, then the oldest. A request without a
       deadline counts as due ``bulk_max_wait_s`` after it arrived, so requests with deadlines cannot
       hold it back for ever.

    Counts only grow while there is competition: a kind or caller that was alone does not build up
    credit. A caller's count outlives short gaps (a closed-loop caller has nothing queued between its
    answer and its next request, while the others are served): it comes back with what it is owed from
    the gap, at most ``OWED_BATCHES`` batches' worth below the least-served waiting caller (more would let
    a caller that paused take the device from the others for as long), and is forgotten after ``forget_s``
    without a request. Equal counts go to the caller whose last turn is oldest, so no name wins every tie.
    """

    def __init__(self, share: FairShare | None = None, forget_s: float = FORGET_S) -> None:
        self.share = share or FairShare()
        self.forget_s = forget_s
        self._by_priority: dict[int, int] = {}  # pairs served while more than one priority waited
        self._by_group: dict[Group, int] = {}  # pairs served while more than one caller of a priority waited
        self._seen: dict[Group, float] = {}  # when each counted caller last had a request waiting
        self._last_turn: dict[Group, int] = {}  # the batch that last served each caller
        self._batches = 0
        self._largest_batch = 0  # pairs: what a returning caller may be owed is counted in batches
        self._now = 0.0  # the time of the last choice

    def choose(self, waiting: Iterable[Ticket[Any]], now: float) -> Ticket[Any]:
        """The request the next batch must advance, among ``waiting`` (not empty)."""
        tickets = list(waiting)
        aged = [t for t in tickets if t.priority > Priority.INTERACTIVE and now - t.enqueued_at >= self.share.bulk_max_wait_s]
        if aged:
            return min(aged, key=lambda t: t.enqueued_at)
        priorities = {t.priority for t in tickets}
        priority = self._priority(priorities)
        same = [t for t in tickets if t.priority == priority]
        tenant = self._tenant(priority, {t.tenant for t in same}, now)
        mine = [t for t in same if t.tenant == tenant]
        horizon = self.share.bulk_max_wait_s
        return min(mine, key=lambda t: (t.deadline if t.deadline is not None else t.enqueued_at + horizon, t.enqueued_at))

    def callers(self, priority: int, now: float) -> int:
        """How many callers of ``priority`` are taking turns: those with a request waiting within the
        last ``ACTIVE_S`` (at least one)."""
        return max(1, sum(1 for (p, _), seen in self._seen.items() if p == priority and now - seen <= ACTIVE_S))

    def served(self, pairs_by_group: Mapping[Group, int], waiting: Iterable[Ticket[Any]]) -> None:
        """Count a batch's pairs (by priority and caller), given who else was waiting when it was cut.

        A caller that had a request waiting within the last ``ACTIVE_S`` competes too: a closed-loop
        caller is between its answer and its next request for a moment after every answer, and the
        pairs others get meanwhile are what it is owed."""
        recent = {g for g, seen in self._seen.items() if self._now - seen <= ACTIVE_S}
        competing = {(t.priority, t.tenant) for t in waiting} | set(pairs_by_group) | recent
        priorities = {p for p, _ in competing}
        self._batches += 1
        self._largest_batch = max(self._largest_batch, sum(pairs_by_group.values()))
        for (priority, tenant), pairs in pairs_by_group.items():
            self._last_turn[(priority, tenant)] = self._batches
            if len(priorities) > 1:
                self._by_priority[priority] = self._by_priority.get(priority, 0) + pairs
            if len({g for g in competing if g[0] == priority}) > 1:
                self._by_group[(priority, tenant)] = self._by_group.get((priority, tenant), 0) + pairs

    def _priority(self, waiting: set[int]) -> int:
        if len(waiting) == 1:
            self._by_priority.clear()  # no competition: no credit or debt carries over
            return next(iter(waiting))
        top, rest = min(waiting), sorted(waiting)[1:]
        total = sum(self._by_priority.get(p, 0) for p in waiting)
        for priority in rest:  # lower priorities are owed their share of what was served
            if self._by_priority.get(priority, 0) < self.share.bulk_share * total:
                return priority
        return top

    def _tenant(self, priority: int, waiting: set[str], now: float) -> str:
        self._now = now
        for tenant in waiting:
            self._seen[(priority, tenant)] = now
        for group in [g for g, seen in self._seen.items() if now - seen > self.forget_s]:
            del self._seen[group]  # quiet for long: its count no longer competes
            self._by_group.pop(group, None)
            self._last_turn.pop(group, None)
        if len(waiting) == 1:
            return next(iter(waiting))
        counts = {tenant: self._by_group.get((priority, tenant)) for tenant in waiting}
        owed = OWED_BATCHES * self._largest_batch
        known = sorted((c, t) for t, c in counts.items() if c is not None)[:2]  # the least served, and the next
        for tenant, count in counts.items():
            others = [c for c, t in known if t != tenant]
            floor = others[0] if others else (count or 0)
            # Newly competing: level with the least served. Back after a gap: owed what it missed, within bounds.
            self._by_group[(priority, tenant)] = floor if count is None else max(count, floor - owed)
        return min(waiting, key=lambda tenant: (self._by_group[(priority, tenant)], self._last_turn.get((priority, tenant), 0), tenant))
