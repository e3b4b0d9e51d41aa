"""Tiny real models, built at test time and loaded through the same code path as hub models.

Weights are random (seeded), so scores mean nothing, but every layer of sentence-transformers and
transformers runs for real. Nothing is downloaded: the tokenizer is the bundled all-MiniLM-L6-v2 one.
"""

from rerank_server.bench.model import TINY_MAX_LENGTH, build_tiny_cross_encoder

__all__ = ["TINY_MAX_LENGTH", "build_tiny_cross_encoder"]
