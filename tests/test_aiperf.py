"""NVIDIA's AIPerf, the load tester NIM and TEI rerankers are measured with, driven unchanged against the
HTTP API in each of its rankings shapes (Cohere, TEI, NIM), as real processes on loopback.

The server is kept overloaded on purpose (a queue of 12 pairs, batches of a simulated device that take
0.1 s, 8 closed-loop callers of 5 documents each, one run at a time): AIPerf gets answers and refusals both, and its error
summary must hold one group however many refusals there were (live counts in a message split them).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.processes import ServerProcess

AIPERF = Path(__file__).resolve().parents[1] / ".venv-tools" / "bin" / "aiperf"
SHAPES = ("cohere-rankings", "hf-tei-rankings", "nim-rankings")
REQUESTS = 30


def _profile(url: str, shape: str, tokenizer: Path, out: Path) -> subprocess.Popen[str]:
    """Start ``aiperf profile`` as its users run it, with a hosted model's name and short synthetic texts
    (TEI's shape refuses texts past the model's length unless asked to truncate: the tiny model reads 128)."""
    # AIPerf reads a tokenizer directory on its online path only; nothing it loads here is on a hub.
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    return subprocess.Popen(
        [
            str(AIPERF), "profile", "--model", "rerank-english-v3.0", "--url", url, "--endpoint-type", shape,
            "--tokenizer", str(tokenizer), "--request-count", str(REQUESTS), "--concurrency", "8",
            "--rankings-passages-mean", "5", "--rankings-passages-prompt-token-mean", "30",
            "--rankings-query-prompt-token-mean", "10", "--artifact-dir", str(out), "--ui-type", "none",
            # One worker and one record processor: AIPerf's own processes, on a 2-core machine.
            "--workers-max", "1", "--record-processors", "1",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def _results(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each request's record, and AIPerf's own error summary (its groups, with their counts)."""
    records = [json.loads(line) for line in (out / "profile_export.jsonl").read_text().splitlines()]
    summary = json.loads((out / "profile_export_aiperf.json").read_text())["error_summary"]
    return records, summary


def test_aiperf_ranks_in_every_shape_and_groups_every_refusal_as_one(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    if not AIPERF.exists():
        pytest.fail("AIPerf is not installed: ./scripts/test.sh installs it into .venv-tools (scripts/install-tools.sh)")
    args = ("--model", f"tiny={tiny_cross_encoder}", "--http-port", "0", "--device", "sim:100,0", "--max-queued-pairs", "12")
    with ServerProcess(*args) as server:
        # One run at a time: run at once, one shape's callers could find every place taken by the others'
        # for all of their requests (seen once in CI). Alone, a run's first callers find the queue empty.
        runs, logs = {}, {}
        for shape in SHAPES:
            runs[shape] = _profile(server.http_url, shape, tiny_cross_encoder, tmp_path / shape)
            logs[shape] = runs[shape].communicate(timeout=240)[0]
    refused = 0
    for shape in SHAPES:
        assert runs[shape].returncode == 0, f"{shape}:\n{logs[shape][-3000:]}"
        records, summary = _results(tmp_path / shape)
        assert len(records) == REQUESTS, shape
        answered = [r for r in records if "error" not in r]
        errors = [r["error"] for r in records if "error" in r]
        assert answered, f"{shape}: every request failed: {errors[:2]}"
        assert {e["code"] for e in errors} <= {429}, f"{shape}: {errors[:2]}"
        if errors:
            assert len(summary) == 1 and summary[0]["count"] == len(errors), f"{shape}: {summary}"
        refused += len(errors)
    # 8 callers of 5 pairs against 12 places and batches of at most 12 pairs: some were always refused.
    assert refused > 0
