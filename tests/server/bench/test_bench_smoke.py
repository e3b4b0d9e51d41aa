"""The benchmark's smoke run: every comparison runs end to end (on a tiny model) and reports. No speed is asserted.

The run takes minutes, most of them starting servers (each a single-threaded import of torch and
sentence-transformers), so it starts in the background when the session has collected this test
(``tests/conftest.py``) and runs beside the other tests; its test runs last, waits for it and checks it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.processes import offline_env

NODE = "tests/server/bench/test_bench_smoke.py::test_smoke_run_writes_every_comparison"


@dataclass
class SmokeRun:
    """The smoke run's process and where it writes."""

    process: subprocess.Popen[str]
    out: Path


_started: SmokeRun | None = None


def start() -> SmokeRun:
    """Start the smoke run (once per session)."""
    global _started
    if _started is None:
        out = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
        command = [sys.executable, "-m", "rerank_server.bench", "--smoke", "--skip-latency", "--out", str(out), "--model-dir", str(out / "m")]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=offline_env())
        _started = SmokeRun(process, out)
    return _started


def stop() -> None:
    """Stop a smoke run still going (the session ended without waiting for it) and remove its files."""
    if _started is not None:
        if _started.process.poll() is None:
            _started.process.kill()
            _started.process.communicate()
        shutil.rmtree(_started.out, ignore_errors=True)


def test_smoke_run_writes_every_comparison() -> None:
    run = start()
    stdout, stderr = run.process.communicate(timeout=900)  # about 3 minutes beside the other tests on 2 cores
    assert run.process.returncode == 0, stderr[-3000:]
    # It says what it is for, and prints no table of figures from a tiny model (they mean nothing).
    assert "measures nothing" in stderr and "| comparison |" not in stdout and "not met" not in stdout
    results = json.loads((run.out / "results.json").read_text())
    comparisons = {row["comparison"].split(".")[0] for row in results["rows"]}
    assert {"0a", "0b", "1", "1c", "2", "3", "4", "6", "8", "9a", "9b", "9c", "9d", "10", "10b", "11", "12", "13a", "13b", "13c", "13d", "14a", "14b"} <= comparisons
    for row in results["rows"]:
        assert row["value"] > 0 and row["baseline_value"] > 0
    assert set(results["inprocess_batch_sweep_pairs_per_s"]) == {"8", "16", "32", "64"}
    assert "| comparison |" in (run.out / "results.md").read_text()
