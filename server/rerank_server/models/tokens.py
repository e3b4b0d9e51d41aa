"""Token counting with the model's own tokenizer, so batches are cut and truncation reported exactly."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any


class TokenCounter:
    """Counts the tokens a model reads for texts and pairs, capped at its max sequence length.

    Texts are tokenized without special tokens and without truncation (to know their true length);
    the special tokens a pair or a single text adds are counted once from the tokenizer itself, so
    BERT ([CLS] q [SEP] d [SEP]) and XLM-RoBERTa (<s> q </s></s> d </s>) are both exact.

    It counts with its own copy of the tokenizer, one call at a time: a fast tokenizer keeps its
    truncation and padding settings as state, so counting (no truncation) on the model's own instance
    while the model thread tokenizes a batch (with truncation) breaks the batch.
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self._tokenizer = copy.deepcopy(tokenizer)
        self._lock = threading.Lock()
        self.max_length = max_length
        self.pair_specials = int(tokenizer.num_special_tokens_to_add(pair=True))
        self.single_specials = int(tokenizer.num_special_tokens_to_add(pair=False))

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of each token of ``text`` (no special tokens)."""
        with self._lock:
            encoded = self._tokenizer(
                text, add_special_tokens=False, truncation=False, verbose=False, return_offsets_mapping=True
            )
        return [tuple(span) for span in encoded["offset_mapping"]]  # type: ignore[misc]

    def split(self, text: str, window_tokens: int, overlap_tokens: int) -> list[str]:
        """``text`` cut into windows of at most ``window_tokens`` tokens (one window if it fits)."""
        from .windows import window_spans

        return [text[a:b] for a, b in window_spans(self.offsets(text), max(1, window_tokens), overlap_tokens)]

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text without special tokens or truncation."""
        if not texts:
            return []
        with self._lock:
            encoded = self._tokenizer(
                list(texts), add_special_tokens=False, truncation=False, verbose=False, return_attention_mask=False
            )
        return [len(ids) for ids in encoded["input_ids"]]
