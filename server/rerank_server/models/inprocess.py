"""A scorer used directly on texts, tokenizing on the calling thread: for benchmarks and tests.

The server never calls these: its engine tokenizes on the tokenizer pool and batches through the
batcher. Here the same steps run in line, so in-process figures do the same work as ``predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import Scorer, ScoringPlan
from .windows import Windowing


def plan_text_pairs(scorer: Scorer, pairs: Sequence[tuple[str, str]]) -> ScoringPlan:
    """Tokenize ``pairs`` (each distinct text once) and plan them."""
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))
    return scorer.plan_pairs(pairs, dict(zip(texts, scorer.encoder.ids(texts))))


def plan_text_rerank(scorer: Scorer, query: str, documents: Sequence[str], windowing: Windowing | None = None) -> ScoringPlan:
    """Tokenize a query and its documents and plan them."""
    ids = scorer.encoder.ids([query, *documents])
    return scorer.plan_rerank(ids[0], ids[1:], windowing)


def score_text_pairs(scorer: Scorer, pairs: Sequence[tuple[str, str]]) -> list[Any]:
    """Raw scores (logits for a cross-encoder) of ``pairs`` as one batch, tokenizing first."""
    plan = plan_text_pairs(scorer, pairs)
    return list(plan.combine(scorer.run_batch(plan.items)))
