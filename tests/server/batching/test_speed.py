"""The model's speed as a running estimate: seeded at start-up, then following the batches it runs."""

from __future__ import annotations

import pytest

from rerank_server.batching import SpeedEstimate


def test_a_busy_start_up_does_not_fix_the_speed_for_the_life_of_the_process() -> None:
    speed = SpeedEstimate(tokens_per_s=1_000.0, seed_tokens=2_000)  # measured on a busy machine: 10x too slow
    for _ in range(80):
        speed.observe(2_000, 0.2)  # the batches it then runs: 10,000 tokens a second
    assert speed.tokens_per_s == pytest.approx(10_000, rel=0.1)
    for _ in range(80):
        speed.observe(2_000, 1.0)  # the machine gets busy: it follows, a few times its guess a batch
    assert speed.tokens_per_s == pytest.approx(2_000, rel=0.1)


def test_a_fixed_cost_per_batch_is_told_from_a_cost_per_token() -> None:
    speed = SpeedEstimate()
    for tokens in (1_000, 50_000, 200_000, 10_000) * 10:
        speed.observe(tokens, 0.020 + tokens / 250_000)  # a GPU-like 20 ms a batch and 250,000 tokens a second
    assert speed.seconds(250_000, batches=1) == pytest.approx(1.020, rel=0.01)
    assert speed.seconds(250_000, batches=10) == pytest.approx(1.200, rel=0.01)


def test_one_stalled_batch_moves_the_estimate_only_a_little() -> None:
    speed = SpeedEstimate(tokens_per_s=10_000.0)
    for _ in range(10):
        speed.observe(1_000, 0.1)
    speed.observe(1_000, 60.0)  # the process was paused for a minute
    assert speed.seconds(10_000) < 1.5  # not 600 s: the queue is not closed for the next half hour


def test_nothing_known_means_no_estimate() -> None:
    speed = SpeedEstimate()
    assert not speed.known and speed.tokens_per_s is None and speed.seconds(10_000) == 0.0
