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
    assert list(policy.select(costs, [4])) == [3, 4, 5]
    assert list(policy.select(costs, [0])) == [0, 1, 2]


def test_picks_the_least_padded_run_holding_any_anchor() -> None:
    # Around anchor 0 the run [10, 100, 101] pads 10 to 101; anchor 2 offers [100, 101, 102].
    policy = BatchPolicy(max_batch_size=3, max_batch_tokens=10_000)
    assert list(policy.select([10, 100, 101, 102, 300], [0, 2])) == [1, 2, 3]


def test_short_items_are_not_padded_to_a_long_one_and_equal_ones_share_a_batch() -> None:
    policy = BatchPolicy(max_batch_size=4, max_batch_tokens=1024)  # a batch costs about 256 tokens more
    assert list(policy.select([10, 12, 250, 251, 252], [0])) == [0, 1]
    assert list(policy.select([100, 100, 100, 100, 400], [0])) == [0, 1, 2, 3]


def test_needs_an_anchor() -> None:
    with pytest.raises(ValueError, match="anchor"):
        BatchPolicy().select([1, 2], [])


def test_token_budget_counts_padding_not_the_sum() -> None:
    # 3 x 100 padded = 300 > 250: two of three equal items fit, though their sum alone would fit three.
    policy = BatchPolicy(max_batch_size=10, max_batch_tokens=250)
    assert list(policy.select([100, 100, 100], [2])) == [1, 2]


def test_an_item_over_the_budget_still_runs_alone() -> None:
    policy = BatchPolicy(max_batch_size=10, max_batch_tokens=50)
    assert list(policy.select([10, 500], [1])) == [1]


@given(
    costs=st.lists(st.integers(1, 600), min_size=1, max_size=60).map(sorted),
    size=st.integers(1, 16),
    budget=st.integers(1, 5000),
    data=st.data(),
)
def test_selection_respects_the_limits_and_holds_an_anchor(
    costs: list[int], size: int, budget: int, data: st.DataObject
) -> None:
    anchors = data.draw(st.sets(st.integers(0, len(costs) - 1), min_size=1))
    chosen = BatchPolicy(max_batch_size=size, max_batch_tokens=budget).select(costs, anchors)
    assert anchors & set(chosen)
    assert 1 <= len(chosen) <= size
    if len(chosen) > 1:
        assert len(chosen) * costs[chosen[-1]] <= budget


@given(
    costs=st.lists(st.integers(1, 600), min_size=1, max_size=40).map(sorted),
    size=st.integers(1, 48),  # up to more than the queue: whole queues that fit one batch, near-whole runs
    budget=st.integers(1, 30000),
    gpu=st.booleans(),
    data=st.data(),
)
def test_selection_is_the_cheapest_run_per_item(costs: list[int], size: int, budget: int, gpu: bool, data: st.DataObject) -> None:
    """Against every allowed run, enumerated: the vectorised search, its early exit, the shortcut for a
    queue that fits one batch (taken with a GPU's overhead, a whole token budget) and the runs nearly as
    long as such a queue, tried one by one, miss none."""
    anchors = data.draw(st.sets(st.integers(0, len(costs) - 1), min_size=1))
    policy = BatchPolicy(max_batch_size=size, max_batch_tokens=budget, overhead_tokens=float(budget) if gpu else None)

    def per_item(run: range) -> float:
        longest = costs[run[-1]]
        return (len(run) * longest - sum(costs[i] for i in run) + policy.batch_overhead_tokens) / len(run)

    allowed = [
        range(start, end + 1)
        for end in range(len(costs))
        for start in range(end + 1)
        if anchors & set(range(start, end + 1))
        and (end - start + 1 == 1 or ((end - start + 1) <= size and (end - start + 1) * costs[end] <= budget))
    ]
    assert per_item(policy.select(costs, anchors)) == pytest.approx(min(per_item(r) for r in allowed))
