"""Calibrated scores end to end: ``rerank calibrate`` against a real server, the file served back as
NORMALIZATION_CALIBRATED on gRPC, both clients, the CLI and HTTP, thresholds, refusals, and the quality bar
on the shipped example set for two different models."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rerank_client import AsyncRerankClient, RerankClient, RerankError
from rerank_client.calibrate.labels import read_labelled
from rerank_client.cli import main as rerank_main
from rerank_server.bench.model import build_truncated_bi_encoder
from rerank_server.models import ModelLoadError, load_scorer, parse_model_arg
from rerank_server.models.bundled import bundled_calibration
from rerank_server.models.calibration import Calibration
from tests.processes import run_cli
from tests.server_harness import ServerThread

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "labelled-pairs.jsonl"
QUERY = "how do I fix a flat tyre on my bike"
DOCS = [
    "Remove the wheel, lever the tyre off, find the hole in the inner tube and patch it.",
    "Sourdough needs flour, water, salt and an active starter.",
    "Before fitting a new tube, feel inside the tyre for the thorn that caused the puncture.",
    "The central bank raised interest rates by a quarter point.",
    "Lube the chain every few hundred kilometres.",
]


@pytest.fixture(scope="module")
def cut_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different model: the bundled one cut to its first three layers."""
    return build_truncated_bi_encoder(tmp_path_factory.mktemp("cut"), layers=3)


@pytest.fixture(scope="module")
def server(bi_scorer: Any, cross_scorer: Any, cut_model: Path) -> Any:
    cut = load_scorer(parse_model_arg(f"cut={cut_model}"), device="cpu", dtype="float32")
    with ServerThread([bi_scorer, cross_scorer, cut], http_port=0, max_documents=128) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerThread) -> Any:
    with RerankClient(server.target, timeout=120) as c:
        yield c


def test_list_models_says_which_models_are_calibrated_and_names_each_checkpoint(client: RerankClient) -> None:
    models = {m.name: m for m in client.list_models().models}
    assert models["all-MiniLM-L6-v2"].calibration == "platt"  # the bundled model's calibration ships with the server
    assert models["tiny-ce"].calibration == "" and models["cut"].calibration == ""
    fingerprints = {m.fingerprint for m in models.values()}
    assert len(fingerprints) == 3 and all(f.startswith("sha256:") for f in fingerprints)
    assert models["all-MiniLM-L6-v2"].fingerprint == Calibration.read(bundled_calibration()).fingerprint


def test_calibrated_scores_are_the_calibration_of_raw_scores_and_rank_the_same(client: RerankClient) -> None:
    raw = client.rerank(QUERY, DOCS, normalization="raw")
    calibrated = client.rerank(QUERY, DOCS, normalization="calibrated")
    assert calibrated.indices == raw.indices  # monotone: the same order, so the same top-k
    expected = Calibration.read(bundled_calibration()).apply(np.array([r.score for r in raw.results], dtype=np.float32))
    np.testing.assert_allclose([r.score for r in calibrated.results], expected, atol=1e-5)
    assert all(0.0 < r.score < 1.0 for r in calibrated.results)
    assert calibrated.results[0].score > 0.5 > calibrated.results[-1].score  # a bike answer is likely relevant, a bank rate not
    pairs = [(QUERY, d) for d in DOCS]
    scored = client.score(pairs, normalization="calibrated").scores
    np.testing.assert_allclose(sorted(scored, reverse=True), [r.score for r in calibrated.results], atol=1e-5)


def test_min_score_drops_results_below_it_after_ranking_and_counts_them(client: RerankClient) -> None:
    everything = client.rerank(QUERY, DOCS, normalization="calibrated")
    kept = client.rerank(QUERY, DOCS, normalization="calibrated", min_score=0.5)
    below = [r for r in everything.results if r.score < 0.5]
    assert below and len(below) < len(DOCS)
    assert kept.dropped == len(below)
    assert kept.indices == everything.indices[: len(DOCS) - len(below)]
    assert [r.rank for r in kept.results] == list(range(len(kept.results)))
    # In the raw scale too, with top_k cutting what is left.
    raw = client.rerank(QUERY, DOCS).results
    threshold = raw[3].score
    cut = client.rerank(QUERY, DOCS, min_score=threshold, top_k=2)
    assert cut.indices == [r.index for r in raw[:2]] and cut.dropped == sum(r.score < threshold for r in raw) == 1
    assert client.rerank(QUERY, DOCS).dropped == 0


