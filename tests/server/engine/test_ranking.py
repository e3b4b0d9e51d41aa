"""ranked_indices: best first, ties in input order, top_k."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rerank_server.engine import ranked_indices


def test_ties_keep_input_order_and_top_k_cuts() -> None:
    scores = np.array([0.5, 2.0, 0.5, 2.0, -1.0], dtype=np.float32)
    assert ranked_indices(scores, 0) == [1, 3, 0, 2, 4]
    assert ranked_indices(scores, 2) == [1, 3]
    assert ranked_indices(scores, 99) == [1, 3, 0, 2, 4]


@given(st.lists(st.sampled_from([-1.0, 0.0, 0.25, 3.0]), min_size=1, max_size=40), st.integers(0, 50))
def test_matches_a_sort_by_score_then_index(values: list[float], top_k: int) -> None:
    expected = sorted(range(len(values)), key=lambda i: (-values[i], i))
    assert ranked_indices(np.array(values, dtype=np.float32), top_k) == expected[: top_k or None]
