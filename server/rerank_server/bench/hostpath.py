"""The host path, measured on a simulated device: what the server's processes can feed a device, and
where their CPU goes, a pair at a time.

``sim:null`` leaves no device time at all, so the pairs a second are the host's own ceiling and the CPU
each process and thread spends (read from ``/proc`` before and after the run) is the host's whole cost.
A simulated H200 and a GPU-like ``sim:20,4000`` device show whether the batches are the size the device
wants and ready when it frees up.
"""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engine.settings import BatchingConfig
from ..models.encoding import Encoded
from ..models.simulated import parse_profile
from ..process import ServerProcess
from .cpu import cpu_by_role
from .engine_alone import run_engine_alone
from .measure import drive_closed, free_port, server_env
from .table import Row
from rerank_client.loadtest.workload import RequestSpec

_CALLERS = 64


def _padded_tokens(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).read().decode()
    return sum(float(v) for v in re.findall(r"^rerank_batch_padded_tokens_sum\{[^}]*\} (\S+)$", text, re.M))


def run_simulated(model_dir: Path, device: str, frontends: int, specs: Sequence[RequestSpec], duration: float, mean_tokens: float) -> dict[str, Any]:
    """Drive a server on the simulated ``device`` with ``frontends`` front ends: 64 closed-loop callers
    over as many connections; pairs and padded tokens a second, and CPU a pair by role."""
    metrics_port = free_port()
    flags = ["--device", device, "--frontends", str(frontends), "--metrics-port", str(metrics_port)]
    with ServerProcess("--model", f"bench=cross-encoder:{model_dir}", *flags, env=server_env(), ready_timeout=300) as server:
        assert server.proc is not None
        label = f"{device}, {frontends} front end{'s' if frontends > 1 else ''} ({'one process' if frontends == 1 else 'and an engine process'})"
        before, padded_before = cpu_by_role(server.proc.pid), _padded_tokens(metrics_port)
        throughput, report = drive_closed(server.target, specs, _CALLERS, duration, label, 0.0, mean_tokens, connections=_CALLERS)
        after = cpu_by_role(server.proc.pid)
        spent = {role: after[role] - before.get(role, 0.0) for role in after}
        padded = _padded_tokens(metrics_port) - padded_before
    pairs = max(throughput.pairs, 1)
    per_pair = {role: round(s / pairs * 1e6, 1) for role, s in sorted(spent.items())}
    return {
        "label": label,
        "pairs_per_s": round(throughput.pairs_per_s, 1),
        "padded_tokens_per_s": round(padded / throughput.seconds, 1),
        "cpu_us_per_pair": per_pair,
        "cpu_us_per_pair_total": round(sum(spent.values()) / pairs * 1e6, 1),
        "by_code": report.by_code,
    }


def simulated_ceiling(device: str, mean_tokens: float) -> float:
    """Pairs a second the simulated ``device`` scores at the GPU's batch limits, with no host in the way."""
    limits = BatchingConfig.for_device("sim")
    per_batch = max(1, min(limits.max_batch_size, int(limits.max_batch_tokens // max(mean_tokens, 1.0))))
    return per_batch / parse_profile(device).seconds(round(per_batch * mean_tokens))


def host_path(
    model_dir: Path,
    specs: Sequence[RequestSpec],
    encoded: Sequence[Sequence[Encoded]],
    duration: float,
    step: Any,
    smoke: bool = False,
) -> tuple[list[Row], dict[str, Any]]:
    """Rows 10-12: front ends on the null device, the engine process alone (10b: fed ``encoded``, the
    requests of ``specs`` pre-tokenized), a simulated H200, and a 250,000-token/s device. A ``smoke`` run
    starts the H200 row's server as one process (it checks the row runs, and a server of several
    processes takes twice as long to start; row 10 runs one already)."""
    pairs = [item for request in encoded for item in request]
    mean_tokens = sum(item.cost for item in pairs) / len(pairs)  # a pair's tokens, after truncation
    cores = os.cpu_count() or 1
    counts = sorted({1, 2, max(2, min(8, cores // 2))})
    figures: dict[str, Any] = {}
    for count in counts:
        done = step(f"host path: sim:null, {count} front end(s)")
        figures[f"null, {count} front ends"] = run_simulated(model_dir, "sim:null", count, specs, duration, mean_tokens)
        done()
    one = figures["null, 1 front ends"]
    rows = [
        Row(f"10. host path (sim:null, {_CALLERS} callers): {n} front ends vs one process", figures[f"null, {n} front ends"]["label"], one["label"], "pairs/s", figures[f"null, {n} front ends"]["pairs_per_s"], one["pairs_per_s"], None)
        for n in counts
        if n > 1
    ]
    ceiling = simulated_ceiling("sim:h200-minilm", mean_tokens)
    done = step("the engine process alone (sim:null, pre-tokenized callers, unpaced)")
    alone = figures["engine alone"] = run_engine_alone(model_dir, encoded, duration, callers=_CALLERS, warmup_s=0.5 if smoke else 2.0)
    done()
    # What the host path can hand one device once front ends tokenize fast enough (a GPU host's cores):
    # here the callers share the engine's cores, so the goal is a GPU host's, as row 11's.
    rows.append(Row("10b. engine process alone (sim:null, unpaced): pairs/s it takes vs the simulated H200's ceiling", alone["label"], "sim:h200-minilm, device alone", "pairs/s", alone["pairs_per_s"], ceiling, 1.0 if cores >= 8 else None))
    frontends = 1 if smoke else 2 if cores <= 4 else counts[-1]
    done = step("simulated H200 (sim:h200-minilm)")
    h200 = figures["h200-minilm"] = run_simulated(model_dir, "sim:h200-minilm", frontends, specs, duration, mean_tokens)
    done()
    # The goal is a GPU host's (16 cores and up); a small CPU's cores tokenize less than an H200 scores.
    rows.append(Row("11. simulated H200: server vs the simulated device's ceiling", h200["label"], "sim:h200-minilm, device alone", "pairs/s", h200["pairs_per_s"], ceiling, 0.5 if cores >= 8 else None))
    done = step("a 250,000 tokens/s device (sim:20,4000), defaults")
    from ..engine.pool import default_frontends

    device = figures["20,4000"] = run_simulated(model_dir, "sim:20,4000", default_frontends("sim"), specs, duration, mean_tokens)
    done()
    rows.append(Row("12. sim:20,4000 on defaults: padded tokens scored vs the device's rate", device["label"], "250,000 tokens/s", "tokens/s", device["padded_tokens_per_s"], 250_000.0, 0.85))
    return rows, figures


def cpu_table(figures: dict[str, Any]) -> str:
    """CPU microseconds a pair by role, one column per run."""
    runs = {v["label"]: v for v in figures.values()}
    roles = sorted({role for run in runs.values() for role in run["cpu_us_per_pair"]})
    lines = ["| CPU microseconds a pair | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    for role in roles:
        lines.append(f"| {role} | " + " | ".join(f"{run['cpu_us_per_pair'].get(role, 0.0):.1f} us" for run in runs.values()) + " |")
    lines.append("| **total** | " + " | ".join(f"**{run['cpu_us_per_pair_total']:.1f} us**" for run in runs.values()) + " |")
    lines.append("| pairs/s | " + " | ".join(f"{run['pairs_per_s']:.0f}" for run in runs.values()) + " |")
    return "\n".join(lines) + "\n"