def test_calibrated_scores_from_a_model_without_a_calibration_are_refused_with_the_fix(client: RerankClient) -> None:
    for call in (lambda: client.rerank(QUERY, DOCS, model="tiny-ce", normalization="calibrated"), lambda: client.score([(QUERY, DOCS[0])], model="tiny-ce", normalization="calibrated")):
        with pytest.raises(RerankError) as refused:
            call()
        assert refused.value.code.name == "INVALID_ARGUMENT"
        assert "model 'tiny-ce' has no calibration" in refused.value.details and "--calibration tiny-ce=FILE" in refused.value.details
    with pytest.raises(ValueError, match="min_score is NaN"):
        client.rerank(QUERY, DOCS, min_score=math.nan)


@pytest.mark.anyio
async def test_the_asyncio_client_gets_calibrated_scores_and_the_dropped_count(server: ServerThread) -> None:
    async with AsyncRerankClient(server.target) as aclient:
        result = await aclient.rerank(QUERY, DOCS, normalization="calibrated", min_score=0.5)
    assert result.dropped > 0 and all(r.score >= 0.5 for r in result.results)


def test_http_bodies_take_a_normalization_and_a_threshold(server: ServerThread, client: RerankClient) -> None:
    expected = client.rerank(QUERY, DOCS, normalization="calibrated")
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        cohere = http.post("/v1/rerank", json={"query": QUERY, "documents": DOCS, "normalization": "calibrated", "min_score": 0.5}).json()
        plain = http.post("/v1/rerank", json={"query": QUERY, "documents": DOCS}).json()
        tei = http.post("/rerank", json={"query": QUERY, "texts": DOCS, "normalization": "calibrated", "truncate": True}).json()
        refused = http.post("/v1/rerank", json={"query": QUERY, "documents": DOCS, "model": "tiny-ce", "normalization": "calibrated"})
        models = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    kept = [r for r in expected.results if r.score >= 0.5]
    assert [r["index"] for r in cohere["results"]] == [r.index for r in kept]
    assert cohere["meta"]["dropped_documents"] == len(DOCS) - len(kept)
    np.testing.assert_allclose([r["relevance_score"] for r in cohere["results"]], [r.score for r in kept], atol=1e-5)
    assert "dropped_documents" not in plain["meta"]  # a Cohere client sees Cohere's answer unless it asks for more
    assert [t["index"] for t in tei] == expected.indices
    assert refused.status_code == 400 and "has no calibration" in refused.json()["message"]
    assert models["all-MiniLM-L6-v2"]["calibration"] == "platt" and models["tiny-ce"]["calibration"] is None


def test_the_cli_ranks_with_calibrated_scores_and_says_what_it_left_out(server: ServerThread) -> None:
    out = io.StringIO()
    code = rerank_main(["rank", "--target", server.target, QUERY, *DOCS, "--normalization", "calibrated", "--min-score", "0.5"], out=out)
    assert code == 0
    assert "below --min-score left out" in out.getvalue()
    listed = io.StringIO()
    assert rerank_main(["models", "--target", server.target], out=listed) == 0
    assert "calibrated (platt)" in listed.getvalue()


def _calibrate(target: str, model: str, output: Path, *extra: str) -> dict[str, Any]:
    out = io.StringIO()
    code = rerank_main(["calibrate", str(EXAMPLES), "--target", target, "--model", model, "-o", str(output), "--json", *extra], out=out)
    assert code == 0
    document = json.loads(out.getvalue())
    assert json.loads(output.read_text()) == document
    return document


def test_two_models_calibrated_on_the_example_set_give_probabilities_on_one_scale(server: ServerThread, client: RerankClient, tmp_path: Path) -> None:
    """The issue's quality bar: held out from fitting, each model's calibrated ECE is at most half the
    sigmoid's and below 0.05, and the calibration reproduces the one shipped for the bundled model."""
    documents = {}
    for model in ("all-MiniLM-L6-v2", "cut"):
        documents[model] = _calibrate(server.target, model, tmp_path / f"{model}.json")
        quality = documents[model]["quality"]
        assert quality["calibrated"]["ece"] <= 0.5 * quality["sigmoid"]["ece"], quality
        assert quality["calibrated"]["ece"] < 0.05, quality
        assert quality["calibrated"]["brier"] < quality["sigmoid"]["brier"], quality
    bundled, cut = documents["all-MiniLM-L6-v2"], documents["cut"]
    assert bundled["model"]["fingerprint"] != cut["model"]["fingerprint"]
    shipped = json.loads(bundled_calibration().read_text())
    assert bundled["parameters"] == pytest.approx(shipped["parameters"], rel=1e-3)
    assert bundled["data"]["sha256"] == shipped["data"]["sha256"]
    # Raw, the two models' scores are on different scales; calibrated, the same pair gets a like probability.
    data = read_labelled(str(EXAMPLES))
    pairs = data.pairs[:64]
    probabilities = {m: np.array(Calibration.read(tmp_path / f"{m}.json").apply(np.array(client.score(pairs, model=m).scores, dtype=np.float32))) for m in documents}
    raw_gap = abs(np.mean(client.score(pairs, model="all-MiniLM-L6-v2").scores) - np.mean(client.score(pairs, model="cut").scores))
    assert abs(probabilities["all-MiniLM-L6-v2"].mean() - probabilities["cut"].mean()) < raw_gap


