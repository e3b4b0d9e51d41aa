"""``rerank-server --frontends N``: front-end processes on shared ports feeding one engine process, as real
processes on loopback: the same answers as one process, names operators can see, one set of metrics,
and the faults (a front end killed, the engine killed, SIGTERM under load)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from collections import Counter
from pathlib import Path

import grpc

from rerank_client import AsyncRerankClient, RerankClient, RerankError
from rerank_server.bench.cpu import server_processes
from rerank_server.models.calibration import fingerprint
from tests.processes import DOCS, ServerProcess, keep_calling


def _args(model: Path, *more: str) -> tuple[str, ...]:
    return ("--model", f"tiny={model}", "--device", "sim:null", "--frontends", "2", *more)


def test_front_ends_answer_as_one_process_does_under_names_ps_shows(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    # Front ends normalize the engine's raw scores: each reads the model's calibration too.
    calibration = tmp_path / "tiny.json"
    calibration.write_text(
        json.dumps({"format": "rerank-calibration/1", "model": {"fingerprint": fingerprint(tiny_cross_encoder)}, "method": "platt", "parameters": {"a": 0.5, "b": 0.1}})
    )
    calibrated = ("--calibration", f"tiny={calibration}")
    with ServerProcess("--model", f"tiny={tiny_cross_encoder}", "--device", "sim:null", *calibrated) as single:
        with RerankClient(single.target) as client:
            expected = client.rerank("how do plants make energy", DOCS)
            expected_p = client.rerank("how do plants make energy", DOCS, normalization="calibrated")
    with ServerProcess(*_args(tiny_cross_encoder, "--http-port", "0", "--log-format", "json", "--log-requests", *calibrated)) as server:
        assert server.proc is not None
        names = server_processes(server.proc.pid)
        assert set(names) == {"rerank-engine", "rerank-frontend-1", "rerank-frontend-2"}, names
        # The engine's one event loop is uvloop's (installed with the server; front ends keep grpc.aio's asyncio).
        assert "uvloop" in Path(f"/proc/{names['rerank-engine']}/maps").read_text()
        # Sixteen connections: the kernel spreads them over both front ends (all on one: 1 in 32,768).
        answers = []
        for _ in range(16):
            with RerankClient(server.target) as client:
                answers.append(client.rerank("how do plants make energy", DOCS))
        for answer in answers:
            assert [(d.index, d.score) for d in answer.results] == [(d.index, d.score) for d in expected.results]
        with RerankClient(server.target) as client:
            answer_p = client.rerank("how do plants make energy", DOCS, normalization="calibrated")
        assert [(d.index, d.score) for d in answer_p.results] == [(d.index, d.score) for d in expected_p.results]
        assert answer_p.indices == expected.indices
        ok = 'rerank_requests_total{code="OK",method="Rerank"} 17.0'
        for _ in range(200):  # polls: front ends report their requests to the engine a few times a second
            text = urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10).read().decode()
            if ok in text:
                break
            time.sleep(0.05)
    logged = [json.loads(line) for line in server.output if '"rerank_server.requests"' in line]
    assert {entry["process"] for entry in logged} == {"rerank-frontend-1", "rerank-frontend-2"}
    # One engine scored every front end's pairs, and its metrics count every front end's requests.
    assert ok in text
    assert 'rerank_pairs_total{model="tiny"} 51.0' in text


def test_a_killed_front_end_is_replaced_and_callers_retry_through(tiny_cross_encoder: Path) -> None:
    with ServerProcess(*_args(tiny_cross_encoder)) as server:
        assert server.proc is not None
        supervisor = server.proc.pid
        outcomes: Counter[str] = Counter()

        async def scenario() -> None:
            stop = asyncio.Event()
            async with AsyncRerankClient(server.target, timeout=60, retries=4) as client:
                load = asyncio.create_task(keep_calling(client, stop, outcomes, callers=8))
                while outcomes["OK"] < 20:
                    await asyncio.sleep(0.01)
                victim = server_processes(supervisor)["rerank-frontend-1"]
                os.kill(victim, signal.SIGKILL)
                while server_processes(supervisor).get("rerank-frontend-1") in (None, victim):  # polls for the replacement
                    await asyncio.sleep(0.05)
                replaced_at = outcomes["OK"]
                while outcomes["OK"] < replaced_at + 40:
                    await asyncio.sleep(0.01)
                stop.set()
                await load

        asyncio.run(scenario())
        assert set(outcomes) == {"OK"}, outcomes  # the client retried what the dead front end held
        assert server.terminate() == 0
    output = "".join(server.output)
    assert "rerank-frontend-1 exited (code -9)" in output


def test_the_engine_dying_takes_the_server_down_with_a_failing_exit_code(tiny_cross_encoder: Path) -> None:
    with ServerProcess(*_args(tiny_cross_encoder)) as server:
        assert server.proc is not None
        children = server_processes(server.proc.pid)
        os.kill(children["rerank-engine"], signal.SIGKILL)
        assert server.proc.wait(60) == 1
        with RerankClient(server.target, timeout=5, retries=0) as client:
            try:
                client.rerank("q", ["d"])
                raise AssertionError("a server without its engine answered")
            except RerankError as exc:
                assert exc.code is grpc.StatusCode.UNAVAILABLE
    for pid in children.values():  # no front end is left accepting work nobody will do
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert "the engine process exited (code -9): the server stops" in "".join(server.output)


def test_sigterm_drains_every_front_end_then_the_engine(tiny_cross_encoder: Path) -> None:
    with ServerProcess(*_args(tiny_cross_encoder, "--log-format", "json", "--log-requests")) as server:
        assert server.proc is not None
        outcomes: Counter[str] = Counter()

        async def scenario() -> None:
            assert server.proc is not None
            stop = asyncio.Event()
            async with AsyncRerankClient(server.target, timeout=60, retries=0) as client:
                load = asyncio.create_task(keep_calling(client, stop, outcomes, callers=8))
                while outcomes["OK"] < 50:
                    await asyncio.sleep(0.01)
                server.proc.send_signal(signal.SIGTERM)
                started = time.monotonic()
                while server.proc.poll() is None and time.monotonic() - started < 90:
                    await asyncio.sleep(0.01)
                stop.set()
                await load

        asyncio.run(scenario())
        assert server.proc.wait(10) == 0
    answered = Counter(json.loads(line)["code"] for line in server.output if '"rerank_server.requests"' in line)
    assert answered["OK"] == outcomes["OK"] and set(answered) <= {"OK", "UNAVAILABLE"}, answered
    assert set(outcomes) <= {"OK", "UNAVAILABLE"}, outcomes

