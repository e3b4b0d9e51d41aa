"""Raw scores of labelled pairs, from a running server or from the engine loaded in this process.

Both give what a server reports as NORMALIZATION_RAW, the scores a calibration maps, and the model's
fingerprint, which the calibration names so that a server refuses it for any other checkpoint.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from ..client import RerankClient

_LOCAL_CHUNK = 256  # pairs per in-process Score call (a server's chunk is its max_documents)


@dataclass(frozen=True)
class ScoredModel:
    """The model that scored the pairs, as the calibration file names it."""

    name: str
    source: str
    kind: str
    fingerprint: str
    dtype: str
    device: str


class PairScorer(Protocol):
    """Raw scores of pairs with one model."""

    model: ScoredModel
    chunk: int

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Raw scores of at most ``chunk`` pairs, in order."""
        ...

    def close(self) -> None:
        """Release the channel or the loaded model."""
        ...


class ServerScorer:
    """A model served by a rerank-server; Score calls at bulk priority, so live traffic keeps its latency."""

    def __init__(self, client: RerankClient, model: str, instruction: str = "") -> None:
        self.client = client
        listing = client.list_models()
        served = {m.name: m for m in listing.models}
        name = model or listing.default_model
        if name not in served:
            raise ValueError(f"the server does not serve {name!r}; it serves {', '.join(served)}")
        info = served[name]
        if not info.fingerprint:
            raise ValueError(f"the server at {client.target} reports no model fingerprint (an older rerank-server); upgrade it, or calibrate with --local")
        self.model = ScoredModel(info.name, info.source, info.kind, info.fingerprint, info.dtype, info.device)
        self.chunk = max(1, listing.max_documents)
        self.instruction = instruction

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One Score call."""
        options: dict[str, Any] = {"instruction": self.instruction} if self.instruction else {}
        return self.client.score(pairs, model=self.model.name, normalization="raw", priority="bulk", **options).scores

    def close(self) -> None:
        """Close the channel."""
        self.client.close()


class LocalScorer:
    """The model loaded in this process and scored by the server's own engine (needs rerank-grpc[server])."""

    def __init__(self, source: str, device: str, dtype: str, instruction: str = "") -> None:
        try:
            from rerank_server.local import LocalEngine
            from rerank_server.engine import Options
        except ImportError as exc:
            raise ValueError("--local needs the server's model layer: pip install '.[server]' in the rerank-grpc checkout") from exc
        try:
            self.engine = LocalEngine([source], device=device, dtype=dtype)
        except RuntimeError as exc:  # cannot be loaded here (offline, not cached, not a model)
            raise ValueError(f"cannot load {source} in this process: {exc}") from None
        info = self.engine.info()
        self.model = ScoredModel(info.name, info.source, info.kind.value, info.fingerprint, info.dtype, info.device)
        self.chunk = _LOCAL_CHUNK
        self._options = Options(instruction=instruction)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Scored as the server would score them."""
        return self.engine.score(self.model.name, pairs, self._options).scores

    def close(self) -> None:
        """Release the model."""
        self.engine.close()


def score_all(scorer: PairScorer, pairs: Sequence[tuple[str, str]], stream: TextIO = sys.stderr) -> list[float]:
    """Raw scores of every pair, a chunk a call, with a progress line on ``stream`` (redrawn on a
    terminal, a line every tenth of the work otherwise)."""
    scores: list[float] = []
    started, tty, shown = time.perf_counter(), stream.isatty(), -1
    for start in range(0, len(pairs), scorer.chunk):
        scores.extend(scorer.score(pairs[start : start + scorer.chunk]))
        done, elapsed = len(scores), time.perf_counter() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (len(pairs) - done) / rate if rate else 0.0
        line = f"scoring with {scorer.model.name}: {done}/{len(pairs)} pairs, {rate:,.0f} pairs/s, {eta:.0f} s left"
        if tty:
            stream.write("\r" + line + ("\n" if done == len(pairs) else ""))
        elif done * 10 // len(pairs) != shown:
            shown = done * 10 // len(pairs)
            stream.write(line + "\n")
        stream.flush()
    return scores
