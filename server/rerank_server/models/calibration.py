"""Calibrated scores: a model's raw score mapped to P(relevant), read from a file ``rerank calibrate`` wrote.

A calibration is a monotone map fitted on labelled pairs (Platt scaling: ``sigmoid(a * raw + b)``;
isotonic regression: a non-decreasing step function, interpolated linearly between its points). It is
fitted for one checkpoint: the file names the checkpoint's :func:`fingerprint`, and a file given to
another model is refused at start-up. Applying it needs only numpy; fitting it is the client's (with
scikit-learn), so a server never needs the fitting library.

The file (JSON) as this module reads it; ``rerank calibrate`` writes more (the data's size and hash,
quality figures) for people::

    {"format": "rerank-calibration/1", "model": {"name": ..., "fingerprint": "sha256:..."},
     "method": "platt", "parameters": {"a": 1.7, "b": -0.4}}
    {... "method": "isotonic", "parameters": {"x": [raw, ...], "y": [probability, ...]}}
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import Scores, sigmoid

FORMAT = "rerank-calibration/1"
# A calibration in a model's own directory is used without --calibration.
IN_MODEL_DIRECTORY = "rerank-calibration.json"
# Weight files up to this size are hashed whole; larger ones by evenly spaced samples (an 8B model's
# 16 GB would take half a minute to hash at every start, and any retrained checkpoint differs throughout).
_HASHED_WHOLE = 256 << 20
_SAMPLES, _SAMPLE_BYTES = 256, 64 << 10
_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


class CalibrationError(ValueError):
    """A calibration file cannot be used for the model it is given to; the message says why and the fix."""


def fingerprint(directory: Path) -> str:
    """``sha256:...`` of a checkpoint: its config.json and its weight files (name, size and content), so the
    same checkpoint has the same fingerprint on any device and at any precision, and any other has another."""
    digest = hashlib.sha256()
    config = directory / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    weights = sorted({p for pattern in _WEIGHTS for p in directory.glob(pattern) if p.is_file()})
    for path in weights:
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as handle:
            if size <= _HASHED_WHOLE:
                while block := handle.read(1 << 20):
                    digest.update(block)
            else:
                for k in range(_SAMPLES):
                    handle.seek((size - _SAMPLE_BYTES) * k // (_SAMPLES - 1))
                    digest.update(handle.read(_SAMPLE_BYTES))
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class Calibration:
    """A fitted map from a model's raw score (what NORMALIZATION_RAW reports) to P(relevant).

    Attributes:
        method: ``platt`` or ``isotonic``.
        parameters: ``a`` and ``b`` for Platt; the points ``x`` (raw, ascending) and ``y`` (probability,
            non-decreasing) for isotonic.
        fingerprint: the checkpoint it was fitted on.
        path: the file it was read from (for messages).
    """

    method: str
    parameters: dict[str, Any]
    fingerprint: str
    path: str = ""

    def apply(self, raw: Scores) -> Scores:
        """P(relevant) for each raw score; monotone, so a ranking by it is the ranking by ``raw``."""
        values = np.asarray(raw, dtype=np.float64)
        if self.method == "platt":
            return sigmoid(self.parameters["a"] * values + self.parameters["b"])
        # Outside the fitted range the end points hold (isotonic regression's out_of_bounds="clip").
        return np.interp(values, self.parameters["x"], self.parameters["y"]).astype(np.float32)

    @classmethod
    def read(cls, path: str | Path) -> Calibration:
        """The calibration in ``path``, checked; raises :class:`CalibrationError` naming what is wrong."""
        where = str(path)
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CalibrationError(f"cannot read the calibration {where}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise CalibrationError(f"the calibration {where} is not JSON ({exc}); make it with rerank calibrate") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise CalibrationError(f"{where} is not a calibration file (no \"format\": \"{FORMAT}\"); make one with rerank calibrate")
        method, parameters = document.get("method"), document.get("parameters")
        model = document.get("model")
        model = model if isinstance(model, dict) else {}
        fingerprint_ = model.get("fingerprint")
        if not isinstance(fingerprint_, str) or not fingerprint_:
            raise CalibrationError(f"the calibration {where} names no model fingerprint; make it again with rerank calibrate")
        if not isinstance(parameters, dict):
            raise CalibrationError(f"the calibration {where} has no parameters; make it again with rerank calibrate")
        try:
            checked = _checked(method, parameters)
        except (TypeError, ValueError, KeyError) as exc:
            raise CalibrationError(f"the calibration {where} is damaged ({exc}); make it again with rerank calibrate") from None
        return cls(str(method), checked, fingerprint_, where)

    def check_model(self, name: str, source: str, fingerprint_: str) -> None:
        """Refuse to serve this calibration for a checkpoint it was not fitted on."""
        if fingerprint_ != self.fingerprint:
            raise CalibrationError(
                f"the calibration {self.path} was fitted on another checkpoint than {name} ({source}): it names "
                f"{self.fingerprint[:19]}..., the model is {fingerprint_[:19]}...; calibrate this model with "
                f"rerank calibrate --target HOST:PORT --model {name} (or --local {source})"
            )


def _checked(method: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``method`` as numbers, or an error saying what is wrong with them."""
    if method == "platt":
        a, b = float(parameters["a"]), float(parameters["b"])
        if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
            raise ValueError(f"Platt's a must be a positive number and b a number, got a={a}, b={b}")
        return {"a": a, "b": b}
    if method == "isotonic":
        x, y = np.asarray(parameters["x"], dtype=np.float64), np.asarray(parameters["y"], dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
            raise ValueError("isotonic x and y must be lists of the same length, at least 2")
        if not (np.isfinite(x).all() and np.isfinite(y).all()) or (np.diff(x) < 0).any() or (np.diff(y) < 0).any():
            raise ValueError("isotonic x and y must be finite and non-decreasing")
        if y[0] < 0 or y[-1] > 1:
            raise ValueError("isotonic y are probabilities, in [0, 1]")
        return {"x": x, "y": y}
    raise ValueError(f"method {method!r} is unknown; platt and isotonic are")


def calibration_for(given: str | None, directory: Path, name: str, source: str, fingerprint_: str) -> Calibration | None:
    """The calibration a model is served with: the file given (``--calibration NAME=FILE``), else one in its
    directory (:data:`IN_MODEL_DIRECTORY`), else none; refused when fitted on another checkpoint."""
    if given is None:
        found = directory / IN_MODEL_DIRECTORY
        if not found.is_file():
            return None
        given = str(found)
    calibration = Calibration.read(given)
    calibration.check_model(name, source, fingerprint_)
    return calibration
