"""``rerank-bench``: every comparison of the benchmark, side by side in one run, as one table.

    rerank-bench                 # the full run: ms-marco-MiniLM-L-6-v2's cost; about 8 minutes on a 2-core CPU
    rerank-bench --device cuda   # the GPU run: larger batches and loads, a BERT-base-sized model too
    rerank-bench --smoke         # about 40 s on a 2-core CPU, on a tiny model: checks that the benchmark runs
                                 # end to end (CI); it measures nothing and prints no table
    rerank-bench --decoder       # a decoder reranker beside MiniLM, and its prefix reuse (rows 13a-13d)
    rerank-bench --batch         # rerank batch, in-process and through a server, against the engine and loadtest (14a-14b)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .model import build_bert_base_cross_encoder, build_minilm_cross_encoder, build_tiny_cross_encoder, fit_head_to_bi_encoder, flops_per_pair
from .hostpath import cpu_table, host_path
from .table import Row, markdown_table
from .workload import pairs_of, requests

log = logging.getLogger("rerank_server.bench")


def _machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__, "python": platform.python_version()}


def _on_gpu(device: str) -> bool:
    """Whether ``device`` is (or ``auto`` picks) a CUDA device."""
    if device == "auto":
        import torch

        return bool(torch.cuda.is_available())
    return device.startswith("cuda")


def _progress(quiet: bool) -> Callable[[str], Callable[[], None]]:
    """``step(message)`` prints what is being measured (the progress of a minutes-long run) and returns
    what prints its time when done; quiet, nothing."""

    def step(message: str) -> Callable[[], None]:
        if quiet:
            return lambda: None
        start = time.perf_counter()
        print(f"  {message} ...", end="", file=sys.stderr, flush=True)
        return lambda: print(f" {time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)

    return step


def mixed_traffic(target: str, capacity: float, batch_pairs: int, duration: float, seed: int) -> dict[str, Any]:
    """Issue 14's comparisons on a running server whose capacity (pairs/s) is known: rows and figures."""
    from .measure import TrafficRun, drive_classes

    ten, twenty = requests(64, (10, 10), seed=seed + 5), requests(64, (20, 20), seed=seed + 6)
    users = TrafficRun("interactive", ten, 0.2 * capacity / 10)
    idle = drive_classes(target, [users], duration, seed)["interactive"][0]
    flood = drive_classes(target, [users, TrafficRun("bulk", twenty, 2 * capacity / 20, "bulk")], duration, seed)
    busy, bulk = flood["interactive"][0], flood["bulk"][0]
    batch_ms = 1000.0 * batch_pairs / capacity  # one full batch on the device, which nothing preempts
    bound = 2 * idle.latency_ms["p99"] + batch_ms
    leftover = max(capacity - busy.pairs_per_s, 1e-9)
    # Two callers of one priority, one at five times the other's rate; the slower asks for 60% of the
    # capacity on its own, so both stay backlogged (a caller asking for less than half gets all it asks).
    slow_rate = 0.6 * capacity / 10
    callers = drive_classes(target, [TrafficRun("a", ten, 5 * slow_rate, tenant="a"), TrafficRun("b", ten, slow_rate, tenant="b")], duration, seed)
    served = {name: report.pairs_per_s for name, (report, _) in callers.items()}
    share = min(served.values()) / max(sum(served.values()), 1e-9)
    # Requests whose deadline the queue would outlast, flooding beside ordinary traffic.
    alone = drive_classes(target, [TrafficRun("steady", ten, 0.7 * capacity / 10)], duration, seed)["steady"][0]
    short = drive_classes(target, [TrafficRun("steady", ten, 0.7 * capacity / 10), TrafficRun("short", ten, 50.0, timeout=0.002)], duration, seed)
    refusals = sorted(s.latency * 1000.0 for s in short["short"][1].samples if s.code == "DEADLINE_EXCEEDED")
    figures = {
        "capacity_pairs_per_s": round(capacity, 1),
        "interactive_p99_idle_ms": round(idle.latency_ms["p99"], 1),
        "interactive_p99_under_bulk_flood_ms": round(busy.latency_ms["p99"], 1),
        "one_batch_ms": round(batch_ms, 1),
        "bulk_pairs_per_s": round(bulk.pairs_per_s, 1),
        "bulk_by_code": bulk.by_code,
        "bulk_latency_max_ms": round(bulk.latency_ms.get("max", 0.0), 1),
        "tenant_pairs_per_s": {k: round(v, 1) for k, v in served.items()},
        "short_deadline_refusal_ms_p50": round(refusals[len(refusals) // 2], 2) if refusals else None,
        "short_deadline_by_code": short["short"][0].by_code,
    }
    rows = [
        Row("9a. interactive p99 under a bulk flood at 2x capacity: its bound (2x idle p99 + one batch) over it", "2x idle p99 + one batch", "p99 under the flood", "ms", bound, busy.latency_ms["p99"], 1.0),
        Row("9b. bulk work under interactive traffic at 20%: served vs the capacity left over", "bulk served", "capacity left", "pairs/s", bulk.pairs_per_s, leftover, 0.8),
        Row("9c. two callers at 5:1 rates (0.6x and 3x capacity): the smaller share of served pairs vs half", "smaller share", "half", "share", share, 0.5, 0.9),
        Row("9d. throughput beside a flood of too-short deadlines vs alone", "with the flood", "alone", "pairs/s", short["steady"][0].pairs_per_s, alone.pairs_per_s, 0.95),
    ]
    return {"rows": rows, "figures": figures}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every comparison; returns the JSON document (also written to --out)."""
    import torch
    from sentence_transformers import CrossEncoder

    from ..engine.settings import BatchingConfig
    from ..engine import default_tokenizer_threads
    from ..models import ModelLoadError, load_scorer, parse_model_arg
    from ..models.device import cpu_has_fast_bf16, resolve_device
    from .measure import (
        Throughput,
        drive_closed,
        drive_open,
        encode_pairs,
        free_port,
        forward_ceiling,
        inprocess,
        predict_batches,
        ranking_agreement,
        running_server,
        scorer_batches,
        tokenizer_throughput,
    )

    step = _progress(quiet=args.smoke)
    device = resolve_device(args.device)
    kind = device.split(":")[0]
    cuda = kind == "cuda"
    smoke = args.smoke
    cache = _cache(args)
    done = step("building the model")
    if smoke:
        model_dir = build_tiny_cross_encoder(cache / "tiny")
        head_fit = None
    else:
        fresh = not (cache / "minilm-l6-cross-encoder" / "config.json").is_file()
        model_dir = build_minilm_cross_encoder(cache)
        head_fit = fit_head_to_bi_encoder(model_dir, pairs_of(requests(80, (10, 20), seed=99))) if fresh else None
    done()

    # A GPU is driven as issue 11 measured it: 256 callers x 20 documents, and 1,024 callers of 1-4
    # documents; a 2-core CPU saturates with 8 callers of 10-100 documents and 64 small callers.
    callers, small_callers = (256, 1024) if cuda else (8, 64)
    big = requests(args.requests, (20, 20) if cuda else (10, 100), seed=args.seed)
    small = requests(args.requests * 16, (1, 4), seed=args.seed + 1)
    big_pairs = pairs_of(big)
    sizes = [len(s.documents) for s in big]
    duration = 1.0 if smoke else args.duration
    main_dtype = "float16" if cuda else "float32"  # what a GPU serves by default; the CPU's reference precision
    defaults = BatchingConfig.for_device(kind)

    fp32 = CrossEncoder(str(model_dir), device=device, model_kwargs={"dtype": torch.float32})
    reference = load_scorer(parse_model_arg(f"bench={model_dir}"), device=device, dtype="float32")
    reference_items = encode_pairs(reference, big_pairs)
    lengths = [item.cost for item in reference_items]
    mean_tokens = sum(lengths) / len(lengths)
    config = fp32.model.config
    shape = {"layers": config.num_hidden_layers, "hidden": config.hidden_size, "intermediate": config.intermediate_size}
    mean_flops = sum(flops_per_pair(n, **shape) for n in lengths) / len(lengths)
    results: dict[str, Any] = {"machine": _machine(), "device": device, "smoke": smoke, "pairs": len(big_pairs), "mean_pair_tokens": round(mean_tokens, 1)}
    if head_fit is not None:
        results["head_fit_spearman_vs_bi_encoder"] = round(head_fit, 3)
    rows: list[Row] = []
    measured: dict[str, Any] = {}

    # 0. What the device can do: the network alone on pre-tokenized, sorted batches, swept to the
    # device's batch limits; and what the tokenizer pool can feed it.
    main_scorer = reference if main_dtype == "float32" else load_scorer(parse_model_arg(f"bench={model_dir}"), device=device, dtype=main_dtype)
    main_items = encode_pairs(main_scorer, big_pairs)
    sweep_sizes = (128, 512, 1024, 2048) if cuda else (8, 16, 32, 64)
    ceilings: dict[int, float] = {}
    for batch_size in sweep_sizes:
        done = step(f"forward only, {main_dtype}, batch {batch_size}")
        ceilings[batch_size] = forward_ceiling(main_scorer, main_items, batch_size, max(defaults.max_batch_tokens, batch_size * 128))
        done()
    results["forward_only_sweep_pairs_per_s"] = {str(k): round(v, 1) for k, v in ceilings.items()}
    at_budget = ceilings.get(defaults.max_batch_size) or max(ceilings.values())
    rows.append(Row("0a. forward-only ceiling: best batch vs the device's default batch", f"forward only, batch {max(ceilings, key=lambda b: ceilings[b])}", f"forward only, batch {defaults.max_batch_size if defaults.max_batch_size in ceilings else 'best'}", "pairs/s", max(ceilings.values()), at_budget, None))
    threads = default_tokenizer_threads(kind)
    done = step(f"tokenizer pool, {threads} thread(s)")
    pool_speed = tokenizer_throughput(main_scorer.encoder, big_pairs, threads)
    one_speed = tokenizer_throughput(main_scorer.encoder, big_pairs, 1)
    done()
    rows.append(Row("0b. tokenizing (ids + pair inputs): the default pool vs one thread", f"{threads} thread(s)", "1 thread", "pairs/s", pool_speed, one_speed, None))

    # 1. In-process predict: the best batch size, then the full set at it. Two interleaved passes, the
    # better of each size kept: a neighbour's burst on a shared machine only ever slows a run down, and
    # one slowed run would pick the batch size every CPU server run below is configured with.
    predict_model = fp32 if main_dtype == "float32" else CrossEncoder(str(model_dir), device=device, model_kwargs={"dtype": torch.float16})
    sweep: dict[int, float] = {}
    subset = big_pairs[: max(32, len(big_pairs) // 4)]
    for sweep_pass in (1, 2):
        for batch_size in (128, 256, 512) if cuda else (8, 16, 32, 64):
            done = step(f"in-process predict, batch {batch_size} (pass {sweep_pass}/2)")
            speed = inprocess(predict_batches(predict_model), subset, lengths[: len(subset)], batch_size, f"predict bs={batch_size}", shape)[0].pairs_per_s
            sweep[batch_size] = max(speed, sweep.get(batch_size, 0.0))
            done()
    best_bs = max(sweep, key=lambda b: sweep[b])
    results["inprocess_batch_sweep_pairs_per_s"] = {str(k): round(v, 2) for k, v in sweep.items()}
    # On a CPU the server gets the best batch size and the device's default tokens per pair (the token
    # budget then shrinks batches of long pairs, as in production); a GPU server runs its defaults.
    limits = [] if cuda else ["--max-batch-size", str(best_bs), "--max-batch-tokens", str(best_bs * defaults.max_batch_tokens // defaults.max_batch_size), "--max-wait-ms", "5"]

    # 1. The server against in-process predict on the same pairs, alternating in rounds; the median
    # round decides (a noisy machine moves single runs by 10% or more).
    rounds: list[tuple[Throughput, Throughput]] = []
    server_label = f"server {main_dtype}, length batching, {callers} callers"
    # Rows 1-3 compare batching, not runtimes: the server runs torch, as predict does.
    torch_flags = ["--backend", "torch", "--dtype", main_dtype]
    with running_server(model_dir, "--device", device, *torch_flags, *limits) as target:
        for round_no in range(args.rounds):
            done = step(f"round {round_no + 1}/{args.rounds}: in-process predict over {len(big_pairs)} pairs, batch {best_bs}")
            base, ref_scores = inprocess(predict_batches(predict_model), big_pairs, lengths, best_bs, f"in-process predict, {main_dtype}", shape)
            done()
            done = step(f"round {round_no + 1}/{args.rounds}: {server_label}")
            served, _ = drive_closed(target, big, callers, duration, server_label, mean_flops, mean_tokens)
            done()
            rounds.append((served, base))
    rounds.sort(key=lambda pair: pair[0].pairs_per_s / pair[1].pairs_per_s)
    server_main, base = rounds[len(rounds) // 2]
    measured["rounds"] = [{"server": s.to_dict(), "inprocess": b.to_dict(), "ratio": round(s.pairs_per_s / b.pairs_per_s, 3)} for s, b in rounds]
    measured["inprocess_main"] = base.to_dict()
    rows.append(Row(f"1. server vs in-process predict at its best batch size (median of {len(rounds)} rounds)", server_main.label, base.label, "pairs/s", server_main.pairs_per_s, base.pairs_per_s, 0.95))
    rows.append(Row("1c. server vs the forward-only ceiling at the same batch limits", server_main.label, f"forward only, {main_dtype}", "pairs/s", server_main.pairs_per_s, at_budget, 0.4 if cuda else None))

    def serve(label: str, flags: Sequence[str], specs: Any, concurrency: int, directory: Path = model_dir) -> Any:
        done = step(f"server: {label}")
        with running_server(directory, "--device", device, *flags) as target:
            out = drive_closed(target, specs, concurrency, duration, label, mean_flops, mean_tokens)
        done()
        measured[label] = {**out[0].to_dict(), "latency_ms": out[1].latency_ms, "by_code": out[1].by_code}
        return out

    small_batched, _ = serve(f"server, {small_callers} callers x 1-4 docs", [*torch_flags, *limits], small, small_callers)
    small_naive, _ = serve(f"naive: one predict per request, {small_callers} callers", [*torch_flags, "--batching", "none", *limits], small, small_callers)
    rows.append(Row("2. many small requests: batching vs one predict per request", small_batched.label, small_naive.label, "pairs/s", small_batched.pairs_per_s, small_naive.pairs_per_s, 10.0 if cuda else 1.3))

    arrival, _ = serve(f"server {main_dtype}, first-come count batching", [*torch_flags, "--batching", "arrival", *limits], big, callers)
    rows.append(Row("3. length-aware token batching vs first-come count batching", server_main.label, arrival.label, "pairs/s", server_main.pairs_per_s, arrival.pairs_per_s, 1.3))

    # 8. The HTTP API (Cohere's /v1/rerank) against gRPC, on one server and the same load, alternating.
    http_port = free_port()
    done = step("server: gRPC and HTTP on the same load")
    with running_server(model_dir, "--device", device, *torch_flags, *limits, "--http-port", str(http_port)) as target:
        over_grpc, _ = drive_closed(target, big, callers, duration, f"gRPC Rerank, {callers} callers", mean_flops, mean_tokens)
        over_http, _ = drive_closed(f"127.0.0.1:{http_port}", big, callers, duration, f"HTTP POST /v1/rerank, {callers} callers", mean_flops, mean_tokens, protocol="http")
    done()
    measured["http_vs_grpc"] = {"grpc": over_grpc.to_dict(), "http": over_http.to_dict()}
    rows.append(Row("8. HTTP API vs gRPC, same server and load", over_http.label, over_grpc.label, "pairs/s", over_http.pairs_per_s, over_grpc.pairs_per_s, 0.9))

    # 4. Precision and runtime: speed and ranking agreement with torch fp32 on the same pairs. On a GPU
    # the network alone (tokenizing is not what precision changes); on a CPU in-process, tokenizing
    # included, as predict is measured.
    precisions: dict[str, Any] = {}
    bf16 = cpu_has_fast_bf16() or smoke
    variants = [("torch", "float16"), ("torch", "bfloat16")] if cuda else [
        *([("torch", "bfloat16")] if bf16 else []),
        ("torch", "int8"),
        ("onnx", "float32"),
        ("onnx", "int8"),
        ("openvino", "float32"),
        *([("openvino", "bfloat16")] if cpu_has_fast_bf16() else []),  # OpenVINO refuses it elsewhere
        ("openvino", "int8"),
    ]
    if cuda:
        fp32_speed = forward_ceiling(reference, reference_items, defaults.max_batch_size, defaults.max_batch_tokens)
        ref_scores = np.asarray(reference.run_batch(reference_items), dtype=np.float64)
        baseline_label = "torch fp32, forward only"
    else:
        fp32_speed = base.pairs_per_s
        baseline_label = "torch fp32"
    for backend, dtype in variants:
        name = f"{backend} {dtype}"
        done = step(f"in-process, {name}")
        try:
            scorer = load_scorer(parse_model_arg(f"bench={model_dir}"), device=device, dtype=dtype, backend=backend)
        except ModelLoadError as exc:  # a runtime that is not installed: say so in the results, measure the rest
            done()
            precisions[name] = {"skipped": str(exc)}
            continue
        if cuda:
            items = encode_pairs(scorer, big_pairs)
            speed = forward_ceiling(scorer, items, defaults.max_batch_size, defaults.max_batch_tokens)
            scores = np.asarray(scorer.run_batch(items), dtype=np.float64)
            tp_dict: dict[str, Any] = {"pairs_per_s": round(speed, 2)}
        else:
            tp, scores = inprocess(scorer_batches(scorer), big_pairs, lengths, best_bs, f"in-process {name}", shape)
            speed, tp_dict = tp.pairs_per_s, tp.to_dict()
        done()
        agreement = ranking_agreement(ref_scores, scores, sizes)
        precisions[name] = {"backend": backend, "dtype": dtype, **tp_dict, **{k: round(v, 4) for k, v in agreement.items()}, "speedup_vs_fp32": round(speed / fp32_speed, 3)}
        rows.append(Row("4. precision and runtime vs torch fp32", f"{name} (Spearman {agreement['spearman']:.3f}, top-10 {agreement['top10_overlap']:.2f})", baseline_label, "pairs/s", speed, fp32_speed, 1.0 if cuda else 2.5))
    results["precision"] = precisions
    if cuda:
        server_fp32, _ = serve(f"server float32, length batching, {callers} callers", ["--backend", "torch", "--dtype", "float32"], big, callers)
        rows.append(Row("4b. server float16 vs server float32", server_main.label, server_fp32.label, "pairs/s", server_main.pairs_per_s, server_fp32.pairs_per_s, 1.0))
    safe = [n for n, p in precisions.items() if p.get("spearman", 0) >= 0.99]
    fastest_safe = max(safe, key=lambda n: precisions[n]["pairs_per_s"], default="torch float32")
    results["best_safe_precision"] = fastest_safe
    best_backend, best_dtype = fastest_safe.split()

    # 5. Latency in open loop at 50% and 80% of the server's measured maximum, at the best safe precision.
    label = f"server {fastest_safe}, length batching"
    done = step(f"server: {label}, max throughput and open-loop latency")
    with running_server(model_dir, "--device", device, "--backend", best_backend, "--dtype", best_dtype, *limits) as target:
        best_server, best_report = drive_closed(target, big, callers, duration, label, mean_flops, mean_tokens)
        latency = {}
        if not args.skip_latency:
            for share in (0.5, 0.8):
                rate = share * best_report.requests_per_s
                report = drive_open(target, big, rate, duration * 1.5, seed=args.seed)
                latency[f"{int(share * 100)}%"] = {"rate": round(rate, 3), "achieved_req_per_s": round(report.requests_per_s, 3), **{k: round(v, 1) for k, v in report.latency_ms.items()}}
    done()
    measured[label] = best_server.to_dict()
    results["latency_open_loop"] = latency
    if not cuda and fastest_safe != "torch float32":
        tp = precisions[fastest_safe]
        rows.append(Row("1b. server vs in-process at the same precision", label, f"in-process {fastest_safe}", "pairs/s", best_server.pairs_per_s, tp["pairs_per_s"], 0.95))

    # 9. Mixed traffic, on that server's settings: priorities, callers, short deadlines (issue 14's goals).
    done = step("server: mixed traffic (bulk flood, two callers, short deadlines)")
    with running_server(model_dir, "--device", device, "--backend", best_backend, "--dtype", best_dtype, *limits) as target:
        mixed = mixed_traffic(target, best_server.pairs_per_s, defaults.max_batch_size if cuda else best_bs, duration, args.seed)
    done()
    results["mixed_traffic"] = mixed["figures"]
    rows.extend(mixed["rows"])

    # 6. Model FLOPs utilisation: useful FLOP/s of the server against the best in-process run.
    rows.append(Row(f"6. achieved model FLOP/s ({main_dtype}): server vs in-process", server_main.label, base.label, "GFLOP/s", server_main.gflops_per_s, base.gflops_per_s, None))

    # 7. A BERT-base-sized reranker (bge-reranker-base's cost): the server against its network alone.
    if cuda or args.bert_base:
        done = step("BERT-base shape: building, forward only")
        bert_dir = build_bert_base_cross_encoder(cache, model_dir)  # the benchmark model's tokenizer
        bert = load_scorer(parse_model_arg(f"bert={bert_dir}"), device=device, dtype=main_dtype)
        bert_ceiling = forward_ceiling(bert, encode_pairs(bert, big_pairs), defaults.max_batch_size, defaults.max_batch_tokens)
        del bert
        done()
        bert_server, _ = serve(f"server {main_dtype}, BERT-base shape, {callers} callers", [*torch_flags, *limits], big, callers, bert_dir)
        rows.append(Row("7. BERT-base shape: server vs its forward-only ceiling", bert_server.label, f"forward only, {main_dtype}", "pairs/s", bert_server.pairs_per_s, bert_ceiling, 0.6 if cuda else None))
    host_rows, host_figures = _host_path(args, model_dir, step)
    rows.extend(host_rows)
    results["host_path"] = host_figures
    if args.smoke:  # the decoder rows take minutes of their own on a real model: --decoder runs them
        from .decoder import decoder_rows

        decoder, results["decoder"] = decoder_rows(cache, True, args.duration, args.requests, step)
        rows.extend(decoder)
        bulk, results["batch"] = _batch_rows(args, model_dir, step)
        rows.extend(bulk)
    results["measured"] = measured
    results["rows"] = [r.to_dict() for r in rows]
    results["table"] = markdown_table(rows, latency) + "\n" + cpu_table(host_figures)
    return results


def _host_path(args: argparse.Namespace, model_dir: Path, step: Callable[[str], Callable[[], None]]) -> tuple[list[Row], dict[str, Any]]:
    """Rows 10-12 on simulated devices: 64 callers x 20 documents, as issue 18 measures the host path (10b:
    the engine process alone, fed the same pairs pre-tokenized)."""
    specs = requests(max(args.requests, 16), (20, 20), seed=args.seed)
    items = _encoded_pairs(model_dir, specs)
    by_request = [items[at : at + 20] for at in range(0, len(items), 20)]  # the specs' requests, pre-tokenized
    return host_path(model_dir, specs, by_request, 1.0 if args.smoke else args.duration, step, smoke=args.smoke)


def _encoded_pairs(model_dir: Path, specs: Sequence[Any]) -> list[Any]:
    """Every pair of ``specs`` as the model reads it (tokenized, truncated), request by request."""
    from ..models import load_scorer, parse_model_arg
    from .measure import encode_pairs

    scorer = load_scorer(parse_model_arg(f"bench={model_dir}"), device="sim:null")
    return encode_pairs(scorer, pairs_of(list(specs)))


def _mean_pair_tokens(model_dir: Path, specs: Sequence[Any]) -> float:
    """Tokens a pair of ``specs`` costs the model (after truncation), on average."""
    items = _encoded_pairs(model_dir, specs)
    return sum(item.cost for item in items) / len(items)


def _cache(args: argparse.Namespace) -> Path:
    """Where the benchmark's models are built (``--model-dir``, else a temporary directory)."""
    cache = Path(args.model_dir or tempfile.mkdtemp(prefix="rerank-bench-"))
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _bench_model(args: argparse.Namespace) -> Path:
    """The benchmark's cross-encoder: MiniLM-L6's shape, or a tiny one for a smoke run."""
    cache = _cache(args)
    return build_tiny_cross_encoder(cache / "tiny") if args.smoke else build_minilm_cross_encoder(cache)


def run_host_path(args: argparse.Namespace) -> dict[str, Any]:
    """Only rows 10-12 and 10b (``--host-path``): no forward runs, so any machine measures its host path."""
    step = _progress(quiet=args.smoke)
    model_dir = _bench_model(args)
    rows, figures = _host_path(args, model_dir, step)
    return {
        "machine": _machine(),
        "device": "simulated",
        "smoke": args.smoke,
        "host_path": figures,
        "rows": [r.to_dict() for r in rows],
        "table": markdown_table(rows, {}) + "\n" + cpu_table(figures),
    }


def _batch_rows(args: argparse.Namespace, model_dir: Path, step: Callable[[str], Callable[[], None]]) -> tuple[list[Row], dict[str, Any]]:
    """Rows 14a-14b: ``rerank batch`` on 10x ``--requests`` records of 20 documents."""
    from .bulk import DOCUMENTS, batch_rows

    count = 8 if args.smoke else args.requests * 10
    mean_tokens = _mean_pair_tokens(model_dir, requests(min(count, 32), DOCUMENTS, seed=14))
    scratch = Path(tempfile.mkdtemp(prefix="rerank-bench-batch-"))
    return batch_rows(model_dir, count, 1.0 if args.smoke else args.duration, mean_tokens, step, scratch)


def run_batch(args: argparse.Namespace) -> dict[str, Any]:
    """Only rows 14a-14b (``--batch``): bulk jobs against the engine's and the server's best, on MiniLM-L6's cost."""
    step = _progress(quiet=args.smoke)
    model_dir = _bench_model(args)
    rows, figures = _batch_rows(args, model_dir, step)
    return {"machine": _machine(), "device": args.device, "smoke": args.smoke, "batch": figures, "rows": [r.to_dict() for r in rows], "table": markdown_table(rows, {})}


def run_decoder(args: argparse.Namespace) -> dict[str, Any]:
    """Only rows 13a-13d (``--decoder``): a decoder reranker beside MiniLM, and its prefix reuse."""
    from .decoder import decoder_rows

    cache = _cache(args)
    device = "cuda" if _on_gpu(args.device) else "cpu"
    rows, figures = decoder_rows(cache, args.smoke, args.duration, args.requests, _progress(quiet=args.smoke), device)
    return {"machine": _machine(), "device": device, "smoke": args.smoke, "decoder": figures, "rows": [r.to_dict() for r in rows], "table": markdown_table(rows, {})}


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rerank-bench``."""
    from ..cli import installed_version

    parser = argparse.ArgumentParser(prog="rerank-bench", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--version", action="version", version="%(prog)s (rerank-grpc " + installed_version() + ")")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="about 40 s on a 2-core CPU, on a tiny model: checks that every comparison runs end to end; measures nothing, prints no table",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default %(default)s)")
    parser.add_argument("--requests", type=int, help="rerank requests in the workload (10-100 documents each on a CPU, 20 on a GPU); small-request runs use 16x as many (default: 16 on a CPU, 512 on a GPU)")
    parser.add_argument("--duration", type=float, help="seconds each server run is driven (default: 20 on a CPU, 6 on a GPU)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default %(default)s)")
    parser.add_argument("--rounds", type=int, help="alternating rounds of server and in-process runs for comparison 1 (default: 3 on a CPU, 1 on a GPU)")
    parser.add_argument("--bert-base", action="store_true", help="also measure a BERT-base-sized model on a CPU (always on a GPU; slow on a CPU)")
    parser.add_argument("--skip-latency", action="store_true", help="skip the open-loop latency runs")
    parser.add_argument(
        "--host-path",
        action="store_true",
        help="only rows 10-12: the host path on simulated devices (front ends 1 vs 2 vs N on sim:null with CPU a pair by "
        "process and thread, the engine process alone with pre-tokenized callers, a simulated H200, a 250,000 tokens/s "
        "device); no model runs, so it measures any machine",
    )
    parser.add_argument(
        "--decoder",
        action="store_true",
        help="only rows 13a-13d: a decoder reranker (Qwen3-Reranker's layout at MiniLM's compute) beside MiniLM-L6 on the CPU, "
        "and the speed-up of computing each request's shared prefix (template, instruction, query) once",
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="only rows 14a-14b: rerank batch --local against the engine in-process with every record in flight, and "
        "rerank batch through one server against rerank loadtest's best closed loop, on the same records",
    )
    parser.add_argument("--model-dir", help="where to build (and reuse) the benchmark model (default: a temporary directory)")
    parser.add_argument("--out", default="bench-results", help="directory for results.json and results.md (default %(default)s)")
    args = parser.parse_args(argv)
    gpu = _on_gpu(args.device)
    args.duration = args.duration or (6.0 if gpu else 20.0)
    args.rounds = args.rounds or (1 if gpu else 3)
    args.requests = args.requests or (512 if gpu else 16)
    if args.smoke:
        args.requests, args.rounds = min(args.requests, 3), 1
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.smoke:
        print("rerank-bench --smoke: checking that every comparison runs, on a tiny model; this measures nothing", file=sys.stderr)
    else:
        print("rerank-bench (full run)", file=sys.stderr)
    results = run_host_path(args) if args.host_path else run_decoder(args) if args.decoder else run_batch(args) if args.batch else run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    machine = results["machine"]
    header = f"Machine: {machine['cpu']}, {machine['cores']} cores" + (f", {machine['gpu']}" if machine["gpu"] else "") + f"; torch {machine['torch']}; device {results['device']}\n\n"
    (out / "results.md").write_text(header + results["table"])
    if args.smoke:
        print(f"rerank-bench --smoke: every comparison ran ({len(results['rows'])} rows); figures from a tiny model are not results", file=sys.stderr)
        return
    print(header + results["table"])
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
