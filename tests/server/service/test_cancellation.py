"""Callers that give up: their pairs leave the queue before the model sees them.

The model is the real tiny cross-encoder behind a gate (a threading.Event) that holds the first batch,
so later requests are known to be queued when their callers give up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from rerank_client import AsyncRerankClient, RerankError
from tests.server_harness import GatedScorer, ServerThread, until


def test_expired_and_cancelled_callers_never_reach_the_model(cross_scorer: Any) -> None:
    gated = GatedScorer(cross_scorer)
    with ServerThread([gated]) as running:
        batcher = running.model().batcher

        async def scenario() -> None:
            async with AsyncRerankClient(running.target, timeout=60) as client:
                first = asyncio.create_task(client.rerank("q", ["holds the model"]))
                await until(gated.entered.is_set)
                late = asyncio.create_task(client.rerank("q", ["late a", "late b", "late c"], timeout=1.0))
                gone = asyncio.create_task(client.rerank("q", ["gone a", "gone b"]))
                await until(lambda: batcher.queued == 5)
                gone.cancel()
                with pytest.raises(RerankError) as info:
                    await late
                assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
                await until(lambda: batcher.queued == 0)
                gated.gate.set()
                assert (await first).results
                with pytest.raises(asyncio.CancelledError):
                    await gone
                assert (await client.rerank("q", ["after"])).results

        asyncio.run(scenario())
        stats = batcher.stats
    assert gated.seen and not any(word in text for text in gated.seen for word in ("late", "gone"))
    assert stats.dropped_expired + stats.dropped_cancelled == 5
