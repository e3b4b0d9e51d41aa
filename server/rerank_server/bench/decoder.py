"""``rerank-bench --decoder``: a decoder reranker (Qwen3-Reranker's layout at MiniLM's compute) beside MiniLM,
and what computing each request's shared prefix once buys.

Documents of 50-300 tokens; the template, default instruction and query take 85-100 tokens of the
decoder's tokenizer, as Qwen3-Reranker's do. Rows:

- 13a. prefix reuse in the engine (in-process, each request's documents batched together): the same
  batches with and without it, scores compared;
- 13b. the same through a server under closed-loop load (the batcher's own length-grouped batches mix
  requests, so fewer rows share a prefix than in 13a);
- 13c. the decoder served vs sentence-transformers' ``CrossEncoder.predict`` in-process, same precision;
- 13d. the decoder vs MiniLM, both served on the same load (reported only: a different model).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .measure import drive_closed, running_server
from .model import build_minilm_cross_encoder, build_tiny_decoder_reranker
from .table import Row
from .workload import requests

DOCUMENT_TOKENS = (50, 300)
# Four callers (32 on CUDA), driven for at least a minute: a request of 20 documents takes seconds on a
# CPU, and a closed loop's last requests run with fewer callers (smaller batches) after the clock stops;
# a short run makes that tail a large part of it.
CONCURRENCY = 4
MIN_DURATION_S = 60.0


def build_bench_decoder(directory: Path, smoke: bool) -> Path:
    """The benchmark's decoder reranker (tiny for a smoke run), built once under ``directory``."""
    out = directory / ("decoder-smoke" if smoke else "decoder")
    if (out / "qwen3-reranker" / "config.json").is_file():
        return out / "qwen3-reranker"
    if smoke:
        return build_tiny_decoder_reranker(out, "qwen3", max_length=512)
    return build_tiny_decoder_reranker(out, "qwen3", max_length=512, layers=6, hidden=384, vocab=4000)


def engine_batches(scorer: Any, specs: Sequence[Any], batch_size: int) -> tuple[float, np.ndarray]:
    """Score every request's documents in batches of its own (at most ``batch_size``) through the scorer's
    stages; (pairs/s, scores)."""
    chat = scorer.chat
    assert chat is not None, "a decoder reranker with a chat template"
    plans = []
    for spec in specs:
        texts, cut = chat.texts(spec.query, spec.documents, None, whole=False)
        plans.append(chat.plan(spec.query, None, scorer.encoder.encode(texts), cut, None))
    scores: list[float] = []
    started = time.perf_counter()
    for plan in plans:
        for at in range(0, len(plan.items), batch_size):
            scores.extend(scorer.run_batch(plan.items[at : at + batch_size]))
    return sum(len(p.items) for p in plans) / (time.perf_counter() - started), np.asarray(scores)


