"""Scorers: texts are tokenized once, into exactly the inputs sentence-transformers would build, and
the network run on those ids scores as ``CrossEncoder.predict`` does."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rerank_client.loadtest.corpus import Corpus
from rerank_server.models import Normalization
from rerank_server.models.encoding import TextEncoder, longest_first, pad
from rerank_server.models.inprocess import plan_text_pairs, plan_text_rerank, score_text_pairs
from tests.models_for_tests import TINY_MAX_LENGTH

DOCS = ["short", "a somewhat longer document about gardens", "word " * (TINY_MAX_LENGTH * 3)]


def _mixed_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Pairs whose queries and documents are each short, long, or longer than the model reads."""
    corpus, rng = Corpus.builtin(), random.Random(seed)
    pairs = []
    for _ in range(count):
        query = " ".join(corpus.document(rng, 2, 300) for _ in range(rng.randint(1, 2)))
        document = " ".join(corpus.document(rng, 2, 400) for _ in range(rng.randint(1, 3)))
        pairs.append((query, document))
    return pairs


def test_pairs_are_built_exactly_as_the_tokenizer_builds_them(cross_scorer: Any) -> None:
    """ids, token types and longest-first truncation equal the tokenizer's own pair encoding."""
    tokenizer, encoder = cross_scorer.model.tokenizer, cross_scorer.encoder
    for max_length in (TINY_MAX_LENGTH, 33, 512):
        enc = TextEncoder(tokenizer, max_length)
        for query, document in _mixed_pairs(120, seed=max_length):
            expected = tokenizer(query, document, truncation="longest_first", max_length=max_length)
            q, d = enc.ids([query, document])
            got = enc.pair(q, d)
            assert got.ids.tolist() == expected["input_ids"]
            assert got.types is not None and got.types.tolist() == expected["token_type_ids"]
            assert got.truncated == (len(q) + len(d) + encoder.pair_specials > max_length)


@pytest.mark.parametrize("a,b,room", [(3, 4, 10), (2, 50, 10), (50, 2, 10), (30, 30, 11), (30, 31, 11), (31, 30, 11), (100, 5, 4)])
def test_longest_first_keeps_the_shorter_text_when_it_can(a: int, b: int, room: int) -> None:
    keep_a, keep_b = longest_first(a, b, room)
    assert keep_a <= a and keep_b <= b and keep_a + keep_b == min(a + b, room)
    if min(a, b) <= room // 2:
        assert min(a, b) in (keep_a, keep_b)  # the shorter text is whole


def test_a_tokenizer_without_token_types_gets_its_own_specials(tmp_path: Path) -> None:
    """XLM-R (bge-reranker) pairs are <s> a </s></s> b </s> with no token types: learnt, not assumed."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<s>", "<pad>", "</s>", "<unk>", "a", "b", "x", "y", "hello", "world", "cat", "dog"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>", pad_token="<pad>",
        unk_token="<unk>", model_input_names=["input_ids", "attention_mask"],
    )
    encoder = TextEncoder(tokenizer, 8)
    q, d = encoder.ids(["hello cat", "dog dog world x y"])
    pair = encoder.pair(q, d)
    assert pair.types is None and encoder.pair_specials == 4
    assert pair.ids.tolist() == tokenizer("hello cat", "dog dog world x y", truncation="longest_first", max_length=8)["input_ids"]
    batch = pad([pair, encoder.single(q)], encoder.pad_id)
    assert batch.token_type_ids is None and batch.input_ids[1].tolist()[-1] == vocab["<pad>"]


def test_scores_from_ids_equal_predict_padded_and_truncated(tiny_cross_encoder: Path, cross_scorer: Any, sigmoid_scorer: Any, tiny_sigmoid_cross_encoder: Path) -> None:
    """One padded batch of mixed lengths (some truncated) scores as predict does, with each model's activation."""
    from sentence_transformers import CrossEncoder

    pairs = _mixed_pairs(24)
    for scorer, directory in ((cross_scorer, tiny_cross_encoder), (sigmoid_scorer, tiny_sigmoid_cross_encoder)):
        plan = plan_text_pairs(scorer, pairs)
        assert any(plan.truncated) and not all(plan.truncated)
        raw = scorer.normalize(plan.combine(scorer.run_batch(plan.items)), Normalization.RAW)
        expected = CrossEncoder(str(directory), device="cpu").predict(pairs, batch_size=len(pairs), show_progress_bar=False)
        np.testing.assert_allclose(raw, expected, atol=1e-5)


