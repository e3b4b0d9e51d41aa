"""The model layer: sentence-transformers models behind one synchronous Scorer interface.

Nothing here knows about gRPC or the batcher: a scorer turns a request into a plan of batchable items
(with their token costs), scores a batch of items, and turns item results back into pair scores.
"""

from .base import ModelInfo, ModelKind, Normalization, Scorer, ScoringPlan
from .loading import ModelLoadError, ModelSpec, load_scorer, load_scorers, parse_model_arg

__all__ = [
    "ModelInfo",
    "ModelKind",
    "ModelLoadError",
    "ModelSpec",
    "Normalization",
    "Scorer",
    "ScoringPlan",
    "load_scorer",
    "load_scorers",
    "parse_model_arg",
]
