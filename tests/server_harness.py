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
    """A real scorer whose batches wait at a gate in the forward stage, recording the text of every
    input they were given (decoded from its ids, special tokens dropped)."""

    def __init__(self, scorer: Any) -> None:
        self._scorer = scorer
        self.info = scorer.info
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.seen: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scorer, name)

    def collate(self, items: list[Any]) -> Any:
        tokenizer = self._scorer.model.tokenizer
        self.seen.extend(tokenizer.decode(item.ids.tolist(), skip_special_tokens=True) for item in items)
        return self._scorer.collate(items)

    def forward(self, inputs: Any) -> Any:
        self.entered.set()
        if not self.gate.wait(timeout=60):
            raise TimeoutError("gate never opened")
        return self._scorer.forward(inputs)


async def until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition never held")
        await asyncio.sleep(0.005)
