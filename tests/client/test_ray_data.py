"""The Ray Data adapter on a local Ray instance: ``read_parquet(...).map_batches(Rerank, ...)`` scores as the
server does, with the model in the actors or through a server on loopback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from rerank_client import RerankClient
from tests.server_harness import ServerThread

# Ray's processes talk over the loopback address (not the machine's own) in a test: what this variable
# does on a laptop, and what ``examples/ray_rerank.py --local-only`` sets too.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROWS = [{"query": f"question {i} about plants", "documents": [f"answer {i}.{j} on light and leaves" for j in range(1 + i % 4)], "key": i} for i in range(24)]


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path_factory.mktemp("ray") / "candidates.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    return str(path)


def _check(rows: list[dict[str, Any]], target: str) -> None:
    assert sorted(r["key"] for r in rows) == list(range(len(ROWS)))
    with RerankClient(target) as client:
        for row in rows:
            expected = client.rerank(row["query"], list(row["documents"]))
            assert [float(row["scores"][r.index]) for r in expected.results] == pytest.approx([r.score for r in expected.results], abs=1e-5)
            assert [int(row["ranks"][r.index]) for r in expected.results] == list(range(len(expected.results)))


def test_actors_holding_the_model_score_a_parquet_dataset(local_ray: Any, parquet: str, tiny_cross_encoder: Path, cross_scorer: Any) -> None:
    from rerank_client.ray_data import Rerank

    dataset = local_ray.data.read_parquet(parquet)
    scored = dataset.map_batches(Rerank, fn_constructor_kwargs={"model": str(tiny_cross_encoder), "dtype": "float32"}, concurrency=1, batch_size=8)
    with ServerThread([cross_scorer]) as server:  # the same checkpoint, served: what the rows must match
        _check(scored.take_all(), server.target)


def test_actors_sending_rows_to_a_fleet(local_ray: Any, parquet: str, cross_scorer: Any) -> None:
    from rerank_client.ray_data import Rerank

    with ServerThread([cross_scorer]) as server:
        dataset = local_ray.data.read_parquet(parquet)
        scored = dataset.map_batches(Rerank, fn_constructor_kwargs={"targets": [server.target]}, concurrency=1, batch_size=8)
        _check(scored.take_all(), server.target)


def test_rerank_needs_a_model_or_targets() -> None:
    from rerank_client.ray_data import Rerank

    with pytest.raises(ValueError, match="either model= .* or targets="):
        Rerank()
