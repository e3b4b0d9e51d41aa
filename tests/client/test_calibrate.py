"""``rerank calibrate``'s data and fitting: every bad input gets a clear error, the maps are monotone, and the
server applies exactly the map the client fitted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rerank_client.calibrate.fitting import FitError, check_labels, check_scores, fit, held_out, reliability
from rerank_client.calibrate.labels import LabelError, read_labelled
from rerank_server.models.calibration import Calibration, CalibrationError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "labelled-pairs.jsonl"


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_shipped_example_set_reads_as_a_few_hundred_pairs_over_several_topics() -> None:
    data = read_labelled(str(EXAMPLES))
    assert len(data.pairs) >= 300
    assert len({q for q, _ in data.pairs}) >= 30
    assert 0.2 < sum(data.relevant(1)) / len(data.pairs) < 0.6
    assert data.sha256.startswith("sha256:") and not data.graded


def test_jsonl_tsv_and_qrels_give_the_same_pairs(tmp_path: Path) -> None:
    one_a_line = _write(tmp_path, "a.jsonl", '{"query": "q1", "document": "d1", "label": 1}\n\n{"query": "q1", "document": "d2", "label": 0}\n')
    grouped = _write(tmp_path, "b.jsonl", '{"query": "q1", "documents": ["d1", "d2"], "labels": [1, 0]}\n')
    tsv = _write(tmp_path, "c.tsv", "query\tdocument\tlabel\nq1\td1\t1\nq1\td2\t0\n")
    queries = _write(tmp_path, "queries.jsonl", '{"_id": "7", "text": "q1"}\n')
    corpus = _write(tmp_path, "corpus.tsv", "a\td1\nb\td2\n")
    beir = _write(tmp_path, "qrels.tsv", "query-id\tcorpus-id\tscore\n7\ta\t1\n7\tb\t0\n")
    trec = _write(tmp_path, "qrels.txt", "7 0 a 1\n7 0 b 0\n")
    for path, extra in ((one_a_line, {}), (grouped, {}), (tsv, {}), (beir, {"queries": queries, "corpus": corpus}), (trec, {"queries": queries, "corpus": corpus})):
        data = read_labelled(path, **extra)
        assert data.pairs == [("q1", "d1"), ("q1", "d2")] and data.labels == [1.0, 0.0], path


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("x.jsonl", '{"query": "q", "document": "d", "label": "relevant"}\n', "x.jsonl:1: the label 'relevant' is not a number"),
        ("x.jsonl", '{"query": "q", "document": "d", "label": 1}\n{"query": "q", "document": "d"\n', "x.jsonl:2: not JSON"),
        ("x.jsonl", '{"query": "", "document": "d", "label": 1}\n', "x.jsonl:1: 'query' must be a non-empty string"),
        ("x.jsonl", '{"query": "q", "documents": ["a", "b"], "labels": [1]}\n', "'documents' and 'labels' must be lists of the same length"),
        ("x.tsv", "q\td\tyes\n", "x.tsv:1: the label 'yes' is not a number"),
        ("x.tsv", "q\td\n", "x.tsv:1: expected query<TAB>document<TAB>label, found 2 fields"),
        ("x.tsv", "q\td\t-1\n", "must be 0 or more"),
        ("x.csv", "q,d,1\n", "give labelled pairs as .jsonl or .tsv"),
    ],
)
def test_malformed_labels_are_refused_with_file_and_line(tmp_path: Path, name: str, text: str, expected: str) -> None:
    with pytest.raises(LabelError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        read_labelled(_write(tmp_path, name, text))


def test_qrels_naming_an_unknown_document_are_refused(tmp_path: Path) -> None:
    queries = _write(tmp_path, "q.tsv", "7\tq1\n")
    corpus = _write(tmp_path, "c.tsv", "a\td1\n")
    with pytest.raises(LabelError, match=r"qrels.txt:2: document 'zz' is not in"):
        read_labelled(_write(tmp_path, "qrels.txt", "7 0 a 1\n7 0 zz 0\n"), queries, corpus)
    with pytest.raises(LabelError, match="need both --queries and --corpus"):
        read_labelled(str(tmp_path / "qrels.txt"), queries, None)


def test_labels_of_one_class_or_too_few_are_refused_before_scoring() -> None:
    with pytest.raises(FitError, match="every pair is relevant"):
        check_labels([1] * 100, folds=5)
    with pytest.raises(FitError, match="every pair is not relevant.*lower --relevant-from"):
        check_labels([0] * 100, folds=5)
    with pytest.raises(FitError, match="20 labelled pairs are too few.*at least 50"):
        check_labels([0, 1] * 10, folds=5)
    with pytest.raises(FitError, match="only 3 pairs of one class"):
        check_labels([1] * 3 + [0] * 97, folds=5)


def test_scores_that_are_all_equal_or_not_finite_are_refused_not_mapped_to_a_constant() -> None:
    with pytest.raises(FitError, match="every pair scored 0.5: the model does not tell these pairs apart"):
        check_scores([0.5] * 60)
    with pytest.raises(FitError, match="non-finite scores"):
        check_scores([0.1, float("nan")] + [0.2] * 58)


def _synthetic(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Raw scores whose true P(relevant) is sigmoid(2 * raw - 1): a model that is confident on the wrong scale."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0.0, 2.0, n)
    relevant = (rng.random(n) < 1 / (1 + np.exp(-(2 * raw - 1)))).astype(int)
    return raw, relevant, [f"q{i // 8}" for i in range(n)]


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_fitted_map_is_monotone_and_better_calibrated_than_the_sigmoid_on_held_out_pairs(method: str) -> None:
    raw, relevant, queries = _synthetic()
    fitted = fit(raw, relevant, method)
    grid = np.linspace(raw.min() - 1, raw.max() + 1, 500)
    assert (np.diff(fitted.predict(grid)) >= 0).all()
    quality = held_out(raw, relevant, queries, method, folds=5)
    assert quality.after.ece <= 0.5 * quality.before.ece
    assert quality.after.brier < quality.before.brier
    if method == "platt":  # the true map is sigmoid(2 raw - 1)
        assert fitted.parameters["a"] == pytest.approx(2.0, rel=0.35) and fitted.parameters["b"] == pytest.approx(-1.0, abs=0.5)


def test_scores_that_go_against_the_labels_are_refused() -> None:
    raw, relevant, _ = _synthetic()
    with pytest.raises(FitError, match="go against the labels"):
        fit(-raw, relevant, "platt")


def test_expected_calibration_error_is_the_weighted_gap_of_each_bin() -> None:
    # Bin 0.2-0.3 holds 4 pairs predicted 0.25 with 1 relevant (gap 0); bin 0.9-1.0 holds 2 predicted 0.95, none relevant.
    figures = reliability([0.25] * 4 + [0.95] * 2, [1, 0, 0, 0, 0, 0])
    assert figures.ece == pytest.approx(2 / 6 * 0.95)
    assert figures.counts[2] == 4 and figures.counts[9] == 2
    assert figures.brier == pytest.approx((0.75**2 + 3 * 0.25**2 + 2 * 0.95**2) / 6)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_the_server_applies_exactly_the_map_the_client_fitted(tmp_path: Path, method: str) -> None:
    raw, relevant, _ = _synthetic()
    fitted = fit(raw, relevant, method)
    path = _write(tmp_path, "c.json", json.dumps({"format": "rerank-calibration/1", "model": {"fingerprint": "sha256:x"}, "method": method, "parameters": fitted.parameters}))
    probe = np.linspace(-9, 9, 101)
    served = Calibration.read(path).apply(probe.astype(np.float32))
    np.testing.assert_allclose(served, fitted.predict(probe.astype(np.float32)), atol=1e-6)


@pytest.mark.parametrize(
    "document, expected",
    [
        ("not json", "is not JSON"),
        ('{"format": "other"}', "is not a calibration file"),
        ('{"format": "rerank-calibration/1", "model": {}, "method": "platt", "parameters": {"a": 1, "b": 0}}', "names no model fingerprint"),
        ('{"format": "rerank-calibration/1", "model": {"fingerprint": "f"}, "method": "platt", "parameters": {"a": -1, "b": 0}}', "is damaged.*positive"),
        ('{"format": "rerank-calibration/1", "model": {"fingerprint": "f"}, "method": "isotonic", "parameters": {"x": [1, 0], "y": [0, 1]}}', "non-decreasing"),
        ('{"format": "rerank-calibration/1", "model": {"fingerprint": "f"}, "method": "beta", "parameters": {}}', "method 'beta' is unknown"),
    ],
)
def test_a_damaged_calibration_file_is_refused_with_the_fix(tmp_path: Path, document: str, expected: str) -> None:
    with pytest.raises(CalibrationError, match=expected + ".*" if "damaged" in expected else expected):
        Calibration.read(_write(tmp_path, "c.json", document))
    with pytest.raises(CalibrationError, match="rerank calibrate"):
        Calibration.read(_write(tmp_path, "c.json", document))
