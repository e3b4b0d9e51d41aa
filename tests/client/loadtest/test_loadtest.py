"""The load generator against a real server on loopback, for a couple of seconds at a time."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rerank_client.loadtest.callers import StreamCaller, UnaryCaller
from rerank_client.loadtest.corpus import Corpus
from rerank_client.loadtest.report import build_report, percentile
from rerank_client.loadtest.runner import RequestPool, closed_loop, open_loop
from rerank_client.loadtest.sweep import saturation_step, sweep_rates
from rerank_client.loadtest.workload import Workload, parse_range
from rerank_server.engine.settings import BatchingConfig
from tests.processes import ServerProcess, run_cli
from tests.server_harness import ServerThread


def test_builtin_corpus_gives_mixed_real_english_lengths(bi_scorer: Any) -> None:
    corpus = Corpus.builtin()
    rng = random.Random(0)
    docs = [corpus.document(rng) for _ in range(300)]
    tokens = [len(ids) for ids in bi_scorer.encoder.ids(docs)]
    assert 12 <= min(tokens) and max(tokens) <= 600
    assert percentile(tokens, 10) < 60 and percentile(tokens, 90) > 200  # mixed, not all alike
    assert all(d[0].isalpha() or d[0].isdigit() or d[0] == '"' for d in docs)


def test_parse_range() -> None:
    assert parse_range("7") == (7, 7) and parse_range("10-100") == (10, 100)
    for bad in ("0", "9-3", "x"):
        with pytest.raises(ValueError, match="--documents"):
            parse_range(bad)


@pytest.mark.parametrize("caller_kind", [UnaryCaller, StreamCaller])
def test_report_counts_match_what_the_server_counted(cross_scorer: Any, caller_kind: Any) -> None:
    workload = Workload(Corpus.builtin(), documents=(2, 6), error_fraction=0.3)
    with ServerThread([cross_scorer]) as running:

        async def go() -> Any:
            caller = caller_kind([running.target], timeout=30.0)
            try:
                return await closed_loop(caller, RequestPool(workload, 3).next, concurrency=4, duration=None, requests=40)
            finally:
                await caller.aclose()

        run = asyncio.run(go())
        assert running.server is not None
        counts = dict(running.server.servicer.counts)
    report = build_report(run, [running.target])
    method = "Rerank" if caller_kind is UnaryCaller else "RerankStream"
    assert report.sent == report.completed == 40
    assert report.by_code == {code: n for (m, code), n in counts.items() if m == method}
    assert report.by_code["INVALID_ARGUMENT"] > 0 and report.by_code["OK"] > 0
    assert report.pairs_per_s > 0 and report.latency_ms["p50"] <= report.latency_ms["p99"] <= report.latency_ms["max"]
    assert report.server_inference_ms["p50"] > 0


def test_open_loop_keeps_its_rate_when_the_server_is_slower(bi_scorer: Any) -> None:
    # One text per model call with 8 long documents a request: a few requests per second at most.
    slow = BatchingConfig(max_batch_size=1, max_wait_ms=0.0)
    workload = Workload(Corpus.builtin(), documents=(8, 8), min_tokens=150, max_tokens=400)
    rate, duration = 20.0, 2.0
    with ServerThread([bi_scorer], slow) as running:

        async def go() -> Any:
            caller = UnaryCaller([running.target], timeout=30.0)
            try:
                return await open_loop(caller, RequestPool(workload, 5).next, rate=rate, duration=duration, requests=None, drain_s=1.0, seed=5)
            finally:
                await caller.aclose()

        run = asyncio.run(go())
    report = build_report(run, [running.target])
    # The seeded Poisson schedule holds a fixed number of arrivals; all of them went out on time.
    expected = _arrivals(rate, duration, seed=5)
    assert report.sent == expected
    assert report.send_rate == pytest.approx(rate, rel=0.35)
    assert run.send_s == pytest.approx(duration, abs=0.5)
    assert report.ok < report.sent  # the server could not keep up, and the senders did not wait for it
    assert report.unfinished + report.completed == report.sent


def _arrivals(rate: float, duration: float, seed: int) -> int:
    rng, at, n = random.Random(seed + 1), 0.0, 0
    while (at := at + rng.expovariate(rate)) < duration:
        n += 1
    return n


def test_sweep_helpers() -> None:
    assert sweep_rates(60, 6) == [10, 20, 30, 40, 50, 60]
    assert saturation_step([]) is None


def test_cli_writes_json_and_plot_and_refuses_bad_arguments(tmp_path: Path) -> None:
    with ServerProcess("--model", "all-MiniLM-L6-v2") as server:
        out_json, out_png = tmp_path / "report.json", tmp_path / "latency.png"
        done = run_cli(
            "rerank", "loadtest", "--target", server.target, "--concurrency", "2", "--requests", "6",
            "--documents", "2-4", "--json", str(out_json), "--plot", str(out_png),
        )
        assert done.returncode == 0, done.stderr
        assert "throughput:" in done.stdout and "latency ms: p50" in done.stdout
        report = json.loads(out_json.read_text())
        assert report["sent"] == 6 and report["by_code"] == {"OK": 6}
        assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        sweep_json, sweep_png = tmp_path / "sweep.json", tmp_path / "sweep.png"
        swept = run_cli(
            "rerank", "loadtest", "--target", server.target, "--sweep", "--rate", "4", "--sweep-steps", "2",
            "--duration", "1", "--drain", "5", "--documents", "1-2", "--json", str(sweep_json), "--plot", str(sweep_png), "--quiet",
        )
        assert swept.returncode == 0, swept.stderr
        assert "saturation:" in swept.stdout
        assert [s["offered_rate"] for s in json.loads(sweep_json.read_text())["steps"]] == [2, 4]
        assert sweep_png.exists()
    for args, message in [
        ((), "give at least one --target"),
        (("--target", "127.0.0.1:1", "--rate", "0"), "--rate must be more than 0"),
        (("--target", "127.0.0.1:1", "--duration", "1"), "cannot reach 127.0.0.1:1"),
        (("--target", "x:1", "--documents", "5-2"), "--documents '5-2'"),
        (("--target", "x:1", "--sweep"), "--sweep needs --rate"),
    ]:
        bad = run_cli("rerank", "loadtest", *args)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr


def test_unary_load_balances_and_retries_over_its_targets_as_the_client_does(cross_scorer: Any) -> None:
    """A dead target beside a live one: the load generator goes through the client's round-robin, which
    sends nothing to a target that does not answer, so every call succeeds, with retries and without
    (one single-target client per target, as before, failed every call it sent to the dead one)."""
    import socket

    from rerank_client.loadtest.workload import RequestSpec

    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    spec = RequestSpec("a query", ["a cat", "a dog"], 0, "", False)
    with ServerThread([cross_scorer]) as running:

        async def codes(retries: int) -> Counter[str]:
            caller = UnaryCaller([dead, running.target], timeout=10, retries=retries)
            try:
                samples = [await caller.call(spec, 0.0) for _ in range(12)]
            finally:
                await caller.aclose()
            return Counter(s.code for s in samples)

        with_retries, without = asyncio.run(codes(3)), asyncio.run(codes(0))
    assert with_retries == {"OK": 12} and without == {"OK": 12}


def test_the_http_api_is_driven_with_the_same_workload_and_counted_by_status(cross_scorer: Any) -> None:
    """--protocol http: the Cohere endpoint under closed-loop load; refusals count under their gRPC names."""
    from rerank_client.loadtest.callers import HttpCaller

    workload = Workload(Corpus.builtin(), documents=(2, 6), error_fraction=0.25)
    with ServerThread([cross_scorer], http_port=0) as running:

        async def go() -> Any:
            caller = HttpCaller([running.http_url], timeout=30.0)
            try:
                return await closed_loop(caller, RequestPool(workload, 3).next, concurrency=4, duration=None, requests=40)
            finally:
                await caller.aclose()

        run = asyncio.run(go())
        counts = running.server.servicer.counts if running.server else {}
    report = build_report(run, [running.http_url])
    assert report.sent == 40 and set(report.by_code) == {"OK", "INVALID_ARGUMENT"}
    assert report.by_code == {code: n for (method, code), n in counts.items() if method == "POST /v1/rerank"}
    cli = run_cli("rerank", "loadtest", "--protocol", "http", "--target", "127.0.0.1:1", "--requests", "1")
    assert cli.returncode != 0 and "--http-port" in cli.stderr  # nothing there: said plainly


def test_traffic_classes_run_together_and_are_reported_apart(cross_scorer: Any, tmp_path: Path) -> None:
    from rerank_client.loadtest.traffic import parse_traffic

    assert parse_traffic("bulk:concurrency=3,documents=2-4,priority=bulk,tenant=etl").tenant == "etl"
    with pytest.raises(ValueError, match="exactly one of concurrency"):
        parse_traffic("x:documents=2")
    report = tmp_path / "classes.json"
    with ServerThread([cross_scorer]) as running:
        done = run_cli(
            "rerank", "loadtest", "--target", running.target, "--requests", "12", "--quiet", "--json", str(report),
            "--traffic", "users:concurrency=2,documents=1-3,timeout=20",
            "--traffic", "backfill:concurrency=3,documents=4-6,priority=bulk,tenant=etl",
        )
        served = dict(running.model().batcher.stats.served_pairs)
    assert done.returncode == 0, done.stderr
    assert "== users: interactive, caller - ==" in done.stdout and "== backfill: bulk, caller etl ==" in done.stdout
    classes = json.loads(report.read_text())["classes"]
    assert classes["users"]["by_code"] == {"OK": 12} and classes["backfill"]["by_code"] == {"OK": 12}
    assert classes["backfill"]["traffic"]["priority"] == "bulk"
    assert set(served) == {(0, ""), (1, "etl")}  # the server saw the priorities and the caller


def test_retried_calls_are_counted_and_retries_off_shows_the_raw_failures(cross_scorer: Any) -> None:
    """One of two replicas refuses every call with UNAVAILABLE (it is draining, its health not yet
    changed): through the client's retries every call is answered and the report counts those that
    needed a retry; with --retries 0 the refusals show as they are."""
    from rerank_client.loadtest.runner import RunResult

    workload = Workload(Corpus.builtin(), documents=(1, 2))
    with ServerThread([cross_scorer]) as draining, ServerThread([cross_scorer]) as healthy:
        assert draining.server is not None
        draining.server.engine.draining = True

        async def go(retries: int) -> RunResult:
            caller = UnaryCaller([draining.target, healthy.target], timeout=30.0, retries=retries)
            try:
                # One caller: round-robin then sends each retry to the other replica. With two callers a
                # call's attempts could all land on the draining one, the other caller's picks between
                # them (1 call in 16 once, in CI).
                return await closed_loop(caller, RequestPool(workload, 1).next, concurrency=1, duration=None, requests=16)
            finally:
                await caller.aclose()

        with_retries, without = build_report(asyncio.run(go(3)), []), build_report(asyncio.run(go(0)), [])
    assert with_retries.by_code == {"OK": 16} and with_retries.retried > 0
    assert without.by_code.get("UNAVAILABLE", 0) > 0 and without.retried == 0
