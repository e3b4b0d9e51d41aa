"""Decoder rerankers (Qwen3-Reranker, bge-reranker-v2-gemma and their kin), built tiny at test time with
their hub layout, scored through a real server and compared with sentence-transformers' CrossEncoder."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from rerank_client import AsyncRerankClient, RerankClient, RerankError
from rerank_server.bench.model import build_sequence_classification_conversion, build_tiny_decoder_reranker
from rerank_server.engine.settings import BatchingConfig
from rerank_server.models import ModelLoadError, load_scorer, parse_model_arg
from rerank_server.models.decoder import PrefixReuse, ScoreSpec
from rerank_server.models.windows import Windowing
from tests.server_harness import ServerThread

QUERY = "which planet is red"
DOCS = [
    "mars is the red planet",
    "venus",
    "the capital city of venus is in the ocean " * 30,  # past the model's 192 tokens: truncated
    "judge whether yes or no query {braces} and }{",
    "water and light in the river",
]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("decoders")
    qwen3 = build_tiny_decoder_reranker(root / "plain", "qwen3")
    return {
        "qwen3": qwen3,
        "gemma": build_tiny_decoder_reranker(root, "gemma", seed=1),
        "prompted": build_tiny_decoder_reranker(root / "prompted", "qwen3", seed=2, prompts={"web": "Given a web search query, find answers", "code": "Find the code"}),
        "seq-cls": build_sequence_classification_conversion(qwen3, root),
    }


def _cross_encoder(path: Path) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(path), device="cpu")


def _scorer(path: Path, name: str = "llm", reuse: PrefixReuse = PrefixReuse.AUTO, score: ScoreSpec | None = None) -> Any:
    spec = dataclasses.replace(parse_model_arg(f"{name}={path}"), prefix_reuse=reuse, score=score)
    return load_scorer(spec, device="cpu", dtype="float32", backend="torch")


@pytest.mark.parametrize("family", ["qwen3", "gemma"])
def test_scores_through_the_server_equal_predict(models: dict[str, Path], family: str) -> None:
    cross = _cross_encoder(models[family])
    want = cross.predict([(QUERY, d) for d in DOCS])
    with ServerThread([_scorer(models[family])], BatchingConfig(max_batch_size=3, max_wait_ms=2.0)) as running, RerankClient(running.target) as client:
        ranked = client.rerank(QUERY, DOCS)
        instructed = client.rerank(QUERY, DOCS, instruction="find the red one")
        pairs = [("mars", DOCS[0]), (QUERY, DOCS[1]), ("river water", DOCS[4]), (QUERY, DOCS[2])]
        scored = client.score(pairs)
        scored_instructed = client.score(pairs, instruction="find the red one")
        [info] = client.list_models().models
    got = {r.index: r.score for r in ranked.results}
    np.testing.assert_allclose([got[i] for i in range(len(DOCS))], want, atol=TOLERANCE, rtol=0)
    assert [r.index for r in ranked.results] == list(np.argsort(-want, kind="stable"))
    assert [r.truncated for r in sorted(ranked.results, key=lambda r: r.index)] == [False, False, True, False, False]
    np.testing.assert_allclose(
        [{r.index: r.score for r in instructed.results}[i] for i in range(len(DOCS))],
        cross.predict([(QUERY, d) for d in DOCS], prompt="find the red one"),
        atol=TOLERANCE, rtol=0,
    )
    assert not np.allclose([r.score for r in instructed.results], [r.score for r in ranked.results], atol=1e-3)
    np.testing.assert_allclose(scored.scores, cross.predict(pairs), atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(scored_instructed.scores, cross.predict(pairs, prompt="find the red one"), atol=TOLERANCE, rtol=0)
    assert scored.truncated == [False, False, False, True]
    assert info.takes_instruction and info.memory_bytes > 0


@pytest.mark.parametrize("reuse", [PrefixReuse.ALWAYS, PrefixReuse.NEVER])
def test_concurrent_requests_in_mixed_batches_equal_predict_with_and_without_prefix_reuse(models: dict[str, Path], reuse: PrefixReuse) -> None:
    """Requests of different queries and instructions share batches (a long wait fills them): with
    reuse each batch runs several distinct prefixes once each, and every score is still predict's."""
    cross = _cross_encoder(models["qwen3"])
    requests = [(f"{QUERY} {i}" * (1 + i % 3), DOCS[i % 5 :] + DOCS[: i % 5], "" if i % 2 else f"instruction {i}") for i in range(6)]
    batching = BatchingConfig(max_batch_size=16, max_batch_tokens=16 * 192, max_wait_ms=200.0)
    scorer = _scorer(models["qwen3"], reuse=reuse)

    async def call_all(target: str) -> list[Any]:
        async with AsyncRerankClient(target) as client:
            return await asyncio.gather(*(client.rerank(q, docs, instruction=instruction) for q, docs, instruction in requests))

    with ServerThread([scorer], batching) as running:
        results = asyncio.run(call_all(running.target))
    for (query, docs, instruction), result in zip(requests, results):
        want = cross.predict([(query, d) for d in docs], **({"prompt": instruction} if instruction else {}))
        got = {r.index: r.score for r in result.results}
        np.testing.assert_allclose([got[i] for i in range(len(docs))], want, atol=TOLERANCE, rtol=0)


