"""A sentence-transformers CrossEncoder as a Scorer: one model pass per (query, document) pair."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .base import ModelInfo, Normalization, Scores, ScoringPlan, sigmoid
from .device import released_on_oom
from .tokens import TokenCounter
from .windows import Windowing, per_document, window_size


def _as_scores(results: Sequence[Any]) -> Scores:
    return np.asarray(results, dtype=np.float32)


class CrossEncoderScorer:
    """Scores pairs with ``CrossEncoder.predict``; the batcher decides which pairs share a call.

    The model is asked for logits (an identity activation), and the model's own activation is applied
    per request in :meth:`normalize`, so RAW scores equal what ``CrossEncoder.predict`` returns and
    SIGMOID is the sigmoid of the logit whatever activation the model was saved with.

    ``logits`` replaces ``predict`` as what runs a batch (an ONNX Runtime or OpenVINO graph of the
    same network); the model then still provides the tokenizer and the activation.
    """

    def __init__(self, model: Any, info: ModelInfo, logits: Callable[[list[tuple[str, str]]], np.ndarray] | None = None) -> None:
        if model.num_labels != 1:
            raise ValueError(
                f"{info.source} has {model.num_labels} output labels; a reranker has exactly one "
                "(a relevance score). Serve a reranking cross-encoder such as cross-encoder/ms-marco-MiniLM-L-6-v2."
            )
        self.model = model
        self.info = info
        self._activation = model.activation_fn
        self._identity = torch.nn.Identity()
        self._tokens = TokenCounter(model.tokenizer, info.max_seq_length)
        self._logits = logits or self._predict

    def plan_rerank(self, query: str, documents: Sequence[str], windowing: Windowing | None = None) -> ScoringPlan:
        """One pair per document (per window with ``windowing``); the query is tokenized once."""
        query_tokens = self._tokens.lengths([query])[0]
        if windowing is None:
            return self._plan([(query, d) for d in documents], [query_tokens] * len(documents), documents)
        room = window_size(self._tokens.max_length, query_tokens, self._tokens.pair_specials)
        pieces = [self._tokens.split(d, room, windowing.overlap_tokens) for d in documents]
        flat = [p for ps in pieces for p in ps]
        plan = self._plan([(query, p) for p in flat], [query_tokens] * len(flat), flat)
        return per_document(plan, [len(ps) for ps in pieces], windowing.aggregation)

    def plan_pairs(self, pairs: Sequence[tuple[str, str]]) -> ScoringPlan:
        """Pairs with independent queries."""
        queries = [q for q, _ in pairs]
        return self._plan(list(pairs), self._tokens.lengths(queries), [d for _, d in pairs])

    def _plan(self, pairs: list[tuple[str, str]], query_tokens: Sequence[int], documents: Sequence[str]) -> ScoringPlan:
        limit = self._tokens.max_length
        full = [q + d + self._tokens.pair_specials for q, d in zip(query_tokens, self._tokens.lengths(documents))]
        costs = [min(n, limit) for n in full]
        return ScoringPlan(
            items=pairs,
            costs=costs,
            pair_tokens=costs,
            truncated=[n > limit for n in full],
            combine=_as_scores,
        )

    def run_batch(self, items: list[Any]) -> list[float]:
        """Logits for a batch of pairs, in one forward pass."""
        return [float(x) for x in np.asarray(self._logits(items)).reshape(-1)]

    def _predict(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        with released_on_oom():
            return np.asarray(
                self.model.predict(
                    pairs,
                    batch_size=len(pairs),
                    activation_fn=self._identity,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            )

    def normalize(self, raw: Scores, normalization: Normalization) -> Scores:
        """RAW applies the model's own activation (as predict does); SIGMOID the logistic function."""
        if normalization is Normalization.SIGMOID:
            return sigmoid(raw)
        if isinstance(self._activation, torch.nn.Identity):
            return raw
        with torch.inference_mode():
            return self._activation(torch.from_numpy(np.asarray(raw, dtype=np.float32))).numpy()
