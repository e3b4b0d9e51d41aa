"""The micro-batcher: turns many concurrent submissions into few, full batches for one model."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .claim import NO_CLAIM, Claim
from .errors import BatcherClosed, DeadlineExceeded, QueueFull, WouldMissDeadline
from .policy import BatchPolicy
from .queue import Batch, WorkQueue
from .scheduling import FairShare, Scheduler
from .speed import SpeedEstimate
from .stages import BatchStages, as_stages
from .lanes import Lane, freest, lanes_for
from .ticket import Ticket, WorkItem, set_exception_if_pending, set_result_if_pending

P = TypeVar("P")
R = TypeVar("R")

log = logging.getLogger(__name__)

Clock = Callable[[], float]

SEED_ITEM_COST = 128.0  # tokens an item is taken to cost before any was queued
# Admission plans with this much more time than the speed estimate says: the estimate is of the batches
# already run, and the machine can slow down (the load itself tokenizes on the same cores) after a request
# is admitted. Without it, requests admitted at the bound under overload were the ones that expired.
HEADROOM = 1.2


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
    dropped_cancelled: int = 0
    dropped_expired: int = 0
    # By (priority, tenant): pairs the model scored, submissions refused, and queue waits (seconds summed).
    served_pairs: Counter[tuple[int, str]] = field(default_factory=Counter)
    refused: Counter[tuple[int, str]] = field(default_factory=Counter)
    queue_wait_s: defaultdict[tuple[int, str], float] = field(default_factory=lambda: defaultdict(float))
    queue_waits: Counter[tuple[int, str]] = field(default_factory=Counter)

    @property
    def rejected_submissions(self) -> int:
        """Submissions refused (queue full, a deadline it would miss), whoever sent them."""
        return sum(self.refused.values())


class MicroBatcher(Generic[P, R]):
    """Queues the items of concurrent submissions and runs them through a model in batches.

    The model is either a synchronous function (a batch of payloads in, one result per payload out, in
    order) or :class:`BatchStages` (collate, forward, fetch). Each stage runs on a worker thread of its
    own, one batch at a time: a second concurrent forward on the same device only fights the first.
    Given several models (one per device: see ``lanes``), one queue feeds them all, each batch going to
    the device with the fewest batches in flight, and admission counts on all of them.
    Up to ``pipeline_depth`` batches are in the stages at once, so batch N+1 is collated while batch N
    runs and batch N-1 is fetched.

    A batch is cut when the queue holds ``max_batch_size`` items or ``max_batch_tokens`` tokens and the
    pipeline has room; a partial batch only once the pipeline is empty (the device is free) and the
    oldest waiting item has waited ``max_wait_s``. So under load every batch is full and the device
    never waits for one, and when idle a request waits at most ``max_wait_s`` (0: not at all). The
    items of a batch are a run of similar cost that holds at least one item of the oldest waiting
    submission (see :meth:`BatchPolicy.select`), so long and short items are not padded together and
    no submission starves.

    Submissions whose caller was cancelled, or whose deadline passed, leave the queue before their items
    reach the model. When ``process`` raises, the batch is retried in halves until the failing items are
    isolated: only the submissions holding them fail.
    """

    def __init__(
        self,
        model: BatchStages[P, R] | Callable[[list[P]], Sequence[R]] | Sequence[BatchStages[P, R]],
        policy: BatchPolicy,
        *,
        max_queued: int,
        name: str = "model",
        clock: Clock = time.monotonic,
        on_batch: Callable[[BatchRecord], None] | None = None,
        pipeline_depth: int = 2,
        share: FairShare | None = None,
        tenant_share: float = 1.0,
        speed: SpeedEstimate | None = None,
    ) -> None:
        if pipeline_depth < 1:
            raise ValueError(f"pipeline_depth must be at least 1, got {pipeline_depth}")
        self.policy = policy
        self.name = name
        self.stats = BatcherStats()
        self.pipeline_depth = pipeline_depth
        # One lane per device the model runs on (a list of stages: one each); every lane takes batches
        # from the one queue.
        models = [as_stages(m) for m in model] if isinstance(model, (list, tuple)) else [as_stages(model)]  # type: ignore[arg-type]
        self._lanes: list[Lane[P, R]] = lanes_for(models, name)
        self._queue = WorkQueue(max_queued, tenant_share)
        self._scheduler = Scheduler(share)
        # The model's speed, from the batches it runs (seeded by a start-up measurement): how long the
        # work queued ahead of a request takes, which decides whether it can meet its deadline.
        self.speed = speed if speed is not None else SpeedEstimate()
        # Tokens an item costs on average: a request's own work when its caller cannot estimate it. Seeded
        # by the policy's tokens per item, at most a usual model's length (a budget of "no token limit"
        # must not make every item look enormous).
        self._mean_cost = min(policy.max_batch_tokens / policy.max_batch_size, SEED_ITEM_COST)
        self._in_flight_cost = 0  # tokens of the batches cut and not yet answered
        self._clock = clock
        self.on_batch = on_batch  # called with a BatchRecord after every model call (metrics)
        self._live: dict[Ticket[Any], list[WorkItem[P]]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        """Items waiting for the model now."""
        return len(self._queue)

    @property
    def lane_batches(self) -> list[int]:
        """Batches (model calls) run so far on each device the model runs on."""
        return [lane.batches for lane in self._lanes]

    @property
    def capacity(self) -> int:
        """Most items that may wait at once."""
        return self._queue.capacity

    @property
    def queued_seconds(self) -> float:
        """The estimated model time of the work held (queued, reserved) and in flight, at every priority."""
        return self._seconds(self._queue.held_cost + self._in_flight_cost)

    def reserve(self, count: int, claim: Claim = NO_CLAIM, cost: int | None = None) -> Reservation:
        """Admit a request of ``count`` items before its caller spends work (tokenizing) on it, and hold
        its room in the queue until :meth:`submit` queues the items (or the reservation is released).

        Raises :class:`QueueFull` if the items would not fit, and :class:`WouldMissDeadline` if the work
        ahead of it (see :meth:`WorkQueue.cost_ahead`: other callers' only as far as turns give it to
        them first), the batches in flight and its own work (``cost``: the caller's estimate of its
        tokens; None: ``count`` items of the average cost so far), at the model's running speed, outlast
        the claim's deadline.
        """
        cost = max(1, round(count * self._mean_cost) if cost is None else cost)
        try:
            self._refuse_late(cost, claim)
            self._queue.reserve(count, cost, claim)
        except (QueueFull, WouldMissDeadline):
            self.stats.refused[claim.group] += 1
            raise
        return Reservation(self, count, cost, claim)

    async def admit(self, count: int, claim: Claim = NO_CLAIM, cost: int | None = None) -> Reservation:
        """:meth:`reserve`, for callers written for a queue in another process (see ``engine.link``)."""
        return self.reserve(count, claim, cost)

    def _seconds(self, tokens: int) -> float:
        """Model time for ``tokens`` of work, cut into batches as the policy cuts them and shared by the
        lanes (the speed is one device's)."""
        return self.speed.seconds(tokens, -(-tokens // self.policy.max_batch_tokens)) / len(self._lanes)

    def _refuse_late(self, cost: int, claim: Claim) -> None:
        """Raise :class:`WouldMissDeadline` if ``cost`` more tokens of ``claim`` cannot finish by its deadline."""
        if claim.deadline is None or not self.speed.known:
            return
        now = self._clock()
        callers = self._scheduler.callers(claim.priority, now)
        need = HEADROOM * self._seconds(self._queue.cost_ahead(claim, cost, callers) + self._in_flight_cost)
        left = claim.deadline - now
        if need > left:
            raise WouldMissDeadline(need, left, claim.default_deadline)

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def submit(
        self, payloads: Sequence[P], costs: Sequence[int], claim: Claim = NO_CLAIM, reservation: Reservation | None = None
    ) -> Completed[R]:
        """Queue ``payloads`` (with their token ``costs``) and wait for their results.

        Args:
            payloads: the work items, e.g. (query, document) pairs.
            costs: tokens each payload costs the model; used for the token budget and length grouping.
            claim: the request's deadline (a time on this batcher's clock after which the results are no
                longer wanted; also the order within a caller's requests), priority and caller.
            reservation: room held for these items by :meth:`reserve`, where the request was admitted
                (then ``claim`` is its claim); without one, the request is admitted here.

        Raises:
            QueueFull: the queue has no room for all of them; nothing was queued.
            WouldMissDeadline: the work ahead and its own outlast its deadline; nothing was queued.
            DeadlineExceeded: the deadline passed first; the items left the queue.
            BatcherClosed: the batcher is shutting down.
            Exception: whatever ``process`` raised on a batch that held one of these items.
        """
        # Cancelling this coroutine cancels the future, which takes the items out of the queue.
        return await self.enqueue(payloads, costs, claim, reservation)

    def enqueue(
        self, payloads: Sequence[P], costs: Sequence[int], claim: Claim = NO_CLAIM, reservation: Reservation | None = None
    ) -> asyncio.Future[Completed[R]]:
        """:meth:`submit` without awaiting: queue ``payloads`` and return the future of their results.

        For a caller that answers many requests on one event loop from callbacks (the engine process
        serves every front end's requests so: a task and a timeout a request were a third of its work).
        Refusals (QueueFull, WouldMissDeadline, BatcherClosed) raise here, at once; the future fails with
        DeadlineExceeded or the model's error. Cancelling the future takes its items out of the queue.
        """
        if len(payloads) != len(costs):
            raise ValueError(f"{len(payloads)} payloads but {len(costs)} costs")
        if reservation is not None:
            claim = reservation.claim
            reservation.release()
        if self._closing:
            raise BatcherClosed(f"model {self.name!r} is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Completed[R]] = loop.create_future()
        if not payloads:
            future.set_result(Completed([], 0.0, 0.0))
            return future
        self.start()
        now = self._clock()
        ticket: Ticket[R] = Ticket(size=len(payloads), future=future, enqueued_at=now, claim=claim)
        # Positional arguments: keywords made this, one item a pair, take half again as long.
        items = [WorkItem(payload, max(1, int(cost)), ticket, i, now) for i, (payload, cost) in enumerate(zip(payloads, costs))]
        total = sum(item.cost for item in items)
        try:
            if reservation is None:
                self._refuse_late(total, claim)
            # else it was admitted at reserve(): refusing it now, after its caller waited for its texts to
            # be tokenized, would make a slow refusal of what a fast one should have been (3 s, measured at
            # the bound under overload); the estimate it was admitted by errs long.
            self._queue.put(items, total)
        except (QueueFull, WouldMissDeadline):
            self.stats.refused[claim.group] += 1
            raise
        self._mean_cost += (total / len(items) - self._mean_cost) * min(1.0, len(items) / 256)
        self._live[ticket] = items
        self.stats.submissions += 1
        self.stats.items += len(items)
        if self._may_cut():
            self._wakeup.set()
        if claim.deadline is not None:
            ticket.timer = loop.call_later(max(0.0, claim.deadline - self._clock()), self._expire, ticket)
        future.add_done_callback(functools.partial(self._settled, ticket))
        return future

    def _may_cut(self) -> bool:
        """Whether new items may let the loop cut a batch now (what :meth:`_wait_for_batch` acts on): a device
        is idle, or the pipeline has room and a full batch waits. Otherwise the batch in flight wakes the
        loop when it is done; waking it for every request as well cost a loop turn a request for nothing
        (measured in-process, 16 callers on a 2 ms device: the loop's CPU a pair 7.55 -> 7.18 us)."""
        in_flight = len(freest(self._lanes).in_flight)
        return in_flight == 0 or (in_flight < self.pipeline_depth and self._queue.full_batch_ready(self.policy))

    def _expire(self, ticket: Ticket[Any]) -> None:
        """The deadline passed before the results came: fail the ticket, dropping what is still queued."""
        self._abandon(ticket, DeadlineExceeded(f"deadline passed with {ticket.remaining} of {ticket.size} pairs unscored"))

    def _settled(self, ticket: Ticket[Any], future: asyncio.Future[Any]) -> None:
        """The ticket's future is done: stop its deadline's timer; a caller that cancelled it left, so its
        items leave the queue."""
        if ticket.timer is not None:
            ticket.timer.cancel()
        if future.cancelled() and ticket in self._live:
            self._abandon(ticket, None)

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
        for lane in self._lanes:
            lane.shutdown()

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
                # Mark it retrieved: a waiting caller still gets it, a gone one never will.
                ticket.future.exception()
        elif not ticket.future.done():
            ticket.future.cancel()

    def _drop_expired(self, now: float) -> None:
        for ticket in [t for t in self._live if t.expired(now)]:
            self._abandon(ticket, DeadlineExceeded("deadline passed while waiting for the model"))

    async def _wait_for_batch(self) -> None:
        """Return once a batch should be cut: the pipeline has room and the queue can fill a batch, or
        the pipeline is empty and the oldest item has waited ``max_wait_s``; or once closing."""
        while True:
            self._wakeup.clear()
            oldest = self._queue.oldest()
            remaining: float | None = None
            if oldest is None:
                if self._closing:
                    return
            elif len(freest(self._lanes).in_flight) < self.pipeline_depth:
                if self._closing or self._queue.full_batch_ready(self.policy):
                    return
                if not freest(self._lanes).in_flight:  # a device is free: a partial batch may go once it has waited
                    remaining = oldest.arrived + self.policy.max_wait_s - self._clock()
                    if remaining <= 0:
                        return
            # Otherwise wait for a submission or a finished batch (both set the wakeup) or the window.
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
        while True:
            await self._wait_for_batch()
            self._drop_expired(self._clock())
            batch = self._queue.take_batch(self.policy, self._scheduler, self._clock())
            if not batch:
                if self._closing:
                    # Waited for, not gathered: a model call's failure is its batch's, handled by its callback,
                    # which isolates it in a task of its own; that is waited for too.
                    while running := [call for lane in self._lanes for call in lane.in_flight]:
                        await asyncio.wait(running)
                    return
                continue
            self._in_flight_cost += batch.tokens
            self._start_batch(batch, freest(self._lanes))

    def _start_batch(self, batch: Batch, lane: Lane[P, R]) -> None:
        """Hand ``batch`` to ``lane``'s stages; :meth:`_batch_returned` takes its results.

        A callback, not a task a batch: on a fast device the engine cuts a batch every request or two,
        and the task's steps were a cost a batch for nothing when the model does not fail (when it
        does, :meth:`_isolate` runs in a task, as it makes more model calls).
        """
        started = self._clock()
        # Per-request bookkeeping is done once per request of the batch, not once per item.
        for ticket in batch.counts:
            if ticket.started_at is None:
                ticket.started_at = started
                group = ticket.claim.group
                self.stats.queue_wait_s[group] += started - ticket.enqueued_at
                self.stats.queue_waits[group] += 1
        live = self._wanted(batch, batch.counts)
        if not live:
            self._finish_batch(batch, lane, started, [_Failure(BatcherClosed("request abandoned"))] * len(batch))
            return
        # Alone: the queue cannot fill the next batch, which (partial) waits for this one to return anyway.
        future = lane.submit([item.payload for item in live], alone=not self._queue.full_batch_ready(self.policy))
        lane.in_flight.add(future)
        future.add_done_callback(functools.partial(self._batch_returned, batch, live, lane, started))

    def _batch_returned(self, batch: Batch, live: list[WorkItem[P]], lane: Lane[P, R], started: float, future: asyncio.Future[Sequence[R]]) -> None:
        """The model call of ``batch``'s ``live`` items returned: finish the batch, or isolate what failed."""
        lane.in_flight.discard(future)
        self._wakeup.set()  # the pipeline has room again
        try:
            outcomes = self._outcomes(batch, live, future.result())
        except Exception as exc:  # a model failure: isolate it (more model calls: in a task), the loop goes on
            task = asyncio.get_running_loop().create_task(self._isolate_batch(batch, live, lane, started, exc), name=f"batch-{self.name}")
            lane.in_flight.add(task)
            task.add_done_callback(functools.partial(self._batch_done, lane=lane))
            return
        self._finish_batch(batch, lane, started, outcomes)

    async def _isolate_batch(self, batch: Batch, live: list[WorkItem[P]], lane: Lane[P, R], started: float, error: Exception) -> None:
        self._finish_batch(batch, lane, started, await self._isolate(batch, live, lane, error))

    def _batch_done(self, task: asyncio.Task[None], lane: Lane[P, R]) -> None:
        lane.in_flight.discard(task)
        self._wakeup.set()  # the pipeline has room again
        if not task.cancelled() and task.exception() is not None:
            log.error("batch of %s failed outside the model", self.name, exc_info=task.exception())

    def _finish_batch(self, batch: Batch, lane: Lane[P, R], started: float, outcomes: list[Any]) -> None:
        """Account for a batch the model is done with and hand each request its results (or failure)."""
        counts, tokens = batch.counts, batch.tokens
        self._in_flight_cost -= tokens
        finished = self._clock()
        failed = any(isinstance(o, _Failure) for o in outcomes)
        self._record(batch, finished - started, failed=failed)
        if not failed:
            # Its service time: from when the model could start on it (the previous batch back) to done.
            self.speed.observe(tokens, finished - max(started, lane.last_finished))
        else:
            for item, outcome in zip(batch, outcomes):
                if isinstance(outcome, _Failure) and not item.ticket.abandoned:
                    self._abandon(item.ticket, outcome.error)
        lane.last_finished = finished
        for item, outcome in zip(batch, outcomes):
            item.ticket.results[item.index] = outcome  # a failed or abandoned ticket's are never read
        for ticket, count in counts.items():
            if ticket.abandoned:
                continue
            ticket.remaining -= count
            if ticket.remaining == 0:
                self._live.pop(ticket, None)
                begun = ticket.started_at if ticket.started_at is not None else finished
                set_result_if_pending(ticket.future, Completed(ticket.results, begun - ticket.enqueued_at, finished - begun))

    async def _process_isolating(self, items: list[WorkItem[P]], lane: Lane[P, R]) -> list[Any]:
        """Run ``items`` as one model call; if it raises, bisect and run each half on its own (see
        :meth:`_isolate`). Items of requests that already failed or went away are not run again."""
        live = self._wanted(items)
        if not live:
            return [_Failure(BatcherClosed("request abandoned"))] * len(items)
        try:
            return self._outcomes(items, live, await lane.run([item.payload for item in live]))
        except Exception as exc:  # a model failure: isolate it, the loop goes on
            return await self._isolate(items, live, lane, exc)

    async def _isolate(self, items: list[WorkItem[P]], live: list[WorkItem[P]], lane: Lane[P, R], error: Exception) -> list[Any]:
        """The outcomes of ``items`` when the model call of ``live`` (those of them still wanted) raised
        ``error``: the call bisected, each half run on its own, until the failing items are isolated.

        A batch can fail because of one bad item (then only the requests holding it fail, the rest of the
        batch still gets its scores) or because it is too big for the device (CUDA out of memory: the
        halves fit).
        """
        self.stats.failed_calls += 1
        if len(live) == 1:
            log.warning("model %s failed on one item: %r", self.name, error)
            return [_Failure(error) if item is live[0] else _Failure(BatcherClosed("request abandoned")) for item in items]
        middle = len(live) // 2
        log.info("model %s failed on a batch of %d (%r); retrying it in halves", self.name, len(live), error)
        halves = await self._process_isolating(live[:middle], lane) + await self._process_isolating(live[middle:], lane)
        by_item = {id(item): outcome for item, outcome in zip(live, halves)}
        return [by_item.get(id(item), _Failure(BatcherClosed("request abandoned"))) for item in items]

    @staticmethod
    def _wanted(items: list[WorkItem[P]], tickets: Iterable[Ticket[Any]] | None = None) -> list[WorkItem[P]]:
        """``items`` less those of requests that failed or went away (``items`` itself when none did);
        ``tickets``: their requests, when known."""
        gone = {ticket for ticket in ({item.ticket for item in items} if tickets is None else tickets) if ticket.abandoned}
        return [item for item in items if item.ticket not in gone] if gone else items

    @staticmethod
    def _outcomes(items: list[WorkItem[P]], live: list[WorkItem[P]], results: Sequence[Any]) -> list[Any]:
        """Each of ``items``' outcome from the model's ``results`` for ``live``, in order; raises if the
        model returned a result too many or too few."""
        if len(results) != len(live):
            raise RuntimeError(f"the model returned {len(results)} results for a batch of {len(live)}")
        if live is items:
            return list(results)  # every item ran: the results are the outcomes, in order
        by_item: dict[int, Any] = {id(item): result for item, result in zip(live, results)}
        return [by_item.get(id(item), _Failure(BatcherClosed("request abandoned"))) for item in items]

    def _record(self, batch: Batch, duration: float, failed: bool) -> None:
        tokens, padded = batch.tokens, len(batch) * max(item.cost for item in batch)
        for ticket, count in batch.counts.items():
            self.stats.served_pairs[ticket.claim.group] += count
        self.stats.batches += 1
        self.stats.batched_items += len(batch)
        self.stats.batch_tokens += tokens
        self.stats.padded_tokens += padded
        if failed:
            self.stats.failed_batches += 1
        if self.on_batch is not None:
            self.on_batch(BatchRecord(len(batch), tokens, padded, duration, failed))


class Reservation:
    """Room a request holds in a batcher's queue from admission until its items are queued.

    Admission happens before tokenizing, so that a refusal costs the caller nothing; the reservation
    makes the requests admitted meanwhile count against the queue's room and deadlines, so that many
    arriving at once cannot all be admitted into a queue that holds only some of them. Use it as a
    context manager, or :meth:`release` it on every path: :meth:`MicroBatcher.submit` releases it when
    the items are queued.
    """

    def __init__(self, batcher: MicroBatcher[Any, Any] | None, count: int, cost: int, claim: Claim) -> None:
        self.claim = claim
        self.count = count
        self._batcher = batcher
        self._cost = cost
        self._held = True

    def release(self) -> None:
        """Give the room back (once; later calls do nothing)."""
        if self._held:
            self._held = False
            if self._batcher is not None:  # None: a batcher that holds no room ahead
                self._batcher._queue.release(self.count, self._cost, self.claim)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
