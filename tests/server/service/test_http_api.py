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
        # A text longer than the model reads is refused unless truncate is true, as TEI does by default,
        # with TEI's error body; top_n keeps the best few.
        long = "word " * 400
        for body in ({"query": QUERY, "texts": [long], "truncate": False}, {"query": QUERY, "texts": [long]}):
            refused = http.post("/rerank", json=body)
            assert refused.status_code == 400 and refused.json()["error_type"] == "Validation"
            assert "truncate: true" in refused.json()["error"] and "error_on_truncation" not in refused.json()["error"]
        assert http.post("/rerank", json={"query": QUERY, "texts": [long], "truncate": True}).status_code == 200
        top = http.post("/rerank", json={"query": QUERY, "texts": DOCS, "top_n": 2}).json()
        assert [a["index"] for a in top] == raw.indices[:2]


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
    answer = response.json()
    assert words in (answer["error"] if path == "/rerank" else answer["message"])  # TEI's error body, or Cohere's


def test_limits_deadlines_and_bad_json(served: Any) -> None:
    with httpx.Client(base_url=served.http_url, timeout=30) as http:
        not_json = http.post("/v1/rerank", content=b"{nope", headers={"content-type": "application/json"})
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["message"]
        expired = http.post("/v1/rerank", json={"query": "q", "documents": ["d"]}, headers={"x-request-timeout": "0"})
        assert expired.status_code == 504
        for bad in ("nan", "inf", "soon"):
            assert http.post("/v1/rerank", json={"query": "q", "documents": ["d"]}, headers={"x-request-timeout": bad}).status_code == 400
        huge = http.post("/v1/rerank", json={"query": "q", "documents": ["d " * 3_000_000]})
        assert huge.status_code == 413 and "--max-message-bytes" in huge.json()["message"]
        for headers in ({"content-type": "text/plain"}, {}):
            plain = http.post("/v1/rerank", content=b'{"query": "q", "documents": ["d"]}', headers=headers)
            assert plain.status_code == 415 and "application/json" in plain.json()["message"]
        deep = http.post("/v1/rerank", content=b"[" * 10_000 + b"]" * 10_000, headers={"content-type": "application/json"})
        assert deep.status_code == 400 and "nested too deep" in deep.json()["message"]
        surrogate = http.post("/v1/rerank", content=b'{"query": "q", "documents": ["ok", "bad \\ud800"]}', headers={"content-type": "application/json"})
        assert surrogate.status_code == 400 and "documents[1]" in surrogate.json()["message"]


def test_nim_infinity_and_cohere_shapes(served: Any) -> None:
    with RerankClient(served.target) as grpc_client:
        raw = grpc_client.rerank(QUERY, DOCS)
    with httpx.Client(base_url=served.http_url, timeout=30) as http:
        nim = http.post("/v1/ranking", json={"model": "tiny-ce", "query": {"text": QUERY}, "passages": [{"text": d} for d in DOCS]}).json()
        assert [r["index"] for r in nim["rankings"]] == raw.indices
        assert [r["logit"] for r in nim["rankings"]] == pytest.approx([r.score for r in raw.results], abs=1e-5)
        too_long = http.post("/v1/ranking", json={"query": {"text": QUERY}, "passages": [{"text": "word " * 400}]})
        assert too_long.status_code == 400 and 'truncate: "END"' in too_long.json()["message"]
        assert http.post("/v1/ranking", json={"query": {"text": QUERY}, "passages": [{"text": "word " * 400}], "truncate": "END"}).status_code == 200
        infinity = http.post("/rerank", json={"model": "tiny-ce", "query": QUERY, "documents": DOCS, "top_n": 2}).json()
        assert [r["index"] for r in infinity["results"]] == raw.indices[:2] and infinity["model"] == "tiny-ce"
        assert infinity["usage"]["total_tokens"] > 0
        for version in ("1", "2"):
            cohere = http.post(f"/v{version}/rerank", json={"query": QUERY, "documents": DOCS}).json()
            assert cohere["meta"]["api_version"]["version"] == version
        # Structured documents ranked on the fields named, returned as sent.
        structured = [{"title": "Markets", "body": DOCS[0]}, {"title": "Plants", "body": DOCS[1]}]
        fields = http.post("/v1/rerank", json={"query": QUERY, "documents": structured, "rank_fields": ["title", "body"], "return_documents": True}).json()
        assert fields["results"][0]["index"] == 1 and fields["results"][0]["document"] == structured[1]
        unnamed = http.post("/v1/rerank", json={"query": QUERY, "documents": structured})
        assert unnamed.status_code == 400 and "rank_fields" in unnamed.json()["message"]
        info = http.get("/info").json()
        assert info["served_model_name"] == "tiny-ce" and info["max_input_length"] > 0 and "classifier" in info["model_type"]


