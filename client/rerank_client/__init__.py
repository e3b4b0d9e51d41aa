"""Python client for rerank-grpc servers: sync (:class:`RerankClient`) and asyncio (:class:`AsyncRerankClient`).

>>> from rerank_client import RerankClient
>>> with RerankClient("127.0.0.1:50051") as client:                      # doctest: +SKIP
...     result = client.rerank("where did the cat sit?", ["on the mat", "stocks fell"])
...     print(result.results[0].index, result.results[0].score)
"""

from .aio import AsyncRerankClient
from .channel import Tls
from .client import RerankClient
from .options import RerankOptions, ScoreOptions
from .types import (
    BatchingLimits,
    ModelInfo,
    ModelList,
    RankedDocument,
    RerankError,
    RerankResult,
    ScoreResult,
    Timing,
    Usage,
)

__all__ = [
    "AsyncRerankClient",
    "BatchingLimits",
    "ModelInfo",
    "ModelList",
    "RankedDocument",
    "RerankClient",
    "RerankError",
    "RerankOptions",
    "RerankResult",
    "ScoreOptions",
    "ScoreResult",
    "Timing",
    "Tls",
    "Usage",
]
