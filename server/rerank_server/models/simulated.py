"""A simulated device: ``--device sim:PROFILE`` runs the real server, tokenizer, queue and batches, with a
network whose batches take a modelled time and return deterministic scores.

The time a batch takes is ``fixed_ms + us_per_1k_tokens * padded_tokens / 1000``, spent waiting without
holding the GIL (as a CUDA stream runs while the host goes on) and one batch at a time (one device).
Users load-test clients, proxies and autoscaling without hardware; CI measures the host path with it
(``sim:null``: no device time at all, so what is left is the host's own ceiling).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from .encoding import PaddedBatch
from .network import Rows

PREFIX = "sim:"


@dataclass(frozen=True)
class DeviceProfile:
    """How long a simulated batch takes: a fixed cost per batch plus a cost per 1,000 padded tokens."""

    name: str
    fixed_ms: float
    us_per_1k_tokens: float

    def seconds(self, padded_tokens: int) -> float:
        """The modelled time of one batch of ``padded_tokens``."""
        return self.fixed_ms / 1e3 + self.us_per_1k_tokens * (padded_tokens / 1000.0) / 1e6


# Named profiles, from measured figures. h200-minilm: MiniLM-L-6 shape, float16, forward only on an H200
# (issue 11's table, 114 tokens a pair): 2,280 pairs/s at 128-pair batches and 28,500 at 2,048, i.e.
# 56.1 ms for 14.6k padded tokens and 71.9 ms for 233.5k: 55 ms a batch plus 72 us per 1,000 tokens.
PROFILES = {
    "null": DeviceProfile("null", 0.0, 0.0),
    "h200-minilm": DeviceProfile("h200-minilm", 55.0, 72.0),
}


def is_simulated(device: str) -> bool:
    """Whether ``device`` names a simulated device (``sim:...``)."""
    return device.startswith(PREFIX)


def parse_profile(device: str) -> DeviceProfile:
    """The profile of ``sim:PROFILE``: a name in :data:`PROFILES` or ``FIXED_MS,US_PER_1K_TOKENS``."""
    spec = device[len(PREFIX) :].strip()
    if spec in PROFILES:
        return PROFILES[spec]
    parts = spec.split(",")
    try:
        fixed, per_1k = (float(p) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        fixed = per_1k = None
    if fixed is None or per_1k is None or fixed < 0 or per_1k < 0:
        raise ValueError(
            f"--device {device!r}: give sim:PROFILE with PROFILE one of {', '.join(PROFILES)}, or FIXED_MS,US_PER_1K_TOKENS "
            "(a fixed cost per batch in milliseconds and a cost per 1,000 padded tokens in microseconds), e.g. sim:20,4000"
        )
    return DeviceProfile(spec, fixed, per_1k)


class SimulatedNetwork:
    """A :class:`~.network.Network` on a simulated device: one batch at a time, taking the profile's time.

    Scores are a fixed function of each input's ids (the same input always scores the same, different
    inputs mostly differently), so clients can check what they get back.
    """

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        self._device = threading.Lock()  # one device: batches run one after another

    def collate(self, batch: PaddedBatch) -> PaddedBatch:
        """The padded batch as it is (nothing to copy to a simulated device)."""
        return batch

    def forward(self, batch: PaddedBatch) -> Rows:
        """Wait the batch's modelled time (the GIL is free meanwhile) and score it."""
        rows, width = batch.input_ids.shape
        seconds = self.profile.seconds(rows * width)
        if seconds > 0:  # (a sleep of nothing is still a system call, and the null device's batches are many)
            with self._device:
                time.sleep(seconds)
        weights = np.arange(1, width + 1, dtype=np.int64) % 13 + 1
        # One pass without temporaries (the same sums as (ids x mask x weights).sum(1)): a simulated GPU's
        # scores should cost the host next to nothing, as a real one's do; the temporaries took 1.8 ms a
        # batch of 2,048 x 128 (one pass: 0.14 ms), holding the GIL the engine loop needs.
        mixed = np.einsum("ij,ij,j->i", batch.input_ids, batch.attention_mask, weights)
        return ((mixed % 1009) / 100.0 - 5.0).astype(np.float32).reshape(rows, 1)

    def fetch(self, output: Rows) -> Rows:
        """The scores, a row per input."""
        return output
