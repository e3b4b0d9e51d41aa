"""Mixed traffic over the real server: priorities, callers named by a header or their token, their share
of the queue, and deadlines the queue ahead would outlast. A gate holds the model; no sleeps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from rerank_client import AsyncRerankClient, RerankError
from rerank_server.batching import FairShare
from rerank_server.engine.settings import BatchingConfig
from rerank_server.service.settings import SecurityConfig
from tests.server_harness import GatedScorer, ServerThread, until

HOUR = 3600.0


def _texts(gated: GatedScorer) -> list[str]:
    return list(gated.seen)


def test_interactive_requests_go_before_a_queued_bulk_backlog(cross_scorer: Any) -> None:
    gated = GatedScorer(cross_scorer)
    limits = BatchingConfig(max_batch_size=4, max_wait_ms=0.0, pipeline_depth=1, share=FairShare(bulk_share=0.0, bulk_max_wait_s=HOUR))
    with ServerThread([gated], limits) as running:
        batcher = running.model().batcher

        async def scenario() -> None:
            async with AsyncRerankClient(running.target, timeout=60) as client:
                first = asyncio.create_task(client.rerank("q", ["holds the model"]))
                await until(gated.entered.is_set)
                bulk = [asyncio.create_task(client.rerank("q", [f"bulk {i} {j}" for j in range(4)], priority="bulk")) for i in range(3)]
                await until(lambda: batcher.queued == 12)
                user = asyncio.create_task(client.rerank("q", ["user one", "user two"]))
                await until(lambda: batcher.queued == 14)
                gated.gate.set()
                await asyncio.gather(first, user, *bulk)

        asyncio.run(scenario())
        stats = batcher.stats
    order = [t for t in _texts(gated) if "holds" not in t]
    assert all("user" in t for t in order[:2]) and all("bulk" in t for t in order[2:])
    assert stats.served_pairs[(1, "")] == 12 and stats.served_pairs[(0, "")] == 3


def test_a_caller_named_by_the_header_keeps_to_its_share_of_the_queue(cross_scorer: Any) -> None:
    gated = GatedScorer(cross_scorer)
    limits = BatchingConfig(max_batch_size=1, max_wait_ms=0.0, max_queued_pairs=8, pipeline_depth=1, tenant_queue_share=0.5)
    with ServerThread([gated], limits, http_port=0) as running:
        batcher = running.model().batcher

        async def scenario() -> tuple[RerankError, int]:
            flood = AsyncRerankClient(running.target, timeout=60, metadata=[("x-rerank-tenant", "flood")], retries=0)
            quiet = AsyncRerankClient(running.target, timeout=60, metadata=[("x-rerank-tenant", "quiet")], retries=0)
            held = asyncio.create_task(flood.rerank("q", ["holds the model"]))
            await until(gated.entered.is_set)
            mine = [asyncio.create_task(flood.rerank("q", [f"flood {i}"])) for i in range(4)]
            await until(lambda: batcher.queued == 4)
            with pytest.raises(RerankError) as refused:
                await flood.rerank("q", ["one too many"])
            theirs = asyncio.create_task(quiet.rerank("q", ["quiet one", "quiet two"]))  # room left for them
            await until(lambda: batcher.queued == 6)
            async with httpx.AsyncClient(base_url=running.http_url, timeout=60) as http:  # the header names HTTP callers too
                over_http = await http.post("/v1/rerank", json={"query": "q", "documents": ["more"]}, headers={"x-rerank-tenant": "flood"})
            gated.gate.set()
            await asyncio.gather(held, theirs, *mine)
            await flood.close()
            await quiet.close()
            return refused.value, over_http.status_code

        refused, http_status = asyncio.run(scenario())
    assert refused.code is grpc.StatusCode.RESOURCE_EXHAUSTED and "caller 'flood'" in refused.details
    assert http_status == 429
    assert batcher.stats.refused[(0, "flood")] == 2 and batcher.stats.served_pairs[(0, "quiet")] == 2


def test_named_tokens_name_the_caller_whatever_the_header_says(cross_scorer: Any, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice:token-a\nbob:token-b\n")
    with ServerThread([cross_scorer], security=SecurityConfig(auth_token_file=str(tokens))) as running:

        async def scenario() -> None:
            async with AsyncRerankClient(running.target, token="token-b", metadata=[("x-rerank-tenant", "alice")]) as client:
                await client.rerank("q", ["a", "b", "c"], priority="bulk")

        asyncio.run(scenario())
        assert running.model().batcher.stats.served_pairs == {(1, "bob"): 3}


def test_a_deadline_the_queue_would_outlast_is_refused_in_milliseconds(cross_scorer: Any) -> None:
    gated = GatedScorer(cross_scorer)
    limits = BatchingConfig(max_batch_size=1, max_wait_ms=0.0, pipeline_depth=1)
    with ServerThread([gated], limits, tokens_per_s=100.0) as running:  # 100 tokens a second: a slow model
        batcher = running.model().batcher

        async def scenario() -> tuple[RerankError, Any]:
            async with AsyncRerankClient(running.target, timeout=60, retries=0) as client:
                held = asyncio.create_task(client.rerank("q", ["holds the model"]))
                await until(gated.entered.is_set)
                queued = asyncio.create_task(client.rerank("q", ["word " * 100, "word " * 100]))  # seconds of work
                await until(lambda: batcher.queued == 2)
                with pytest.raises(RerankError) as refused:
                    await client.rerank("q", ["a document"], timeout=0.5)
                urgent = asyncio.create_task(client.rerank("q", ["a document"], timeout=60))  # time enough: accepted
                await until(lambda: batcher.queued == 3)
                gated.gate.set()
                await asyncio.gather(held, queued)
                return refused.value, await urgent

        refused, accepted = asyncio.run(scenario())
    assert refused.code is grpc.StatusCode.DEADLINE_EXCEEDED and "refused at once" in refused.details and "than its deadline allows" in refused.details
    assert accepted.results


def test_priority_on_the_http_api(cross_scorer: Any) -> None:
    with ServerThread([cross_scorer], http_port=0) as running, httpx.Client(base_url=running.http_url, timeout=30) as http:
        for priority in (0, 3, "bulk", "interactive"):
            assert http.post("/v1/rerank", json={"query": "q", "documents": ["d"], "priority": priority}).status_code == 200
        bad = http.post("/v1/rerank", json={"query": "q", "documents": ["d"], "priority": "urgent"})
        assert bad.status_code == 400 and "priority must be" in bad.json()["message"]
        served = running.model().batcher.stats.served_pairs
    assert served[(0, "")] == 2 and served[(1, "")] == 2
