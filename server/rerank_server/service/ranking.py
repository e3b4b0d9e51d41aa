"""Ordering scores into ranked results."""

from __future__ import annotations

import numpy as np

from ..models.base import Scores


def ranked_indices(scores: Scores, top_k: int) -> list[int]:
    """Indices of ``scores`` best first, equal scores in input order; the first ``top_k`` (0: all)."""
    # A stable sort on the negated scores keeps ties in input order.
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    if top_k:
        order = order[:top_k]
    return [int(i) for i in order]