def decoder_rows(
    cache: Path, smoke: bool, duration: float, count: int, step: Callable[[str], Callable[[], None]], device: str = "cpu"
) -> tuple[list[Row], dict[str, Any]]:
    """Rows 13a-13d and their figures on ``device`` (float32 on a CPU, float16 on CUDA); servers are driven
    for ``duration`` seconds (at least a minute unless ``smoke``)."""
    import torch

    from sentence_transformers import CrossEncoder

    from ..models import load_scorer, parse_model_arg
    from ..models.decoder import PrefixReuse
    from .measure import inprocess, predict_batches

    model_dir = build_bench_decoder(cache, smoke)
    duration = duration if smoke else max(duration, MIN_DURATION_S)
    specs = requests(count, (10, 30), seed=7, tokens=DOCUMENT_TOKENS)
    cuda = device.startswith("cuda")
    dtype = "float16" if cuda else "float32"
    batch_size = 256 if cuda else 16  # on CUDA a batch's call overhead wants hundreds of pairs
    spec = parse_model_arg(f"decoder={model_dir}")
    speeds: dict[PrefixReuse, float] = {}
    scores: dict[PrefixReuse, np.ndarray] = {}
    for reuse in (PrefixReuse.NEVER, PrefixReuse.ALWAYS, PrefixReuse.NEVER, PrefixReuse.ALWAYS):  # alternated: a shared machine drifts
        scorer = load_scorer(dataclasses.replace(spec, prefix_reuse=reuse), device=device, dtype=dtype, backend="torch")
        done = step(f"engine, prefix reuse {reuse.value}")
        speed, scores[reuse] = engine_batches(scorer, specs, batch_size)
        speeds[reuse] = max(speed, speeds.get(reuse, 0.0))
        done()
    difference = float(np.abs(scores[PrefixReuse.ALWAYS] - scores[PrefixReuse.NEVER]).max())
    probe = load_scorer(spec, device="cpu", dtype="float32", backend="torch")  # its template and tokenizer
    chat = probe.chat
    assert chat is not None, f"{model_dir} has no chat template"
    start_ids, tail = chat.ends(specs[0].query, None)
    rows = [
        Row(
            f"13a. decoder reranker, prefix reuse in the engine (each request's documents batched together; largest score difference {difference:.1e})",
            "prefix computed once", "every pair whole", "pairs/s", speeds[PrefixReuse.ALWAYS], speeds[PrefixReuse.NEVER], None,
        )
    ]
    pairs = [(s.query, d) for s in specs for d in s.documents]
    lengths = [len(ids) for ids in probe.encoder.encode(chat.texts(specs[0].query, [d for _, d in pairs], None, False)[0])]
    mean_tokens = float(np.mean(lengths))
    # The batches predict runs: 16 pairs whatever their length (the CPU default token budget would cut
    # batches of these long pairs to a third of that).
    limits = ("--device", device, "--dtype", dtype, "--backend", "torch", "--max-batch-size", str(batch_size), "--max-batch-tokens", str(batch_size * 512))
    callers = CONCURRENCY * (8 if cuda else 1)
    served = {}
    for label, flags in (("never", ("--prefix-reuse", "never")), ("auto", ())):
        done = step(f"server, decoder, prefix reuse {label}")
        with running_server(model_dir, *limits, *flags) as target:
            served[label] = drive_closed(target, specs, callers, duration, f"server, prefix reuse {label}", 0.0, mean_tokens)[0]
        done()
    rows.append(Row("13b. decoder reranker served: prefix reuse auto vs never (the batcher's length-grouped batches)", served["auto"].label, served["never"].label, "pairs/s", served["auto"].pairs_per_s, served["never"].pairs_per_s, None))
    done = step("in-process CrossEncoder.predict, decoder")
    shape = {"layers": 2, "hidden": 32, "intermediate": 64} if smoke else {"layers": 6, "hidden": 384, "intermediate": 1536}
    model = CrossEncoder(str(model_dir), device=device, model_kwargs={"dtype": getattr(torch, dtype)})
    predict = inprocess(predict_batches(model), pairs, lengths, batch_size, f"predict bs={batch_size}", shape)[0]
    done()
    rows.append(Row(f"13c. decoder reranker: server vs in-process CrossEncoder.predict, {dtype}", served["auto"].label, predict.label, "pairs/s", served["auto"].pairs_per_s, predict.pairs_per_s, 0.95))
    minilm = model_dir if smoke else build_minilm_cross_encoder(cache)
    done = step("server, MiniLM-L6 on the same load")
    with running_server(minilm, *limits) as target:
        mini = drive_closed(target, specs, callers, duration, "MiniLM-L6 served", 0.0, mean_tokens)[0]
    done()
    rows.append(Row("13d. decoder reranker (MiniLM's compute, Qwen3-Reranker's template) vs MiniLM-L6, both served", served["auto"].label, mini.label, "pairs/s", served["auto"].pairs_per_s, mini.pairs_per_s, None))
    figures = {
        "prefix_tokens": len(start_ids),
        "tail_tokens": len(tail),
        "mean_pair_tokens": round(mean_tokens, 1),
        "engine_pairs_per_s": {r.value: round(v, 1) for r, v in speeds.items()},
        "largest_score_difference": difference,
    }
    return rows, figures
