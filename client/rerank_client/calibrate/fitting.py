"""Fitting a monotone map from raw score to P(relevant), and measuring how well calibrated scores are.

The maps are scikit-learn's (``pip install '.[calibrate]'``): Platt scaling is a one-feature logistic
regression, ``sigmoid(a * raw + b)``; isotonic regression a non-decreasing step function. Quality is
measured honestly: each pair's calibrated probability comes from a map fitted without its query (k folds
grouped by query, stratified by label), against the sigmoid of the raw score that users reach for today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

MIN_PAIRS = 50  # fewer cannot fit, and evaluate on held-out folds, anything worth serving
MIN_PER_CLASS = 10
BINS = 10  # equal-width probability bins of the expected calibration error and the reliability diagram
METHODS = ("platt", "isotonic")


class FitError(ValueError):
    """The data cannot give a calibration; the message names the problem and the fix."""


def _sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise FitError("rerank calibrate fits with scikit-learn: pip install '.[calibrate]' in the rerank-grpc checkout") from None
    return sklearn


def check_labels(relevant: ArrayLike, folds: int) -> None:
    """Refuse labels a calibration cannot honestly be fitted on (checked before any pair is scored)."""
    labels = np.asarray(relevant)
    if len(labels) < MIN_PAIRS:
        raise FitError(f"{len(labels)} labelled pairs are too few to fit and evaluate a calibration; give at least {MIN_PAIRS}")
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        which = "relevant" if positives else "not relevant"
        raise FitError(
            f"every pair is {which}: a calibration needs relevant and non-relevant pairs (add judged pairs of the other "
            "kind, or lower --relevant-from for graded labels)"
        )
    fewest = min(positives, len(labels) - positives)
    if fewest < max(MIN_PER_CLASS, folds):
        raise FitError(f"only {fewest} pairs of one class; give at least {max(MIN_PER_CLASS, folds)} relevant and non-relevant pairs each")


def check_scores(raw: ArrayLike) -> None:
    """Refuse scores no map can be fitted on: non-finite, or all equal."""
    scores = np.asarray(raw, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise FitError("the model returned non-finite scores for some pairs; check the model (a float16 overflow?)")
    if float(np.ptp(scores)) == 0.0:
        raise FitError(
            f"every pair scored {scores[0]:g}: the model does not tell these pairs apart, so no map can; check that "
            "the model is a reranker (not an untrained head) and that the documents differ"
        )


@dataclass(frozen=True)
class FittedMap:
    """A fitted map: what the calibration file stores, and its probabilities for raw scores."""

    method: str
    parameters: dict[str, Any]

    def predict(self, raw: ArrayLike) -> np.ndarray:
        """P(relevant) for each raw score, exactly as the server applies the map."""
        values = np.asarray(raw, dtype=np.float64)
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.parameters["a"] * values + self.parameters["b"])))
        return np.interp(values, self.parameters["x"], self.parameters["y"])


def fit(raw: ArrayLike, relevant: ArrayLike, method: str) -> FittedMap:
    """Fit ``method`` (``platt`` or ``isotonic``) on raw scores and 0/1 relevance."""
    _sklearn()
    x, y = np.asarray(raw, dtype=np.float64), np.asarray(relevant, dtype=np.int64)
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        # Almost no regularization: Platt scaling is the maximum-likelihood fit of a and b.
        model = LogisticRegression(C=1e6, max_iter=1000).fit(x.reshape(-1, 1), y)
        a, b = float(model.coef_[0][0]), float(model.intercept_[0])
        if a <= 0:
            raise FitError(
                "the model's scores go against the labels (higher scores are less often relevant): check that the labels "
                "mean relevance and that the model is a reranker for this data"
            )
        return FittedMap("platt", {"a": a, "b": b})
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(x, y)
        xs, ys = model.X_thresholds_.tolist(), model.y_thresholds_.tolist()
        if len(xs) < 2 or ys[0] == ys[-1]:
            raise FitError("the scores carry no information about relevance here (the isotonic fit is flat); check the model and the labels")
        return FittedMap("isotonic", {"x": xs, "y": ys})
    raise FitError(f"method {method!r} is unknown; use {' or '.join(METHODS)}")


def sigmoid(raw: ArrayLike) -> np.ndarray:
    """What users threshold without a calibration: the logistic sigmoid of the raw score."""
    return 1.0 / (1.0 + np.exp(-np.asarray(raw, dtype=np.float64)))


@dataclass(frozen=True)
class Reliability:
    """How well probabilities match outcomes: expected calibration error, Brier score, and per bin the
    pairs, mean probability and fraction relevant (the reliability diagram)."""

    ece: float
    brier: float
    counts: list[int]
    predicted: list[float]
    observed: list[float]

    def as_dict(self) -> dict[str, float]:
        """The two figures, for the calibration file and the JSON report."""
        return {"ece": round(self.ece, 5), "brier": round(self.brier, 5)}


def reliability(probabilities: ArrayLike, relevant: ArrayLike, bins: int = BINS) -> Reliability:
    """:class:`Reliability` of ``probabilities`` against 0/1 ``relevant`` over ``bins`` equal-width bins."""
    from sklearn.metrics import brier_score_loss

    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(relevant, dtype=np.float64)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    sums_p, sums_y = np.bincount(index, p, bins), np.bincount(index, y, bins)
    filled = counts > 0
    predicted = np.divide(sums_p, counts, out=np.zeros(bins), where=filled)
    observed = np.divide(sums_y, counts, out=np.zeros(bins), where=filled)
    ece = float(np.sum(counts[filled] * np.abs(predicted[filled] - observed[filled])) / len(p))
    return Reliability(ece, float(brier_score_loss(y, p)), counts.tolist(), predicted.tolist(), observed.tolist())


@dataclass(frozen=True)
class Quality:
    """Held-out quality of a method on the data: the sigmoid's and the calibration's reliability."""

    evaluation: str
    before: Reliability  # the sigmoid of the raw score
    after: Reliability  # calibrated, each pair by a map fitted without its query


def held_out(raw: ArrayLike, relevant: ArrayLike, queries: ArrayLike, method: str, folds: int) -> Quality:
    """Out-of-fold calibrated probabilities (``folds`` folds, a query's pairs never split across the map
    that scores them and the data it was fitted on) and their :class:`Reliability` against the sigmoid's."""
    _sklearn()
    from sklearn.model_selection import StratifiedGroupKFold

    x, y = np.asarray(raw, dtype=np.float64), np.asarray(relevant, dtype=np.int64)
    groups = np.unique(np.asarray(queries, dtype=object), return_inverse=True)[1]
    if len(set(groups.tolist())) < folds:
        raise FitError(f"{len(set(groups.tolist()))} distinct queries are too few for {folds} folds; give more queries or fewer --folds")
    out = np.empty(len(x))
    for train, test in StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0).split(x, y, groups):
        if len(set(y[train].tolist())) < 2:
            raise FitError("a fold's training pairs are all of one class; give more queries of each kind or fewer --folds")
        out[test] = fit(x[train], y[train], method).predict(x[test])
    return Quality(f"{folds}-fold cross-validation, folds by query", reliability(sigmoid(x), y), reliability(out, y))
