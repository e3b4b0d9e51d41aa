"""What each load-test request holds."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .corpus import Corpus


@dataclass(frozen=True)
class RequestSpec:
    """One request to send; ``invalid`` ones carry an empty query on purpose."""

    query: str
    documents: list[str]
    top_k: int
    model: str
    invalid: bool
    priority: str = "interactive"


def parse_range(text: str) -> tuple[int, int]:
    """``"10"`` -> (10, 10); ``"10-100"`` -> (10, 100)."""
    low, sep, high = text.partition("-")
    try:
        bounds = (int(low), int(high) if sep else int(low))
    except ValueError:
        raise ValueError(f"--documents {text!r} is not a count or a range like 10-100") from None
    if bounds[0] < 1 or bounds[1] < bounds[0]:
        raise ValueError(f"--documents {text!r}: need 1 <= low <= high")
    return bounds


@dataclass(frozen=True)
class Workload:
    """Draws requests: documents per request from a range, texts from a corpus, a share of bad ones."""

    corpus: Corpus
    documents: tuple[int, int] = (10, 100)
    top_k: int = 0
    model: str = ""
    error_fraction: float = 0.0
    min_tokens: int = 20
    max_tokens: int = 400
    priority: str = "interactive"

    def draw(self, rng: random.Random) -> RequestSpec:
        """The next request."""
        count = rng.randint(*self.documents)
        docs = [self.corpus.document(rng, self.min_tokens, self.max_tokens) for _ in range(count)]
        invalid = rng.random() < self.error_fraction
        query = "" if invalid else self.corpus.query(rng)
        return RequestSpec(query, docs, self.top_k, self.model, invalid, self.priority)
