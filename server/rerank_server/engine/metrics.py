"""Prometheus metrics: requests, latency, queue depth, batches, pairs, truncations, rejections, drops."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from ..batching.batcher import BatchRecord
from .served import ModelRegistry, ServedModel

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_TOKEN_BUCKETS = (64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288)


class _BatcherCollector(Collector):
    """Reads each model's batcher at scrape time, so the hot path pays nothing for these."""

    def __init__(self, models: ModelRegistry) -> None:
        self._models = models

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily("rerank_queue_pairs", "Pairs waiting for the model", labels=["model"])
        queued_s = GaugeMetricFamily(
            "rerank_queue_seconds", "Estimated model time of the work queued and in flight, at the model's running speed", labels=["model"]
        )
        speed = GaugeMetricFamily(
            "rerank_model_tokens_per_second", "The model's running speed, from the batches it ran (seeded at start-up)", labels=["model"]
        )
        pairs = CounterMetricFamily("rerank_pairs", "Pairs the model has scored", labels=["model"])
        rejected = CounterMetricFamily(
            "rerank_rejected_requests", "Requests refused at admission: no room in the queue, or a deadline it could not meet", labels=["model"]
        )
        dropped = CounterMetricFamily(
            "rerank_dropped_pairs", "Queued pairs dropped before the model ran them", labels=["model", "reason"]
        )
        lanes = CounterMetricFamily(
            "rerank_device_batches", "Model calls run on each device of the model (its place in --device, from 0)", labels=["model", "device"]
        )
        failed = CounterMetricFamily("rerank_failed_model_calls", "Model calls that raised (retried halves included)", labels=["model"])
        served = CounterMetricFamily("rerank_served_pairs_by_caller", "Pairs scored, by priority and caller", labels=["model", "priority", "tenant"])
        refused = CounterMetricFamily("rerank_refused_requests_by_caller", "Requests refused at admission, by priority and caller", labels=["model", "priority", "tenant"])
        waits = SummaryMetricFamily("rerank_queue_wait_seconds_by_caller", "Time from admission to the model, by priority and caller", labels=["model", "priority", "tenant"])
        for model in self._models:
            name, stats = model.info.name, model.batcher.stats
            top = _busiest_tenants(stats.served_pairs, stats.refused)
            for (priority, tenant), value in _folded(stats.served_pairs, top).items():
                served.add_metric([name, _PRIORITY_NAMES.get(priority, str(priority)), tenant], value)
            for (priority, tenant), value in _folded(stats.refused, top).items():
                refused.add_metric([name, _PRIORITY_NAMES.get(priority, str(priority)), tenant], value)
            wait_sums = _folded(stats.queue_wait_s, top)
            for (priority, tenant), count in _folded(stats.queue_waits, top).items():
                waits.add_metric([name, _PRIORITY_NAMES.get(priority, str(priority)), tenant], int(count), wait_sums.get((priority, tenant), 0.0))
            depth.add_metric([name], model.batcher.queued)
            queued_s.add_metric([name], model.batcher.queued_seconds)
            speed.add_metric([name], model.batcher.speed.tokens_per_s or 0.0)
            pairs.add_metric([name], stats.batched_items)
            rejected.add_metric([name], stats.rejected_submissions)
            dropped.add_metric([name, "cancelled"], stats.dropped_cancelled)
            dropped.add_metric([name, "deadline"], stats.dropped_expired)
            failed.add_metric([name], stats.failed_calls)
            for index, count in enumerate(getattr(model.batcher, "lane_batches", ())):
                lanes.add_metric([name, str(index)], count)
        yield from (depth, queued_s, speed, pairs, rejected, dropped, lanes, failed, served, refused, waits)


_PRIORITY_NAMES = {0: "interactive", 1: "bulk"}
_TENANT_LABELS = 64  # callers named in labels at most


def _busiest_tenants(*counts: Mapping[tuple[int, str], float]) -> set[str]:
    """The callers named in metric labels: the busiest few, so a caller-chosen name cannot grow the
    metrics without bound; the rest add up under "other"."""
    activity: dict[str, float] = {}
    for table in counts:
        for (_, tenant), value in table.items():
            activity[tenant] = activity.get(tenant, 0) + value
    return set(sorted(activity, key=lambda t: -activity[t])[:_TENANT_LABELS])


def _folded(counts: Mapping[tuple[int, str], float], named: set[str]) -> dict[tuple[int, str], float]:
    out: dict[tuple[int, str], float] = {}
    for (priority, tenant), value in counts.items():
        key = (priority, tenant if tenant in named else "other")
        out[key] = out.get(key, 0) + value
    return out


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

    def observe_truncated(self, model: str, documents: int) -> None:
        """Documents cut to the model's length."""
        self.truncated.labels(model).inc(documents)

    def watch(self, model: ServedModel) -> None:
        """Observe every batch ``model`` runs."""
        # The model's series, looked up once: an engine on a fast device runs hundreds of batches a second.
        pairs, tokens, seconds = (metric.labels(model.info.name) for metric in (self.batch_pairs, self.batch_tokens, self.batch_seconds))

        def observe(record: BatchRecord) -> None:
            pairs.observe(record.size)
            tokens.observe(record.padded_tokens)
            seconds.observe(record.duration_s)

        model.batcher.on_batch = observe

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP; returns the port (useful with 0)."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
