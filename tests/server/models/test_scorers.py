"""Scorers: token counts match the tokenizer exactly, and scores match sentence-transformers."""

from __future__ import annotations

from typing import Any

import numpy as np

from rerank_server.models import Normalization
from tests.models_for_tests import TINY_MAX_LENGTH

DOCS = ["short", "a somewhat longer document about gardens", "word " * (TINY_MAX_LENGTH * 3)]


def test_cross_encoder_counts_pair_tokens_like_the_tokenizer(cross_scorer: Any) -> None:
    plan = cross_scorer.plan_rerank("what is a garden", DOCS)
    tokenizer = cross_scorer.model.tokenizer
    full = [len(tokenizer("what is a garden", d)["input_ids"]) for d in DOCS]
    assert plan.costs == [min(n, TINY_MAX_LENGTH) for n in full]
    assert plan.truncated == [False, False, True]
    assert plan.pair_tokens == plan.costs


def test_plan_pairs_handles_independent_queries(cross_scorer: Any) -> None:
    pairs = [("q one", "d"), ("a much longer query with many words", "d")]
    plan = cross_scorer.plan_pairs(pairs)
    assert plan.items == pairs
    assert plan.costs[1] > plan.costs[0]


def test_bi_encoder_embeds_the_query_once_and_each_distinct_text_once(bi_scorer: Any) -> None:
    plan = bi_scorer.plan_rerank("gardens", DOCS[:2])
    assert plan.items == ["gardens", *DOCS[:2]]
    pairs_plan = bi_scorer.plan_pairs([("q", "a"), ("q", "b"), ("a", "q")])
    assert pairs_plan.items == ["q", "a", "b"]
    scores = pairs_plan.combine(bi_scorer.run_batch(pairs_plan.items))
    assert scores[0] == scores[2]  # cosine is symmetric


def test_normalize_raw_and_sigmoid(cross_scorer: Any) -> None:
    raw = np.array([-50.0, 0.0, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(cross_scorer.normalize(raw, Normalization.RAW), raw)
    np.testing.assert_allclose(cross_scorer.normalize(raw, Normalization.SIGMOID), [0.0, 0.5, 1 / (1 + np.exp(-3))], atol=1e-7)


def test_planning_while_the_model_runs_shares_no_tokenizer_state(cross_scorer: Any) -> None:
    """Requests are tokenized on worker threads while the model thread tokenizes its batch: a fast
    tokenizer's truncation settings are state, so sharing one instance broke batches under load."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    from rerank_client.loadtest.corpus import Corpus

    corpus, rng = Corpus.builtin(), random.Random(0)
    requests = [(corpus.query(rng), [corpus.document(rng) for _ in range(rng.randint(2, 8))]) for _ in range(1500)]

    def plan(request: tuple[str, list[str]]) -> object:
        return cross_scorer.plan_rerank(*request)

    def score(request: tuple[str, list[str]]) -> object:
        return cross_scorer.run_batch([(request[0], d) for d in request[1]])

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(plan if i % 2 else score, r) for i, r in enumerate(requests)]
        for future in futures:
            future.result()  # raises if a batch was tokenized with the counter's settings
