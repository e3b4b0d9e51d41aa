"""Long documents: scored in overlapping windows instead of truncated."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rerank_client import RerankClient, RerankError
from rerank_server.models.windows import Aggregation, aggregate, window_slices
from tests.server_harness import ServerThread

QUERY = "how do honeybees tell each other where the flowers are"
FILLER = (
    "Interest rates are the price of borrowing money. When a central bank raises its policy rate, commercial "
    "banks usually charge more for mortgages and business loans, which slows spending and investment. "
)
BEES = (
    "Honeybees communicate the location of flowers with a waggle dance. A forager returning to the hive runs in a "
    "straight line while shaking her abdomen; the angle of the run shows the direction of the flowers and the length "
    "of the waggle how far away they are."
)
GARDEN = "Flowers in a garden need sunlight, water and good soil to grow well through the summer."


def test_window_slices_overlap_and_cover_the_document() -> None:
    assert window_slices(10, 4, 1) == [slice(0, 4), slice(3, 7), slice(6, 10)]
    assert window_slices(10, 20, 0) == [slice(0, 10)]
    assert window_slices(9, 4, 0) == [slice(0, 4), slice(3, 7), slice(6, 9)]  # a quarter of 4: one token


def test_aggregations() -> None:
    scores = np.array([1.0, 5.0, 2.0, 7.0], dtype=np.float32)
    assert list(aggregate(scores, [3, 1], Aggregation.MAX)) == [5.0, 7.0]
    assert list(aggregate(scores, [3, 1], Aggregation.MEAN)) == [pytest.approx(8 / 3), 7.0]
    assert list(aggregate(scores, [3, 1], Aggregation.FIRST)) == [1.0, 7.0]


def test_a_passage_past_the_model_limit_ranks_first_only_with_windows(bi_scorer: Any) -> None:
    long_doc = FILLER * 22 + BEES  # the bees passage starts past token 512
    tokens_before_bees = len(bi_scorer.encoder.ids([FILLER * 22])[0])
    assert tokens_before_bees > 512
    documents = [GARDEN, long_doc]
    with ServerThread([bi_scorer]) as running, RerankClient(running.target) as client:
        truncated = client.rerank(QUERY, documents)
        windowed = client.rerank(QUERY, documents, windows=True)
        first_only = client.rerank(QUERY, documents, windows=True, aggregation="first")
        mean = client.rerank(QUERY, documents, windows=True, aggregation="mean")
    assert truncated.indices[0] == 0 and truncated.results[1].truncated  # the model never saw the bees
    assert windowed.indices[0] == 1  # the best window holds them
    best = {r.index: r for r in windowed.results}
    assert best[1].windows > 2 and not best[1].truncated and best[0].windows == 1
    assert windowed.usage.pairs == 2 and windowed.usage.tokens > truncated.usage.tokens
    assert first_only.indices[0] == 0  # the first window is what truncation saw
    assert {r.index: r.score for r in mean.results}[1] < best[1].score


def test_windowing_needs_room_next_to_the_query(cross_scorer: Any) -> None:
    with ServerThread([cross_scorer]) as running, RerankClient(running.target) as client:
        long_query = "word " * 200  # the tiny model reads 128 tokens
        with pytest.raises(RerankError, match="leaving no room for document windows"):
            client.rerank(long_query, ["doc"], windows=True)
        result = client.rerank("short query", ["word " * 400], windows=True, window_overlap=8)
        assert result.results[0].windows >= 4
