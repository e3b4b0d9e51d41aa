"""The engine: the served models' scoring pipeline behind ``ServedModel.rerank`` / ``.score``, the one
facade every transport calls (see ``served``)."""

from .pool import TokenizerPool, default_tokenizer_threads
from .results import Options, RankedDocument, RerankResult, ScoreResult, Timing, Usage
from .served import ModelRegistry, ServedModel, UnknownModel, listing, ranked_indices

__all__ = [
    "ModelRegistry",
    "Options",
    "RankedDocument",
    "RerankResult",
    "ScoreResult",
    "ServedModel",
    "Timing",
    "TokenizerPool",
    "UnknownModel",
    "Usage",
    "default_tokenizer_threads",
    "listing",
    "ranked_indices",
]
