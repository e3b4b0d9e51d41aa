"""The engine process's side of the front ends: admits their requests into each model's one queue and
sends back the scores.

Every front end's connection is served on the one event loop that owns the batchers, so priorities,
fair turns, deadlines and the queue's room are decided once for all of them. Per request this loop does
a reservation, one ``enqueue`` of items read straight from the frame's buffer, and one reply from the
results' callback (no task a request); tokenizing, planning and the transports stay in the front ends.

A front end that goes away takes its requests with it: their reservations are released and their
queued items dropped before the model runs them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, cast

from ..batching import BatchingError, Claim, Completed, LocalBatcher, Reservation
from .callers import CallerNames
from .served import ModelRegistry
from .wire import FramedConnection, Header, encode_error, pack_results, unpack_items

log = logging.getLogger(__name__)


class EngineCore:
    """Serves the models of ``registry`` to front-end processes over a Unix socket."""

    def __init__(
        self,
        registry: ModelRegistry,
        callers: CallerNames,
        observe: Callable[[Header], None] = lambda header: None,
        metrics_text: Callable[[], bytes] = lambda: b"",
    ) -> None:
        self.registry = registry
        # The models of the engine process batch here: their queues admit at once, without awaiting.
        self.batchers = {model.info.name: cast(LocalBatcher, model.batcher) for model in registry}
        self.default = registry.default_name
        self.callers = callers
        self.observe = observe
        self.metrics_text = metrics_text
        self.connections: set[_FrontEnd] = set()
        self._server: asyncio.AbstractServer | None = None

    async def serve(self, path: str) -> None:
        """Listen on the Unix socket ``path``."""
        self._server = await asyncio.get_running_loop().create_unix_server(lambda: _FrontEnd(self), path)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()


class _FrontEnd(FramedConnection):
    """One front end's connection: its requests by id."""

    def __init__(self, core: EngineCore) -> None:
        super().__init__()
        self.core = core
        self._reservations: dict[int, tuple[LocalBatcher, Reservation]] = {}
        self._waiting: dict[int, asyncio.Future[Completed[Any]]] = {}  # queued requests' results, by id

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102 (asyncio's)
        super().connection_made(transport)
        self.core.connections.add(self)
        self.send(("hello", [model.info for model in self.core.registry]))

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        super().connection_lost(exc)
        self.core.connections.discard(self)
        for _, reservation in self._reservations.values():
            reservation.release()
        self._reservations.clear()
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.cancel()  # the batcher drops the items before the model runs them
        if waiting:
            log.warning("a front end went away with %d requests in progress; they were dropped", len(waiting))

    def frame_received(self, header: Header, blob: memoryview) -> None:
        """One of the front end's messages: admit, submit, release, cancel, observe or metrics."""
        kind = header[0]
        if kind == "admit":
            self._admit(header)
        elif kind == "submit":
            self._submit(header[1], header, blob)
        elif kind == "release":
            held = self._reservations.pop(header[1], None)
            if held is not None:
                held[1].release()
        elif kind == "cancel":
            future = self._waiting.pop(header[1], None)
            if future is not None:
                future.cancel()
        elif kind == "observe":
            self.core.observe(header)
        elif kind == "metrics":
            self.send(("metrics", header[1]), self.core.metrics_text())

    def _admit(self, header: Header) -> None:
        _, rid, model, count, cost, deadline, priority, tenant, default_deadline = header
        try:
            batcher = self.core.batchers[model or self.core.default]
            # Names past the cap share one turn here, where every front end's callers meet.
            claim = Claim(deadline, priority, self.core.callers(tenant), default_deadline)
            self._reservations[rid] = (batcher, batcher.reserve(count, claim, cost))
        except Exception as exc:  # a refusal (or a model that stopped being served): the front end raises it
            self.send(("error", rid, encode_error(exc)))
            return
        self.send(("admitted", rid))

    def _submit(self, rid: int, header: Header, blob: memoryview) -> None:
        held = self._reservations.pop(rid, None)
        try:
            if held is None:
                raise BatchingError("this request's admission was released before its items came")
            batcher, reservation = held
            items, costs = unpack_items((header[2], header[3], header[4]), blob)
            future = batcher.enqueue(items, costs, reservation=reservation)
        except Exception as exc:
            self.send(("error", rid, encode_error(exc)))
            return
        self._waiting[rid] = future
        future.add_done_callback(functools.partial(self._answer, rid))

    def _answer(self, rid: int, future: asyncio.Future[Completed[Any]]) -> None:
        """Send a request's scores, or its error, once the batcher has them (a cancelled one: nothing)."""
        self._waiting.pop(rid, None)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.send(("error", rid, encode_error(error)))
            return
        completed = future.result()
        shape, scores = pack_results(completed.results)
        self.send(("scores", rid, completed.queue_s, completed.inference_s, shape), scores)
