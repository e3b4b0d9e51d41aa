"""The two commands users run: ``rerank-server`` and ``rerank``, as real processes."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from tests.processes import ServerProcess, run_cli

DOCS = [
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The stock market fell sharply on Tuesday.",
    "Chlorophyll absorbs blue and red light.",
]
QUERY = "how do plants make energy from light"


@pytest.fixture(scope="module")
def bundled_server() -> ServerProcess:
    with ServerProcess("--model", "all-MiniLM-L6-v2") as server:
        yield server


def test_rank_prints_a_table(bundled_server: ServerProcess) -> None:
    done = run_cli("rerank", "--target", bundled_server.target, QUERY, *DOCS)
    assert done.returncode == 0, done.stderr
    rows = [line.split(None, 3) for line in done.stdout.splitlines()[1:4]]
    assert [int(r[0]) for r in rows] == [0, 1, 2]
    assert rows[0][3].startswith("Photosynthesis")
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert "model all-MiniLM-L6-v2" in done.stdout


def test_rank_json_from_stdin_and_file(bundled_server: ServerProcess, tmp_path: Path) -> None:
    done = run_cli("rerank", "--target", bundled_server.target, "--json", QUERY, "-", stdin="\n".join(DOCS) + "\n")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [set(r) for r in rows] == [{"index", "rank", "score", "text", "truncated", "windows"}] * 3
    assert rows[0]["index"] == 0 and rows[0]["text"] == DOCS[0]
    docs_file = tmp_path / "docs.txt"
    docs_file.write_text("\n".join(DOCS))
    from_file = run_cli("rerank", "--target", bundled_server.target, "--json", "--top-k", "2", QUERY, "--file", str(docs_file))
    assert [r["index"] for r in json.loads(from_file.stdout)] == [r["index"] for r in rows[:2]]


def test_models_and_health_subcommands(bundled_server: ServerProcess) -> None:
    models = run_cli("rerank", "models", "--target", bundled_server.target)
    assert models.returncode == 0 and "all-MiniLM-L6-v2 (default): bi-encoder" in models.stdout
    health = run_cli("rerank", "health", "--target", bundled_server.target, "--wait", "30")
    assert health.stdout.strip() == "SERVING"


def test_cli_errors_are_one_line(bundled_server: ServerProcess) -> None:
    done = run_cli("rerank", "--target", bundled_server.target, "", "doc")
    assert done.returncode == 1
    assert done.stderr.strip() == "rerank: error: INVALID_ARGUMENT: query is empty; send the text to rank the documents against"
    unreachable = run_cli("rerank", "--target", "127.0.0.1:1", "--timeout", "5", "q", "d")
    assert unreachable.returncode == 1 and "cannot reach 127.0.0.1:1" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_sigterm_stops_cleanly() -> None:
    with ServerProcess("--model", "all-MiniLM-L6-v2", "--grace", "5") as server:
        assert run_cli("rerank", "--target", server.target, "q", "d").returncode == 0
        assert server.terminate() == 0
    assert "stopped" in "".join(server.output)


def _start_failure(*args: str) -> str:
    done = run_cli("rerank-server", "--host", "127.0.0.1", "--port", "0", *args, timeout=60)
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    return output


def test_missing_model_directory_fails_fast_with_the_fix() -> None:
    output = _start_failure("--model", "mine=/nonexistent/model-dir")
    assert "no such model directory: /nonexistent/model-dir" in output


def test_uncached_hub_model_offline_fails_fast_with_the_fix() -> None:
    output = _start_failure("--model", "cross-encoder/ms-marco-MiniLM-L-6-v2")
    assert re.search(r"not in the local Hugging Face cache.*hf download cross-encoder/ms-marco-MiniLM-L-6-v2", output)
    assert "--model all-MiniLM-L6-v2" in output


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("rerank-server", "--host", "127.0.0.1", "--port", str(port), "--model", "all-MiniLM-L6-v2", timeout=60)
    assert done.returncode == 2
    assert "cannot listen on 127.0.0.1:" in done.stderr and "Traceback" not in done.stderr


def test_help_explains_every_flag() -> None:
    done = run_cli("rerank-server", "--help")
    for flag in ("--host", "--port", "--model", "--device", "--dtype", "--backend", "--max-batch-size", "--max-batch-tokens",
                 "--max-wait-ms", "--max-queued-pairs", "--max-documents", "--max-message-bytes", "--grace",
                 "--trust-remote-code", "--log-level"):
        assert flag in done.stdout
    assert done.stdout.count("(default") >= 10
