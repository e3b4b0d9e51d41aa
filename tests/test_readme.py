"""README examples run as written (against a real server with the bundled model)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.processes import ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_python_examples_run_and_print_what_the_comments_say() -> None:
    blocks = _python_blocks()
    assert len(blocks) == 3, "README python examples changed: update this test"
    with ServerProcess("--model", "all-MiniLM-L6-v2") as server:
        outputs = []
        for block in blocks:
            code = block.replace("127.0.0.1:50051", server.target)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout.splitlines())
    windows, client, asyncio_client = outputs  # in README order
    assert asyncio_client[0] == "0"
    assert sorted(asyncio_client[1:]) == ["0 0", "1 INVALID_ARGUMENT", "2 0"]
    assert client[0].startswith("1 0.") and "Photosynthesis" in client[0]
    assert client[1] == "2 True"
    assert client[2] == "2"
    assert client[3].startswith("INVALID_ARGUMENT query is empty")
    index, count = windows[0].split()
    assert index == "1" and int(count) > 1


def test_every_server_flag_is_documented() -> None:
    from rerank_server.cli import build_parser

    text = README.read_text()
    flags = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    missing = [f for f in flags if f"`{f}" not in text]
    assert not missing, f"README does not document {missing}"


def test_the_cli_examples_run_as_written_with_the_shipped_files() -> None:
    """Every README line that calls `rerank` against 127.0.0.1:50051 runs (from the checkout, with the
    sample files it names) and succeeds against a real server."""
    import os
    import shlex

    text = README.read_text()
    lines = [line.split("  #")[0].strip() for line in text.splitlines() if "rerank" in line and "--target 127.0.0.1:50051" in line]
    lines = [line for line in lines if line.startswith(("rerank ", "cat examples/")) and not line.startswith(("rerank compare", "rerank loadtest"))]
    assert len(lines) >= 5, lines
    root = README.parent
    with ServerProcess("--model", "all-MiniLM-L6-v2") as server:
        for line in lines:
            command = line.replace("127.0.0.1:50051", server.target)
            for word in shlex.split(command):  # the files it reads ship with the project
                if word.startswith("examples/"):
                    assert (root / word).is_file(), word
            env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
            done = subprocess.run(command, shell=True, cwd=root, capture_output=True, text=True, timeout=120, env=env)
            assert done.returncode == 0, (line, done.stderr)
