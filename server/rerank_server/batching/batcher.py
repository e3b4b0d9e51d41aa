"""The micro-batcher: turns many concurrent submissions into few, full batches for one model."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import BatcherClosed, DeadlineExceeded
from .policy import BatchPolicy
from .queue import WorkQueue
from .ticket import Ticket, WorkItem, set_exception_if_pending, set_result_if_pending

P = TypeVar("P")
R = TypeVar("R")

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class _Failure:
    """The outcome of an item the model raised on (kept apart from results, which may be anything)."""

    error: BaseException


@dataclass(frozen=True)
class Completed(Generic[R]):
    """The results of one submission, in input order, and where its time went.

    Attributes:
        results: one result per submitted payload, in input order.
        queue_s: from submission until the model started on the first of its items.
        inference_s: from then until the model returned its last item.
    """

    results: list[R]
    queue_s: float
    inference_s: float


@dataclass(frozen=True)
class BatchRecord:
    """What one model call was given: reported to the ``on_batch`` hook after it returns."""

    size: int
    tokens: int  # sum of the items' costs
    padded_tokens: int  # size x longest item: what the model computes
    duration_s: float
    failed: bool


@dataclass
class BatcherStats:
    """Running totals, for tests, logs and metrics."""

    submissions: int = 0
    items: int = 0
    batches: int = 0
    batched_items: int = 0
    batch_tokens: int = 0
    padded_tokens: int = 0
    failed_batches: int = 0
    failed_calls: int = 0  # model calls that raised, retried halves included
    rejected_submissions: int = 0
    dropped_cancelled: int = 0
    dropped_expired: int = 0


class MicroBatcher(Generic[P, R]):
    """Queues the items of concurrent submissions and runs them through ``process`` in batches.

    ``process`` is synchronous (a model call): it takes a batch of payloads and returns one result per
    payload, in order. It runs on one dedicated worker thread, one batch at a time: a second
    concurrent model call on the same device only fights the first for its cores. While a batch runs,
    new items queue up, so the next batch is fuller under load and latency stays flat when idle.

    A batch closes when the queue holds ``max_batch_size`` items or ``max_batch_tokens`` tokens, or
    ``max_wait_s`` after the oldest waiting item arrived. The items in it are a run of similar cost
    that holds at least one item of the oldest waiting submission (see :meth:`BatchPolicy.select`),
    so long and short items are not padded together and no submission starves.

    Submissions whose caller was cancelled, or whose deadline passed, leave the queue before their items
    reach the model. When ``process`` raises, the batch is retried in halves until the failing items are
    isolated: only the submissions holding them fail.
    """

    def __init__(
        self,
        process: Callable[[list[P]], Sequence[R]],
        policy: BatchPolicy,
        *,
        max_queued: int,
        name: str = "model",
        clock: Clock = time.monotonic,
        on_batch: Callable[[BatchRecord], None] | None = None,
    ) -> None:
        self.policy = policy
        self.name = name
        self.stats = BatcherStats()
        self._process = process
        self._queue = WorkQueue(max_queued)
        self._clock = clock
        self.on_batch = on_batch  # called with a BatchRecord after every model call (metrics)
        self._live: dict[Ticket[Any], list[WorkItem[P]]] = {}
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        """Items waiting for the model now."""
        return len(self._queue)

    @property
    def capacity(self) -> int:
        """Most items that may wait at once."""
        return self._queue.capacity

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def submit(self, payloads: Sequence[P], costs: Sequence[int], deadline: float | None = None) -> Completed[R]:
        """Queue ``payloads`` (with their token ``costs``) and wait for their results.

        Args:
            payloads: the work items, e.g. (query, document) pairs.
            costs: tokens each payload costs the model; used for the token budget and length grouping.
            deadline: a time on this batcher's clock after which the results are no longer wanted.

        Raises:
            QueueFull: the queue has no room for all of them; nothing was queued.
            DeadlineExceeded: the deadline passed first; the items left the queue.
            BatcherClosed: the batcher is shutting down.
            Exception: whatever ``process`` raised on a batch that held one of these items.
        """
        if len(payloads) != len(costs):
            raise ValueError(f"{len(payloads)} payloads but {len(costs)} costs")
        if self._closing:
            raise BatcherClosed(f"model {self.name!r} is shutting down")
        if not payloads:
            return Completed([], 0.0, 0.0)
        self.start()
        now = self._clock()
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        ticket: Ticket[R] = Ticket(size=len(payloads), future=future, deadline=deadline, enqueued_at=now)
        items = [
            WorkItem(payload=payload, cost=max(1, int(cost)), ticket=ticket, index=i, arrived=now)
            for i, (payload, cost) in enumerate(zip(payloads, costs))
        ]
        try:
            self._queue.put(items)
        except Exception:
            self.stats.rejected_submissions += 1
            raise
        self._live[ticket] = items
        self.stats.submissions += 1
        self.stats.items += len(items)
        self._wakeup.set()
        try:
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            results = await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            error = DeadlineExceeded(f"deadline passed with {ticket.remaining} of {ticket.size} pairs unscored")
            self._abandon(ticket, error)
            raise error from None
        except asyncio.CancelledError:
            self._abandon(ticket, None)
            raise
        started = ticket.started_at if ticket.started_at is not None else now
        finished = ticket.finished_at if ticket.finished_at is not None else started
        return Completed(results, started - ticket.enqueued_at, finished - started)

    async def aclose(self, drain: bool = True) -> None:
        """Stop taking work. With ``drain``, run everything already queued first; otherwise fail it."""
        self._closing = True
        if not drain:
            for ticket in list(self._live):
                self._abandon(ticket, BatcherClosed(f"model {self.name!r} shut down before this request ran"))
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    def _abandon(self, ticket: Ticket[Any], error: BaseException | None) -> None:
        """Drop a ticket's waiting items and, with ``error``, fail it (None: the caller went away)."""
        items = self._live.pop(ticket, None)
        if items is not None:
            removed = self._queue.remove(items)
            if error is None:
                self.stats.dropped_cancelled += removed
            elif isinstance(error, DeadlineExceeded):
                self.stats.dropped_expired += removed
        if error is not None:
            set_exception_if_pending(ticket.future, error)
            if not ticket.future.cancelled():
                # Mark it retrieved: a waiting caller gets it through its shield, a gone one never will.
                ticket.future.exception()
        elif not ticket.future.done():
            ticket.future.cancel()

    def _drop_expired(self, now: float) -> None:
        for ticket in [t for t in self._live if t.expired(now)]:
            self._abandon(ticket, DeadlineExceeded("deadline passed while waiting for the model"))

    async def _wait_for_batch(self) -> None:
        """Return once a batch should be cut: the queue can fill one, or the oldest item waited enough."""
        while True:
            self._wakeup.clear()
            oldest = self._queue.oldest()
            if oldest is not None:
                if self._closing or self._queue.full_batch_ready(self.policy):
                    return
                remaining = oldest.arrived + self.policy.max_wait_s - self._clock()
                if remaining <= 0:
                    return
            elif self._closing:
                return
            else:
                remaining = None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    async def _run(self) -> None:
        try:
            await self._loop()
        except BaseException as exc:
            # A bug here must not leave callers waiting forever: fail everyone still queued.
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("batching loop of %s crashed", self.name)
            for ticket in list(self._live):
                self._abandon(ticket, BatcherClosed(f"model {self.name!r} stopped: {exc!r}"))
            raise

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_batch()
            self._drop_expired(self._clock())
            batch = self._queue.take_batch(self.policy)
            if not batch:
                if self._closing:
                    return
                continue
            await self._run_batch(loop, batch)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[WorkItem[P]]) -> None:
        started = self._clock()
        for item in batch:
            if item.ticket.started_at is None:
                item.ticket.started_at = started
        outcomes = await self._process_isolating(loop, batch)
        finished = self._clock()
        failed = any(isinstance(o, _Failure) for o in outcomes)
        self._record(batch, finished - started, failed=failed)
        for item, outcome in zip(batch, outcomes):
            ticket = item.ticket
            if ticket.abandoned:
                continue
            if isinstance(outcome, _Failure):
                self._abandon(ticket, outcome.error)
                continue
            ticket.results[item.index] = outcome
            ticket.remaining -= 1
            if ticket.remaining == 0:
                ticket.finished_at = finished
                self._live.pop(ticket, None)
                set_result_if_pending(ticket.future, ticket.results)

    async def _process_isolating(self, loop: asyncio.AbstractEventLoop, items: list[WorkItem[P]]) -> list[Any]:
        """Run ``items`` as one model call; if it raises, bisect and run each half on its own.

        A batch can fail because of one bad item (then only the requests holding it fail, the rest of the
        batch still gets its scores) or because it is too big for the device (CUDA out of memory: the
        halves fit). Items of requests that already failed or went away are not run again.
        """
        live = [item for item in items if not item.ticket.abandoned]
        if not live:
            return [_Failure(BatcherClosed("request abandoned"))] * len(items)
        try:
            results = await loop.run_in_executor(self._executor, self._process, [item.payload for item in live])
            if len(results) != len(live):
                raise RuntimeError(f"the model returned {len(results)} results for a batch of {len(live)}")
            by_item: dict[int, Any] = {id(item): result for item, result in zip(live, results)}
        except Exception as exc:  # a model failure: isolate it, the loop goes on
            self.stats.failed_calls += 1
            if len(live) == 1:
                log.warning("model %s failed on one item: %r", self.name, exc)
                return [_Failure(exc) if item is live[0] else _Failure(BatcherClosed("request abandoned")) for item in items]
            middle = len(live) // 2
            log.info("model %s failed on a batch of %d (%r); retrying it in halves", self.name, len(live), exc)
            halves = await self._process_isolating(loop, live[:middle]) + await self._process_isolating(loop, live[middle:])
            by_item = {id(item): outcome for item, outcome in zip(live, halves)}
        return [by_item.get(id(item), _Failure(BatcherClosed("request abandoned"))) for item in items]

    def _record(self, batch: list[WorkItem[P]], duration: float, failed: bool) -> None:
        tokens = sum(item.cost for item in batch)
        padded = len(batch) * max(item.cost for item in batch)
        self.stats.batches += 1
        self.stats.batched_items += len(batch)
        self.stats.batch_tokens += tokens
        self.stats.padded_tokens += padded
        if failed:
            self.stats.failed_batches += 1
        if self.on_batch is not None:
            self.on_batch(BatchRecord(len(batch), tokens, padded, duration, failed))