def _reference(cross: Any, ids: list[int]) -> float:
    """One input's score straight from the hub model's own forward (no batching, no padding)."""
    import torch

    with torch.inference_mode():
        logits = cross[0].model(input_ids=torch.tensor([ids])).logits[0, -1]
    head = cross[1]
    return float(logits[head.true_token_id] - (logits[head.false_token_id] if head.false_token_id is not None else 0.0))


def test_windows_keep_template_and_query_around_each_part_of_the_document(models: dict[str, Path]) -> None:
    cross = _cross_encoder(models["qwen3"])
    scorer = _scorer(models["qwen3"])
    long_doc = "mars is red and the river water runs to the ocean " * 40
    chat = scorer.chat
    texts, _ = chat.texts(QUERY, [long_doc], None, whole=True)
    start_ids, tail = chat.ends(QUERY, None)
    whole = scorer.encoder.encode(texts)[0]
    with ServerThread([scorer]) as running, RerankClient(running.target) as client:
        windowed = client.rerank(QUERY, [DOCS[0], long_doc], windows=True, window_overlap=8)
        first = client.rerank(QUERY, [DOCS[0], long_doc], windows=True, aggregation="first")
        truncated = client.rerank(QUERY, [DOCS[0], long_doc])
    by_index = {r.index: r for r in windowed.results}
    assert by_index[1].windows > 2 and not by_index[1].truncated and by_index[0].windows == 1
    # The first window is what truncation reads; the best window is the best of the windows scored alone.
    assert {r.index: r.score for r in first.results}[1] == pytest.approx({r.index: r.score for r in truncated.results}[1], abs=TOLERANCE)
    items = chat.plan(QUERY, None, [whole], [False], Windowing(overlap_tokens=8)).items
    windows = [item.ids.tolist() for item in items]
    assert len(windows) == by_index[1].windows
    # Each window: the template and query (all but the space the document's first word takes), a part of
    # the document, the template's tail.
    shared = items[0].shared
    assert len(start_ids) - 1 <= shared <= len(start_ids)
    assert all(w[:shared] == whole[:shared].tolist() and w[-len(tail) :] == tail.tolist() and len(w) <= 192 for w in windows)
    assert by_index[1].score == pytest.approx(max(_reference(cross, w) for w in windows), abs=TOLERANCE)


def test_a_sequence_classification_conversion_ranks_as_its_causal_original(models: dict[str, Path]) -> None:
    documents = DOCS + ["red red planet mars", "the ocean"]
    with ServerThread([_scorer(models["qwen3"], "causal"), _scorer(models["seq-cls"], "seq-cls")]) as running, RerankClient(running.target) as client:
        causal = client.rerank(QUERY, documents, model="causal", normalization="sigmoid")
        converted = client.rerank(QUERY, documents, model="seq-cls", normalization="sigmoid")
    assert converted.indices == causal.indices
    np.testing.assert_allclose([r.score for r in converted.results], [r.score for r in causal.results], atol=TOLERANCE, rtol=0)
    want = _cross_encoder(models["seq-cls"]).predict([(QUERY, d) for d in documents])  # saved with a sigmoid
    np.testing.assert_allclose([{r.index: r.score for r in converted.results}[i] for i in range(len(documents))], want, atol=TOLERANCE, rtol=0)


def test_saved_prompts_are_the_default_and_can_be_named(models: dict[str, Path]) -> None:
    cross = _cross_encoder(models["prompted"])
    pairs = [(QUERY, d) for d in DOCS]
    with ServerThread([_scorer(models["prompted"])]) as running, RerankClient(running.target) as client:
        default = client.score(pairs)
        named = client.score(pairs, instruction="code")
    np.testing.assert_allclose(default.scores, cross.predict(pairs), atol=TOLERANCE, rtol=0)  # its default prompt, "web"
    np.testing.assert_allclose(named.scores, cross.predict(pairs, prompt_name="code"), atol=TOLERANCE, rtol=0)


