"""The real server on a loopback port, called through the real clients.

Scores are checked against sentence-transformers run in-process on the same pairs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from sentence_transformers import CrossEncoder, SentenceTransformer

from rerank_client import AsyncRerankClient, RerankClient, RerankError
from rerank_client import convert
from rerank_proto import rerank_pb2 as pb
from rerank_server.engine.settings import BatchingConfig
from rerank_server.models.bundled import bundled_model_dir
from tests.models_for_tests import TINY_MAX_LENGTH
from tests.server_harness import ServerThread

QUERY = "how do plants turn sunlight into energy"
DOCS = [
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The stock market fell sharply on Tuesday after the central bank raised rates.",
    "Chlorophyll in the leaves absorbs mostly blue and red light.",
    "A recipe for sourdough bread needs flour, water, salt and a starter.",
    "Plants release oxygen as a by-product of splitting water molecules.",
    "The plant was closed for maintenance during the summer.",
]


@pytest.fixture(scope="module")
def server(cross_scorer: Any, sigmoid_scorer: Any, bi_scorer: Any) -> Any:
    with ServerThread([cross_scorer, sigmoid_scorer, bi_scorer]) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerThread) -> Any:
    with RerankClient(server.target, timeout=60) as c:
        yield c


def predict(model_dir: Path, pairs: list[tuple[str, str]], **kwargs: Any) -> np.ndarray:
    return CrossEncoder(str(model_dir), device="cpu").predict(pairs, **kwargs)


def test_rerank_scores_equal_cross_encoder_predict(client: RerankClient, tiny_cross_encoder: Path) -> None:
    expected = predict(tiny_cross_encoder, [(QUERY, d) for d in DOCS])
    result = client.rerank(QUERY, DOCS, return_documents=True, request_id="r-1")
    assert result.model == "tiny-ce"
    assert result.request_id == "r-1"
    got = {r.index: r.score for r in result.results}
    np.testing.assert_allclose([got[i] for i in range(len(DOCS))], expected, rtol=1e-4, atol=1e-5)
    assert result.indices == sorted(range(len(DOCS)), key=lambda i: (-expected[i], i))
    assert [r.rank for r in result.results] == list(range(len(DOCS)))
    assert [r.text for r in result.results] == [DOCS[i] for i in result.indices]
    assert result.usage.pairs == len(DOCS) and result.usage.truncated_documents == 0
    assert result.usage.tokens > len(DOCS) * 5
    assert result.timing.total_ms >= result.timing.inference_ms > 0


def test_top_k_and_text_only_on_request(client: RerankClient) -> None:
    full = client.rerank(QUERY, DOCS)
    top = client.rerank(QUERY, DOCS, top_k=2)
    assert top.indices == full.indices[:2]
    assert all(r.text == "" for r in top.results)
    assert client.rerank(QUERY, DOCS, top_k=100).indices == full.indices


def test_sigmoid_normalization(client: RerankClient, tiny_cross_encoder: Path, tiny_sigmoid_cross_encoder: Path) -> None:
    pairs = [(QUERY, d) for d in DOCS]
    logits = predict(tiny_cross_encoder, pairs)
    got = client.score(pairs, normalization="sigmoid").scores
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-logits)), rtol=1e-4)
    # A model saved with a sigmoid activation: RAW is predict's output, SIGMOID is sigmoid(logit), not sigmoid twice.
    raw = client.score(pairs, model="tiny-sigmoid").scores
    np.testing.assert_allclose(raw, predict(tiny_sigmoid_cross_encoder, pairs), rtol=1e-4)
    sig = client.score(pairs, model="tiny-sigmoid", normalization="sigmoid").scores
    np.testing.assert_allclose(sig, raw, rtol=1e-4)


def test_score_is_predict_over_the_wire(client: RerankClient, tiny_cross_encoder: Path) -> None:
    pairs = [(f"question {i}", d) for i, d in enumerate(DOCS)] + [("what is glucose", "a sugar")]
    result = client.score(pairs)
    np.testing.assert_allclose(result.scores, predict(tiny_cross_encoder, pairs), rtol=1e-4, atol=1e-5)
    assert result.truncated == [False] * len(pairs)


def test_bi_encoder_scores_are_cosine_similarities(client: RerankClient) -> None:
    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    q = model.encode([QUERY], normalize_embeddings=True)
    d = model.encode(DOCS, normalize_embeddings=True)
    expected = (d @ q.T).ravel()
    result = client.rerank(QUERY, DOCS, model="all-MiniLM-L6-v2")
    got = {r.index: r.score for r in result.results}
    np.testing.assert_allclose([got[i] for i in range(len(DOCS))], expected, rtol=1e-4, atol=1e-5)
    assert result.indices[0] == 0  # a real model: photosynthesis is the best answer
    pairs = [(QUERY, DOCS[0]), (DOCS[1], DOCS[1])]
    scores = client.score(pairs, model="all-MiniLM-L6-v2").scores
    assert scores[1] == pytest.approx(1.0, abs=1e-5)


def test_truncation_is_reported_or_refused(client: RerankClient, tiny_cross_encoder: Path) -> None:
    long_doc = "photosynthesis " * (TINY_MAX_LENGTH * 2)
    result = client.rerank(QUERY, [DOCS[0], long_doc])
    flags = {r.index: r.truncated for r in result.results}
    assert flags == {0: False, 1: True}
    assert result.usage.truncated_documents == 1
    assert result.usage.tokens <= 2 * TINY_MAX_LENGTH
    got = {r.index: r.score for r in result.results}
    assert got[1] == pytest.approx(float(predict(tiny_cross_encoder, [(QUERY, long_doc)])[0]), rel=1e-4)
    with pytest.raises(RerankError) as info:
        client.rerank(QUERY, [DOCS[0], long_doc], error_on_truncation=True)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "index 1" in info.value.details and str(TINY_MAX_LENGTH) in info.value.details


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"query": "", "documents": ["a"]}, grpc.StatusCode.INVALID_ARGUMENT, "query is empty"),
        ({"query": "   ", "documents": ["a"]}, grpc.StatusCode.INVALID_ARGUMENT, "query is empty"),
        ({"query": "q", "documents": []}, grpc.StatusCode.INVALID_ARGUMENT, "documents is empty"),
        ({"query": "q", "documents": ["a", "", "b"]}, grpc.StatusCode.INVALID_ARGUMENT, "index 1 are empty"),
        ({"query": "q", "documents": ["d"] * 11}, grpc.StatusCode.INVALID_ARGUMENT, "limit of 10"),
    ],
)
def test_bad_rerank_requests(kwargs: dict[str, Any], code: grpc.StatusCode, message: str, cross_scorer: Any) -> None:
    with ServerThread([cross_scorer], max_documents=10) as running, RerankClient(running.target) as c:
        with pytest.raises(RerankError) as info:
            c.rerank(**kwargs)
        assert info.value.code is code
        assert message in info.value.details
        assert c.rerank("q", ["still serving"]).results  # the server goes on


def test_an_unknown_model_name_is_not_found_among_several_and_reaches_a_lone_one(client: RerankClient, cross_scorer: Any) -> None:
    with pytest.raises(RerankError) as info:
        client.rerank("q", ["a"], model="nope")
    assert info.value.code is grpc.StatusCode.NOT_FOUND and "'nope' is not served" in info.value.details
    with ServerThread([cross_scorer]) as running, RerankClient(running.target) as alone:
        answer = alone.rerank("q", ["a"], model="rerank-english-v3.0")  # a hosted model's name, built into a client
    assert answer.model == cross_scorer.info.name  # the answer names the model that scored


def test_bad_messages_on_the_wire(server: ServerThread, client: RerankClient) -> None:
    with grpc.insecure_channel(server.target) as channel:
        from rerank_proto import rerank_pb2_grpc as pb_grpc

        stub = pb_grpc.RerankerStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Rerank(pb.RerankRequest(query="q", documents=["d"], normalization=7), timeout=30)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "normalization 7" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.Score(pb.ScoreRequest(pairs=[pb.Pair(query="q", document="")]), timeout=30)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as info:
            stub.Score(pb.ScoreRequest(), timeout=30)
        assert "pairs is empty" in info.value.details()
    # Over the server's 4 MiB message limit.
    with pytest.raises(RerankError) as err:
        client.rerank("q", ["x" * (1024 * 1024)] * 5)
    assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.rerank("q", ["fine"]).results


def test_full_queue_answers_resource_exhausted_at_once(cross_scorer: Any) -> None:
    with ServerThread([cross_scorer], BatchingConfig(max_queued_pairs=4)) as running, RerankClient(running.target) as c:
        with pytest.raises(RerankError) as info:
            c.rerank("q", ["d"] * 5)
        assert info.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-queued-pairs 4" in info.value.details
        assert len(c.rerank("q", ["d"] * 4).results) == 4


def test_fifty_concurrent_clients_share_full_batches(cross_scorer: Any, tiny_cross_encoder: Path) -> None:
    callers, docs_each, batch = 50, 5, 25
    # An hour-long window and no token limit: batches can only close on size, so 250 pairs make
    # exactly 10 batches of 25 whatever the timing.
    limits = BatchingConfig(max_batch_size=batch, max_batch_tokens=10**9, max_wait_ms=3_600_000)
    requests = [[f"document {c}-{j}: " + DOCS[(c + j) % len(DOCS)] for j in range(docs_each)] for c in range(callers)]
    model = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    with ServerThread([cross_scorer], limits) as running:

        async def call_all() -> list[Any]:
            async with AsyncRerankClient(running.target, timeout=120) as c:
                return await asyncio.gather(*(c.rerank(f"query {i}", docs) for i, docs in enumerate(requests)))

        results = asyncio.run(call_all())
        stats = running.model().batcher.stats
    for i, (docs, result) in enumerate(zip(requests, results)):
        expected = model.predict([(f"query {i}", d) for d in docs])
        got = {r.index: r.score for r in result.results}
        np.testing.assert_allclose([got[j] for j in range(docs_each)], expected, rtol=1e-4, atol=1e-5)
    assert stats.submissions == callers
    assert stats.batches == callers * docs_each // batch < callers
    assert stats.batched_items == callers * docs_each


def test_rerank_stream_answers_every_request_by_id(client: RerankClient, server: ServerThread) -> None:
    requests = [convert.rerank_request(QUERY, DOCS[: 2 + i % 4], request_id=f"s{i}") for i in range(12)]
    requests.append(convert.rerank_request("", DOCS, request_id="bad"))
    requests.append(convert.rerank_request(QUERY, DOCS[:2]))  # no id: gets its position

    async def stream() -> list[pb.RerankResponse]:
        async with AsyncRerankClient(server.target, timeout=60) as c:
            return [r async for r in c.rerank_stream(requests)]

    responses = {r.request_id: r for r in asyncio.run(stream())}
    assert set(responses) == {f"s{i}" for i in range(12)} | {"bad", "#13"}
    assert responses["bad"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    with pytest.raises(RerankError, match="query is empty"):
        convert.rerank_result(responses["bad"])
    for i in range(12):
        unary = client.rerank(QUERY, DOCS[: 2 + i % 4])
        streamed = convert.rerank_result(responses[f"s{i}"])
        assert streamed.indices == unary.indices
        np.testing.assert_allclose([r.score for r in streamed.results], [r.score for r in unary.results], rtol=1e-4)


def test_list_models(client: RerankClient) -> None:
    listing = client.list_models()
    assert [m.name for m in listing.models] == ["tiny-ce", "tiny-sigmoid", "all-MiniLM-L6-v2"]
    assert listing.default_model == "tiny-ce" and listing.models[0].is_default
    assert [m.kind for m in listing.models] == ["cross-encoder", "cross-encoder", "bi-encoder"]
    tiny = listing.models[0]
    assert (tiny.max_seq_length, tiny.device, tiny.dtype) == (TINY_MAX_LENGTH, "cpu", "float32")
    assert tiny.batching.max_batch_size == BatchingConfig().max_batch_size
    assert listing.models[2].max_seq_length == 256


def test_health_is_serving_only_once_models_are_loaded(cross_scorer: Any) -> None:
    with ServerThread([cross_scorer], ready=False) as running, RerankClient(running.target) as c:
        assert c.health() == "NOT_SERVING"
        with pytest.raises(RerankError) as info:
            c.rerank("q", ["d"])
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
        assert running.server is not None
        running.run(running.server.mark_ready())
        assert c.health() == "SERVING"
        assert c.rerank("q", ["d"]).results


def test_server_reflection_lists_the_services(server: ServerThread) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(server.target) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"rerank.v1.Reranker", "grpc.health.v1.Health"} <= services


def test_malformed_bytes_get_invalid_argument_and_the_server_goes_on(server: ServerThread, client: RerankClient) -> None:
    with grpc.insecure_channel(server.target) as channel:
        raw = channel.unary_unary("/rerank.v1.Reranker/Rerank", request_serializer=None, response_deserializer=None)
        for garbage in (b"\xff\xff\xff\xff\xff", b"\x0a\x02\xc3\x28"):  # not protobuf; invalid UTF-8 in query
            with pytest.raises(grpc.RpcError) as info:
                raw(garbage, timeout=30)
            assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid Rerank message" in info.value.details()
    assert client.rerank(QUERY, DOCS[:2]).results


def test_rerank_many_on_the_sync_client_streams_typed_results_and_errors(client: RerankClient) -> None:
    requests = [(QUERY, DOCS[:3]), ("", DOCS[:2]), (QUERY, DOCS[:2])]
    outcomes = dict(client.rerank_many(requests, top_k=1, normalization="sigmoid"))
    assert set(outcomes) == {0, 1, 2}
    bad = outcomes[1]
    assert isinstance(bad, RerankError) and bad.code is grpc.StatusCode.INVALID_ARGUMENT
    for position in (0, 2):
        result = outcomes[position]
        assert not isinstance(result, RerankError)
        expected = client.rerank(*requests[position], top_k=1, normalization="sigmoid")
        assert result.indices == expected.indices and 0.0 < result.results[0].score < 1.0
