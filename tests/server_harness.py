"""A real RerankServer on a loopback port, run on its own thread and event loop.

Tests then call it with the real sync or asyncio clients, exactly as users do, while reading the
server's batcher statistics directly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from rerank_server.config import BatchingConfig
from rerank_server.models import Scorer
from rerank_server.runtime import ServedModel
from rerank_server.service.server import RerankServer


class ServerThread:
    """Context manager: a started, ready server serving ``scorers`` (the first is the default)."""

    def __init__(
        self,
        scorers: Sequence[Scorer],
        batching: BatchingConfig | None = None,
        *,
        max_documents: int = 1000,
        max_message_bytes: int = 4 * 1024 * 1024,
        ready: bool = True,
    ) -> None:
        self.scorers = list(scorers)
        self.batching = batching or BatchingConfig(max_wait_ms=2.0)
        self.max_documents = max_documents
        self.max_message_bytes = max_message_bytes
        self.ready = ready
        self.server: RerankServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-server", daemon=True)

    @property
    def target(self) -> str:
        """host:port of the running server."""
        assert self.server is not None
        return self.server.target

    def model(self, name: str = "") -> ServedModel:
        """The served model called ``name`` (empty: the default)."""
        assert self.server is not None
        return self.server.registry.get(name)

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> RerankServer:
        server = RerankServer(
            "127.0.0.1", 0, max_documents=self.max_documents, max_message_bytes=self.max_message_bytes
        )
        await server.start()
        for scorer in self.scorers:
            server.add_model(ServedModel.create(scorer, self.batching))
        if self.ready:
            await server.mark_ready()
        return server

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.server = self.run(self._start())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.server is not None:
            self.run(self.server.stop(grace=5.0))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
