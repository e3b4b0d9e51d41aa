"""The benchmark's smoke run: every comparison runs end to end (on a tiny model) and reports. No speed is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.processes import offline_env


def test_smoke_run_writes_every_comparison(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rerank_server.bench", "--smoke", "--skip-latency", "--out", str(tmp_path), "--model-dir", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=600,  # about 2 minutes on the 2-core build machine, 3.5 on a slow day
        env=offline_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # It says what it is for, and prints no table of figures from a tiny model (they mean nothing).
    assert "measures nothing" in done.stderr and "| comparison |" not in done.stdout and "not met" not in done.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    comparisons = {row["comparison"].split(".")[0] for row in results["rows"]}
    assert {"0a", "0b", "1", "1c", "2", "3", "4", "6", "8", "9a", "9b", "9c", "9d", "10", "11", "12"} <= comparisons
    for row in results["rows"]:
        assert row["value"] > 0 and row["baseline_value"] > 0
    assert set(results["inprocess_batch_sweep_pairs_per_s"]) == {"8", "16", "32", "64"}
    assert "| comparison |" in (tmp_path / "results.md").read_text()
