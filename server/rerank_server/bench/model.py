"""The benchmark model: ms-marco-MiniLM-L-6-v2's architecture, built offline from the bundled backbone.

ms-marco-MiniLM-L-6-v2 is a 6-layer, 384-wide BERT with a one-label classification head: exactly the
backbone of all-MiniLM-L6-v2 plus a head. Loading the bundled backbone into
BertForSequenceClassification with a fresh (seeded) head gives a model with the real model's cost;
its scores are not meaningful rankings, which no throughput figure depends on.
"""

from __future__ import annotations

from pathlib import Path

from ..models.bundled import bundled_model_dir

MAX_LENGTH = 512  # ms-marco-MiniLM-L-6-v2 reads up to 512 tokens


def build_minilm_cross_encoder(directory: Path, seed: int = 0) -> Path:
    """Save the benchmark cross-encoder under ``directory`` (reused if already there) and return its path."""
    out = directory / "minilm-l6-cross-encoder"
    if (out / "config.json").is_file():
        return out
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    backbone = bundled_model_dir()
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights were newly initialized": the head, on purpose
    try:
        model = BertForSequenceClassification.from_pretrained(str(backbone), num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(str(backbone))
    tokenizer.model_max_length = MAX_LENGTH
    raw = directory / "minilm-l6-hf"
    model.save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    # Saved through sentence-transformers with raw logits, as the ms-marco models are.
    CrossEncoder(str(raw), activation_fn=torch.nn.Identity(), device="cpu").save_pretrained(str(out))
    return out


def flops_per_pair(tokens: int, layers: int = 6, hidden: int = 384, intermediate: int = 1536) -> float:
    """Forward FLOPs of one BERT pass over ``tokens`` tokens (2 per multiply-add).

    Per layer: Q, K, V and output projections (4 h^2 per token), the feed-forward pair (2 h i per
    token), and attention scores plus their weighted sum (2 s h per token each).
    """
    per_token = layers * (2 * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * 2 * tokens * hidden)
    return float(per_token * tokens)
