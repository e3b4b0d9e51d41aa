"""When a batch closes and which queued items go into it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
    """

    max_batch_size: int = 32
    max_batch_tokens: int = 16384
    max_wait_s: float = 0.005
    group_by_length: bool = True

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be at least 1, got {self.max_batch_tokens}")
        if self.max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {self.max_wait_s}")

    def fits(self, count: int, longest: int) -> bool:
        """Whether ``count`` items padded to ``longest`` tokens stay within both limits."""
        return count <= self.max_batch_size and count * longest <= self.max_batch_tokens

    def select(self, costs: Sequence[int], anchor: int) -> range:
        """Pick a batch from ``costs`` sorted ascending: a contiguous run that contains ``anchor``.

        The anchor is the oldest waiting item, so it always runs (nothing starves) even when it alone
        is over the token budget. Around it the run grows one neighbour at a time towards whichever
        neighbour's cost is nearer the anchor's, so a batch holds items of similar length and pads
        little. Because the costs are sorted, the run's longest item is always its last.
        """
        lo, hi = anchor, anchor + 1  # the run is costs[lo:hi]
        target = costs[anchor]
        while hi - lo < self.max_batch_size:
            can_left = lo > 0 and self.fits(hi - lo + 1, costs[hi - 1])
            can_right = hi < len(costs) and self.fits(hi - lo + 1, costs[hi])
            if can_left and (not can_right or target - costs[lo - 1] <= costs[hi] - target):
                lo -= 1
            elif can_right:
                hi += 1
            else:
                break
        return range(lo, hi)
