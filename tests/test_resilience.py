"""Real server processes under load: SIGTERM drains, SIGKILL of a replica loses nothing."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from rerank_client import AsyncRerankClient, RerankClient, RerankError
from tests.processes import DOCS, ServerProcess, free_port, keep_calling


def test_sigterm_under_load_answers_every_accepted_request_and_refuses_new_ones() -> None:
    with ServerProcess("--model", "all-MiniLM-L6-v2", "--grace", "30", "--log-format", "json", "--log-requests") as server:
        assert server.proc is not None
        outcomes: Counter[str] = Counter()

        async def scenario() -> None:
            stop = asyncio.Event()
            async with AsyncRerankClient(server.target, timeout=60, retries=0) as client:
                load = asyncio.create_task(keep_calling(client, stop, outcomes))
                while outcomes["OK"] < 20:  # under load
                    await asyncio.sleep(0.01)
                server.proc.send_signal(signal.SIGTERM)
                exited = time.monotonic()
                while server.proc.poll() is None and time.monotonic() - exited < 60:
                    await asyncio.sleep(0.01)
                stop.set()
                await load
                with pytest.raises(RerankError) as refused:
                    await client.rerank("q", ["after shutdown"], timeout=5)
                assert refused.value.code is grpc.StatusCode.UNAVAILABLE

        asyncio.run(scenario())
        assert server.proc.wait(10) == 0
    answered = Counter(json.loads(line)["code"] for line in server.output if '"rerank_server.requests"' in line)
    # Every request the server took on was answered, and the caller got every answer: nothing was cut off.
    assert answered["CANCELLED"] == 0 and answered["INTERNAL"] == 0, answered
    assert answered["OK"] == outcomes["OK"] >= 20
    # The callers saw answers or clean refusals (UNAVAILABLE, which clients retry elsewhere): the port
    # stayed open, refusing, until callers had noticed, so no call arriving at the end was cut off.
    assert set(outcomes) <= {"OK", "UNAVAILABLE"}, outcomes
    assert "stopped" in "".join(server.output)


@pytest.mark.parametrize("run", range(3))
def test_sigterm_under_a_flood_of_plain_stubs_ends_no_call_cancelled(run: int) -> None:
    """32 callers on plain generated stubs (no retries, no health checking) keep calling through the
    shutdown: every call ends OK or UNAVAILABLE, never CANCELLED (gRPC's own stop cut calls it had
    received and not yet handed over with CANCELLED: 1-17 a run before the server left the port to the OS)."""
    from rerank_proto import rerank_pb2 as pb
    from rerank_proto import rerank_pb2_grpc as pb_grpc

    with ServerProcess("--model", "bundled", "--grace", "30") as server:
        assert server.proc is not None
        outcomes: Counter[str] = Counter()

        async def scenario() -> None:
            assert server.proc is not None
            stop = asyncio.Event()
            async with grpc.aio.insecure_channel(server.target) as channel:
                stub = pb_grpc.RerankerStub(channel)

                async def caller() -> None:
                    while not stop.is_set():
                        try:
                            await stub.Rerank(pb.RerankRequest(query="q", documents=DOCS), timeout=30)
                            outcomes["OK"] += 1
                        except grpc.aio.AioRpcError as exc:
                            outcomes[exc.code().name] += 1
                            await asyncio.sleep(0.005)

                callers = [asyncio.create_task(caller()) for _ in range(32)]
                while outcomes["OK"] < 100:
                    await asyncio.sleep(0.01)
                server.proc.send_signal(signal.SIGTERM)
                while server.proc.poll() is None:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)  # the callers see the port gone
                stop.set()
                await asyncio.gather(*callers)

        asyncio.run(scenario())
        assert server.proc.wait(10) == 0
    assert set(outcomes) == {"OK", "UNAVAILABLE"}, outcomes


def test_sigterm_with_http_keep_alive_clients_answers_or_refuses_and_resets_none(tiny_cross_encoder: Any) -> None:
    """Keep-alive HTTP clients through a SIGTERM: 8 in closed loops (reconnecting at each 503 and its
    Connection: close) and 4 idle on open connections. Every request sent gets an answer (200, or 503
    while draining), every idle connection is closed with a FIN, and at the end callers find the port
    closed (a refusal, nothing sent): no connection is reset (before: ConnectionResetError in most runs).
    Front-end processes close their HTTP ports with the same code (``HttpFrontDoor.stop``)."""
    with ServerProcess("--model", f"tiny={tiny_cross_encoder}", "--http-port", "0", "--device", "sim:50,0") as server:
        assert server.proc is not None
        host, port = server.http_url.removeprefix("http://").rsplit(":", 1)
        body = json.dumps({"query": "q", "documents": DOCS})
        idle = []
        for _ in range(4):
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            connection.request("POST", "/v1/rerank", body, {"content-type": "application/json"})
            assert connection.getresponse().read() and connection.sock is not None  # kept alive
            idle.append(connection)
        outcomes: Counter[str] = Counter()

        def caller() -> None:
            with httpx.Client(base_url=server.http_url, timeout=60) as client:
                for _ in range(100_000):  # until the port is closed; bounded all the same
                    try:
                        outcomes[str(client.post("/v1/rerank", content=body, headers={"content-type": "application/json"}).status_code)] += 1
                    except httpx.ConnectError:
                        outcomes["port closed"] += 1
                        return
                    except httpx.HTTPError as exc:
                        outcomes[f"{type(exc).__name__}: {exc}"] += 1
                        return

        callers = [threading.Thread(target=caller) for _ in range(8)]
        for thread in callers:
            thread.start()
        under_load = time.monotonic() + 120
        while outcomes["200"] < 40 and time.monotonic() < under_load:  # polls for load (bounded: callers may fail)
            time.sleep(0.01)
        assert outcomes["200"] >= 40, outcomes
        assert server.terminate() == 0
        for thread in callers:
            thread.join(60)
        closed = []
        for connection in idle:
            assert connection.sock is not None
            try:
                closed.append(connection.sock.recv(1) == b"")  # FIN: read as the end of the stream
            except ConnectionResetError:
                closed.append(False)
    assert closed == [True] * 4
    assert outcomes["port closed"] == 8 and set(outcomes) <= {"200", "503", "port closed"}, outcomes


# A client that opens COUNT connections to PORT and sends nothing on them, says how many it opened, and
# holds them until its stdin closes.
_SILENT_CLIENT = """
import socket, sys
held = []
for _ in range(int(sys.argv[2])):
    try:
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30))
    except OSError:
        break