def test_a_hosted_models_name_reaches_a_served_one(cross_scorer: Any) -> None:
    """One model served: any name reaches it (TEI ignores the name); several: an alias does."""
    with ServerThread([cross_scorer], http_port=0) as running, httpx.Client(base_url=running.http_url, timeout=30) as http:
        answer = http.post("/v1/rerank", json={"model": "rerank-english-v3.0", "query": QUERY, "documents": DOCS})
        assert answer.status_code == 200
    from rerank_server.engine import ModelRegistry, ServedModel, TokenizerPool, UnknownModel

    pool = TokenizerPool(1)
    registry = ModelRegistry(ServedModel.create(s, BatchingConfig(), pool) for s in (cross_scorer,))
    registry.add(ServedModel.create(_renamed(cross_scorer, "second"), BatchingConfig(), pool))
    registry.alias("rerank-v3.5", "second")
    assert registry.get("rerank-v3.5").info.name == "second"
    with pytest.raises(UnknownModel):
        registry.get("rerank-english-v3.0")
    pool.close()


def _renamed(scorer: Any, name: str) -> Any:
    import copy
    import dataclasses

    other = copy.copy(scorer)
    other.info = dataclasses.replace(scorer.info, name=name)
    return other


def test_a_client_that_goes_away_takes_its_queued_work_with_it(cross_scorer: Any) -> None:
    """An HTTP caller that disconnects while its request waits in the queue: its pairs leave the queue
    before the model sees them, as a cancelled gRPC call's do, and it is counted as cancelled."""
    import threading

    from tests.server_harness import GatedScorer, until

    gated = GatedScorer(cross_scorer)
    with ServerThread([gated], http_port=0) as running:
        batcher = running.model().batcher
        holder = threading.Thread(target=lambda: httpx.post(f"{running.http_url}/v1/rerank", json={"query": "q", "documents": ["holds the model"]}, timeout=60))
        holder.start()
        assert gated.entered.wait(30)
        with pytest.raises(httpx.ReadTimeout):  # the caller gives up once its pairs are queued
            with httpx.Client(base_url=running.http_url, timeout=httpx.Timeout(30, read=1.0)) as http:
                http.post("/v1/rerank", json={"query": "q", "documents": ["gone a", "gone b"]})
        running.run(until(lambda: batcher.queued == 0))
        gated.gate.set()
        holder.join(60)
        counts = running.server.engine.counts
    assert not any("gone" in text for text in gated.seen)
    assert batcher.stats.dropped_cancelled == 2 and counts[("POST /v1/rerank", "CANCELLED")] == 1


def test_a_full_queue_is_429_and_a_loading_server_503(cross_scorer: Any) -> None:
    with ServerThread([cross_scorer], BatchingConfig(max_queued_pairs=2), http_port=0) as running, httpx.Client(base_url=running.http_url, timeout=30) as http:
        full = http.post("/v1/rerank", json={"query": "q", "documents": ["a", "b", "c"]})
        assert full.status_code == 429 and "overloaded" in full.json()["message"] and int(full.headers["retry-after"]) >= 1
        # The body reads the same at every refusal (load testers group errors by it); the numbers are headers.
        assert "details" not in full.json() and "free" not in full.text
        assert (full.headers["x-rerank-requested-pairs"], full.headers["x-rerank-free-places"], full.headers["x-rerank-capacity"]) == ("3", "2", "2")
    with ServerThread([cross_scorer], ready=False, http_port=0) as running, httpx.Client(base_url=running.http_url, timeout=30) as http:
        assert http.get("/health").status_code == 503
        assert http.post("/v1/rerank", json={"query": "q", "documents": ["a"]}).status_code == 503
    with ServerThread([cross_scorer], http_port=0) as running, httpx.Client(base_url=running.http_url, timeout=30) as http:
        assert http.get("/health").headers.get("connection") != "close"
        running.server.engine.draining = True  # as at shutdown: keep-alive clients are told to go
        draining = http.post("/v1/rerank", json={"query": "q", "documents": ["a"]})
        assert draining.status_code == 503 and draining.headers["connection"] == "close"
        assert http.get("/health").headers["connection"] == "close"


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
            # The metrics name callers and tokens: they take a token too.
            assert http.get("/metrics").status_code == 401
            assert "rerank_requests_total" in http.get("/metrics", headers={"authorization": "Bearer sesame"}).text


