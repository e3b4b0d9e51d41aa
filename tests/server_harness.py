"""Tests run the real server on a loopback port through the package's own embedding helper, and can
hold its real model at a gate to know what is queued when."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from rerank_server.embedded import BackgroundServer as ServerThread

__all__ = ["GatedScorer", "ServerThread", "until"]


class GatedScorer:
    """A real scorer whose batches wait at a gate, recording every pair they were given."""

    def __init__(self, scorer: Any) -> None:
        self._scorer = scorer
        self.info = scorer.info
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.seen: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scorer, name)

    def run_batch(self, items: list[Any]) -> list[Any]:
        self.seen.extend(items)
        self.entered.set()
        if not self.gate.wait(timeout=60):
            raise TimeoutError("gate never opened")
        return self._scorer.run_batch(items)


async def until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition never held")
        await asyncio.sleep(0.005)
