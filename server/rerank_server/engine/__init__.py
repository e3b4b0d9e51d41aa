"""The engine: the served models' scoring pipeline (``served``) behind one gateway every transport calls
(``gateway.Engine``), with its settings (``settings``)."""

from .gateway import Caller, EmbedRequest, Engine, NotServing, RerankRequest, ScoreRequest, TooManyRequests
from .pool import TokenizerPool, default_tokenizer_threads
from .results import Options, RankedDocument, RerankResult, ScoreResult, Timing, Usage
from .served import ModelRegistry, ServedModel, UnknownModel, listing, ranked_indices

__all__ = [
    "Caller",
    "EmbedRequest",
    "Engine",
    "ModelRegistry",
    "NotServing",
    "RerankRequest",
    "ScoreRequest",
    "TooManyRequests",
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
