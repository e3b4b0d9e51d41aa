"""Comparing two rankings of the same documents, and explaining where they differ."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

_WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about relevance; overlap is measured on the rest.
_STOP = set(
    "a an and are as at be by do does for from had has have how in is it its of on or that the their them there these "
    "they this to was were what when where which who why will with you your each other into than then so".split()
)


def content_words(text: str) -> set[str]:
    """Lower-cased words of ``text`` without stop words."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def lexical_overlap(query: str, document: str) -> float:
    """Share of the query's content words that appear in the document (0..1)."""
    q = content_words(query)
    return len(q & content_words(document)) / len(q) if q else 0.0


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0  # ties share their mean rank
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation of two score lists (1: same order, -1: reversed)."""
    if len(a) < 2:
        return 1.0
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb) if va and vb else 1.0


def order_of(scores: Sequence[float]) -> list[int]:
    """Indices best first, ties in input order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


@dataclass(frozen=True)
class DocumentEvidence:
    """What may explain a document's place: shared words, length against the model, its scores."""

    index: int
    lexical_overlap: float
    tokens: int
    truncated: bool
    cross_score: float
    embed_score: float


@dataclass(frozen=True)
class Difference:
    """One rank where the two top lists disagree, with both documents' evidence and the score margins."""

    rank: int
    cross_pick: DocumentEvidence
    embed_pick: DocumentEvidence
    cross_margin: float  # cross-encoder score of its pick minus that of the embedding's pick
    embed_margin: float  # cosine of the embedding's pick minus that of the cross-encoder's pick
    reasons: list[str]


@dataclass
class QueryComparison:
    """Both rankings of one query's documents and how they relate."""

    query: str
    documents: list[str]
    cross_scores: list[float]
    embed_scores: list[float]
    tokens: list[int]
    truncated: list[bool]
    max_length: int
    top_k: int = 3
    differences: list[Difference] = field(default_factory=list)
    # P(relevant) by each model's calibration, when both models have one (None otherwise).
    cross_probabilities: list[float] | None = None
    embed_probabilities: list[float] | None = None

    @property
    def cross_order(self) -> list[int]:
        """Document indices, cross-encoder's best first."""
        return order_of(self.cross_scores)

    @property
    def embed_order(self) -> list[int]:
        """Document indices, embedding model's best first."""
        return order_of(self.embed_scores)

    @property
    def rank_correlation(self) -> float:
        """Spearman correlation of the two score lists."""
        return spearman(self.cross_scores, self.embed_scores)

    @property
    def top_overlap(self) -> int:
        """Documents the two top-k lists share."""
        k = min(self.top_k, len(self.documents))
        return len(set(self.cross_order[:k]) & set(self.embed_order[:k]))

    def evidence(self, i: int) -> DocumentEvidence:
        """The evidence for document ``i``."""
        return DocumentEvidence(
            i, round(lexical_overlap(self.query, self.documents[i]), 3), self.tokens[i], self.truncated[i],
            self.cross_scores[i], self.embed_scores[i],
        )

    def explain(self) -> None:
        """Fill ``differences``: every top-k rank where the two picks differ, with the likely reasons."""
        self.differences = []
        for rank in range(min(self.top_k, len(self.documents))):
            c, e = self.cross_order[rank], self.embed_order[rank]
            if c == e:
                continue
            ce, ee = self.evidence(c), self.evidence(e)
            reasons = []
            if ee.lexical_overlap > ce.lexical_overlap:
                reasons.append(
                    f"the embedding's pick [{e}] shares more of the query's words ({ee.lexical_overlap:.0%} vs "
                    f"{ce.lexical_overlap:.0%}): embeddings reward topical and word overlap, the cross-encoder reads "
                    "whether the document answers"
                )
            elif ce.lexical_overlap > ee.lexical_overlap:
                reasons.append(
                    f"the cross-encoder's pick [{c}] shares more of the query's words ({ce.lexical_overlap:.0%} vs "
                    f"{ee.lexical_overlap:.0%})"
                )
            for ev in (ce, ee):
                if ev.truncated:
                    reasons.append(
                        f"[{ev.index}] is {ev.tokens} tokens with the query, over the cross-encoder's {self.max_length}: "
                        "it saw only the beginning (try windows)"
                    )
            cross_margin = ce.cross_score - ee.cross_score
            embed_margin = ee.embed_score - ce.embed_score
            spread = (max(self.cross_scores) - min(self.cross_scores)) or 1.0
            if abs(cross_margin) < 0.05 * spread:
                reasons.append(f"the cross-encoder barely separates them (margin {cross_margin:+.3f}): a near tie")
            if abs(embed_margin) < 0.01:
                reasons.append(f"the embedding barely separates them (cosine margin {embed_margin:+.3f}): a near tie")
            self.differences.append(Difference(rank + 1, ce, ee, round(cross_margin, 4), round(embed_margin, 4), reasons))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        k = min(self.top_k, len(self.documents))
        return {
            "query": self.query,
            "cross_encoder_top": [{"index": i, "score": self.cross_scores[i]} for i in self.cross_order[:k]],
            "embedding_top": [{"index": i, "score": self.embed_scores[i]} for i in self.embed_order[:k]],
            "spearman": round(self.rank_correlation, 4),
            f"top{k}_overlap": self.top_overlap,
            "differences": [asdict(d) for d in self.differences],
            "documents": self.documents,
            **(
                {"cross_encoder_probabilities": self.cross_probabilities, "embedding_probabilities": self.embed_probabilities}
                if self.cross_probabilities is not None
                else {}
            ),
        }


@dataclass(frozen=True)
class Disagreement:
    """A pair whose calibrated probabilities differ between the two models."""

    query: str
    index: int
    document: str
    cross_probability: float
    embed_probability: float

    @property
    def gap(self) -> float:
        """How far apart the two probabilities are."""
        return abs(self.cross_probability - self.embed_probability)


def disagreements(comparisons: list[QueryComparison], count: int = 5) -> list[Disagreement]:
    """The ``count`` pairs on which the models' calibrated probabilities differ most (none without them).
    Calibrated, the two models' scores are on one scale, so their gap means something; raw, it would not."""
    found = [
        Disagreement(c.query, i, c.documents[i], p, q)
        for c in comparisons
        if c.cross_probabilities is not None and c.embed_probabilities is not None
        for i, (p, q) in enumerate(zip(c.cross_probabilities, c.embed_probabilities))
    ]
    return sorted(found, key=lambda d: -d.gap)[:count]
