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
    assert len(blocks) == 2, "README python examples changed: update this test"
    with ServerProcess("--model", "all-MiniLM-L6-v2") as server:
        outputs = []
        for block in blocks:
            code = block.replace("127.0.0.1:50051", server.target)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout.splitlines())
    windows, client = sorted(outputs, key=len)
    assert client[0].startswith("1 0.") and "Photosynthesis" in client[0]
    assert client[1] == "2 True"
    assert client[2] == "2"
    assert client[3].startswith("INVALID_ARGUMENT query is empty")
    index, count = windows[0].split()
    assert index == "1" and int(count) > 1


def test_every_server_flag_is_documented() -> None:
    from rerank_server.config import build_parser

    text = README.read_text()
    flags = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    missing = [f for f in flags if f"`{f}" not in text]
    assert not missing, f"README does not document {missing}"
