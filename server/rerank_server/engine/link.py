"""A front end's side of the engine process: one connection, and a batcher for each model that admits
and queues requests there.

    front end: Engine gateway -> ServedModel (tokenize, plan)  ->  RemoteBatcher.admit / submit
       ->  EngineLink (one Unix socket, frames of ``wire``)  ->  the engine process's queue (see ``core``)

The queue, its admission by deadline, fair turns and the batches are the engine process's, shared by
every front end; a front end only asks. If the engine process goes away, what waits on it fails with
:class:`EngineLost` (UNAVAILABLE: clients retry elsewhere) and ``lost`` is set.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..batching import NO_CLAIM, BatcherStats, Claim, Completed, Reservation, SpeedEstimate
from ..batching.batcher import BatchRecord
from ..models import ModelInfo
from .gateway import NotServing
from .wire import FramedConnection, Header, decode_error, pack_items, unpack_results

log = logging.getLogger(__name__)


class EngineLost(NotServing):
    """The engine process went away; nothing more can be scored here."""


ENGINE_LOST = "the server's engine process exited; retry on another replica"


class EngineLink(FramedConnection):
    """The connection to the engine process: requests with ids, answers matched back to them."""

    def __init__(self) -> None:
        super().__init__()
        self.models: list[ModelInfo] = []
        self.lost = asyncio.Event()
        self._hello: asyncio.Future[list[ModelInfo]] = asyncio.get_running_loop().create_future()
        self._pending: dict[int, asyncio.Future[tuple[Header, memoryview]]] = {}
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, path: str, attempts: Callable[[], bool] = lambda: True, every_s: float = 0.05) -> EngineLink:
        """Connect to the engine at ``path``, retrying while it starts (as long as ``attempts()`` says
        so), and wait for the models it serves."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                _, link = await loop.create_unix_connection(cls, path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if not attempts():
                    raise
                await asyncio.sleep(every_s)  # a production poll: the engine loads its models meanwhile
        link.models = await link._hello
        return link

    # --- the connection -----------------------------------------------------------------------------

    def frame_received(self, header: Header, blob: memoryview) -> None:
        """The engine's hello (its models), or the answer to a request: to whoever waits for it."""
        if header[0] == "hello":
            if not self._hello.done():
                self._hello.set_result(list(header[1]))
            return
        future = self._pending.pop(header[1], None)
        if future is not None and not future.done():
            future.set_result((header, blob))

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102 (asyncio's)
        super().connection_lost(exc)
        self.lost.set()
        error = EngineLost(ENGINE_LOST)
        if not self._hello.done():
            self._hello.set_exception(error)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    # --- requests ---------------------------------------------------------------------------------

    def start(self, kind: str, *fields: Any, blob: bytes = b"", rid: int | None = None) -> tuple[int, asyncio.Future[tuple[Header, memoryview]]]:
        """Send a request (under a new id, or ``rid`` to go on with an earlier one); returns its id and the
        future of its answer (a header and a buffer)."""
        if not self.connected:
            raise EngineLost(ENGINE_LOST)
        if rid is None:
            rid = next(self._ids)
        future: asyncio.Future[tuple[Header, memoryview]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self.send((kind, rid, *fields), blob)
        return rid, future

    def forget(self, rid: int) -> None:
        """Stop waiting for request ``rid``'s answer."""
        self._pending.pop(rid, None)

    async def metrics_text(self) -> bytes:
        """The engine's metrics in the Prometheus text format (every front end's requests included)."""
        _, future = self.start("metrics")
        _, blob = await future
        return bytes(blob)


class RemoteReservation(Reservation):
    """A request's admission in the engine process, held until its items are queued (or released)."""

    def __init__(self, link: EngineLink, rid: int, count: int, claim: Claim) -> None:
        super().__init__(None, count, 0, claim)
        self.rid = rid
        self._link = link

    def release(self) -> None:
        """Give the room back (once; later calls and a submitted reservation do nothing)."""
        if self._held:
            self._held = False
            self._link.send(("release", self.rid))


class RemoteBatcher:
    """The :class:`~rerank_server.batching.Batcher` of a model served by the engine process.

    Its statistics are the engine's (served on its metrics); here they stay empty.
    """

    def __init__(self, link: EngineLink, name: str) -> None:
        self.name = name
        self.stats = BatcherStats()
        self.speed = SpeedEstimate()
        self.on_batch: Callable[[BatchRecord], None] | None = None
        self._link = link

    queued = 0
    capacity = 0
    queued_seconds = 0.0

    def start(self) -> None:
        """Nothing to start: the engine process runs the batches."""

    async def admit(self, count: int, claim: Claim = NO_CLAIM, cost: int | None = None) -> RemoteReservation:
        """Admit a request of ``count`` items in the engine's queue, or raise its refusal."""
        rid, future = self._link.start("admit", self.name, count, cost, claim.deadline, claim.priority, claim.tenant, claim.default_deadline)
        try:
            header, _ = await future
        except asyncio.CancelledError:
            self._link.forget(rid)
            self._link.send(("release", rid))
            raise
        if header[0] == "error":
            raise decode_error(header[2])
        return RemoteReservation(self._link, rid, count, claim)

    async def submit(
        self, payloads: Sequence[Any], costs: Sequence[int], claim: Claim = NO_CLAIM, reservation: Reservation | None = None
    ) -> Completed[Any]:
        """Queue ``payloads`` (encoded pairs or texts) under ``reservation`` and wait for their results."""
        if not isinstance(reservation, RemoteReservation):
            reservation = await self.admit(len(payloads), claim, sum(costs))
        reservation._held = False  # the engine turns the held room into the queued items
        meta, blob = pack_items(payloads)
        _, future = self._link.start("submit", *meta, blob=blob, rid=reservation.rid)
        try:
            header, body = await future
        except asyncio.CancelledError:
            self._link.forget(reservation.rid)
            self._link.send(("cancel", reservation.rid))
            raise
        if header[0] == "error":
            raise decode_error(header[2])
        _, _, queue_s, inference_s, shape = header
        return Completed(unpack_results(shape, body), queue_s, inference_s)

    async def aclose(self, drain: bool = True) -> None:
        """Nothing to close: the engine process drains its own queue."""



class ForwardedObservations:
    """A :class:`~rerank_server.engine.gateway.RequestObserver` that reports to the engine process, whose
    metrics then count the requests of every front end.

    Observations go in one message every ``every_s`` seconds (or every ``most`` of them), not one a
    request: the engine's event loop serves every front end, and a message a request was a tenth of its
    work per request.
    """

    def __init__(self, link: EngineLink, every_s: float = 0.25, most: int = 256) -> None:
        self._link = link
        self._every_s = every_s
        self._most = most
        self._pending: list[tuple[Any, ...]] = []
        self._timer: asyncio.TimerHandle | None = None

    def observe_request(self, method: str, code: str, seconds: float) -> None:
        """One answered request."""
        self._add(("request", method, code, seconds))

    def observe_truncated(self, model: str, documents: int) -> None:
        """Documents cut to the model's length."""
        self._add(("truncated", model, documents))

    def _add(self, observation: tuple[Any, ...]) -> None:
        self._pending.append(observation)
        if len(self._pending) >= self._most:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._every_s, self.flush)

    def flush(self) -> None:
        """Send what was observed so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._link.send(("observe", self._pending))
            self._pending = []
