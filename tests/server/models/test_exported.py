"""Cross-encoders run by ONNX Runtime and OpenVINO (--backend): same scores as torch, same loading path."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rerank_client import RerankClient
from rerank_server.models.device import cpu_has_fast_bf16
from rerank_server.models.inprocess import plan_text_pairs, score_text_pairs
from rerank_server.models import ModelLoadError, Normalization, load_scorer, parse_model_arg
from tests.server_harness import ServerThread

# Lengths from a few tokens to past the tiny model's max_seq_length (truncated), in one padded batch.
PAIRS = [(f"what does the {w} do", f"the {w} " + "sits on the mat and looks around " * n) for n, w in enumerate(["cat", "dog", "owl", "fox", "cow", "elk"] * 3)]


def _scores(scorer: Any, pairs: list[tuple[str, str]] = PAIRS) -> np.ndarray:
    return np.asarray(score_text_pairs(scorer, pairs), dtype=np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_float32_graphs_score_as_torch_does(backend: str, tiny_cross_encoder: Path, cross_scorer: Any) -> None:
    scorer = load_scorer(parse_model_arg(f"tiny={tiny_cross_encoder}"), device="auto", dtype="float32", backend=backend)
    assert (scorer.info.backend, scorer.info.dtype, scorer.info.device) == (backend, "float32", "cpu")
    # torch's copy of the weights is released once the runtime holds its own.
    assert {p.device.type for p in scorer.model[0].model.parameters()} == {"meta"}
    assert any(plan_text_pairs(cross_scorer, PAIRS).truncated), "the pairs should include one past max_seq_length"
    np.testing.assert_allclose(_scores(scorer), _scores(cross_scorer), atol=1e-4)
    # A pair scores the same alone as padded inside a batch.
    np.testing.assert_allclose(_scores(scorer, PAIRS[:1]), _scores(scorer)[:1], atol=1e-4)


@pytest.mark.slow
def test_the_models_own_activation_still_applies(tiny_sigmoid_cross_encoder: Path, sigmoid_scorer: Any) -> None:
    scorer = load_scorer(parse_model_arg(f"s={tiny_sigmoid_cross_encoder}"), dtype="float32", backend="onnx")
    raw = scorer.normalize(np.asarray(_scores(scorer), dtype=np.float32), Normalization.RAW)
    expected = sigmoid_scorer.normalize(np.asarray(_scores(sigmoid_scorer), dtype=np.float32), Normalization.RAW)
    assert np.all((raw > 0) & (raw < 1))
    np.testing.assert_allclose(raw, expected, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "dtype"), [("onnx", "int8"), ("openvino", "bfloat16"), ("openvino", "int8")])
def test_low_precision_graphs_stay_close_to_float32(backend: str, dtype: str, tiny_cross_encoder: Path, cross_scorer: Any) -> None:
    if dtype == "bfloat16" and not cpu_has_fast_bf16():
        # OpenVINO takes the hint on any CPU and runs float32 where bf16 is not native: refused, saying so.
        with pytest.raises(ModelLoadError, match="needs a CPU that computes bfloat16 .*use --dtype auto, float32 or int8"):
            load_scorer(parse_model_arg(f"tiny={tiny_cross_encoder}"), dtype=dtype, backend=backend)
        return
    scorer = load_scorer(parse_model_arg(f"tiny={tiny_cross_encoder}"), dtype=dtype, backend=backend)
    assert scorer.info.dtype == dtype
    low, ref = _scores(scorer), _scores(cross_scorer)
    assert not np.allclose(low, ref, atol=1e-6), "a quantized or bf16 graph should not be float32 in disguise"
    # The tiny random model's scores sit within ~0.01 of each other, too close for a rank check; the
    # benchmark judges rankings on the real-size model. A wrongly wired graph is off by ~1 (seen).
    np.testing.assert_allclose(low, ref, atol=0.05)


@pytest.mark.slow
def test_a_shipped_onnx_file_is_used_instead_of_exporting(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    """Hub rerankers ship onnx/model.onnx: the server runs that file, as sentence-transformers would."""
    from rerank_server.models.exported import export_onnx
    from tests.models_for_tests import build_tiny_cross_encoder

    other_dir = build_tiny_cross_encoder(tmp_path / "other", seed=7)
    other = load_scorer(parse_model_arg(f"other={other_dir}"), dtype="float32")
    # Ship the other model's graph inside a copy of the tiny model: its scores must come out.
    import shutil

    shipped = Path(shutil.copytree(tiny_cross_encoder, tmp_path / "with-onnx"))
    (shipped / "onnx").mkdir()
    export_onnx(other.model[0].model, other.model.tokenizer, shipped / "onnx" / "model.onnx")
    scorer = load_scorer(parse_model_arg(f"tiny={shipped}"), dtype="float32", backend="onnx")
    np.testing.assert_allclose(_scores(scorer), _scores(other), atol=1e-4)
    # Quantizing a shipped graph writes nothing next to it (a hub cache or mounted volume may be read-only).
    before = sorted(p.name for p in shipped.rglob("*"))
    quantized = load_scorer(parse_model_arg(f"tiny={shipped}"), dtype="int8", backend="onnx")
    np.testing.assert_allclose(_scores(quantized), _scores(other), atol=0.05)
    assert sorted(p.name for p in shipped.rglob("*")) == before


def test_backend_refusals_name_the_fix(tiny_cross_encoder: Path) -> None:
    spec = parse_model_arg(f"tiny={tiny_cross_encoder}")
    with pytest.raises(ModelLoadError, match="runs float32 or int8, not --dtype bfloat16"):
        load_scorer(spec, dtype="bfloat16", backend="onnx")
    with pytest.raises(ModelLoadError, match="runs on the CPU; give --device cpu, or --backend torch"):
        load_scorer(spec, device="cuda", backend="openvino")
    with pytest.raises(ModelLoadError, match="serves cross-encoders; serve the bi-encoder .* with --backend torch"):
        load_scorer(parse_model_arg("all-MiniLM-L6-v2"), backend="onnx")


def test_a_missing_runtime_names_the_extra_to_install(tiny_cross_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an environment without it gives on import
    with pytest.raises(ModelLoadError, match=r"pip install '\.\[onnx\]' in the rerank-grpc checkout"):
        load_scorer(parse_model_arg(f"tiny={tiny_cross_encoder}"), dtype="float32", backend="onnx")


@pytest.mark.slow
def test_served_over_grpc_with_the_backend_reported(tiny_cross_encoder: Path, cross_scorer: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rerank_server.models.exported"):
        scorer = load_scorer(parse_model_arg(f"tiny-ov={tiny_cross_encoder}"), dtype="float32", backend="openvino")
    assert "exported from torch" in caplog.text
    docs = [d for _, d in PAIRS[:6]]
    with ServerThread([scorer]) as running, RerankClient(running.target) as client:
        (info,) = client.list_models().models
        assert (info.backend, info.dtype) == ("openvino", "float32")
        result = client.rerank(PAIRS[0][0], docs)
    expected = _scores(cross_scorer, [(PAIRS[0][0], d) for d in docs])
    assert [r.index for r in result.results] == list(np.argsort(-expected, kind="stable"))


@pytest.mark.slow
def test_the_flag_and_its_environment_variable_reach_the_model(tiny_cross_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.processes import ServerProcess

    monkeypatch.setenv("RERANK_BACKEND", "onnx")
    with ServerProcess("--model", f"tiny={tiny_cross_encoder}", "--dtype", "int8") as server, RerankClient(server.target) as client:
        (info,) = client.list_models().models
        assert (info.backend, info.dtype, info.batching.max_batch_size) == ("onnx", "int8", 16)
        assert len(client.rerank("a query", ["one document", "another one"]).results) == 2
    monkeypatch.delenv("RERANK_BACKEND")
    with ServerProcess("--model", f"tiny={tiny_cross_encoder}", "--backend", "openvino", "--dtype", "float32") as server, RerankClient(server.target) as client:
        assert client.list_models().models[0].backend == "openvino"


@pytest.mark.slow
def test_int8_leaves_the_scoring_head_in_float(tmp_path: Path, cross_scorer: Any) -> None:
    import onnx

    from rerank_server.models.exported import export_onnx, onnx_graph

    export_onnx(cross_scorer.model[0].model, cross_scorer.model.tokenizer, tmp_path / "model.onnx")
    onnx_graph(tmp_path / "model.onnx", tmp_path / "int8.onnx")
    nodes = onnx.load(str(tmp_path / "int8.onnx")).graph.node
    quantized = {n.name for n in nodes if n.op_type == "MatMulInteger"}
    assert any("/encoder/" in name for name in quantized)
    assert not any("classifier" in name or "pooler" in name for name in quantized)
    assert any(n.op_type in ("Gemm", "MatMul") and n.name.startswith("/classifier") for n in nodes)