print(len(held), flush=True)
sys.stdin.read()
"""


def test_more_silent_http_connections_than_descriptors_leave_grpc_serving(tiny_cross_encoder: Any) -> None:
    """Two clients of 3,000 connections each that send nothing, against a server allowed 4,096 file
    descriptors (the probe's 2 x 10,000 against 20,000, scaled down: before, the process ran out and gRPC
    calls on new and open connections timed out). HTTP holds at most its cap (half the descriptor
    limit), so gRPC keeps the rest; the header timeout is long here, to hold them all."""
    args = ("--model", f"tiny={tiny_cross_encoder}", "--http-port", "0", "--http-header-timeout", "600")
    with ServerProcess(*args, max_open_files=4096) as server, RerankClient(server.target, timeout=60) as before:
        assert server.proc is not None and before.rerank("q", DOCS).results  # a connection open before the flood
        port = server.http_url.rsplit(":", 1)[1]
        clients = [
            subprocess.Popen([sys.executable, "-c", _SILENT_CLIENT, port, "3000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        try:
            assert [int(c.stdout.readline()) for c in clients if c.stdout is not None] == [3000, 3000]
            limit = next(int(line.split()[3]) for line in Path(f"/proc/{server.proc.pid}/limits").read_text().splitlines() if line.startswith("Max open files"))
            held = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
            assert limit == 4096 and held < limit, f"{held} descriptors held of {limit}"
            # Nothing ran out on the way either: asyncio and gRPC log a failed accept.
            assert not [line for line in server.output if "Too many open files" in line or "out of system resource" in line]
            assert before.rerank("q", DOCS).results
            with RerankClient(server.target, timeout=60) as after:  # a new connection
                assert after.rerank("q", DOCS).results
        finally:
            for client in clients:
                assert client.stdin is not None
                client.stdin.close()
                client.wait(60)
        with httpx.Client(base_url=server.http_url, timeout=60) as api:  # and HTTP serves once they are gone
            assert api.post("/v1/rerank", json={"query": "q", "documents": DOCS}).status_code == 200


def test_sigkill_of_one_replica_under_load_loses_no_request() -> None:
    with ServerProcess("--model", "all-MiniLM-L6-v2") as a, ServerProcess("--model", "all-MiniLM-L6-v2") as b:
        assert a.proc is not None
        outcomes: Counter[str] = Counter()

        async def scenario() -> None:
            stop = asyncio.Event()
            async with AsyncRerankClient([a.target, b.target], timeout=60, retries=4) as client:
                load = asyncio.create_task(keep_calling(client, stop, outcomes, callers=8))
                while outcomes["OK"] < 30:
                    await asyncio.sleep(0.01)
                a.proc.kill()  # SIGKILL: no drain, connections just drop
                before = outcomes["OK"]
                while outcomes["OK"] < before + 60:  # the survivor carries on
                    await asyncio.sleep(0.01)
                stop.set()
                await load

        asyncio.run(scenario())
    assert outcomes["OK"] >= 90
    assert set(outcomes) == {"OK"}, outcomes  # every request answered, retried onto the survivor if need be


def test_a_graceful_rolling_restart_of_one_replica_loses_no_call() -> None:
    """SIGTERM one of three replicas under load through RerankClient: every call is answered."""
    servers = [ServerProcess("--model", "all-MiniLM-L6-v2", "--grace", "30") for _ in range(3)]
    with servers[0] as a, servers[1] as b, servers[2] as c:
        assert a.proc is not None
        outcomes: Counter[str] = Counter()

        async def scenario() -> None:
            stop = asyncio.Event()
            async with AsyncRerankClient([a.target, b.target, c.target], timeout=60, retries=4) as client:
                load = asyncio.create_task(keep_calling(client, stop, outcomes, callers=8))
                while outcomes["OK"] < 30:
                    await asyncio.sleep(0.01)
                a.proc.send_signal(signal.SIGTERM)
                while a.proc.poll() is None:  # drained and gone, while the load goes on
                    await asyncio.sleep(0.01)
                before = outcomes["OK"]
                while outcomes["OK"] < before + 30:
                    await asyncio.sleep(0.01)
                stop.set()
                await load

        asyncio.run(scenario())
        assert a.proc.wait(10) == 0
    assert set(outcomes) == {"OK"}, outcomes


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _burst(target: str, calls: int, documents: int, words: int, timeout: float | None) -> list[tuple[str, float]]:
    """``calls`` Rerank calls at once, without retries; each one's status name and latency."""
    async with AsyncRerankClient(target, timeout=timeout, retries=0) as client:

        async def one(i: int) -> tuple[str, float]:
            start = time.perf_counter()
            try:
                await client.rerank(f"query {i}", [f"document {i} {j} " * words for j in range(documents)])
                return "OK", time.perf_counter() - start
            except RerankError as exc:
                return exc.code.name, time.perf_counter() - start

        return await asyncio.gather(*(one(i) for i in range(calls)))


