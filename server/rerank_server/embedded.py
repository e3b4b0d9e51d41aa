"""A RerankServer on its own thread and event loop, for embedding in a program, tests and benchmarks.

The caller keeps its own thread free to use the sync or asyncio clients against it, exactly as
remote users do, and can read the server's batcher statistics directly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from .engine import ServedModel
from .engine.settings import BatchingConfig
from .models import Scorer
from .service.server import RerankServer
from .service.settings import ServerConfig


class BackgroundServer:
    """Context manager: a started, ready server on 127.0.0.1 serving ``scorers`` (the first is the default)."""

    def __init__(
        self,
        scorers: Sequence[Scorer],
        batching: BatchingConfig | None = None,
        *,
        max_documents: int = 1000,
        max_message_bytes: int = 4 * 1024 * 1024,
        ready: bool = True,
        port: int = 0,
        tokens_per_s: float | None = None,
        **settings: Any,
    ) -> None:
        """``settings`` are further :class:`ServerConfig` fields (security, admission, ...); ``tokens_per_s``
        stands for the speed rerank-server measures at start-up (it seeds deadline admission)."""
        self.scorers = list(scorers)
        self.batching = batching or BatchingConfig(max_wait_ms=2.0)
        settings.setdefault("settle_s", 0.0)  # nothing re-resolves an embedded server: stop at once
        self.config = ServerConfig(
            host="127.0.0.1",
            port=port,
            models=(),
            batching=self.batching,
            max_documents=max_documents,
            max_message_bytes=max_message_bytes,
            **settings,
        )
        self.ready = ready
        self.tokens_per_s = tokens_per_s
        self.server: RerankServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rerank-server", daemon=True)

    @property
    def target(self) -> str:
        """host:port of the running server."""
        assert self.server is not None
        return self.server.target

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP API (started with ``http_port=0``)."""
        assert self.server is not None and self.server.http_port is not None, "start it with http_port=0"
        scheme = "https" if self.config.security.tls_cert else "http"
        return f"{scheme}://127.0.0.1:{self.server.http_port}"

    def model(self, name: str = "") -> ServedModel:
        """The served model called ``name`` (empty: the default)."""
        assert self.server is not None
        return self.server.registry.get(name)

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> RerankServer:
        server = RerankServer(self.config)
        await server.start()
        for scorer in self.scorers:
            server.serve(scorer, self.tokens_per_s)
        if self.ready:
            await server.mark_ready()
        return server

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        self.server = self.run(self._start())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.server is not None:
            self.run(self.server.stop(grace=5.0))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
