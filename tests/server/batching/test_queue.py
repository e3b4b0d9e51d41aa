"""WorkQueue: all-or-nothing admission, and batches that always advance the oldest submission."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_server.batching import BatchPolicy
from rerank_server.batching.errors import QueueFull
from rerank_server.batching.queue import WorkQueue
from rerank_server.batching.ticket import Ticket, WorkItem


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop only to make futures with; nothing runs on it."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _submit(queue: WorkQueue, loop: asyncio.AbstractEventLoop, costs: list[int]) -> Ticket[Any]:
    ticket: Ticket[Any] = Ticket(size=len(costs), future=loop.create_future(), enqueued_at=0.0)
    queue.put([WorkItem(payload=i, cost=c, ticket=ticket, index=i, arrived=0.0) for i, c in enumerate(costs)])
    return ticket


@settings(max_examples=60, deadline=None)
@given(
    submissions=st.lists(st.lists(st.integers(1, 512), min_size=1, max_size=40), min_size=1, max_size=8),
    size=st.integers(1, 16),
    budget=st.integers(64, 4096),
)
def test_every_batch_advances_the_oldest_submission_and_every_item_runs_once(
    submissions: list[list[int]], size: int, budget: int
) -> None:
    loop = asyncio.new_event_loop()
    try:
        queue = WorkQueue(capacity=10_000)
        tickets = [_submit(queue, loop, costs) for costs in submissions]
        policy = BatchPolicy(max_batch_size=size, max_batch_tokens=budget)
        taken: list[WorkItem[Any]] = []
        while len(queue):
            oldest = queue.oldest()
            assert oldest is not None
            batch = queue.take_batch(policy)
            assert any(item.ticket is oldest.ticket for item in batch), "a batch skipped the oldest submission"
            assert len(batch) <= size
            if len(batch) > 1:
                assert len(batch) * max(i.cost for i in batch) <= budget
            taken.extend(batch)
        assert sorted((tickets.index(i.ticket), i.index) for i in taken) == [
            (t, i) for t, costs in enumerate(submissions) for i in range(len(costs))
        ]
    finally:
        loop.close()


def test_length_grouping_pads_less_than_batching_around_one_item(loop: asyncio.AbstractEventLoop) -> None:
    """Two interleaved requests: runs of similar length come from both, not only around the oldest item."""
    queue = WorkQueue(capacity=100)
    _submit(queue, loop, [10, 100, 300, 500])
    _submit(queue, loop, [12, 102, 104, 302, 502])
    batch = queue.take_batch(BatchPolicy(max_batch_size=3, max_batch_tokens=10_000))
    assert sorted(i.cost for i in batch) == [100, 102, 104]


def test_a_submission_that_does_not_fit_whole_is_refused_whole(loop: asyncio.AbstractEventLoop) -> None:
    queue = WorkQueue(capacity=3)
    _submit(queue, loop, [5, 6])
    with pytest.raises(QueueFull):
        _submit(queue, loop, [7, 8])
    assert len(queue) == 2
