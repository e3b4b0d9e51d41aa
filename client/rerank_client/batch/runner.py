"""Running a bulk job: records streamed in, at most ``concurrency`` in flight, results journalled as they
complete, transient failures retried, refused records skipped or the job stopped, Ctrl-C handled.

Memory is bounded whatever the input's size: records are read as slots free up, and only the id hashes
of finished records are kept (to skip them on resume).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from .backends import RETRY_FOR_S, Backend, FleetLost, RecordRefused, retrying
from .journal import Journal
from .records import Record, RecordError, id_hash, read_records

PAIR_CHUNK = 64  # one-pair records sent together in one Score call


class JobStopped(Exception):
    """The job stopped before every record was in; the message says why and how to resume."""


@dataclass
class Progress:
    """Records and pairs done against the totals, drawn on ``stream``: one line redrawn on a terminal,
    a plain line every tenth of the work (or half a minute) otherwise."""

    records: int
    pairs: int
    stream: TextIO = sys.stderr
    done_records: int = 0
    done_pairs: int = 0
    started: float = field(default_factory=time.perf_counter)
    _drawn: float = 0.0
    _tenth: int = -1

    def add(self, records: int, pairs: int) -> None:
        """Count finished work and redraw when it is time."""
        self.done_records += records
        self.done_pairs += pairs
        now = time.perf_counter()
        tenth = self.done_records * 10 // max(1, self.records)
        tty = self.stream.isatty()
        if (tty and now - self._drawn >= 0.2) or (not tty and (tenth != self._tenth or now - self._drawn >= 30)):
            self._drawn, self._tenth = now, tenth
            self.stream.write(("\r" if tty else "") + self.line() + ("" if tty else "\n"))
            self.stream.flush()

    def skip(self, records: int, pairs: int) -> None:
        """Take work that was already done (a resumed job) out of the totals."""
        self.records -= records
        self.pairs -= pairs

    def line(self) -> str:
        """``records 120/400 (30%), 812 pairs/s, ETA 2m05s``."""
        elapsed = time.perf_counter() - self.started
        rate = self.done_pairs / elapsed if elapsed > 0 else 0.0
        left = (self.pairs - self.done_pairs) / rate if rate else 0.0
        share = self.done_records / max(1, self.records)
        return f"records {self.done_records}/{self.records} ({share:.0%}), {rate:,.0f} pairs/s, ETA {int(left) // 60}m{int(left) % 60:02d}s"

    def close(self) -> None:
        """End the redrawn line."""
        if self.stream.isatty() and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class Outcome:
    """What a run did."""

    written: int = 0  # records scored and written by this run
    already: int = 0  # records found done in the output (a resumed job)
    skipped: int = 0  # malformed or refused records, with --on-error skip
    pairs: int = 0
    tokens: int = 0
    retries: int = 0
    interrupted: bool = False


class Job:
    """One bulk job: ``input`` scored by ``backend`` into ``journal``."""

    def __init__(
        self,
        input_path: str,
        journal: Journal,
        backend: Backend,
        concurrency: int,
        on_error: str,
        progress: Progress,
        errors: TextIO = sys.stderr,
        retry_for: float = RETRY_FOR_S,
    ) -> None:
        self.input_path = input_path
        self.retry_for = retry_for
        self.journal = journal
        self.backend = backend
        self.concurrency = concurrency
        self.on_error = on_error
        self.progress = progress
        self.errors = errors
        self.outcome = Outcome()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None

    async def run(self, done: np.ndarray) -> Outcome:
        """Score every record not in ``done`` (sorted id hashes); raises :class:`JobStopped` when stopped."""
        loop = asyncio.get_running_loop()
        interrupts = 0

        def interrupted() -> None:
            nonlocal interrupts
            interrupts += 1
            self.outcome.interrupted = True
            if interrupts == 1:
                self._say(f"interrupted: finishing {len(self._tasks)} records in flight (Ctrl-C again to abandon them)")
                self._stopping.set()
            else:
                for task in self._tasks:
                    task.cancel()

        handles = _on_signal(loop, interrupted)
        try:
            await self._dispatch(done)
            while self._tasks:
                await asyncio.wait(set(self._tasks))
        finally:
            handles()
            self.progress.close()
        if self._failure is not None:
            raise JobStopped(str(self._failure))
        if self.outcome.interrupted:
            raise JobStopped("interrupted")
        return self.outcome

    async def _dispatch(self, done: np.ndarray) -> None:
        pairs: list[Record] = []
        for _, item in read_records(self.input_path):
            if self._stopping.is_set():
                return
            if isinstance(item, RecordError):
                self._refused(item.where, item.problem)
                continue
            if len(done) and _contains(done, id_hash(item.id)):
                self.outcome.already += 1
                self.progress.skip(1, item.pairs)
                continue
            if item.pair:
                pairs.append(item)
                if len(pairs) == PAIR_CHUNK:
                    await self._start(pairs)
                    pairs = []
            else:
                await self._start([item])
        if pairs and not self._stopping.is_set():
            await self._start(pairs)

    async def _start(self, records: list[Record]) -> None:
        await self._slots.acquire()
        if self._stopping.is_set():
            self._slots.release()
            return
        task = asyncio.get_running_loop().create_task(self._score(records))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score(self, records: list[Record]) -> None:
        try:
            lines = await self._with_retries(records)
            if lines:
                self.journal.append(lines)
                self.outcome.written += len(lines)
            self.progress.add(len(records), sum(r.pairs for r in records))
        except asyncio.CancelledError:
            pass  # abandoned by a second Ctrl-C: not written, so a resume scores it
        except JobStopped as exc:
            self._fail(exc)
        except Exception as exc:  # anything else stops the job; what is written stays written
            self._fail(exc)
        finally:
            self._slots.release()

    async def _with_retries(self, records: list[Record]) -> list[dict[str, Any]]:
        def retried() -> None:
            self.outcome.retries += 1

        try:
            return await retrying(lambda: self._lines(records), retried, self.retry_for)
        except FleetLost as exc:
            # Every other record in flight is waiting on the same lost fleet: abandon them (not written,
            # so a resume scores them) rather than let each run out its own retries.
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            raise JobStopped(str(exc)) from None
        except RecordRefused as exc:
            if len(records) == 1:
                self._refused(records[0].where, str(exc))
                return []
            # One refused pair among several: score them one by one to find it.
            lines = []
            for record in records:
                lines += await self._with_retries([record])
            return lines

    async def _lines(self, records: list[Record]) -> list[dict[str, Any]]:
        """Score ``records`` (one query with documents, or several one-pair records) as output lines."""
        model = self.backend.model
        if not records[0].pair:
            r = records[0]
            ranked = await self.backend.rerank(r.query, r.documents)
            self.outcome.pairs += r.pairs
            self.outcome.tokens += ranked.usage.get("tokens", 0)
            return [
                {**r.extra, "id": r.id, "query": r.query, "documents": r.documents, "scores": ranked.scores, "ranks": ranked.ranks,
                 "truncated": ranked.truncated, "model": model, "usage": ranked.usage}
            ]
        scores, truncated, tokens = await self.backend.score([(r.query, r.documents[0]) for r in records])
        self.outcome.pairs += len(records)
        self.outcome.tokens += tokens
        return [
            {**r.extra, "id": r.id, "query": r.query, "document": r.documents[0], "score": s, "truncated": t, "model": model}
            for r, s, t in zip(records, scores, truncated)
        ]

    def _refused(self, where: str, problem: str) -> None:
        if self.on_error == "skip":
            self.outcome.skipped += 1
            self._say(f"skipped {where}: {problem}")
            return
        self._fail(JobStopped(f"{where}: {problem} (--on-error skip scores the other records and reports this one)"))

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._stopping.set()

    def _say(self, message: str) -> None:
        if self.errors.isatty():
            self.errors.write("\n")
        self.errors.write(f"rerank batch: {message}\n")
        self.errors.flush()


def _contains(sorted_hashes: np.ndarray, value: int) -> bool:
    at = int(np.searchsorted(sorted_hashes, value))
    return at < len(sorted_hashes) and int(sorted_hashes[at]) == value


def _on_signal(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> Callable[[], None]:
    """Call ``handler`` on SIGINT and SIGTERM (where the loop can); returns what undoes it."""
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such support
            pass

    def undo() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return undo