def test_an_instruction_for_a_model_that_takes_none_is_refused(cross_scorer: Any) -> None:
    with ServerThread([cross_scorer]) as running, RerankClient(running.target) as client:
        with pytest.raises(RerankError) as caught:
            client.rerank(QUERY, DOCS, instruction="find the red one")
        [info] = client.list_models().models
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT and "takes no instruction" in str(caught.value)
    assert not info.takes_instruction


def test_score_tokens_from_the_command_line(models: dict[str, Path]) -> None:
    texts_scorer = _scorer(models["qwen3"])
    given = _scorer(models["qwen3"], score=ScoreSpec.parse("yes,no"))
    shifted = _scorer(models["qwen3"], score=ScoreSpec.parse("yes,no,bias=-1.5"))
    plan = texts_scorer.chat.plan(QUERY, None, texts_scorer.encoder.encode(texts_scorer.chat.texts(QUERY, DOCS, None, False)[0]), [False] * 5, None)
    base = np.array(texts_scorer.run_batch(plan.items))
    np.testing.assert_allclose(given.run_batch(plan.items), base, atol=TOLERANCE)
    np.testing.assert_allclose(shifted.run_batch(plan.items), base - 1.5, atol=TOLERANCE)
    with pytest.raises(ModelLoadError, match="not one token"):
        _scorer(models["qwen3"], score=ScoreSpec.parse("maybe-not-a-token,no"))
    with pytest.raises(ValueError, match="TRUE_TOKEN"):
        ScoreSpec.parse("a,b,c")
    with pytest.raises(ModelLoadError, match="decoder reranker; --backend onnx serves encoder cross-encoders: serve it with --backend torch"):
        load_scorer(parse_model_arg(f"llm={models['qwen3']}"), device="cpu", backend="onnx")


def test_the_http_api_takes_an_instruction(models: dict[str, Path]) -> None:
    import httpx

    cross = _cross_encoder(models["qwen3"])
    with ServerThread([_scorer(models["qwen3"])], http_port=0) as running:
        body = {"query": QUERY, "documents": DOCS[:3], "instruction": "find the red one"}
        cohere = httpx.post(f"{running.http_url}/v2/rerank", json=body, timeout=30).json()
        tei = httpx.post(f"{running.http_url}/rerank", json={"query": QUERY, "texts": DOCS[:2], "instruction": "find the red one", "raw_scores": True}, timeout=30).json()
    want = cross.predict([(QUERY, d) for d in DOCS[:3]], prompt="find the red one")
    sigmoid = 1 / (1 + np.exp(-want))
    np.testing.assert_allclose([{r["index"]: r["relevance_score"] for r in cohere["results"]}[i] for i in range(3)], sigmoid, atol=TOLERANCE)
    np.testing.assert_allclose([{r["index"]: r["score"] for r in tei}[i] for i in range(2)], want[:2], atol=TOLERANCE)


def test_a_model_that_does_not_fit_its_device_is_refused_before_loading(models: dict[str, Path]) -> None:
    import torch

    from rerank_server.models.device import Precision
    from rerank_server.models.fit import DoesNotFit, check_fits, weights_in

    loaded = _scorer(models["qwen3"]).info.memory_bytes
    # The estimate from the checkpoint's files is what loading it takes (float32 saved, float32 loaded),
    # and halves in bfloat16.
    estimate = weights_in(models["qwen3"], Precision("float32", torch.float32))
    assert 0.9 * loaded <= estimate <= 1.1 * loaded
    assert weights_in(models["qwen3"], Precision("bfloat16", torch.bfloat16)) == pytest.approx(estimate / 2, rel=0.01)
    eight_b = 16 * 2**30  # an 8B reranker in bfloat16
    check_fits("Qwen/Qwen3-Reranker-8B", eight_b, 80 * 2**30, "cuda:0", "bfloat16")
    check_fits("Qwen/Qwen3-Reranker-8B", eight_b, None, "mps", "bfloat16")  # no figure: not refused
    with pytest.raises(DoesNotFit, match=r"needs about 17.6 GiB on cuda:0 .* 12.0 GiB is free there: serve it on a device with more memory"):
        check_fits("Qwen/Qwen3-Reranker-8B", eight_b, 12 * 2**30, "cuda:0", "bfloat16")
    with pytest.raises(DoesNotFit, match=r"smaller precision \(--dtype bfloat16"):
        check_fits("Qwen/Qwen3-Reranker-8B", 2 * eight_b, 24 * 2**30, "cpu", "float32")


