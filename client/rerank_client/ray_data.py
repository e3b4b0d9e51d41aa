"""Reranking a Ray Dataset: ``ds.map_batches(Rerank, ...)`` on a Ray cluster (``pip install '.[ray]'``).

Each actor holds the engine once (the model loaded in the actor's process, on its CPU or GPU), or a
channel to a fleet of rerank-servers; every row of a batch is sent at once, so the engine (or each
server) batches them together::

    import ray
    from rerank_client.ray_data import Rerank

    ds = ray.data.read_parquet("s3://bucket/candidates/")  # rows: query, documents (a list)
    scored = ds.map_batches(Rerank, fn_constructor_kwargs={"model": "cross-encoder/ms-marco-MiniLM-L-6-v2"},
                            concurrency=4, num_gpus=1, batch_size=64)
    # or through servers: fn_constructor_kwargs={"targets": ["10.0.0.5:50051", "10.0.0.6:50051"]}
    scored.write_parquet("s3://bucket/scored/")

A row with ``documents`` gets ``scores``, ``ranks`` and ``truncated`` (lists in its documents' order); a
row with ``document`` (one pair) gets ``score`` and ``truncated``. Other columns pass through.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .batch.backends import Backend, FleetBackend, LocalBackend, Ranked, retrying


class Rerank:
    """A callable class for ``Dataset.map_batches``: scores each row's query against its documents.

    Args:
        model: load this model in each actor (a directory, a hub id, or ``bundled``)...
        targets: ...or send rows to these servers (``host:port``; several are used round-robin).
        served_model: with ``targets``, the model's name there (default: the fleet's default).
        device, dtype, backend: with ``model``, where, at what precision and by what runtime it runs (as
            ``rerank-server``'s flags; ``auto`` picks what the server picks).
        normalization: ``raw``, ``sigmoid`` or ``calibrated``.
        instruction: for an instruction-following reranker.
        priority: with ``targets``, ``bulk`` (default) or ``interactive``.
        query_column, documents_column, document_column: the columns read.
        timeout: with ``targets``, seconds per call.
    """

    def __init__(
        self,
        model: str | None = None,
        targets: Sequence[str] | None = None,
        *,
        served_model: str = "",
        device: str = "auto",
        dtype: str = "auto",
        backend: str = "auto",
        normalization: str = "raw",
        instruction: str = "",
        priority: str = "bulk",
        query_column: str = "query",
        documents_column: str = "documents",
        document_column: str = "document",
        timeout: float = 600.0,
    ) -> None:
        if bool(model) == bool(targets):
            raise ValueError("give Rerank either model= (load it in each actor) or targets= (servers to send rows to)")
        self.columns = (query_column, documents_column, document_column)
        options = {"normalization": normalization, **({"instruction": instruction} if instruction else {})}
        # The actor's own event loop: rows of a batch are awaited together on it.
        self._loop = asyncio.new_event_loop()
        self._backend: Backend
        if model:
            self._backend = LocalBackend(model, device, dtype, options, backend)
        else:
            self._backend = self._loop.run_until_complete(_fleet(list(targets or ()), served_model, {**options, "priority": priority}, timeout))

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        """Score every row of ``batch`` (Ray's default ``numpy`` batch format) and return it with the result
        columns, as a ``pyarrow.Table`` whose list columns are Arrow lists (so ``write_parquet`` writes
        them as Parquet lists, not as pickled Python objects that a reader must trust)."""
        query_column, documents_column, document_column = self.columns
        queries = [str(q) for q in batch[query_column]]
        columns = {name: _plain(values) for name, values in batch.items()}
        if documents_column in batch:
            documents = [[str(d) for d in row] for row in batch[documents_column]]
            ranked = self._loop.run_until_complete(self._rerank_all(queries, documents))
            columns.update(scores=[r.scores for r in ranked], ranks=[r.ranks for r in ranked], truncated=[r.truncated for r in ranked])
        elif document_column in batch:
            pairs = list(zip(queries, (str(d) for d in batch[document_column])))
            scores, truncated, _ = self._loop.run_until_complete(retrying(lambda: self._backend.score(pairs)))
            columns.update(score=scores, truncated=truncated)
        else:
            raise KeyError(f"rows need a {documents_column!r} column (a list) or a {document_column!r} column (one pair a row)")
        import pyarrow as pa

        return pa.table({name: pa.array(values) for name, values in columns.items()})

    async def _rerank_all(self, queries: list[str], documents: list[list[str]]) -> list[Ranked]:
        """Every row at once, so the engine or the servers batch them together."""
        return await asyncio.gather(*(retrying(functools.partial(self._backend.rerank, q, d)) for q, d in zip(queries, documents)))

    def __del__(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed() and hasattr(self, "_backend"):
            loop.run_until_complete(self._backend.close())
            loop.close()


async def _fleet(targets: list[str], model: str, options: dict[str, Any], timeout: float) -> FleetBackend:
    """A started fleet backend, made on the running loop: a grpc.aio channel belongs to the loop it is
    made on, and every call of the actor runs on that one."""
    fleet = FleetBackend(targets, model, options, timeout, {})
    await fleet.start()
    return fleet


def _plain(values: np.ndarray) -> list[Any]:
    """A numpy column as Python values, a list cell (an array in Ray's numpy format) as a list."""
    return [v.tolist() if isinstance(v, np.ndarray) else v.item() if isinstance(v, np.generic) else v for v in values]
