"""Worker threads carry their role in the OS's thread list (ps -L, top -H, /proc)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from rerank_server.batching.threads import named_pool


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OS thread names are read from /proc")
def test_a_pool_thread_is_named_for_the_os_too() -> None:
    def os_name() -> str:
        return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()

    with named_pool(1, "forward-ms-marco") as pool:
        assert pool.submit(os_name).result(timeout=30) == "forward-ms-marc"  # the first 15 bytes
