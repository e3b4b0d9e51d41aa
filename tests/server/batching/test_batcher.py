"""MicroBatcher: when batches close, what they hold, and what each caller gets back.

No sleeps synchronise these tests: a threading gate holds the model while the queue fills, windows
are zero or an hour long, and waits poll for a condition under a time limit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_server.batching import BatchPolicy, Claim, DeadlineExceeded, MicroBatcher, QueueFull
from rerank_server.batching.batcher import BatchRecord

HOUR = 3600.0
pytestmark = pytest.mark.anyio


class RecordingModel:
    """A synchronous 'model' that records every batch it is given and can be held at a gate."""

    def __init__(self, fn: Callable[[Any], Any] = lambda p: p * 2) -> None:
        self.fn = fn
        self.batches: list[list[Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, payloads: list[Any]) -> list[Any]:
        self.batches.append(list(payloads))
        self.entered.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("test gate never opened")
        return [self.fn(p) for p in payloads]

    @property
    def seen(self) -> list[Any]:
        return [p for batch in self.batches for p in batch]


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def make(model: Any, **policy: Any) -> MicroBatcher[Any, Any]:
    """A batcher over ``model``; one batch in the model at a time unless ``pipeline_depth`` says more."""
    max_queued = policy.pop("max_queued", 10_000)
    depth = policy.pop("pipeline_depth", 1)
    return MicroBatcher(model, BatchPolicy(**policy), max_queued=max_queued, name="test", pipeline_depth=depth)


async def test_batch_closes_at_max_batch_size() -> None:
    model = RecordingModel()
    batcher = make(model, max_batch_size=4, max_wait_s=HOUR)
    tasks = [asyncio.create_task(batcher.submit([i], [1])) for i in range(3)]
    await wait_until(lambda: batcher.queued == 3)
    await asyncio.sleep(0)  # give the loop its turn: with an hour's window it must not cut yet
    assert model.batches == []
    tasks.append(asyncio.create_task(batcher.submit([3], [1])))
    results = await asyncio.gather(*tasks)
    assert [r.results for r in results] == [[0], [2], [4], [6]]
    assert [sorted(b) for b in model.batches] == [[0, 1, 2, 3]]
    await batcher.aclose()


async def test_batch_closes_at_token_budget() -> None:
    model = RecordingModel()
    batcher = make(model, max_batch_size=100, max_batch_tokens=100, max_wait_s=HOUR)
    first = [asyncio.create_task(batcher.submit([i], [30])) for i in range(3)]
    await wait_until(lambda: batcher.queued == 3)
    assert model.batches == []  # 90 tokens: under the budget, and the window is an hour
    last = asyncio.create_task(batcher.submit([3], [30]))
    await asyncio.gather(*first)
    # 4 x 30 = 120 > 100, so the batch that closed holds 3; the 4th waits for more company.
    assert [len(b) for b in model.batches] == [3]
    assert not last.done()
    await batcher.aclose(drain=True)
    assert (await last).results == [6]


async def test_batch_closes_after_max_wait() -> None:
    model = RecordingModel()
    batcher = make(model, max_batch_size=100, max_wait_s=0.05)
    with anyio.fail_after(10):
        done = await batcher.submit([1], [1])
    assert done.results == [2]
    assert model.batches == [[1]]
    assert done.queue_s >= 0.05  # the window is a floor: a lone item waits it out for company
    await batcher.aclose()


async def test_zero_wait_runs_a_lone_item_at_once_and_batches_what_queued_meanwhile() -> None:
    model = RecordingModel()
    model.gate.clear()
    batcher = make(model, max_batch_size=100, max_wait_s=0.0)
    first = asyncio.create_task(batcher.submit(["a"], [1]))
    await wait_until(model.entered.is_set)
    rest = [asyncio.create_task(batcher.submit([c], [1])) for c in "bcd"]
    await wait_until(lambda: batcher.queued == 3)
    model.gate.set()
    await asyncio.gather(first, *rest)
    assert model.batches == [["a"], ["b", "c", "d"]]
    await batcher.aclose()


async def test_large_submission_spans_batches_and_small_ones_share() -> None:
    model = RecordingModel()
    batcher = make(model, max_batch_size=4, max_wait_s=0.0)
    model.gate.clear()
    blocker = asyncio.create_task(batcher.submit([-1], [1]))
    await wait_until(model.entered.is_set)
    big = asyncio.create_task(batcher.submit(list(range(10)), [5] * 10))
    small = [asyncio.create_task(batcher.submit([100 + i], [5])) for i in range(2)]
    await wait_until(lambda: batcher.queued == 12)
    model.gate.set()
    assert (await big).results == [2 * i for i in range(10)]
    await asyncio.gather(blocker, *small)
    assert [len(b) for b in model.batches] == [1, 4, 4, 4]
    await batcher.aclose()


async def test_queued_items_are_grouped_by_length() -> None:
    model = RecordingModel()
    model.gate.clear()
    batcher = make(model, max_batch_size=2, max_wait_s=0.0)
    blocker = asyncio.create_task(batcher.submit(["x"], [1]))
    await wait_until(model.entered.is_set)
    costs = {"short1": 10, "long1": 400, "short2": 12, "long2": 390}
    tasks = [asyncio.create_task(batcher.submit([k], [c])) for k, c in costs.items()]
    await wait_until(lambda: batcher.queued == 4)
    model.gate.set()
    await asyncio.gather(blocker, *tasks)
    assert sorted(sorted(b) for b in model.batches[1:]) == [["long1", "long2"], ["short1", "short2"]]
    await batcher.aclose()


async def test_cancelled_caller_pairs_never_reach_the_model() -> None:
    model = RecordingModel()
    model.gate.clear()
    batcher = make(model, max_batch_size=100, max_wait_s=0.0)
    running = asyncio.create_task(batcher.submit(["first"], [1]))
    await wait_until(model.entered.is_set)
    doomed = asyncio.create_task(batcher.submit(["gone1", "gone2", "gone3"], [1, 1, 1]))
    kept = asyncio.create_task(batcher.submit(["kept"], [1]))
    await wait_until(lambda: batcher.queued == 4)
    doomed.cancel()
    await wait_until(lambda: batcher.queued == 1)
    model.gate.set()
    await asyncio.gather(running, kept)
    assert doomed.cancelled()
    assert "gone1" not in model.seen and "kept" in model.seen
    assert batcher.stats.dropped_cancelled == 3
    await batcher.aclose()


async def test_expired_deadline_drops_pairs_before_the_model() -> None:
    model = RecordingModel()
    model.gate.clear()
    batcher = make(model, max_batch_size=100, max_wait_s=0.0)
    running = asyncio.create_task(batcher.submit(["first"], [1]))
    await wait_until(model.entered.is_set)
    loop = asyncio.get_running_loop()
    with pytest.raises(DeadlineExceeded):
        await batcher.submit(["late1", "late2"], [1, 1], Claim(deadline=loop.time() + 0.01))
    model.gate.set()
    await running
    assert "late1" not in model.seen
    assert batcher.stats.dropped_expired == 2
    await batcher.aclose()


async def test_a_poison_item_fails_only_its_request_and_the_batcher_goes_on() -> None:
    def fragile(payload: str) -> str:
        if payload == "poison":
            raise ValueError("cannot score poison")
        return payload.upper()

    model = RecordingModel(fragile)
    model.gate.clear()
    batcher = make(model, max_batch_size=8, max_wait_s=0.0)
    blocker = asyncio.create_task(batcher.submit(["a"], [1]))
    await wait_until(model.entered.is_set)
    bad = asyncio.create_task(batcher.submit(["x", "poison", "y"], [5, 5, 5]))
    neighbours = [asyncio.create_task(batcher.submit([c], [5])) for c in "bcde"]
    await wait_until(lambda: batcher.queued == 7)
    model.gate.set()
    results = await asyncio.gather(blocker, bad, *neighbours, return_exceptions=True)
    assert isinstance(results[1], ValueError)  # the request holding the poison pair fails...
    assert [r.results for r in results[2:]] == [["B"], ["C"], ["D"], ["E"]]  # ...its batch-mates do not
    assert (await batcher.submit(["f"], [1])).results == ["F"]  # and it keeps serving
    assert batcher.stats.failed_batches == 1
    assert model.seen.count("b") >= 2  # retried in halves


async def test_a_model_that_always_fails_fails_every_request_of_the_batch() -> None:
    def broken(payload: str) -> str:
        raise RuntimeError("CUDA out of memory")

    model = RecordingModel(broken)
    batcher = make(model, max_batch_size=4, max_wait_s=HOUR)
    tasks = [asyncio.create_task(batcher.submit([c], [1])) for c in "abcd"]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert batcher.stats.failed_calls == 7  # 4, then 2 + 2, then 1 + 1 + 1 + 1
    await batcher.aclose()


async def test_full_queue_refuses_the_whole_submission_at_once() -> None:
    model = RecordingModel()
    model.gate.clear()
    batcher = make(model, max_batch_size=1, max_wait_s=0.0, max_queued=4)
    running = asyncio.create_task(batcher.submit(["run"], [1]))
    await wait_until(model.entered.is_set)
    waiting = asyncio.create_task(batcher.submit(["w1", "w2", "w3"], [1, 1, 1]))
    await wait_until(lambda: batcher.queued == 3)
    with pytest.raises(QueueFull, match="do not fit") as refused:
        await batcher.submit(["x", "y"], [1, 1])
    assert batcher.queued == 3  # nothing of the refused submission was queued
    assert refused.value.details == {"requested_pairs": 2, "free_places": 1, "capacity": 4}  # the numbers, out of the message
    model.gate.set()
    await asyncio.gather(running, waiting)
    assert batcher.stats.rejected_submissions == 1
    await batcher.aclose()


async def test_close_without_drain_fails_waiting_callers() -> None:
    model = RecordingModel()
    batcher = make(model, max_batch_size=10, max_wait_s=HOUR)
    waiting = asyncio.create_task(batcher.submit(["w"], [1]))
    await wait_until(lambda: batcher.queued == 1)
    await batcher.aclose(drain=False)
    with pytest.raises(Exception, match="shut down"):
        await waiting
    assert model.batches == []


submissions = st.lists(
    st.lists(st.tuples(st.integers(-1000, 1000), st.integers(1, 300)), min_size=1, max_size=12),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(
    subs=submissions,
    size=st.integers(1, 9),
    budget=st.integers(1, 2000),
    wait=st.sampled_from([0.0, 0.001]),
)
def test_every_caller_gets_its_own_results_in_its_own_order(
    subs: list[list[tuple[int, int]]], size: int, budget: int, wait: float
) -> None:
    records: list[BatchRecord] = []

    async def scenario() -> list[Sequence[int]]:
        batcher: MicroBatcher[tuple[int, int], int] = MicroBatcher(
            lambda batch: [caller * 100_000 + value for caller, value in batch],
            BatchPolicy(max_batch_size=size, max_batch_tokens=budget, max_wait_s=wait),
            max_queued=10_000,
            on_batch=records.append,
        )
        outs = await asyncio.gather(
            *(
                batcher.submit([(n, v) for v, _ in sub], [c for _, c in sub])
                for n, sub in enumerate(subs)
            )
        )
        await batcher.aclose()
        return [o.results for o in outs]

    results = asyncio.run(scenario())
    for n, (sub, got) in enumerate(zip(subs, results)):
        assert got == [n * 100_000 + v for v, _ in sub]
    for record in records:
        assert record.size <= size
        assert record.size == 1 or record.padded_tokens <= budget
    assert sum(r.size for r in records) == sum(len(s) for s in subs)


async def test_arrival_order_policy_batches_first_come_by_count_only() -> None:
    model = RecordingModel()
    model.gate.clear()
    batcher = make(model, max_batch_size=2, max_batch_tokens=10, max_wait_s=0.0, group_by_length=False)
    blocker = asyncio.create_task(batcher.submit(["x"], [1]))
    await wait_until(model.entered.is_set)
    costs = {"short1": 10, "long1": 400, "short2": 12, "long2": 390}
    tasks = [asyncio.create_task(batcher.submit([k], [c])) for k, c in costs.items()]
    await wait_until(lambda: batcher.queued == 4)
    model.gate.set()
    await asyncio.gather(blocker, *tasks)
    # Arrival order, two at a time, whatever the lengths or the token budget.
    assert model.batches[1:] == [["short1", "long1"], ["short2", "long2"]]
    await batcher.aclose()


async def test_per_request_runner_makes_one_model_call_per_request() -> None:
    from rerank_server.batching.unbatched import PerRequestRunner

    model = RecordingModel()
    runner: PerRequestRunner[int, int] = PerRequestRunner(model, max_queued=6)
    results = await asyncio.gather(*(runner.submit([i, i + 100], [1, 1]) for i in range(3)))
    assert [r.results for r in results] == [[0, 200], [2, 202], [4, 204]]
    assert sorted(model.batches) == [[0, 100], [1, 101], [2, 102]]
    with pytest.raises(QueueFull):
        await runner.submit(list(range(7)), [1] * 7)
    await runner.aclose()


class StagedModel:
    """A model in three stages that records which batches each stage saw; ``forward`` waits at a gate."""

    def __init__(self, bad: object = None) -> None:
        self.collated: list[list[Any]] = []
        self.forwarded: list[list[Any]] = []
        self.threads: list[tuple[str, Any, str]] = []  # (stage, the batch's first payload, the thread it ran on)
        self.gate = threading.Event()
        self.bad = bad  # a payload whose batch fails in fetch, as an asynchronous device error would

    def collate(self, payloads: list[Any]) -> list[Any]:
        self.threads.append(("collate", payloads[0], threading.current_thread().name))
        self.collated.append(list(payloads))
        return list(payloads)

    def forward(self, inputs: list[Any]) -> list[Any]:
        self.threads.append(("forward", inputs[0], threading.current_thread().name))
        self.forwarded.append(inputs)
        if not self.gate.wait(timeout=30):
            raise TimeoutError("test gate never opened")
        return [p * 10 for p in inputs]

    def fetch(self, output: list[Any]) -> list[Any]:
        self.threads.append(("fetch", output[0] // 10, threading.current_thread().name))
        if self.bad is not None and self.bad * 10 in output:
            raise ValueError("bad payload")
        return output


async def test_next_batch_is_collated_while_the_model_runs_and_depth_bounds_the_pipeline() -> None:
    model = StagedModel()
    batcher = make(model, max_batch_size=2, max_wait_s=HOUR, pipeline_depth=2)
    tasks = [asyncio.create_task(batcher.submit([i], [1])) for i in range(6)]
    # Batch 1 is held in forward; batch 2 is cut and collated meanwhile; batch 3 waits for room.
    await wait_until(lambda: len(model.collated) == 2)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(model.forwarded) == 1 and len(model.collated) == 2 and batcher.queued == 2
    model.gate.set()
    results = await asyncio.gather(*tasks)
    assert [r.results for r in results] == [[10 * i] for i in range(6)]
    assert len(model.collated) == 3
    await batcher.aclose()


async def test_a_batch_that_finds_the_device_idle_runs_its_stages_on_one_thread() -> None:
    model = StagedModel()
    batcher = make(model, max_batch_size=1, max_wait_s=HOUR, pipeline_depth=2)
    first = asyncio.create_task(batcher.submit([1], [1]))
    await wait_until(lambda: len(model.forwarded) == 1)  # held in forward, on the first stage's thread
    second = asyncio.create_task(batcher.submit([2], [1]))  # a full batch: cut while the first runs
    await wait_until(lambda: batcher.queued == 0 and batcher.lane_batches == [2])
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(model.collated) == 1  # it waits behind the first, which holds the first stage's thread
    model.gate.set()
    assert [r.results for r in await asyncio.gather(first, second)] == [[10], [20]]
    ran = {(stage, payload): thread.split("-")[0] for stage, payload, thread in model.threads}
    # Nothing ahead of the first: no overlap to gain, so no hand-offs between threads.
    assert [ran[stage, 1] for stage in ("collate", "forward", "fetch")] == ["collate"] * 3
    # The second was submitted while the first ran: each stage on its own thread, so that it can overlap.
    assert [ran[stage, 2] for stage in ("collate", "forward", "fetch")] == ["collate", "forward", "fetch"]
    await batcher.aclose()


async def test_a_partial_batch_waits_for_the_pipeline_to_empty_even_with_no_window() -> None:
    model = StagedModel()
    batcher = make(model, max_batch_size=4, max_wait_s=0.0, pipeline_depth=2)
    first = asyncio.create_task(batcher.submit([1], [1]))
    await wait_until(lambda: len(model.forwarded) == 1)
    second = asyncio.create_task(batcher.submit([2], [1]))
    await wait_until(lambda: batcher.queued == 1)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(model.collated) == 1  # not cut while the device is busy: it may still fill
    third = asyncio.create_task(batcher.submit([3], [1]))
    await wait_until(lambda: batcher.queued == 2)
    model.gate.set()
    await asyncio.gather(first, second, third)
    assert model.collated[1] == [2, 3]  # both waited for the device and shared its next call
    await batcher.aclose()


async def test_a_failing_fetch_is_isolated_like_a_failing_forward() -> None:
    model = StagedModel(bad=3)
    model.gate.set()
    batcher = make(model, max_batch_size=4, max_wait_s=HOUR, pipeline_depth=2)
    tasks = [asyncio.create_task(batcher.submit([i], [1])) for i in range(4)]
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert [o.results for o in outcomes if not isinstance(o, BaseException)] == [[0], [10], [20]]
    assert isinstance(outcomes[3], ValueError)
    await batcher.aclose()


async def test_closing_waits_for_a_failed_batch_to_be_isolated() -> None:
    model = StagedModel(bad=3)
    batcher = make(model, max_batch_size=4, max_wait_s=HOUR, pipeline_depth=2)
    tasks = [asyncio.create_task(batcher.submit([i], [1])) for i in range(4)]
    await wait_until(lambda: len(model.forwarded) == 1)  # the batch is on the device
    closing = asyncio.create_task(batcher.aclose(drain=True))
    model.gate.set()  # it fails; its halves, and theirs, run before the stage threads stop
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await closing
    assert [o.results for o in outcomes if not isinstance(o, BaseException)] == [[0], [10], [20]]
    assert isinstance(outcomes[3], ValueError) and len(model.forwarded) == 5  # the batch, two halves, two quarters


async def test_reserved_room_counts_as_taken_until_released() -> None:
    batcher = make(RecordingModel(), max_queued=3)
    held = batcher.reserve(2)
    with pytest.raises(QueueFull, match="do not fit") as refused:
        batcher.reserve(2)  # two requests admitted at once cannot overfill the queue
    assert refused.value.details["free_places"] == 1
    held.release()
    held.release()  # once only
    with batcher.reserve(3):
        pass
    with pytest.raises(QueueFull, match="do not fit") as too_many:
        batcher.reserve(4)
    assert too_many.value.details["requested_pairs"] == 4
    assert (await batcher.submit([1, 2, 3], [1, 1, 1], reservation=batcher.reserve(3))).results == [2, 4, 6]
    with batcher.reserve(3):  # the reservation became the items, and they are done: all room is free
        assert batcher.queued == 0
    await batcher.aclose()


async def test_two_devices_take_batches_from_one_queue_and_the_free_one_runs_the_next() -> None:
    busy, free = RecordingModel(), RecordingModel()
    busy.gate.clear()
    batcher = make([busy, free], max_batch_size=2, max_wait_s=HOUR)
    first = asyncio.create_task(batcher.submit([1, 2], [1, 1]))
    await wait_until(busy.entered.is_set)  # the first device holds batch 1 at its gate
    with anyio.fail_after(30):  # (a failsafe: batch 2 runs at once on the free device, or never)
        second = await batcher.submit([3, 4], [1, 1])
    assert second.results == [6, 8] and free.seen == [3, 4] and not first.done()
    busy.gate.set()
    assert (await first).results == [2, 4]
    assert batcher.lane_batches == [1, 1]
    await batcher.aclose()