def test_cross_encoder_counts_pair_tokens_like_the_tokenizer(cross_scorer: Any) -> None:
    plan = plan_text_rerank(cross_scorer, "what is a garden", DOCS)
    tokenizer = cross_scorer.model.tokenizer
    full = [len(tokenizer("what is a garden", d)["input_ids"]) for d in DOCS]
    assert plan.costs == [min(n, TINY_MAX_LENGTH) for n in full]
    assert plan.truncated == [False, False, True]
    assert plan.pair_tokens == plan.costs


def test_plan_pairs_handles_independent_queries(cross_scorer: Any) -> None:
    pairs = [("q one", "d"), ("a much longer query with many words", "d")]
    plan = plan_text_pairs(cross_scorer, pairs)
    assert len(plan.items) == 2
    assert plan.costs[1] > plan.costs[0]


def test_bi_encoder_embeds_the_query_once_and_each_distinct_text_once(bi_scorer: Any) -> None:
    from sentence_transformers import SentenceTransformer

    plan = plan_text_rerank(bi_scorer, "gardens", DOCS[:2])
    assert len(plan.items) == 3
    pairs_plan = plan_text_pairs(bi_scorer, [("q", "a"), ("q", "b"), ("a", "q")])
    assert len(pairs_plan.items) == 3
    scores = pairs_plan.combine(bi_scorer.run_batch(pairs_plan.items))
    assert scores[0] == scores[2]  # cosine is symmetric
    # The embeddings from ids equal sentence-transformers' own encode.
    texts = ["gardens", *DOCS]
    reference = SentenceTransformer(str(_bundled()), device="cpu")  # bi_scorer serves the bundled model
    expected = reference.encode(texts, normalize_embeddings=True)
    got = np.asarray(bi_scorer.run_batch(plan_text_rerank(bi_scorer, texts[0], texts[1:]).items))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def _bundled() -> Path:
    from rerank_server.models.bundled import bundled_model_dir

    return bundled_model_dir(verify=False)


def test_normalize_raw_and_sigmoid(cross_scorer: Any) -> None:
    raw = np.array([-50.0, 0.0, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(cross_scorer.normalize(raw, Normalization.RAW), raw)
    np.testing.assert_allclose(cross_scorer.normalize(raw, Normalization.SIGMOID), [0.0, 0.5, 1 / (1 + np.exp(-3))], atol=1e-7)


def test_tokenizing_on_many_threads_while_the_model_runs_gives_the_same_ids(cross_scorer: Any) -> None:
    """The tokenizer pool's threads share one encoder while the model runs batches: nothing shared may change."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = _mixed_pairs(400, seed=3)
    texts = [t for pair in pairs for t in pair]
    expected = [ids.tolist() for ids in cross_scorer.encoder.ids(texts)]

    def tokenize(chunk: list[str]) -> list[list[int]]:
        return [ids.tolist() for ids in cross_scorer.encoder.ids(chunk)]

    with ThreadPoolExecutor(8) as pool:
        scoring = [pool.submit(score_text_pairs, cross_scorer, pairs[i : i + 16]) for i in range(0, 64, 16)]
        chunks = [pool.submit(tokenize, texts[i : i + 25]) for i in range(0, len(texts), 25)]
        got = [ids for chunk in chunks for ids in chunk.result()]
        for future in scoring:
            future.result()
    assert got == expected
