"""Three replicas on loopback behind one client: spread, a SIGKILL mid-run, a restart that takes load again."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from rerank_client import AsyncRerankClient, RerankError
from tests.processes import ServerProcess, free_port

ARGS = ("--model", "all-MiniLM-L6-v2", "--log-format", "json", "--log-requests")


def _served(server: ServerProcess) -> int:
    return sum('"rerank_server.requests"' in line and '"code": "OK"' in line for line in server.output)


def _replica(port: int) -> ServerProcess:
    process = ServerProcess(*ARGS)
    process.args = [a if a != "0" else str(port) for a in process.args]  # a fixed port, to restart on it
    return process


async def _send(client: AsyncRerankClient, count: int, outcomes: Counter[str], callers: int = 6) -> None:
    pending = iter(range(count))

    async def caller() -> None:
        for i in pending:
            try:
                await client.rerank(f"query {i}", ["bees dance", "stocks fell", "leaves make sugar"])
                outcomes["OK"] += 1
            except RerankError as exc:
                outcomes[exc.code.name] += 1

    await asyncio.gather(*(caller() for _ in range(callers)))


def test_three_replicas_share_load_survive_a_kill_and_take_a_restarted_one_back() -> None:
    ports = [free_port() for _ in range(3)]
    replicas = [_replica(p).__enter__() for p in ports]
    restarted = None
    try:
        targets = [f"127.0.0.1:{p}" for p in ports]
        outcomes: Counter[str] = Counter()

        async def scenario() -> tuple[list[int], int]:
            async with AsyncRerankClient(targets, timeout=60, retries=4) as client:
                await _send(client, 60, outcomes)
                spread = [_served(r) for r in replicas]
                killer = asyncio.create_task(_send(client, 120, outcomes))
                while outcomes["OK"] < 80:
                    await asyncio.sleep(0.01)
                assert replicas[0].proc is not None
                replicas[0].proc.kill()  # SIGKILL mid-run
                await killer
                nonlocal restarted
                restarted = _replica(ports[0]).__enter__()
                deadline = time.monotonic() + 60
                while _served(restarted) == 0 and time.monotonic() < deadline:
                    await _send(client, 12, outcomes)
                return spread, _served(restarted)

        spread, after_restart = asyncio.run(scenario())
    finally:
        for r in [*replicas, *([restarted] if restarted else [])]:
            r.__exit__(None, None, None)
    assert all(n > 0 for n in spread), f"round-robin left a replica idle: {spread}"
    assert set(outcomes) == {"OK"}, outcomes  # the kill lost no request: they were retried elsewhere
    assert after_restart > 0  # the client reconnected to the restarted replica and sends it load again
