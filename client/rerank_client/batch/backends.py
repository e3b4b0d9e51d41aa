"""What scores a bulk job's records: a fleet of servers through the client, or the engine in this process.

Both answer a record as plain lists in the record's document order (scores, ranks, truncation) and sort
failures into two kinds: :class:`RecordRefused` (this record can never be scored: skip it or stop)
and :class:`Transient` (the fleet is busy or a server went away: try again later).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc

from ..aio import AsyncRerankClient
from ..types import RerankError

# Codes after which a record is retried: the fleet is overloaded, restarting, or a server went away.
TRANSIENT_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


RETRY_FOR_S = 120.0  # how long a record is retried through transient failures before the job stops
BACKOFF_S, MAX_BACKOFF_S = 0.5, 15.0
T = TypeVar("T")


class RecordRefused(Exception):
    """The record itself cannot be scored (an empty document, a text over the server's limits)."""


class Transient(Exception):
    """The work may succeed if tried again."""


class FleetLost(Exception):
    """Transient failures went on past the retry budget: the fleet (or the engine) is gone."""


async def retrying(call: Callable[[], Awaitable[T]], on_retry: Callable[[], None] = lambda: None, retry_for: float = RETRY_FOR_S) -> T:
    """``call()``, tried again after :class:`Transient` failures with exponential backoff for up to
    ``retry_for`` seconds from the first failure; then raises :class:`FleetLost`."""
    delay = BACKOFF_S
    give_up = None
    while True:
        try:
            return await call()
        except Transient as exc:
            now = time.monotonic()
            give_up = now + retry_for if give_up is None else give_up
            if now + delay > give_up:
                raise FleetLost(f"the fleet kept failing for {retry_for:g} s ({exc})") from None
            on_retry()
            await asyncio.sleep(delay)
            delay = min(MAX_BACKOFF_S, delay * 2)


@dataclass(frozen=True)
class Ranked:
    """One record's answer, in its documents' order."""

    scores: list[float]
    ranks: list[int]
    truncated: list[bool]
    usage: dict[str, int] = field(default_factory=dict)


class Backend(Protocol):
    """Scores records; ``model`` and ``fingerprint`` name what scored them."""

    model: str
    fingerprint: str

    async def rerank(self, query: str, documents: Sequence[str]) -> Ranked:
        """One query against its documents."""
        ...

    async def score(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[float], list[bool], int]:
        """Independent pairs: scores, truncation, tokens read."""
        ...

    async def close(self) -> None:
        """Release the channel or the model."""
        ...


def _by_index(results: Sequence[Any], count: int) -> Ranked:
    """A best-first ranking (objects with index, score, rank, truncated) as lists in document order."""
    scores, ranks, truncated = [0.0] * count, [0] * count, [False] * count
    for r in results:
        scores[r.index], ranks[r.index], truncated[r.index] = float(r.score), int(r.rank), bool(r.truncated)
    return Ranked(scores, ranks, truncated)


class FleetBackend:
    """Servers (one target, several round-robin, or a resolver name) through the asyncio client, with its
    retries of UNAVAILABLE; at bulk priority by default, so interactive traffic keeps its latency."""

    def __init__(self, targets: Sequence[str], model: str, options: dict[str, Any], timeout: float, connection: dict[str, Any]) -> None:
        self._client = AsyncRerankClient(list(targets), timeout=timeout, **connection)
        self._wanted = model
        self._options = options
        self.model = model
        self.fingerprint = ""

    async def start(self) -> None:
        """Ask the fleet which model it will score with, and that model's checkpoint."""
        try:
            listing = await self._client.list_models()
        except RerankError as exc:
            raise ValueError(f"cannot reach the fleet: {exc}") from None
        served = {m.name: m for m in listing.models}
        name = self._wanted or listing.default_model
        if name not in served:
            raise ValueError(f"the fleet does not serve {name!r}; it serves {', '.join(served)}")
        self.model, self.fingerprint = name, served[name].fingerprint or served[name].source

    async def rerank(self, query: str, documents: Sequence[str]) -> Ranked:
        """A Rerank call; its usage comes back with the answer."""
        try:
            result = await self._client.rerank(query, documents, model=self.model, **self._options)
        except RerankError as exc:
            raise _sorted(exc) from exc
        ranked = _by_index(result.results, len(documents))
        usage = {"pairs": result.usage.pairs, "tokens": result.usage.tokens, "truncated_documents": result.usage.truncated_documents}
        return Ranked(ranked.scores, ranked.ranks, ranked.truncated, usage)

    async def score(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[float], list[bool], int]:
        """A Score call."""
        try:
            result = await self._client.score(pairs, model=self.model, **self._options)
        except RerankError as exc:
            raise _sorted(exc) from exc
        return list(result.scores), list(result.truncated), result.usage.tokens

    async def close(self) -> None:
        """Close the channel."""
        await self._client.close()


def _sorted(exc: RerankError) -> Exception:
    if exc.code in TRANSIENT_CODES:
        return Transient(f"{exc.code.name}: {exc.details}")
    if exc.code is grpc.StatusCode.INVALID_ARGUMENT:
        return RecordRefused(exc.details)
    return ValueError(f"the fleet refused the job: {exc}")  # NOT_FOUND, UNAUTHENTICATED, ...: no record would do better


class LocalBackend:
    """The engine in this process (needs rerank-grpc[server]): the same admission, batching and scoring as
    a server, without one. The job is the engine's only caller, so it asks at the default priority."""

    def __init__(self, source: str, device: str, dtype: str, options: dict[str, Any], backend: str = "auto") -> None:
        try:
            from rerank_server.batching import BatchingError
            from rerank_server.engine import Options, TooManyRequests
            from rerank_server.local import LocalEngine
            from rerank_server.models import Normalization
            from rerank_server.models.windows import UnscorableInput
        except ImportError as exc:
            raise ValueError("--local needs the server's model layer: pip install '.[server]' in the rerank-grpc checkout") from exc
        try:
            self._engine = LocalEngine([source], device=device, dtype=dtype, backend=backend)
        except RuntimeError as exc:
            raise ValueError(f"cannot load {source} in this process: {exc}") from None
        info = self._engine.info()
        self.model, self.fingerprint = info.name, info.fingerprint
        self._options = Options(normalization=Normalization(options.get("normalization", "raw")), instruction=options.get("instruction", ""))
        self._refusals: tuple[type[Exception], ...] = (UnscorableInput,)
        self._transient: tuple[type[Exception], ...] = (TooManyRequests, BatchingError)

    async def rerank(self, query: str, documents: Sequence[str]) -> Ranked:
        """The engine's Rerank."""
        try:
            result = await self._engine.arerank(self.model, query, documents, self._options)
        except self._refusals as exc:
            raise RecordRefused(str(exc)) from exc
        except self._transient as exc:
            raise Transient(str(exc)) from exc
        ranked = _by_index(result.documents, len(documents))
        usage = {"pairs": result.usage.pairs, "tokens": result.usage.tokens, "truncated_documents": result.usage.truncated_documents}
        return Ranked(ranked.scores, ranked.ranks, ranked.truncated, usage)

    async def score(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[float], list[bool], int]:
        """The engine's Score."""
        try:
            result = await self._engine.ascore(self.model, pairs, self._options)
        except self._refusals as exc:
            raise RecordRefused(str(exc)) from exc
        except self._transient as exc:
            raise Transient(str(exc)) from exc
        return list(result.scores), list(result.truncated), result.usage.tokens

    async def close(self) -> None:
        """Release the model."""
        self._engine.close()
