"""A sentence-transformers SentenceTransformer as a Scorer: cosine similarity of separate embeddings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import ModelInfo, Normalization, Scores, ScoringPlan, sigmoid
from .calibration import Calibration
from .encoding import Ids, TextEncoder
from .network import NetworkStages, Rows, TorchNetwork
from .prompts import ChatFormat, Instructions
from .windows import Windowing, per_document, split_documents, window_size


class BiEncoderScorer(NetworkStages):
    """Embeds texts in batches; a pair's score is the cosine of its query and document embeddings.

    For a rerank request the query is embedded once and compared with every document; the batcher's
    items are therefore texts, not pairs.
    """

    def __init__(self, model: Any, info: ModelInfo, calibration: Calibration | None = None) -> None:
        self.model = model
        self.info = info
        self.calibration = calibration
        self.encoder = TextEncoder(model.tokenizer, info.max_seq_length)
        self.network = TorchNetwork(model, info.device, "sentence_embedding", unit_rows=True)
        self.instructions = Instructions(accepts=False)
        self.chat: ChatFormat | None = None  # a bi-encoder embeds texts apart: no pair to render

    def plan_rerank(self, query: Ids, documents: Sequence[Ids], windowing: Windowing | None = None) -> ScoringPlan:
        """Item 0 is the query, items 1.. the documents (or, with ``windowing``, their windows)."""
        if windowing is not None:
            room = window_size(self.encoder.max_length, 0, self.encoder.single_specials)
            pieces = split_documents(documents, room, windowing)
            plan = self.plan_rerank(query, [piece for ps in pieces for piece in ps])
            return per_document(plan, [len(ps) for ps in pieces], windowing.aggregation)
        items = [self.encoder.single(t) for t in (query, *documents)]

        def combine(embeddings: Sequence[Any]) -> Scores:
            matrix = np.asarray(embeddings, dtype=np.float32)
            return matrix[1:] @ matrix[0]

        costs = [item.cost for item in items]
        return ScoringPlan(
            items=items,
            costs=costs,
            pair_tokens=[costs[0] + c for c in costs[1:]],
            truncated=[item.truncated for item in items[1:]],
            combine=combine,
        )

    def plan_pairs(self, pairs: Sequence[tuple[str, str]], ids: Mapping[str, Ids]) -> ScoringPlan:
        """Each distinct text is embedded once, however many pairs it appears in."""
        position: dict[str, int] = {}
        for text in (t for pair in pairs for t in pair):
            position.setdefault(text, len(position))
        items = [self.encoder.single(ids[text]) for text in position]
        costs = [item.cost for item in items]
        q_idx = np.array([position[q] for q, _ in pairs], dtype=np.int64)
        d_idx = np.array([position[d] for _, d in pairs], dtype=np.int64)

        def combine(embeddings: Sequence[Any]) -> Scores:
            matrix = np.asarray(embeddings, dtype=np.float32)
            return np.einsum("ij,ij->i", matrix[q_idx], matrix[d_idx])

        return ScoringPlan(
            items=items,
            costs=costs,
            pair_tokens=[costs[q] + costs[d] for q, d in zip(q_idx, d_idx)],
            truncated=[items[q].truncated or items[d].truncated for q, d in zip(q_idx, d_idx)],
            combine=combine,
        )

    def fetch(self, output: Any) -> list[Any]:
        """Unit-length embeddings, one per text, so a dot product is the cosine."""
        rows: Rows = self.network.fetch(output)
        return list(rows)

    def normalize(self, raw: Scores, normalization: Normalization) -> Scores:
        """RAW is the cosine similarity; SIGMOID its logistic function."""
        return sigmoid(raw) if normalization is Normalization.SIGMOID else np.asarray(raw, dtype=np.float32)
