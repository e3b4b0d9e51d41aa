"""rerank compare: rankings side by side, agreement measures, and explained differences."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from rerank_client.cli import main
from rerank_client.compare.analysis import QueryComparison, lexical_overlap, spearman
from rerank_client.compare.sources import load_examples
from tests.server_harness import ServerThread


def test_spearman_and_overlap() -> None:
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [5, 5, 9]) == pytest.approx(1.0)  # ties share a rank
    assert lexical_overlap("how do plants make food", "Plants make sugar") == pytest.approx(2 / 3)


def test_differences_name_their_evidence() -> None:
    c = QueryComparison(
        query="how do plants turn sunlight into food",
        documents=["photosynthesis stores light as sugar", "the sunlight food festival had plants", "x " * 600],
        cross_scores=[5.0, 1.0, 0.5],
        embed_scores=[0.4, 0.7, 0.1],
        tokens=[12, 11, 512],
        truncated=[False, False, True],
        max_length=512,
        top_k=2,
    )
    c.explain()
    assert c.cross_order[:2] == [0, 1] and c.embed_order[:2] == [1, 0]
    assert c.top_overlap == 2 and [d.rank for d in c.differences] == [1, 2]
    first = c.differences[0]
    assert first.cross_pick.index == 0 and first.embed_pick.index == 1
    assert first.cross_margin == pytest.approx(4.0) and first.embed_margin == pytest.approx(0.3)
    assert any("shares more of the query's words" in r for r in first.reasons)


def test_shipped_example_has_ten_pairs() -> None:
    queries = load_examples(None)
    assert sum(len(q["documents"]) for q in queries) == 10 and len(queries) >= 3


def test_compare_through_a_server_and_locally(cross_scorer: Any, bi_scorer: Any, tiny_cross_encoder: Path) -> None:
    with ServerThread([cross_scorer, bi_scorer]) as running:
        out = io.StringIO()
        assert main(["compare", "--target", running.target, "--format", "json"], out=out) == 0
        served = json.loads(out.getvalue())
        table = io.StringIO()
        assert main(["compare", "--target", running.target, "--cross-encoder", "tiny-ce"], out=table) == 0
        md = io.StringIO()
        assert main(["compare", "--target", running.target, "--format", "markdown"], out=md) == 0
    assert served["cross_encoder"] == "tiny-ce" and len(served["queries"]) == 3
    for q in served["queries"]:
        assert len(q["cross_encoder_top"]) == 3 and -1.0 <= q["spearman"] <= 1.0
        for d in q["differences"]:
            assert {"lexical_overlap", "tokens", "truncated"} <= set(d["cross_pick"])
    assert "Spearman" in table.getvalue() and "top-3 overlap" in table.getvalue()
    assert md.getvalue().startswith("### ")
    local = io.StringIO()
    assert main(["compare", "--local", "--cross-encoder", str(tiny_cross_encoder), "--format", "json"], out=local) == 0
    local_scores = [q["cross_encoder_top"] for q in json.loads(local.getvalue())["queries"]]
    served_scores = [q["cross_encoder_top"] for q in served["queries"]]
    for a, b in zip(local_scores, served_scores):  # the same model gives the same ranking either way
        assert [x["index"] for x in a] == [x["index"] for x in b]


def test_compare_needs_one_source() -> None:
    with pytest.raises(SystemExit, match="either --target"):
        main(["compare"])


def test_compare_local_with_a_model_that_cannot_be_had_offline_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as info:
        main(["compare", "--local", "--cross-encoder", "nobody/no-such-reranker"])
    message = str(info.value)
    assert "\n" not in message and "--cross-encoder DIR" in message and "nobody/no-such-reranker" in message


def test_compare_and_loadtest_take_the_connection_flags_rank_takes(cross_scorer: Any, bi_scorer: Any, tmp_path: Path) -> None:
    """A server with a bearer token: compare and loadtest reach it with --token, as rank does."""
    from rerank_server.service.settings import SecurityConfig
    from tests.processes import run_cli

    tokens = tmp_path / "tokens"
    tokens.write_text("sesame\n")
    with ServerThread([cross_scorer, bi_scorer], security=SecurityConfig(auth_token_file=str(tokens))) as running:
        assert main(["compare", "--target", running.target, "--token", "sesame"], out=io.StringIO()) == 0
        with pytest.raises(SystemExit, match="UNAUTHENTICATED"):
            main(["compare", "--target", running.target])
        done = run_cli("rerank", "loadtest", "--target", running.target, "--token", "sesame", "--requests", "4", "--documents", "2", "--quiet")
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr
