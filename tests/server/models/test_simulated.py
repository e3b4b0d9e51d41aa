"""The simulated device (``--device sim:PROFILE``): the real request path, modelled device time, fixed scores."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rerank_client import RerankClient
from rerank_server.cli import config_from_args
from rerank_server.engine.settings import BatchingConfig
from rerank_server.models import load_scorer, parse_model_arg
from rerank_server.models.encoding import PaddedBatch
from rerank_server.models.simulated import PROFILES, SimulatedNetwork, parse_profile
from tests.server_harness import ServerThread


def test_profiles_by_name_or_by_numbers_and_bad_ones_name_the_fix() -> None:
    assert parse_profile("sim:h200-minilm") is PROFILES["h200-minilm"]
    profile = parse_profile("sim:20,4000")
    assert profile.seconds(250_000) == pytest.approx(0.020 + 1.0)  # 250,000 tokens a second after the fixed cost
    for bad in ("sim:", "sim:fast", "sim:1,2,3", "sim:-1,5"):
        with pytest.raises(ValueError, match="FIXED_MS,US_PER_1K_TOKENS"):
            parse_profile(bad)


def test_batches_run_one_at_a_time_and_score_the_same_input_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    import rerank_server.models.simulated as simulated

    network = SimulatedNetwork(parse_profile("sim:10,0"))
    ids = np.array([[101, 7, 8, 102, 0], [101, 9, 102, 0, 0]], dtype=np.int64)
    batch = PaddedBatch(ids, (ids > 0).astype(np.int64), None)
    first = network.fetch(network.forward(network.collate(batch)))
    assert first.shape == (2, 1) and first[0, 0] != first[1, 0]
    assert np.array_equal(first, network.forward(batch))
    inside, most, lock = [0], [0], threading.Lock()
    real_sleep = simulated.time.sleep

    def counted_sleep(seconds: float) -> None:  # the device's time, counting the batches in it at once
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        real_sleep(seconds)
        with lock:
            inside[0] -= 1

    monkeypatch.setattr(simulated.time, "sleep", counted_sleep)
    threads = [threading.Thread(target=network.forward, args=(batch,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1  # eight threads, one device


def test_a_server_on_a_simulated_device_serves_the_real_path(tiny_cross_encoder: Path) -> None:
    scorer = load_scorer(parse_model_arg(f"tiny-ce={tiny_cross_encoder}"), device="sim:0,0")
    assert (scorer.info.device, scorer.info.backend) == ("sim:0,0", "simulated")
    assert config_from_args(["--model", "bundled", "--device", "sim:null"]).batching.max_batch_size == 2048  # GPU batching
    with ServerThread([scorer], BatchingConfig.for_device("sim")) as running, RerankClient(running.target, timeout=30) as client:
        documents = ["the cat sat on the mat", "stocks fell sharply today", "a cat naps in the sun"]
        first = client.rerank("where is the cat?", documents)
        again = client.rerank("where is the cat?", list(reversed(documents)))
        models = client.list_models()
    scores: dict[str, Any] = {documents[r.index]: r.score for r in first.results}
    assert {documents[::-1][r.index]: r.score for r in again.results} == scores  # fixed per input, whatever the order
    assert len(set(scores.values())) == 3
    assert (models.models[0].device, models.models[0].backend) == ("sim:0,0", "simulated")


def test_one_queue_feeds_two_devices(tiny_cross_encoder: Path) -> None:
    """``--device sim:20,0,sim:20,0``: two simulated devices of 20 ms a batch behind one queue; while one
    runs a batch the next goes to the other."""
    import json
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from rerank_server.models.device import split_devices
    from tests.processes import ServerProcess, free_port

    assert split_devices("sim:20,0,sim:20,0") == ["sim:20,0", "sim:20,0"] and split_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
    metrics = free_port()
    flags = ("--model", f"tiny={tiny_cross_encoder}", "--device", "sim:20,0,sim:20,0", "--metrics-port", str(metrics))
    with ServerProcess(*flags) as server, RerankClient(server.target, timeout=60) as client:
        assert client.list_models().models[0].device == "sim:20,0,sim:20,0"

        def call(i: int) -> int:
            return len(client.rerank(f"query {i}", ["a cat", "a dog", "a bird"]).results)

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(call, range(48))) == [3] * 48
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10).read().decode()
    by_device = {line.split('device="')[1][0]: float(line.split()[-1]) for line in text.splitlines() if line.startswith("rerank_device_batches")}
    assert set(by_device) == {"0", "1"} and min(by_device.values()) >= 1, json.dumps(by_device)


def test_several_cpu_engines_in_one_server_are_refused_with_the_fix(tiny_cross_encoder: Path) -> None:
    from rerank_server.models import ModelLoadError, load_scorers

    for device in ("cpu,cpu", "sim:null,cpu"):
        with pytest.raises(ModelLoadError, match="taskset"):
            load_scorers(parse_model_arg(f"tiny={tiny_cross_encoder}"), device=device)
