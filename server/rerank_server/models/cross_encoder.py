"""A sentence-transformers CrossEncoder as a Scorer: one model pass per (query, document) pair."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .base import ModelInfo, Normalization, Scores, ScoringPlan, sigmoid
from .calibration import Calibration
from .encoding import Ids, TextEncoder
from .network import Network, NetworkStages, Rows, TorchNetwork
from .prompts import Instructions, chat_format
from .windows import Windowing, per_document, split_documents, window_size


class CrossEncoderScorer(NetworkStages):
    """Scores token-id pairs with a cross-encoder's network; the batcher decides which pairs share a call.

    Pairs are built from ids tokenized once (see :class:`TextEncoder`), truncated and given special
    tokens as ``CrossEncoder.predict`` does, and run through ``network`` (by default the model's own
    torch modules; an ONNX Runtime or OpenVINO graph of the same network otherwise). The network gives
    logits; the model's own activation is applied per request in :meth:`normalize`, so RAW scores equal
    what ``CrossEncoder.predict`` returns and SIGMOID is the sigmoid of the logit whatever activation
    the model was saved with.

    A decoder reranker (see ``models.decoder``) is one too: its pairs are rendered by its chat template
    when it has one (``chat``, see ``models.prompts``) and its network reads each pair's last token.
    """

    def __init__(self, model: Any, info: ModelInfo, network: Network | None = None, calibration: Calibration | None = None) -> None:
        if model.num_labels != 1:
            raise ValueError(
                f"{info.source} has {model.num_labels} output labels; a reranker has exactly one "
                "(a relevance score). Serve a reranking cross-encoder such as cross-encoder/ms-marco-MiniLM-L-6-v2."
            )
        self.model = model
        self.info = info
        self.calibration = calibration
        self.encoder = TextEncoder(model.tokenizer, info.max_seq_length)
        self.chat = chat_format(model, self.encoder.encode, info.max_seq_length)
        if self.chat is not None:
            self.encoder.pair_specials = self.chat.overhead  # what admission adds to a pair's text
        self.instructions = Instructions.of(model, self.chat is not None)
        self._activation = model.activation_fn
        self.network = network or TorchNetwork(model, info.device, "scores")

    def plan_rerank(self, query: Ids, documents: Sequence[Ids], windowing: Windowing | None = None) -> ScoringPlan:
        """One pair per document (per window with ``windowing``, windows cut from the document's ids)."""
        if windowing is None:
            return ScoringPlan.one_per_pair([self.encoder.pair(query, d) for d in documents])
        room = window_size(self.encoder.max_length, len(query), self.encoder.pair_specials)
        pieces = split_documents(documents, room, windowing)
        plan = ScoringPlan.one_per_pair([self.encoder.pair(query, piece) for ps in pieces for piece in ps])
        return per_document(plan, [len(ps) for ps in pieces], windowing.aggregation)

    def plan_pairs(self, pairs: Sequence[tuple[str, str]], ids: Mapping[str, Ids]) -> ScoringPlan:
        """Pairs with independent queries; ``ids`` holds every text's token ids."""
        return ScoringPlan.one_per_pair([self.encoder.pair(ids[q], ids[d]) for q, d in pairs])

    def fetch(self, output: Any) -> list[float]:
        """One logit per pair."""
        rows: Rows = self.network.fetch(output)
        return rows[:, 0].tolist()

    def normalize(self, raw: Scores, normalization: Normalization) -> Scores:
        """RAW applies the model's own activation (as predict does); SIGMOID the logistic function."""
        if normalization is Normalization.SIGMOID:
            return sigmoid(raw)
        if isinstance(self._activation, torch.nn.Identity):
            return raw
        with torch.inference_mode():
            return self._activation(torch.from_numpy(np.asarray(raw, dtype=np.float32))).numpy()
