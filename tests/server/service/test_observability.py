"""Prometheus metrics and structured request logs."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from rerank_client import RerankClient, RerankError
from tests.processes import ServerProcess, run_cli
from tests.server_harness import ServerThread


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(f"{name} {labels} not in the metrics")


def test_metrics_count_requests_batches_truncations_and_rejections(cross_scorer: Any) -> None:
    from rerank_server.engine.settings import BatchingConfig

    with ServerThread([cross_scorer], BatchingConfig(max_queued_pairs=8), metrics_port=0) as running, RerankClient(running.target) as client:
        client.rerank("q", ["a", "b", "c"])
        client.rerank("q", ["photosynthesis " * 300])  # truncated
        with pytest.raises(RerankError):
            client.rerank("", ["a"])
        with pytest.raises(RerankError):
            client.rerank("q", ["d"] * 9)  # does not fit in the queue
        assert running.server is not None
        text = urllib.request.urlopen(f"http://127.0.0.1:{running.server.metrics_port}/metrics", timeout=10).read().decode()
    assert _metric(text, "rerank_requests_total", method="Rerank", code="OK") == 2
    assert _metric(text, "rerank_requests_total", method="Rerank", code="INVALID_ARGUMENT") == 1
    assert _metric(text, "rerank_requests_total", method="Rerank", code="RESOURCE_EXHAUSTED") == 1
    assert _metric(text, "rerank_request_seconds_count", method="Rerank") == 2
    assert _metric(text, "rerank_pairs_total", model="tiny-ce") == 4
    assert _metric(text, "rerank_batch_pairs_count", model="tiny-ce") >= 2
    assert _metric(text, "rerank_truncated_pairs_total", model="tiny-ce") == 1
    assert _metric(text, "rerank_rejected_requests_total", model="tiny-ce") == 1
    assert _metric(text, "rerank_queue_pairs", model="tiny-ce") == 0
    assert "rerank_dropped_pairs_total" in text


def test_json_request_logs_carry_the_request_id() -> None:
    with ServerProcess("--model", "all-MiniLM-L6-v2", "--log-format", "json", "--log-requests") as server:
        assert run_cli("rerank", "--target", server.target, "q", "d").returncode == 0
        assert server.terminate() == 0
    # Every line the server wrote is a JSON record: no progress bars, no plain ready line.
    plain = [line for line in server.output if line.strip() and not line.startswith("{")]
    assert not plain, plain
    entries = [json.loads(line) for line in server.output if line.strip()]
    assert any(e["message"].startswith("rerank-server ready on") for e in entries)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", e["time"]) for e in entries), entries[0]["time"]
    requests = [e for e in entries if e["logger"] == "rerank_server.requests"]
    assert len(requests) == 1
    assert requests[0]["method"] == "Rerank" and requests[0]["code"] == "OK" and requests[0]["pairs"] == 1
    assert {"time", "level", "message", "request_id", "ms"} <= set(requests[0])
