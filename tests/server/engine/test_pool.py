"""The tokenizer pool: a small request is tokenized and planned in one job, so a wave of requests does not
make each wait for its plan behind every other's tokenizing; a large one is chunked over the threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from rerank_server.engine import TokenizerPool
from rerank_server.engine.pool import CHUNK_TEXTS
from rerank_server.models.encoding import Ids

pytestmark = pytest.mark.anyio


class _Logged:
    """The real encoder, its calls written to ``log`` as they run (on whichever pool thread)."""

    def __init__(self, encoder: Any, log: list[str]) -> None:
        self._encoder = encoder
        self.log = log

    def ids(self, texts: Sequence[str], limit: int | None = None) -> list[Ids]:
        self.log.append(f"tokenize {texts[0] if texts else '-'}")
        return self._encoder.ids(texts, limit)


async def test_a_small_request_is_planned_before_the_next_one_is_tokenized(cross_scorer: Any) -> None:
    log: list[str] = []
    encoder = _Logged(cross_scorer.encoder, log)
    pool = TokenizerPool(1)
    gate = threading.Event()
    try:
        held = asyncio.ensure_future(pool.run(gate.wait))  # the one thread is busy: both requests queue behind it

        def then(name: str) -> Any:
            def plan(queries: list[Ids], documents: list[Ids]) -> tuple[int, int]:
                log.append(f"plan {name}")
                return len(queries), len(documents)

            return plan

        first = asyncio.ensure_future(pool.tokenized(encoder, [(["qa"], None), (["a one", "a two"], 8)], then("a")))  # type: ignore[arg-type]
        second = asyncio.ensure_future(pool.tokenized(encoder, [(["qb"], None), (["b one"], 8)], then("b")))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # both are queued on the pool
        gate.set()
        assert await first == (1, 2) and await second == (1, 1)
        await held
    finally:
        pool.close()
    # Each request's plan right after its own tokenizing, not behind the other's.
    assert log == ["tokenize qa", "tokenize a one", "plan a", "tokenize qb", "tokenize b one", "plan b"]


async def test_a_large_request_is_chunked_and_planned_once_with_every_id_in_order(cross_scorer: Any) -> None:
    encoder = cross_scorer.encoder
    documents = [f"document number {i} " * (1 + i % 5) for i in range(CHUNK_TEXTS * 2 + 3)]
    calls: list[int] = []

    def plan(queries: list[Ids], ids: list[Ids]) -> list[Ids]:
        calls.append(len(ids))
        return ids

    pool = TokenizerPool(2)
    try:
        got = await pool.tokenized(encoder, [(["the query"], None), (documents, 16)], plan)
    finally:
        pool.close()
    assert calls == [len(documents)]
    assert [list(ids) for ids in got] == [list(ids) for ids in encoder.ids(documents, 16)]
