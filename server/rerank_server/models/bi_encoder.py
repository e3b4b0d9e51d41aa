"""A sentence-transformers SentenceTransformer as a Scorer: cosine similarity of separate embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import ModelInfo, Normalization, Scores, ScoringPlan, sigmoid
from .device import released_on_oom
from .tokens import TokenCounter
from .windows import Windowing, per_document, window_size


class BiEncoderScorer:
    """Embeds texts in batches; a pair's score is the cosine of its query and document embeddings.

    For a rerank request the query is embedded once and compared with every document; the batcher's
    items are therefore texts, not pairs.
    """

    def __init__(self, model: Any, info: ModelInfo) -> None:
        self.model = model
        self.info = info
        self._tokens = TokenCounter(model.tokenizer, info.max_seq_length)

    def plan_rerank(self, query: str, documents: Sequence[str], windowing: Windowing | None = None) -> ScoringPlan:
        """Item 0 is the query, items 1.. the documents (or, with ``windowing``, their windows)."""
        if windowing is not None:
            room = window_size(self._tokens.max_length, 0, self._tokens.single_specials)
            pieces = [self._tokens.split(d, room, windowing.overlap_tokens) for d in documents]
            plan = self.plan_rerank(query, [p for ps in pieces for p in ps])
            return per_document(plan, [len(ps) for ps in pieces], windowing.aggregation)
        texts = [query, *documents]
        costs, truncated = self._measure(texts)

        def combine(embeddings: Sequence[Any]) -> Scores:
            matrix = np.asarray(embeddings, dtype=np.float32)
            return matrix[1:] @ matrix[0]

        return ScoringPlan(
            items=texts,
            costs=costs,
            pair_tokens=[costs[0] + c for c in costs[1:]],
            truncated=truncated[1:],
            combine=combine,
        )

    def plan_pairs(self, pairs: Sequence[tuple[str, str]]) -> ScoringPlan:
        """Each distinct text is embedded once, however many pairs it appears in."""
        position: dict[str, int] = {}
        for text in (t for pair in pairs for t in pair):
            position.setdefault(text, len(position))
        texts = list(position)
        costs, truncated = self._measure(texts)
        q_idx = np.array([position[q] for q, _ in pairs], dtype=np.int64)
        d_idx = np.array([position[d] for _, d in pairs], dtype=np.int64)

        def combine(embeddings: Sequence[Any]) -> Scores:
            matrix = np.asarray(embeddings, dtype=np.float32)
            return np.einsum("ij,ij->i", matrix[q_idx], matrix[d_idx])

        return ScoringPlan(
            items=texts,
            costs=costs,
            pair_tokens=[costs[q] + costs[d] for q, d in zip(q_idx, d_idx)],
            truncated=[truncated[q] or truncated[d] for q, d in zip(q_idx, d_idx)],
            combine=combine,
        )

    def _measure(self, texts: Sequence[str]) -> tuple[list[int], list[bool]]:
        limit = self._tokens.max_length
        full = [n + self._tokens.single_specials for n in self._tokens.lengths(texts)]
        return [min(n, limit) for n in full], [n > limit for n in full]

    def run_batch(self, items: list[Any]) -> list[Any]:
        """Unit-length embeddings for a batch of texts, so a dot product is the cosine."""
        with released_on_oom():
            embeddings = self.model.encode(
                items,
                batch_size=len(items),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return list(embeddings)

    def normalize(self, raw: Scores, normalization: Normalization) -> Scores:
        """RAW is the cosine similarity; SIGMOID its logistic function."""
        return sigmoid(raw) if normalization is Normalization.SIGMOID else np.asarray(raw, dtype=np.float32)
