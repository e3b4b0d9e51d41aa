"""Lanes: the devices one model's batches run on, each with its own stage threads.

One queue feeds every lane: a batch goes to the lane with the fewest batches in flight, so with two GPUs
the next batch runs on whichever is free instead of waiting behind the other's (one queue per device
would leave one idle while the other's queue is long).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from .stages import BatchStages
from .threads import name_os_thread
from .ticket import set_exception_if_pending, set_result_if_pending

P = TypeVar("P")
R = TypeVar("R")

STAGES = ("collate", "forward", "fetch")


class Lane(Generic[P, R]):
    """One device: its stages, a thread for each, and its batches in flight."""

    def __init__(self, stages: BatchStages[P, R], name: str) -> None:
        self.stages = stages
        self.in_flight: set[asyncio.Future[Any]] = set()  # its batches' model calls (and isolations) not yet done
        self.last_finished = 0.0  # when its last batch came back: a batch's service time starts no earlier
        self.batches = 0  # batches run on it so far
        self._running = 0  # model calls submitted and not yet delivered (read and written on the event loop)
        # One thread per stage, each taking its batches in order from its own queue: stages of consecutive
        # batches overlap, each stage stays in batch order.
        works: list[Callable[[Any], Any]] = [stages.collate, stages.forward, stages.fetch]
        self._inboxes: list[queue.SimpleQueue[_Job | None]] = [queue.SimpleQueue() for _ in STAGES]
        outboxes = [*self._inboxes[1:], None]  # each stage feeds the next; the last, the event loop
        self._threads = [
            threading.Thread(target=_stage_worker, args=(works[at:], inbox, outbox), name=f"{stage}-{name}_0", daemon=True)
            for at, (stage, inbox, outbox) in enumerate(zip(STAGES, self._inboxes, outboxes))
        ]
        for thread in self._threads:
            thread.start()
        self._closed = False

    async def run(self, payloads: list[P]) -> Sequence[R]:
        """One model call (see :meth:`submit`), awaited."""
        return await self.submit(payloads)

    def submit(self, payloads: list[P], alone: bool = False) -> asyncio.Future[Sequence[R]]:
        """Start one model call: collate, forward and fetch, each on its stage's thread; the future of
        its results (or of the model's error).

        Each stage hands its output straight to the next stage's thread through that thread's queue, so
        the event loop wakes once a batch instead of three times, and on a GPU the forward is queued as
        soon as its inputs are collated, without waiting for the loop. (Measured on a null device, where
        batches are small: a fifth of the engine loop's time went to per-stage hand-offs through the
        loop, and a thread pool's futures and callbacks a stage cost more than a plain queue.)

        ``alone``: no other call is expected before this one returns (the caller's queue cannot fill a
        batch). Such a call on an idle lane runs all three stages on the first stage's thread: there is
        nothing to overlap it with, and each hand-off between threads is a wake-up and a context switch
        (on a fast device at low load every batch is such a call: measured on the null device in 6
        alternating rounds, the engine's CPU a pair 1.2-1.6 us lower, of 20-26). A call that comes meanwhile waits behind it and takes the
        threads in turn, as behind any earlier batch, so each stage still runs one batch at a time, in
        order.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Sequence[R]] = loop.create_future()
        if self._closed:
            done.set_exception(RuntimeError("this lane's stage threads were shut down"))
            return done
        self.batches += 1
        self._inboxes[0].put(_Job(payloads, loop, done, self, whole=alone and self._running == 0))
        self._running += 1
        return done

    def _settle(self, done: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
        """A call's outcome, on the event loop."""
        self._running -= 1
        if error is not None:
            set_exception_if_pending(done, error)
        else:
            set_result_if_pending(done, value)

    def shutdown(self) -> None:
        """Stop its threads once their work is done."""
        self._closed = True
        self._inboxes[0].put(None)  # passed on from stage to stage behind the last batch
        for thread in self._threads:
            thread.join()


class _Job:
    """A batch on its way through the stages: its value so far, where its outcome goes, and whether one
    thread runs all its stages (``whole``: its lane was idle)."""

    __slots__ = ("value", "loop", "done", "lane", "whole")

    def __init__(self, value: Any, loop: asyncio.AbstractEventLoop, done: asyncio.Future[Any], lane: Lane[Any, Any], whole: bool) -> None:
        self.value = value
        self.loop = loop
        self.done = done
        self.lane = lane
        self.whole = whole


def _stage_worker(works: Sequence[Callable[[Any], Any]], inbox: queue.SimpleQueue[_Job | None], outbox: queue.SimpleQueue[_Job | None] | None) -> None:
    """A stage's thread: run its stage's work (``works[0]``) on each job in order and pass it on, or, for a
    ``whole`` job, its stage's and the later stages' (``works[1:]``); the last stage (no outbox) hands
    the outcome to the event loop, as does any stage whose work raised."""
    name_os_thread()
    work = works[0]
    while True:
        job = inbox.get()
        if job is None:
            if outbox is not None:
                outbox.put(None)
            return
        try:
            if job.whole:
                value = job.value
                for step in works:
                    value = step(value)
                _deliver(job, value, None)
                continue
            job.value = work(job.value)
        except BaseException as exc:  # the model's failure is the batch's outcome; the thread goes on
            _deliver(job, None, exc)
            continue
        if outbox is not None:
            outbox.put(job)
        else:
            _deliver(job, job.value, None)


def _deliver(job: _Job, value: Any, error: BaseException | None) -> None:
    try:
        job.loop.call_soon_threadsafe(job.lane._settle, job.done, value, error)
    except RuntimeError:  # the event loop closed meanwhile: nobody is left to tell
        pass


def lanes_for(models: Sequence[BatchStages[P, R]], name: str) -> list[Lane[P, R]]:
    """A lane for each device's stages; threads are named after the model (and the lane, with several)."""
    if len(models) == 1:
        return [Lane(models[0], name)]
    return [Lane(model, f"{name}{index}") for index, model in enumerate(models)]


def freest(lanes: Sequence[Lane[Any, Any]]) -> Lane[Any, Any]:
    """The lane with the fewest batches in flight (the first of equals)."""
    return min(lanes, key=lambda lane: len(lane.in_flight))
