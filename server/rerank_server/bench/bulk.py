"""``rerank-bench --batch``: a bulk job (``rerank batch``) against the best the same engine or server does.

Rows, on the same records (20 documents each, 20-400 tokens), at the defaults a user gets:

- 14a. ``rerank batch --local`` against the engine's own throughput: the same engine in this process
  with every record in flight at once (its queue never runs dry, so its batches are as full and as
  length-sorted as they can be);
- 14b. ``rerank batch --target`` through one server against ``rerank loadtest``'s best closed-loop
  throughput on that server (the best of several numbers of callers).

Each side runs twice, alternating, and keeps its better run: a neighbour on a shared machine only ever
slows a run down.
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rerank_client.cli import main as rerank_main
from rerank_client.loadtest.workload import RequestSpec

from .measure import drive_closed, running_server
from .table import Row
from .workload import requests

DOCUMENTS = (20, 20)
LOADTEST_CALLERS = (8, 16, 32, 64)  # closed loops of these many callers; the best one is the baseline
ROUNDS = 2


def write_records(specs: Sequence[RequestSpec], path: Path) -> Path:
    """``specs`` as a ``rerank batch`` input: one ``{"id", "query", "documents"}`` a line."""
    path.write_text("".join(json.dumps({"id": f"q{i}", "query": s.query, "documents": list(s.documents)}) + "\n" for i, s in enumerate(specs)))
    return path


def job(source: Path, where: Sequence[str], scratch: Path) -> dict[str, Any]:
    """Run ``rerank batch`` on ``source`` into a fresh output; its JSON summary (``pairs_per_s``: the job's
    pairs over its wall time, from the first record sent to the last written)."""
    output = Path(tempfile.mkdtemp(dir=scratch)) / "scored.jsonl"
    out = io.StringIO()
    code = rerank_main(["batch", str(source), "-o", str(output), *where, "--quiet"], out=out)
    if code != 0:
        raise RuntimeError(f"rerank batch failed ({code}) on {source}")
    summary: dict[str, Any] = json.loads(out.getvalue())
    return summary


def engine_throughput(model_dir: Path, specs: Sequence[RequestSpec]) -> float:
    """Pairs/s of the engine in this process with every request of ``specs`` in flight at once."""
    import time

    from ..local import LocalEngine

    with LocalEngine([f"bench={model_dir}"]) as engine:
        engine.rerank("bench", specs[0].query, list(specs[0].documents))  # warm-up: first-call costs are not throughput

        async def everything() -> int:
            results = await asyncio.gather(*(engine.arerank("bench", s.query, list(s.documents)) for s in specs))
            return sum(r.usage.pairs for r in results)

        started = time.perf_counter()
        pairs = asyncio.run(everything())
        return pairs / (time.perf_counter() - started)


def batch_rows(
    model_dir: Path, count: int, duration: float, mean_tokens: float, step: Callable[[str], Callable[[], None]], scratch: Path
) -> tuple[list[Row], dict[str, Any]]:
    """Rows 14a and 14b on ``count`` records of 20 documents; loadtest runs are driven ``duration`` s each."""
    specs = requests(count, DOCUMENTS, seed=14)
    source = write_records(specs, scratch / "records.jsonl")
    engine_runs: list[float] = []
    local_runs: list[float] = []
    for round_no in range(1, ROUNDS + 1):
        done = step(f"round {round_no}/{ROUNDS}: the engine in-process, {count} records in flight at once")
        engine_runs.append(engine_throughput(model_dir, specs))
        done()
        done = step(f"round {round_no}/{ROUNDS}: rerank batch --local")
        local_runs.append(job(source, ["--local", f"bench={model_dir}"], scratch)["pairs_per_s"])
        done()
    rows = [
        Row("14a. rerank batch --local vs the engine's own throughput (every record in flight)", "rerank batch --local", "engine in-process", "pairs/s", max(local_runs), max(engine_runs), 0.95)
    ]
    closed: dict[int, float] = {}
    fleet_runs: list[float] = []
    with running_server(model_dir) as target:
        for round_no in range(1, ROUNDS + 1):
            for callers in LOADTEST_CALLERS:
                done = step(f"round {round_no}/{ROUNDS}: rerank loadtest, {callers} closed-loop callers")
                speed = drive_closed(target, specs, callers, duration, f"loadtest {callers}", 0.0, mean_tokens)[0].pairs_per_s
                closed[callers] = max(speed, closed.get(callers, 0.0))
                done()
            done = step(f"round {round_no}/{ROUNDS}: rerank batch --target (one server)")
            fleet_runs.append(job(source, ["--target", target], scratch)["pairs_per_s"])
            done()
    best = max(closed, key=lambda c: closed[c])
    rows.append(
        Row("14b. rerank batch through one server vs rerank loadtest's best closed loop", "rerank batch --target", f"loadtest, {best} callers", "pairs/s", max(fleet_runs), closed[best], 0.9)
    )
    figures = {
        "records": count,
        "pairs": sum(len(s.documents) for s in specs),
        "engine_pairs_per_s": [round(v, 1) for v in engine_runs],
        "batch_local_pairs_per_s": [round(v, 1) for v in local_runs],
        "loadtest_pairs_per_s_by_callers": {str(c): round(v, 1) for c, v in closed.items()},
        "batch_target_pairs_per_s": [round(v, 1) for v in fleet_runs],
    }
    return rows, figures
