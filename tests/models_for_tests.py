"""Tiny real models, built at test time and loaded through the same code path as hub models.

Weights are random (seeded), so scores mean nothing, but every layer of sentence-transformers and
transformers runs for real. Nothing is downloaded: the tokenizer is the bundled all-MiniLM-L6-v2 one.
"""

from __future__ import annotations

from pathlib import Path

TINY_MAX_LENGTH = 128


def build_tiny_cross_encoder(directory: Path, seed: int = 0, activation: str = "identity") -> Path:
    """Save a 2-layer BERT cross-encoder (one output label) to ``directory`` and return it.

    ``activation`` is what the model is saved with: "identity" like the ms-marco models (raw logits),
    or "sigmoid", sentence-transformers' default for a one-label model.
    """
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rerank_server.models.bundled import bundled_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir(verify=False)))
    tokenizer.model_max_length = TINY_MAX_LENGTH
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(seed)
    raw = directory / "hf"
    BertForSequenceClassification(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    act = torch.nn.Identity() if activation == "identity" else torch.nn.Sigmoid()
    model = CrossEncoder(str(raw), activation_fn=act, device="cpu")
    # Scale up the random head so that scores spread out and rankings are not ties of near-zero values.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.out_features == 1:
                module.weight.mul_(50.0)
    out = directory / "cross-encoder"
    model.save_pretrained(str(out))
    return out
