"""How fast a model scores, estimated continuously from the batches it actually runs.

Admission refuses a request that cannot finish by its deadline, which needs the model's speed. One timing
at start-up is only as good as that moment: a busy machine at start-up would fix a wrong speed for the
life of the process. :class:`SpeedEstimate` fits ``seconds = fixed_s + tokens / tokens_per_s`` to every
batch's service time, weighting recent batches most, so it follows the machine as its load changes; the
start-up measurement only seeds it.
"""

from __future__ import annotations

import math

# Each batch's weight in the fit decays by this factor per later batch: about the last 20 batches count.
DECAY = 0.95
# A seed counts as this many batches' worth of evidence: real batches outweigh it within a few.
SEED_WEIGHT = 3.0
# One batch moves the estimate at most this many times its prediction: a stall (a pause of the process, a
# batch held up) nudges it, a machine that really got slower moves it within a few batches.
MAX_SURPRISE = 4.0
# Batch sizes must spread by at least this (coefficient of variation) before a fixed cost per batch is
# fitted; with batches of one size, a fixed part cannot be told from a per-token one.
MIN_SPREAD = 0.15


class SpeedEstimate:
    """The model's speed: a fixed cost per batch plus a cost per token, fitted by exponentially weighted
    least squares to (tokens, seconds) of the batches run.

    ``tokens`` are the items' own token counts (not padded), so the fit also absorbs the padding that
    batching leaves; ``seconds`` the batch's service time (its share of the model's time when batches
    overlap in a pipeline).
    """

    def __init__(self, tokens_per_s: float | None = None, seed_tokens: int = 1000, decay: float = DECAY) -> None:
        """``tokens_per_s``: a measured speed to start from (None: nothing known until the first batch),
        as if measured on batches of ``seed_tokens``."""
        if tokens_per_s is not None and tokens_per_s <= 0:
            raise ValueError(f"tokens_per_s must be positive, got {tokens_per_s}")
        self.decay = decay
        self._w = self._x = self._y = self._xx = self._xy = 0.0
        self.batches = 0
        if tokens_per_s is not None:
            self._add(float(seed_tokens), seed_tokens / tokens_per_s, SEED_WEIGHT)

    @property
    def known(self) -> bool:
        """Whether there is anything to estimate from (a seed or a batch)."""
        return self._w > 0

    def observe(self, tokens: int, seconds: float) -> None:
        """Account for one batch of ``tokens`` that took ``seconds`` of the model's time."""
        if tokens <= 0 or not math.isfinite(seconds) or seconds <= 0:
            return
        if self.known:
            seconds = min(seconds, MAX_SURPRISE * self.seconds(tokens))
        self._w *= self.decay
        self._x *= self.decay
        self._y *= self.decay
        self._xx *= self.decay
        self._xy *= self.decay
        self._add(float(tokens), seconds, 1.0)
        self.batches += 1

    def _add(self, x: float, y: float, weight: float) -> None:
        self._w += weight
        self._x += weight * x
        self._y += weight * y
        self._xx += weight * x * x
        self._xy += weight * x * y

    def _fit(self) -> tuple[float, float]:
        """(fixed seconds per batch, seconds per token)."""
        if self._w <= 0:
            return 0.0, 0.0
        mean_x, mean_y = self._x / self._w, self._y / self._w
        var_x = self._xx / self._w - mean_x * mean_x
        if var_x > (MIN_SPREAD * mean_x) ** 2:
            slope = (self._xy / self._w - mean_x * mean_y) / var_x
            fixed = mean_y - slope * mean_x
            if slope > 0 and fixed >= 0:
                return fixed, slope
        return 0.0, mean_y / mean_x if mean_x > 0 else 0.0  # one size of batch: all of it per token

    @property
    def tokens_per_s(self) -> float | None:
        """Tokens a second in full batches of the sizes seen; None before anything was measured."""
        if not self.known:
            return None
        fixed, per_token = self._fit()
        mean_x = self._x / self._w
        seconds = fixed + per_token * mean_x
        return mean_x / seconds if seconds > 0 else None

    def seconds(self, tokens: int, batches: int = 1) -> float:
        """How long the model takes for ``tokens`` in ``batches`` batches (0 while nothing is known)."""
        if tokens <= 0:
            return 0.0
        fixed, per_token = self._fit()
        return fixed * max(1, batches) + per_token * tokens
