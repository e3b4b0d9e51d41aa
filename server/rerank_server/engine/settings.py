"""The engine's settings: batching per device, what one request may hold, and admission. Every default is here,
once; the command line (``rerank_server.cli``) takes its defaults from these dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..batching import STRATEGIES, BatchPolicy, FairShare

@dataclass(frozen=True)
class DeviceBatching:
    """Batching defaults for a kind of device, used where the flags are not given.

    Attributes:
        max_batch_size, max_batch_tokens: where a batch closes (pairs; padded tokens).
        max_wait_ms: how long a partial batch may wait for company once the device is free.
        call_overhead: a model call's fixed cost dominates its size (an accelerator: per-call launch
            overhead), so batch selection weighs one more call as a whole token budget of padding.
    """

    max_batch_size: int
    max_batch_tokens: int
    max_wait_ms: float
    call_overhead: bool


# CPU: the in-process batch sweep on the 2-core build machine (docs/bench): batches past 1-2k padded
# tokens only add latency. CUDA: forward-only on an H200 (issue 11's table) reached 8% of its ceiling
# at 128 pairs, 36% at 512 and its ceiling at 2048: big batches, no wait once the device is free.
DEVICE_BATCHING = {
    "cpu": DeviceBatching(16, 2048, 5.0, call_overhead=False),
    "cuda": DeviceBatching(2048, 262144, 0.0, call_overhead=True),
    "mps": DeviceBatching(32, 8192, 5.0, call_overhead=False),
    "sim": DeviceBatching(2048, 262144, 0.0, call_overhead=True),  # a simulated accelerator: batched as CUDA
}


@dataclass(frozen=True)
class BatchingConfig:
    """Batching limits applied to every served model. The defaults are the CPU ones (see README, Benchmarks:
    on a CPU, batches of 1-2k padded tokens run fastest; bigger ones only add latency)."""

    max_batch_size: int = 16
    max_batch_tokens: int = 2048
    max_wait_ms: float = 5.0
    # Pairs that may wait: what bounds the queue's memory (a queued pair holds its token ids, about 1-2 KB).
    # 32768 takes 256 closed-loop callers of 100 documents each; deadlines, not this, bound the wait.
    max_queued_pairs: int = 32768
    strategy: str = "length"  # "length", "arrival" or "none"; see --batching
    pipeline_depth: int = 2  # batches in the collate / forward / fetch stages at once
    call_overhead: bool = False  # see DeviceBatching
    share: FairShare = field(default_factory=FairShare)  # how priorities share the device
    tenant_queue_share: float = 0.5  # the most of the queue one named caller may hold

    @classmethod
    def for_device(cls, device_kind: str, **given: object) -> BatchingConfig:
        """The defaults for ``device_kind`` (cpu, cuda, mps), with the fields in ``given`` (None: default) set."""
        d = DEVICE_BATCHING.get(device_kind, DEVICE_BATCHING["cpu"])
        defaults = {"max_batch_size": d.max_batch_size, "max_batch_tokens": d.max_batch_tokens, "max_wait_ms": d.max_wait_ms, "call_overhead": d.call_overhead}
        return cls(**{**defaults, **{k: v for k, v in given.items() if v is not None}})  # type: ignore[arg-type]

    def policy(self) -> BatchPolicy:
        """The batcher's view of these limits."""
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--batching must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.pipeline_depth < 1:
            raise ValueError(f"--pipeline-depth must be at least 1, got {self.pipeline_depth}")
        return BatchPolicy(
            self.max_batch_size,
            self.max_batch_tokens,
            self.max_wait_ms / 1000.0,
            group_by_length=self.strategy != "arrival",
            overhead_tokens=float(self.max_batch_tokens) if self.call_overhead else None,
        )


@dataclass(frozen=True)
class RequestLimits:
    """What one request may make the server hold or do, whatever its transport.

    Attributes:
        max_document_bytes: UTF-8 bytes of one document (or one text of a pair).
        max_request_pairs: model inputs one request may create: its documents, or with windowing
            their windows (a long document with a small stride makes many).
    """

    max_document_bytes: int = 1 << 20
    max_request_pairs: int = 4096


@dataclass(frozen=True)
class AdmissionConfig:
    """Who gets in, and how long a request may take, whatever its transport.

    Attributes:
        default_deadline_s: the deadline of a request whose caller set none. A request is refused at
            admission only when it cannot finish by its deadline (the work ahead of it, its own and the
            batches in flight, at the model's running speed), so this is also how much queued work the
            server takes on before it refuses. Five minutes, the timeout the Cohere SDK and LangChain's
            Cohere reranker wait by default: a closed loop of 256 callers of 10-100 documents each is
            about 100 s of work for the bench's cross-encoder on the 2-core build machine (README,
            Running it in production), so that load is queued, not refused; a caller that cares sets
            its own deadline.
        max_request_time_s: the longest any request may take, whatever deadline its caller set (None: no cap).
        max_concurrent: requests in progress at once, every transport together (None: no cap beyond the queue).
        max_named_callers: callers that get fair turns of their own; further names share one turn, so
            that made-up names cannot multiply a caller's share.
    """

    default_deadline_s: float = 300.0
    max_request_time_s: float | None = None
    max_concurrent: int | None = None
    max_named_callers: int = 64
