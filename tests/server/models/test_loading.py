"""Turning --model arguments into loaded scorers, and refusing clearly when that cannot work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank_server.models.inprocess import plan_text_rerank, score_text_pairs
from rerank_server.models import ModelKind, ModelLoadError, load_scorer, parse_model_arg
from rerank_server.models import bundled
from rerank_server.models.loading import detect_kind


@pytest.mark.parametrize(
    ("arg", "name", "source", "kind"),
    [
        ("ms=cross-encoder/ms-marco-MiniLM-L-6-v2", "ms", "cross-encoder/ms-marco-MiniLM-L-6-v2", None),
        ("BAAI/bge-reranker-base", "BAAI/bge-reranker-base", "BAAI/bge-reranker-base", None),
        ("mini=bi-encoder:/models/mini", "mini", "/models/mini", ModelKind.BI_ENCODER),
        ("x=cross-encoder:/m/", "x", "/m/", ModelKind.CROSS_ENCODER),
        ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "all-MiniLM-L6-v2", None),
        ("bundled", "all-MiniLM-L6-v2", "bundled", None),
    ],
)
def test_parse_model_arg(arg: str, name: str, source: str, kind: ModelKind | None) -> None:
    spec = parse_model_arg(arg)
    assert (spec.name, spec.source, spec.kind) == (name, source, kind)


def test_parse_model_arg_needs_a_source() -> None:
    with pytest.raises(ValueError, match="NAME=SOURCE"):
        parse_model_arg("name=")


def test_kind_is_detected_from_the_files(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    assert detect_kind(tiny_cross_encoder) is ModelKind.CROSS_ENCODER
    assert detect_kind(bundled.bundled_model_dir()) is ModelKind.BI_ENCODER
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(ModelLoadError, match="bi-encoder:SOURCE"):
        detect_kind(tmp_path)


def test_bundled_weights_must_match_the_official_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bundled.sha256_of(bundled.bundled_model_dir(verify=False) / "model.safetensors") == bundled.OFFICIAL_SHA256
    monkeypatch.setattr(bundled, "OFFICIAL_SHA256", "0" * 64)
    with pytest.raises(ModelLoadError, match="refusing to serve it"):
        load_scorer(parse_model_arg("all-MiniLM-L6-v2"), device="cpu")


def test_unloadable_sources_raise_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_scorer(parse_model_arg("x=./not-here"), device="cpu")
    file = tmp_path / "weights.bin"
    file.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_scorer(parse_model_arg(f"x={file}"), device="cpu")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    with pytest.raises(ModelLoadError, match="cannot load .* as a cross-encoder"):
        load_scorer(parse_model_arg(f"x={tmp_path / 'broken'}"), device="cpu")


def test_bad_device_and_dtype_name_the_flag(tiny_cross_encoder: Path) -> None:
    with pytest.raises(ModelLoadError, match="--dtype 'float8'"):
        load_scorer(parse_model_arg(f"x={tiny_cross_encoder}"), device="cpu", dtype="float8")
    with pytest.raises(ModelLoadError, match="--device cuda"):
        load_scorer(parse_model_arg(f"x={tiny_cross_encoder}"), device="cuda")


def test_hub_model_not_cached_fails_at_once_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="hf download cross-encoder/ms-marco-MiniLM-L-6-v2"):
        load_scorer(parse_model_arg("cross-encoder/ms-marco-MiniLM-L-6-v2"), device="cpu")


def test_an_xlm_roberta_reranker_loads_the_same_way(tmp_path: Path) -> None:
    """bge-reranker-base/large are XLMRobertaForSequenceClassification; build a tiny one and serve it."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(bundled.bundled_model_dir(verify=False)))
    config = XLMRobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=520,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    XLMRobertaForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    scorer = load_scorer(parse_model_arg(f"bge-like={tmp_path}"), device="cpu")
    assert scorer.info.kind is ModelKind.CROSS_ENCODER
    plan = plan_text_rerank(scorer, "a query", ["one document", "another document"])
    assert len(scorer.run_batch(plan.items)) == 2


def test_precisions(tiny_cross_encoder: Path) -> None:
    from rerank_server.models.device import cpu_has_fast_bf16, resolve_precision

    auto = resolve_precision("auto", "cpu")
    assert auto.name == ("bfloat16" if cpu_has_fast_bf16() else "float32")
    assert resolve_precision("auto", "cuda").name == "float16"
    with pytest.raises(ValueError, match="CPU only"):
        resolve_precision("int8", "cuda")
    pairs = [("a query about plants", "plants turn light into sugar"), ("a query", "another text")]
    reference = load_scorer(parse_model_arg(f"x={tiny_cross_encoder}"), device="cpu", dtype="float32")
    for dtype in ("bfloat16", "int8"):
        scorer = load_scorer(parse_model_arg(f"x={tiny_cross_encoder}"), device="cpu", dtype=dtype)
        assert scorer.info.dtype == dtype
        got = score_text_pairs(scorer, pairs)
        assert got == pytest.approx(score_text_pairs(reference, pairs), abs=0.05)