def test_isotonic_calibration_and_its_reliability_diagram(server: ServerThread, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    document = _calibrate(server.target, "cut", tmp_path / "iso.json", "--method", "isotonic", "--plot", str(tmp_path / "reliability.png"))
    assert document["method"] == "isotonic" and len(document["parameters"]["x"]) >= 2
    assert (tmp_path / "reliability.png").stat().st_size > 10_000
    calibration = Calibration.read(tmp_path / "iso.json")
    assert calibration.method == "isotonic"


def test_calibrating_a_model_that_cannot_tell_pairs_apart_or_one_class_is_refused(server: ServerThread, tmp_path: Path) -> None:
    one_class = tmp_path / "relevant.tsv"
    one_class.write_text("".join(f"q{i}\td{i}\t1\n" for i in range(60)))
    with pytest.raises(SystemExit, match="every pair is relevant"):
        rerank_main(["calibrate", str(one_class), "--target", server.target])
    same = tmp_path / "same.tsv"
    same.write_text("".join(f"the same query\tthe same document\t{i % 2}\n" for i in range(60)))
    with pytest.raises(SystemExit, match="does not tell these pairs apart"):
        rerank_main(["calibrate", str(same), "--target", server.target])


def test_a_calibration_for_another_checkpoint_is_refused_at_start_up(cut_model: Path) -> None:
    with pytest.raises(ModelLoadError, match="fitted on another checkpoint than cut"):
        load_scorer(dataclasses.replace(parse_model_arg(f"cut={cut_model}"), calibration=str(bundled_calibration())), device="cpu", dtype="float32")
    finished = run_cli("rerank-server", "--model", f"cut={cut_model}", "--calibration", f"cut={bundled_calibration()}", "--port", "0", timeout=180)
    assert finished.returncode != 0
    errors = [line for line in finished.stderr.splitlines() if "another checkpoint" in line]
    assert len(errors) == 1 and "rerank calibrate --target HOST:PORT --model cut" in errors[0], finished.stderr
    unknown = run_cli("rerank-server", "--model", f"cut={cut_model}", "--calibration", "other=x.json", timeout=60)
    assert unknown.returncode == 2 and "--calibration 'other=x.json': give NAME=FILE, where NAME is a served model (cut)" in unknown.stderr


def test_compare_shows_calibrated_probabilities_side_by_side_and_where_they_disagree(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    # The tiny cross-encoder's own calibration, written for its checkpoint (its scores mean little: the
    # display is what is tested here; the fitting is tested above).
    fingerprint = load_scorer(parse_model_arg(f"tiny={tiny_cross_encoder}"), device="cpu", dtype="float32").info.fingerprint
    calibration = tmp_path / "tiny.json"
    calibration.write_text(json.dumps({"format": "rerank-calibration/1", "model": {"fingerprint": fingerprint}, "method": "platt", "parameters": {"a": 1.0, "b": 0.0}}))
    out = io.StringIO()
    argv = ["compare", "--local", "--cross-encoder", str(tiny_cross_encoder), "--calibration", f"cross={calibration}", "--format", "json"]
    assert rerank_main(argv, out=out) == 0
    report = json.loads(out.getvalue())
    gaps = [abs(d["cross_probability"] - d["embed_probability"]) for d in report["disagreements"]]
    assert gaps and gaps == sorted(gaps, reverse=True)
    assert all(0 < p < 1 for q in report["queries"] for p in q["cross_encoder_probabilities"] + q["embedding_probabilities"])
    table = io.StringIO()
    assert rerank_main([*argv[:-2], "--format", "table"], out=table) == 0
    assert "disagree most" in table.getvalue() and ", p=" in table.getvalue()
