"""BatchPolicy.select: which queued items (sorted by cost) form the next batch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rerank_server.batching import BatchPolicy


def test_rejects_impossible_limits() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchPolicy(max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        BatchPolicy(max_wait_s=-1)


def test_groups_items_of_similar_length_around_the_anchor() -> None:
    policy = BatchPolicy(max_batch_size=3, max_batch_tokens=10_000)
    costs = [10, 11, 12, 200, 210, 220]
    assert list(policy.select(costs, anchor=4)) == [3, 4, 5]
    assert list(policy.select(costs, anchor=0)) == [0, 1, 2]


def test_token_budget_counts_padding_not_the_sum() -> None:
    # 3 x 100 padded = 300 > 250 even though the sum 10 + 10 + 100 = 120 is well under it.
    policy = BatchPolicy(max_batch_size=10, max_batch_tokens=250)
    assert list(policy.select([10, 10, 100], anchor=2)) == [1, 2]


def test_an_item_over_the_budget_still_runs_alone() -> None:
    policy = BatchPolicy(max_batch_size=10, max_batch_tokens=50)
    assert list(policy.select([10, 500], anchor=1)) == [1]


@given(
    costs=st.lists(st.integers(1, 600), min_size=1, max_size=60).map(sorted),
    size=st.integers(1, 16),
    budget=st.integers(1, 5000),
    data=st.data(),
)
def test_selection_respects_the_limits_and_keeps_the_anchor(
    costs: list[int], size: int, budget: int, data: st.DataObject
) -> None:
    anchor = data.draw(st.integers(0, len(costs) - 1))
    chosen = BatchPolicy(max_batch_size=size, max_batch_tokens=budget).select(costs, anchor)
    assert anchor in chosen
    assert 1 <= len(chosen) <= size
    if len(chosen) > 1:
        assert len(chosen) * costs[chosen[-1]] <= budget