def _closed(sock: Any) -> bool:
    """Whether the server has closed ``sock`` (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_connections_past_the_cap_are_closed_at_once_and_grpc_serves(cross_scorer: Any) -> None:
    import socket

    from rerank_server.service.settings import ConnectionConfig
    from tests.server_harness import until

    limits = ConnectionConfig(http_header_timeout_s=3600.0, http_max_connections=8)
    with ServerThread([cross_scorer], http_port=0, connections=limits) as running:
        port = int(running.http_url.rsplit(":", 1)[1])
        opened = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(12)]
        try:
            running.run(until(lambda: sum(_closed(s) for s in opened) >= 4))  # polls for the four past the cap
            assert sum(_closed(s) for s in opened) == 4  # and only those: the eight within it stay open
            with RerankClient(running.target) as grpc_client:
                assert grpc_client.rerank(QUERY, DOCS).results
        finally:
            for sock in opened:
                sock.close()


def test_silent_and_slowloris_connections_are_closed_after_the_header_timeout(cross_scorer: Any) -> None:
    """Connections that never send a whole request (port scanners, slowloris, hung clients) are closed
    after the header timeout instead of being held forever; a real client is served meanwhile."""
    import socket

    from rerank_server.service.settings import ConnectionConfig
    from tests.server_harness import until

    with ServerThread([cross_scorer], http_port=0, connections=ConnectionConfig(http_header_timeout_s=0.5)) as running:
        port = int(running.http_url.rsplit(":", 1)[1])
        silent = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        try:
            with httpx.Client(base_url=running.http_url, timeout=30) as http:
                assert http.post("/v1/rerank", json={"query": QUERY, "documents": DOCS}).status_code == 200
            states = {"silent": False, "slow": False}

            def both_closed() -> bool:
                states["silent"] = states["silent"] or _closed(silent)
                states["slow"] = states["slow"] or _closed(slow)
                return all(states.values())

            running.run(until(both_closed))
        finally:
            silent.close()
            slow.close()


def test_the_openapi_document_validates_and_declares_what_the_server_checks(served: Any) -> None:
    from openapi_spec_validator import validate

    with httpx.Client(base_url=served.http_url, timeout=30) as http:
        document = http.get("/openapi.json").json()
        docs = http.get("/docs")
    validate(document)
    assert set(document["paths"]) == {"/v1/rerank", "/v2/rerank", "/rerank", "/v1/ranking", "/v1/embeddings", "/embed"}
    cohere = document["components"]["schemas"]["CohereRerankRequest"]
    assert {"query", "documents"} <= set(cohere["required"]) and cohere["properties"]["top_n"]["anyOf"][0]["minimum"] == 1
    assert "429" in document["paths"]["/v1/rerank"]["post"]["responses"]
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_embeddings_of_a_served_bi_encoder_in_openai_and_tei_shapes(served: Any, bi_scorer: Any) -> None:
    texts = ["a cat sat on the mat", "stocks fell sharply"]
    expected = bi_scorer.model.encode(texts, normalize_embeddings=True)
    with httpx.Client(base_url=served.http_url, timeout=30) as http:
        openai = http.post("/v1/embeddings", json={"input": texts}).json()  # no model: the first bi-encoder
        assert openai["model"] == "all-MiniLM-L6-v2" and [d["index"] for d in openai["data"]] == [0, 1]
        assert openai["usage"]["prompt_tokens"] > 0
        for got, want in zip(openai["data"], expected):
            assert got["embedding"] == pytest.approx(want.tolist(), abs=1e-4)
        tei = http.post("/embed", json={"inputs": texts[0]}).json()
        assert len(tei) == 1 and tei[0] == pytest.approx(expected[0].tolist(), abs=1e-4)
        cross = http.post("/embed", json={"inputs": "x", "model": "tiny-ce"})
        assert cross.status_code == 400 and "cross-encoder" in cross.json()["error"]
        long = "word " * 600
        refused = http.post("/embed", json={"inputs": [long]})
        assert refused.status_code == 400 and refused.json()["error_type"] == "Validation"
        assert http.post("/embed", json={"inputs": [long], "truncate": True}).status_code == 200
        assert http.post("/v1/embeddings", json={"input": [long]}).status_code == 200  # cut, as Infinity's route does


def test_a_client_gone_mid_body_is_counted_cancelled_and_long_ids_are_cut_in_the_log(cross_scorer: Any, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import socket

    from tests.server_harness import until

    with ServerThread([cross_scorer], http_port=0, log_requests=True) as running:
        port = int(running.http_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as gone:
            gone.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"query\": ")
        counts = running.server.engine.counts
        running.run(until(lambda: counts[("POST /v1/rerank", "CANCELLED")] == 1))  # not INTERNAL
        with caplog.at_level(logging.INFO, logger="rerank_server.requests"), httpx.Client(base_url=running.http_url, timeout=30) as http:
            http.post("/v1/rerank", json={"query": "q", "documents": ["d"], "model": "m" * 1_000_000}, headers={"x-request-id": "r" * 10_000})
    logged = [r for r in caplog.records if r.name == "rerank_server.requests"]
    assert logged and all(len(r.model) <= 128 and len(r.request_id) <= 128 for r in logged)  # type: ignore[attr-defined]
