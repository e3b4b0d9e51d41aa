"""Prometheus metrics: requests, latency, queue depth, batches, pairs, truncations, rejections, drops."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..batching.batcher import BatchRecord
from ..engine import ModelRegistry

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_TOKEN_BUCKETS = (64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288)


class _BatcherCollector(Collector):
    """Reads each model's batcher at scrape time, so the hot path pays nothing for these."""

    def __init__(self, models: ModelRegistry) -> None:
        self._models = models

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily("rerank_queue_pairs", "Pairs waiting for the model", labels=["model"])
        pairs = CounterMetricFamily("rerank_pairs", "Pairs the model has scored", labels=["model"])
        rejected = CounterMetricFamily("rerank_rejected_requests", "Requests refused because the queue was full", labels=["model"])
        dropped = CounterMetricFamily(
            "rerank_dropped_pairs", "Queued pairs dropped before the model ran them", labels=["model", "reason"]
        )
        failed = CounterMetricFamily("rerank_failed_model_calls", "Model calls that raised (retried halves included)", labels=["model"])
        for model in self._models:
            name, stats = model.info.name, model.batcher.stats
            depth.add_metric([name], model.batcher.queued)
            pairs.add_metric([name], stats.batched_items)
            rejected.add_metric([name], stats.rejected_submissions)
            dropped.add_metric([name, "cancelled"], stats.dropped_cancelled)
            dropped.add_metric([name, "deadline"], stats.dropped_expired)
            failed.add_metric([name], stats.failed_calls)
        yield from (depth, pairs, rejected, dropped, failed)


class Metrics:
    """The server's metrics, in a registry of its own (several servers may share one process)."""

    def __init__(self, models: ModelRegistry) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rerank_requests", "Requests answered, by method and status code", ["method", "code"], registry=r)
        self.latency = Histogram("rerank_request_seconds", "Time to answer a request", ["method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_pairs = Histogram("rerank_batch_pairs", "Pairs per model batch", ["model"], buckets=_SIZE_BUCKETS, registry=r)
        self.batch_tokens = Histogram(
            "rerank_batch_padded_tokens", "Padded tokens per model batch (pairs x longest)", ["model"], buckets=_TOKEN_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram("rerank_batch_seconds", "Model time per batch", ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.truncated = Counter("rerank_truncated_pairs", "Pairs cut to the model's max sequence length", ["model"], registry=r)
        r.register(_BatcherCollector(models))

    def observe_request(self, method: str, code: str, seconds: float) -> None:
        """One answered request."""
        self.requests.labels(method, code).inc()
        if code == "OK":
            self.latency.labels(method).observe(seconds)

    def observe_batch(self, model: str, record: BatchRecord) -> None:
        """One model call."""
        self.batch_pairs.labels(model).observe(record.size)
        self.batch_tokens.labels(model).observe(record.padded_tokens)
        self.batch_seconds.labels(model).observe(record.duration_s)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP; returns the port (useful with 0)."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
