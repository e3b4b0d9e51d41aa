"""The benchmark's requests: real English of mixed length, seeded, identical for every contender."""

from __future__ import annotations

import random

from rerank_client.loadtest.corpus import Corpus
from rerank_client.loadtest.workload import RequestSpec, Workload


def requests(count: int, documents: tuple[int, int], seed: int, tokens: tuple[int, int] = (20, 400)) -> list[RequestSpec]:
    """``count`` rerank requests with ``documents`` documents each, of ``tokens`` tokens each."""
    workload = Workload(Corpus.builtin(), documents=documents, min_tokens=tokens[0], max_tokens=tokens[1])
    rng = random.Random(seed)
    return [workload.draw(rng) for _ in range(count)]


def pairs_of(specs: list[RequestSpec]) -> list[tuple[str, str]]:
    """Every (query, document) pair of ``specs``, request by request."""
    return [(spec.query, doc) for spec in specs for doc in spec.documents]