def _counters(port: int) -> dict[str, float]:
    """The server's Prometheus counters, summed over their labels."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{")[0].split()[0]
            totals[name] = totals.get(name, 0.0) + float(line.split()[-1])
    return totals


def _refused_at_admission(counters: dict[str, float], codes: Counter[str], items: int) -> None:
    """Refusals came at admission, before any of their work was queued (counted, not timed): the queue
    refused exactly the calls that got RESOURCE_EXHAUSTED, and the model ran only the ``items`` of each
    accepted call (and at most those of the calls that expired in the queue)."""
    assert counters["rerank_rejected_requests_total"] == codes["RESOURCE_EXHAUSTED"], (counters, codes)
    assert codes["OK"] * items <= counters["rerank_pairs_total"] <= (codes["OK"] + codes["DEADLINE_EXCEEDED"]) * items


def test_overload_is_refused_at_admission_and_everything_accepted_completes(tiny_cross_encoder: Any) -> None:
    metrics = free_port()
    args = ("--model", f"tiny=cross-encoder:{tiny_cross_encoder}", "--dtype", "float32", "--max-queued-pairs", "64", "--max-wait-ms", "20")
    with ServerProcess(*args, "--metrics-port", str(metrics)) as server:
        assert server.proc is not None

        results = asyncio.run(_burst(server.target, 400, documents=4, words=20, timeout=60))
        rss = _rss_mb(server.proc.pid)
        counters = _counters(metrics)
    codes = Counter(code for code, _ in results)
    assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes  # no timeouts, no internal errors
    assert codes["RESOURCE_EXHAUSTED"] > 0 and codes["OK"] >= 16
    _refused_at_admission(counters, codes, 4)
    assert rss < 2048


def test_overload_against_the_default_queue_refuses_at_once_and_accepted_work_finishes() -> None:
    """Callers without deadlines get the server's default: the queue takes on what it can finish by then,
    at the model's running speed. A burst of many times that is refused at once (RESOURCE_EXHAUSTED: the
    server is overloaded) and accepted calls finish. The burst runs on the server's own two cores, so the
    model runs slower than the speed it was admitted by; admission's headroom absorbs most of that, and
    a call admitted at the very bound may still expire: at most a tenth of them."""
    metrics = free_port()
    with ServerProcess("--model", "all-MiniLM-L6-v2", "--default-deadline", "5", "--metrics-port", str(metrics)) as server:
        results = asyncio.run(_burst(server.target, 300, documents=16, words=30, timeout=None))
        counters = _counters(metrics)
    codes = Counter(code for code, _ in results)
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}, codes
    assert codes["RESOURCE_EXHAUSTED"] > 0 and codes["DEADLINE_EXCEEDED"] <= codes["OK"] // 10, codes
    _refused_at_admission(counters, codes, 17)  # a bi-encoder embeds the query and 16 documents


def test_soak_thousands_of_requests_with_bounded_memory(tiny_cross_encoder: Any) -> None:
    with ServerProcess("--model", f"tiny=cross-encoder:{tiny_cross_encoder}", "--dtype", "float32") as server:
        assert server.proc is not None

        async def rounds(count: int) -> Counter[str]:
            outcomes: Counter[str] = Counter()
            async with AsyncRerankClient(server.target, timeout=60) as client:
                queue = iter(range(count))

                async def caller() -> None:
                    for i in queue:
                        try:
                            await client.rerank(f"query {i}", [f"doc {i} {j} " * (1 + j * 10) for j in range(1 + i % 5)], top_k=2)
                            outcomes["OK"] += 1
                        except RerankError as exc:
                            outcomes[exc.code.name] += 1

                await asyncio.gather(*(caller() for _ in range(16)))
            return outcomes

        assert asyncio.run(rounds(500)) == {"OK": 500}  # warm-up: allocator pools, caches
        before = _rss_mb(server.proc.pid)
        assert asyncio.run(rounds(3000)) == {"OK": 3000}
        after = _rss_mb(server.proc.pid)
    assert after - before < 64, f"resident memory grew {after - before:.0f} MB over 3000 requests"
