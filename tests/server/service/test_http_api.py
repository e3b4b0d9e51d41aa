"""The HTTP/JSON API, called by real clients (the cohere SDK, plain httpx) against a live server: the
same engine as gRPC, so the same scores, limits and statuses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from rerank_client import RerankClient
from rerank_server.engine.settings import BatchingConfig
from rerank_server.service.settings import SecurityConfig
from tests.server_harness import ServerThread

QUERY = "how do plants make energy from light"
DOCS = [
    "The stock market fell sharply on Tuesday.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Chlorophyll in the leaves absorbs mostly blue and red light.",
]


@pytest.fixture(scope="module")
def served(cross_scorer: Any, bi_scorer: Any) -> Any:
    with ServerThread([cross_scorer, bi_scorer], http_port=0) as running:
        yield running


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_the_cohere_sdk_ranks_through_it_and_scores_equal_grpc(served: Any) -> None:
    import cohere

    with RerankClient(served.target) as grpc_client:
        expected = grpc_client.rerank(QUERY, DOCS, normalization="sigmoid")
    for client in (cohere.ClientV2(api_key="unused", base_url=served.http_url), cohere.Client(api_key="unused", base_url=served.http_url)):
        response = client.rerank(model="tiny-ce", query=QUERY, documents=DOCS, top_n=2)
        assert [r.index for r in response.results] == expected.indices[:2]
        for got, want in zip(response.results, expected.results):
            assert got.relevance_score == pytest.approx(want.score, abs=1e-6)
    v1 = cohere.Client(api_key="unused", base_url=served.http_url).rerank(query=QUERY, documents=[{"text": d} for d in DOCS], return_documents=True)
    assert v1.results[0].document is not None and v1.results[0].document.text == DOCS[v1.results[0].index]


def test_tei_rerank_with_httpx(served: Any) -> None:
    with RerankClient(served.target) as grpc_client:
        raw = grpc_client.rerank(QUERY, DOCS)
    with httpx.Client(base_url=served.http_url, timeout=30) as http:
        answer = http.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True}).json()
        assert [a["index"] for a in answer] == raw.indices
        assert [a["score"] for a in answer] == pytest.approx([_sigmoid(r.score) for r in raw.results], abs=1e-6)
        assert answer[0]["text"] == DOCS[answer[0]["index"]]
        raw_scores = http.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True}).json()
        assert [a["score"] for a in raw_scores] == pytest.approx([r.score for r in raw.results], abs=1e-6)
        # truncate false refuses a text longer than the model reads, as TEI does; left out, it truncates.
        long = "word " * 400
        refused = http.post("/rerank", json={"query": QUERY, "texts": [long], "truncate": False})
        assert refused.status_code == 400 and "error_on_truncation" in refused.json()["message"]
        assert http.post("/rerank", json={"query": QUERY, "texts": [long]}).status_code == 200


def test_models_health_metrics_and_the_bi_encoder_by_name(served: Any) -> None:
    with httpx.Client(base_url=served.http_url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "SERVING"}
        models = http.get("/v1/models").json()["data"]
        assert [(m["id"], m["default"]) for m in models] == [("tiny-ce", True), ("all-MiniLM-L6-v2", False)]
        ranked = http.post("/v1/rerank", json={"model": "all-MiniLM-L6-v2", "query": QUERY, "documents": DOCS}).json()
        assert ranked["results"][0]["index"] == 1 and ranked["meta"]["tokens"]["input_tokens"] > 0
        metrics = http.get("/metrics").text
        assert 'rerank_requests_total{code="OK",method="POST /v1/rerank"}' in metrics


@pytest.mark.parametrize(
    "path,body,status,words",
    [
        ("/v1/rerank", {"query": "q"}, 400, "documents is missing"),
        ("/v1/rerank", {"query": "", "documents": ["d"]}, 400, "query is empty"),
        ("/v1/rerank", {"query": "q", "documents": ["d", 7]}, 400, "documents[1]"),
        ("/v1/rerank", {"query": "q", "documents": ["d"], "top_n": 0}, 400, "top_n"),
        ("/v1/rerank", {"query": "q", "documents": ["d"], "model": "nope"}, 404, "served models"),
        ("/rerank", {"query": "q", "texts": "not a list"}, 400, "texts must be a list"),
        ("/rerank", [1, 2], 400, "JSON object"),
    ],
)
def test_bad_requests_get_a_status_and_a_json_message(served: Any, path: str, body: Any, status: int, words: str) -> None:
    with httpx.Client(base_url=served.http_url, timeout=30) as http:
        response = http.post(path, json=body)
    assert response.status_code == status
    assert words in response.json()["message"]


def test_limits_deadlines_and_bad_json(served: Any) -> None:
    with httpx.Client(base_url=served.http_url, timeout=30) as http:
        not_json = http.post("/v1/rerank", content=b"{nope", headers={"content-type": "application/json"})
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["message"]
        expired = http.post("/v1/rerank", json={"query": "q", "documents": ["d"]}, headers={"x-request-timeout": "0"})
        assert expired.status_code == 504
        huge = http.post("/v1/rerank", json={"query": "q", "documents": ["d " * 3_000_000]})
        assert huge.status_code == 429 and "--max-message-bytes" in huge.json()["message"]


def test_a_full_queue_is_429_and_a_loading_server_503(cross_scorer: Any) -> None:
    with ServerThread([cross_scorer], BatchingConfig(max_queued_pairs=2), http_port=0) as running, httpx.Client(base_url=running.http_url, timeout=30) as http:
        full = http.post("/v1/rerank", json={"query": "q", "documents": ["a", "b", "c"]})
        assert full.status_code == 429 and "overloaded" in full.json()["message"]
    with ServerThread([cross_scorer], ready=False, http_port=0) as running, httpx.Client(base_url=running.http_url, timeout=30) as http:
        assert http.get("/health").status_code == 503
        assert http.post("/v1/rerank", json={"query": "q", "documents": ["a"]}).status_code == 503


def test_bearer_tokens_and_tls_as_for_grpc(cross_scorer: Any, tmp_path: Path) -> None:
    from tests.certs import make_certs

    tokens = tmp_path / "tokens"
    tokens.write_text("sesame\n")
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    security = SecurityConfig(tls_cert=str(certs.server_cert), tls_key=str(certs.server_key), auth_token_file=str(tokens))
    with ServerThread([cross_scorer], security=security, http_port=0) as running:
        assert running.http_url.startswith("https://")
        with httpx.Client(base_url=running.http_url, timeout=30, verify=str(certs.ca)) as http:
            refused = http.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
            assert refused.status_code == 401 and "Bearer" in refused.json()["message"]
            ok = http.post("/v1/rerank", json={"query": QUERY, "documents": DOCS}, headers={"authorization": "Bearer sesame"})
            assert ok.status_code == 200 and len(ok.json()["results"]) == 3
            assert http.get("/health").status_code == 200  # probes need no token