def test_rerank_compare_with_a_decoder_reranker_on_one_side(models: dict[str, Path], bi_scorer: Any) -> None:
    import io
    import json

    from rerank_client.cli import main

    local = io.StringIO()
    assert main(["compare", "--local", "--cross-encoder", str(models["qwen3"]), "--format", "json"], out=local) == 0
    with ServerThread([_scorer(models["qwen3"], "qwen3-reranker"), bi_scorer]) as running:
        served = io.StringIO()
        assert main(["compare", "--target", running.target, "--cross-encoder", "qwen3-reranker", "--format", "json"], out=served) == 0
    local_report, served_report = json.loads(local.getvalue()), json.loads(served.getvalue())
    assert served_report["cross_encoder"] == "qwen3-reranker" and len(served_report["queries"]) == 3
    for a, b in zip(local_report["queries"], served_report["queries"]):  # one model, one ranking, either way
        assert [x["index"] for x in a["cross_encoder_top"]] == [x["index"] for x in b["cross_encoder_top"]]


def test_front_end_processes_send_shared_prefixes_to_the_engine(models: dict[str, Path]) -> None:
    """--frontends 2: pairs are rendered and tokenized in the front ends, their shared prefix lengths cross
    to the engine process with their ids, and the scores are predict's."""
    from tests.processes import ServerProcess

    cross = _cross_encoder(models["qwen3"])
    with ServerProcess("--model", f"llm={models['qwen3']}", "--device", "cpu", "--dtype", "float32", "--frontends", "2", "--prefix-reuse", "always") as server:
        with RerankClient(server.target) as client:
            ranked = client.rerank(QUERY, DOCS, instruction="find the red one")
    got = {r.index: r.score for r in ranked.results}
    want = cross.predict([(QUERY, d) for d in DOCS], prompt="find the red one")
    np.testing.assert_allclose([got[i] for i in range(len(DOCS))], want, atol=TOLERANCE, rtol=0)


def test_the_cli_sends_an_instruction_and_lists_what_a_model_takes(models: dict[str, Path]) -> None:
    import io
    import json

    from rerank_client.cli import main

    cross = _cross_encoder(models["qwen3"])
    with ServerThread([_scorer(models["qwen3"], "qwen3-reranker")]) as running:
        ranked, listed = io.StringIO(), io.StringIO()
        assert main(["rank", "--target", running.target, "--json", "--instruction", "find the red one", QUERY, *DOCS[:3]], out=ranked) == 0
        assert main(["models", "--target", running.target], out=listed) == 0
    got = {row["index"]: row["score"] for row in json.loads(ranked.getvalue())}
    want = cross.predict([(QUERY, d) for d in DOCS[:3]], prompt="find the red one")
    np.testing.assert_allclose([got[i] for i in range(3)], want, atol=TOLERANCE, rtol=0)
    assert "takes an instruction" in listed.getvalue() and " MiB" in listed.getvalue()


def test_edge_inputs_equal_predict_or_are_refused_clearly(models: dict[str, Path]) -> None:
    """A one-letter document, a query that alone fills the model (the cut then reaches the query, as in
    predict), error_on_truncation for a long pair, and windows with no room beside the query."""
    cross = _cross_encoder(models["qwen3"])
    long_query = "which river runs to the ocean " * 40
    pairs = [(QUERY, "a"), (long_query, DOCS[0]), (long_query, "a")]
    with ServerThread([_scorer(models["qwen3"])]) as running, RerankClient(running.target) as client:
        scored = client.score(pairs)
        with pytest.raises(RerankError) as caught:
            client.rerank(QUERY, DOCS, error_on_truncation=True)
        with pytest.raises(RerankError) as no_room:
            client.rerank(long_query, DOCS[:2], windows=True)
    np.testing.assert_allclose(scored.scores, cross.predict(pairs), atol=TOLERANCE, rtol=0)
    assert scored.truncated == [False, True, True]
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT and "index 2" in str(caught.value)
    assert no_room.value.code is grpc.StatusCode.INVALID_ARGUMENT and "shorten the query" in str(no_room.value)


def test_a_chat_template_that_drops_the_pair_is_refused_at_load(models: dict[str, Path], tmp_path: Path) -> None:
    """A causal model whose template is a chat model's (system/user/assistant only) would score prompts
    holding neither the query nor the document: refused at load with the fix, as predict refuses it."""
    import shutil

    broken = tmp_path / "chat-model"
    shutil.copytree(models["qwen3"], broken)
    (broken / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m.role in ['system', 'user', 'assistant'] %}<|im_start|>{{ m.role }}\\n{{ m.content }}<|im_end|>\\n{% endif %}{% endfor %}"
    )
    with pytest.raises(ModelLoadError, match="does not render a query and a document .* chat_template.jinja"):
        _scorer(broken)
