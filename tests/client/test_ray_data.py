"""The Ray Data adapter on a local Ray instance: ``read_parquet(...).map_batches(Rerank, ...)`` scores as the
server does, with the model in the actors or through a server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rerank_client import RerankClient
from tests.processes import offline_env
from tests.server_harness import ServerThread

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ray_rerank.py"

# Ray's processes talk over the loopback address (not the machine's own) in a test: what this variable
# does on a laptop, and what ``examples/ray_rerank.py --local-only`` sets too.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROWS = [{"query": f"question {i} about plants", "documents": [f"answer {i}.{j} on light and leaves" for j in range(1 + i % 4)], "key": i} for i in range(24)]


def test_the_documented_example_runs_on_a_local_ray_instance(tmp_path: Path) -> None:
    """examples/ray_rerank.py as the README runs it (the bundled model, the shipped example set); first in
    this file, so that its own Ray instance is the only one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "scored"
    done = subprocess.run([sys.executable, str(EXAMPLE), "--output", str(out)], capture_output=True, text=True, timeout=600, env=offline_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scored 40 records into" in done.stdout
    table = pq.read_table(out)
    assert table.num_rows == 40
    assert pa.types.is_list(table.schema.field("scores").type) and pa.types.is_list(table.schema.field("documents").type)
    for row in table.to_pylist():
        assert len(row["scores"]) == len(row["documents"]) == len(row["labels"])
        order = sorted(range(len(row["scores"])), key=lambda i: -row["scores"][i])
        assert [row["ranks"][i] for i in order] == list(range(len(order)))  # ranks follow the scores


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


def test_one_pair_a_row_through_a_fleet(local_ray: Any, cross_scorer: Any) -> None:
    from rerank_client.ray_data import Rerank

    pairs = [{"query": f"question {i}", "document": f"answer {i} about leaves", "n": i} for i in range(20)]
    with ServerThread([cross_scorer]) as server:
        scored = local_ray.data.from_items(pairs).map_batches(Rerank, fn_constructor_kwargs={"targets": [server.target]}, concurrency=1, batch_size=7)
        rows = sorted(scored.take_all(), key=lambda r: r["n"])
        with RerankClient(server.target) as client:
            expected = client.score([(p["query"], p["document"]) for p in pairs]).scores
    assert [r["score"] for r in rows] == pytest.approx(expected, abs=1e-5)
    assert [r["n"] for r in rows] == list(range(20))


def test_rerank_needs_a_model_or_targets() -> None:
    from rerank_client.ray_data import Rerank

    with pytest.raises(ValueError, match="either model= .* or targets="):
        Rerank()
