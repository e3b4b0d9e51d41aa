"""Server-side limits: a cap on request time, a cap on concurrent calls."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from rerank_client import AsyncRerankClient, RerankError
from rerank_server.engine.settings import AdmissionConfig
from tests.server_harness import GatedScorer, ServerThread, until


def test_max_request_time_caps_requests_without_a_deadline(cross_scorer: Any) -> None:
    gated = GatedScorer(cross_scorer)
    with ServerThread([gated], admission=AdmissionConfig(max_request_time_s=0.5)) as running:
        batcher = running.model().batcher

        async def scenario() -> None:
            async with AsyncRerankClient(running.target, timeout=None) as client:
                first = asyncio.create_task(client.rerank("q", ["holds the model"]))
                await until(gated.entered.is_set)
                with pytest.raises(RerankError) as info:  # no client deadline, yet it ends
                    await client.rerank("q", ["waits", "too", "long"])
                assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
                gated.gate.set()
                with pytest.raises(RerankError):
                    await first  # it also ran past the cap while the gate held it

        asyncio.run(scenario())
        assert batcher.stats.dropped_expired == 3


def test_max_concurrent_rpcs_refuses_the_excess_at_once(cross_scorer: Any) -> None:
    gated = GatedScorer(cross_scorer)
    with ServerThread([gated], admission=AdmissionConfig(max_concurrent=2)) as running:

        async def scenario() -> list[Any]:
            async with AsyncRerankClient(running.target, timeout=60, retries=0) as client:
                held = [asyncio.create_task(client.rerank("q", ["held 0"]))]
                await until(gated.entered.is_set)
                held.append(asyncio.create_task(client.rerank("q", ["held 1"])))
                await until(lambda: running.model().batcher.queued >= 1)
                with pytest.raises(RerankError) as info:
                    await client.rerank("q", ["one too many"])
                gated.gate.set()
                done = await asyncio.gather(*held)
                return [info.value.code, done]

        code, done = asyncio.run(scenario())
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert all(r.results for r in done)
