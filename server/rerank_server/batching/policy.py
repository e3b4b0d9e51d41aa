"""When a batch closes and which queued items go into it."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np


# Runs this many items shorter than the queue, or fewer, are tried one by one (see BatchPolicy._near_whole).
NEAR_WHOLE = 8


@dataclass(frozen=True)
class BatchPolicy:
    """Limits that close a batch: whichever is reached first.

    Attributes:
        max_batch_size: most items in one batch.
        max_batch_tokens: most padded tokens in one batch. A model pads every item of a batch to the
            longest one, so a batch costs ``len(batch) * max(cost)``, not the sum of its costs.
        max_wait_s: how long the oldest queued item may wait for a batch to fill before a partial
            batch is run anyway.
        group_by_length: cut batches of similar length under the token budget (the default). False
            takes the oldest ``max_batch_size`` items in arrival order and ignores ``max_batch_tokens``:
            plain first-come, count-based batching, kept as the baseline benchmarks compare against.
        overhead_tokens: what one more model call costs, in padded tokens (None: one item of the size
            the limits were set for, ``max_batch_tokens / max_batch_size``, right for a CPU whose time
            grows with tokens). A GPU's call costs about as much as a full batch whatever its size
            (per-call overhead), so there it is the whole token budget: runs as long as the budget
            allows beat tightly padded short ones.
    """

    max_batch_size: int = 32
    max_batch_tokens: int = 16384
    max_wait_s: float = 0.005
    group_by_length: bool = True
    overhead_tokens: float | None = None

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be at least 1, got {self.max_batch_tokens}")
        if self.max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {self.max_wait_s}")
        if self.overhead_tokens is not None and self.overhead_tokens < 0:
            raise ValueError(f"overhead_tokens must not be negative, got {self.overhead_tokens}")

    @property
    def batch_overhead_tokens(self) -> float:
        """What one more batch costs, in padded tokens (see ``overhead_tokens``).

        It is what keeps :meth:`select` from running items one by one (a lone item pads nothing) and
        from padding many short items to one long one just to fill a batch.
        """
        if self.overhead_tokens is not None:
            return self.overhead_tokens
        return self.max_batch_tokens / self.max_batch_size

    def select(self, costs: Sequence[int], anchors: Collection[int]) -> range:
        """Pick a batch from ``costs`` sorted ascending: a contiguous run holding at least one anchor.

        The anchors are the items of the oldest waiting submission, so every batch advances it and
        nothing starves. Among the runs the limits allow, the one with the least cost per item wins:
        its padding (items padded to its longest, which is its last as costs are sorted) plus
        :attr:`batch_overhead_tokens`, over its item count.

        Choosing among all of the oldest submission's items, not only around one of them, is what keeps
        padding low when few requests are queued: the neighbourhood of one item is then sparse
        (measured on the benchmark's load: 5.6% padding, against 12.5% around the oldest item alone and
        2.5% for ``predict`` sorting every pair at once; see README).
        """
        if not anchors:
            raise ValueError("select needs at least one anchor")
        queued = len(costs)
        if queued <= self.max_batch_size and queued * costs[-1] <= self.max_batch_tokens:
            padding = queued * costs[-1] - sum(costs)
            if queued == 1 or (queued - 1) * padding <= self.batch_overhead_tokens:
                # Everything fits in one batch, and no shorter run can win: the whole run costs
                # (padding + overhead) / queued per item, a run of queued - 1 or fewer at least
                # overhead / (queued - 1), which is no less when (queued - 1) x padding <= overhead. Exact,
                # and without the search below: on a GPU (overhead: a whole token budget) this is nearly
                # every batch cut from a short queue, which the engine loop cuts hundreds of times a second
                # when the device is fast (the search was a quarter of its time on a null device).
                return range(queued)
            run = self._near_whole(costs, anchors, (padding + self.batch_overhead_tokens) / queued)
            if run is not None:
                return run
        cost = np.asarray(costs, dtype=np.int64)
        marks = np.unique(np.asarray(list(anchors), dtype=np.int64))
        # Only runs ending within max_batch_size after an anchor can hold one.
        near = np.zeros(len(cost) + 1, dtype=np.int64)
        np.add.at(near, marks, 1)
        np.add.at(near, np.minimum(marks + self.max_batch_size, len(cost)), -1)
        ends = np.flatnonzero(np.cumsum(near[:-1]) > 0)
        longest = cost[ends]
        room = np.clip(self.max_batch_tokens // np.maximum(longest, 1), 1, self.max_batch_size)
        prefix = np.concatenate(([0], np.cumsum(cost)))
        prefix_at_ends = prefix[ends + 1]
        # The first anchor at or after each position (past the last one: len(cost), after every end).
        following = np.append(marks, len(cost))[np.searchsorted(marks, np.arange(len(cost)))]
        best, chosen = np.inf, range(int(marks[0]), int(marks[0]) + 1)
        # Vectorised over the candidate ends, one pass per run length: this runs between model batches,
        # where a Python loop over thousands of queued items would cost milliseconds. Longest runs first:
        # a run of ``count`` items costs at least overhead / count per item, so once that reaches the
        # best found, no shorter run can win. Up to 64 items every length is tried (exact); beyond,
        # lengths a 64th of the longest possible run apart plus, per end, the longest run its token budget
        # allows (GPU batches of thousands would otherwise take thousands of passes). No run is longer
        # than the queue: passes for longer ones found nothing, and were most of the time spent here.
        # A pass is kept to a few array operations on the candidate ends (numpy's cost a call, not its
        # arithmetic, is what a short queue's search spends).
        top = int(min(self.max_batch_size, room.max(), queued))
        step = max(1, top // 64)
        candidates: list[int | np.ndarray] = list(range(top, 0, -step))
        if step > 1:
            candidates.insert(0, np.minimum(room, top))
        overhead = self.batch_overhead_tokens
        for count in candidates:
            if isinstance(count, int) and overhead / count >= best:
                break
            starts = np.maximum(ends + 1 - count, 0)
            ok = (ends + 1 >= count) & (count <= room) & (following[starts] <= ends)
            if not ok.any():
                continue
            per_item = np.where(ok, (count * longest - (prefix_at_ends - prefix[starts]) + overhead) / count, np.inf)
            at = int(np.argmin(per_item))
            if per_item[at] < best:  # ties keep the longer run, found first
                best, chosen = float(per_item[at]), range(int(starts[at]), int(ends[at]) + 1)
        return chosen

    def _near_whole(self, costs: Sequence[int], anchors: Collection[int], whole: float) -> range | None:
        """:meth:`select` for a queue that fits one batch (costing ``whole`` per item) when only runs nearly
        as long as the queue can beat it; None when shorter ones might (then the search decides).

        A run of ``count`` items costs at least overhead / count per item, so only counts above overhead /
        whole can win; with a GPU's overhead (a whole token budget) those are the queue's length less a
        few, and the runs of those lengths are few: each is tried in plain Python (every run of a queue
        that fits one batch fits too; the search's arithmetic, so the same run wins, ties going to the
        longer and then the earlier). The search's numpy calls for them cost more than the arithmetic:
        measured, take_batch 74 -> 38 us a batch of 40 items, where the engine cuts a batch every
        request or two on a fast device.
        """
        queued, overhead = len(costs), self.batch_overhead_tokens
        shortest = max(1, int(overhead // whole))  # fewer items than this cannot cost less per item
        if queued - shortest > NEAR_WHOLE:
            return None
        marks = sorted(set(anchors))
        prefix = list(itertools.accumulate(costs, initial=0))
        best, chosen = whole, range(queued)
        for count in range(queued - 1, shortest - 1, -1):
            if overhead / count >= best:
                break
            for start in range(queued - count + 1):
                end = start + count - 1
                first = bisect.bisect_left(marks, start)
                if first == len(marks) or marks[first] > end:
                    continue  # holds no anchor
                per_item = (count * costs[end] - (prefix[end + 1] - prefix[start]) + overhead) / count
                if per_item < best:
                    best, chosen = per_item, range(start, end + 1)
        return chosen
