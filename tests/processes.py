"""Real ``rerank-server`` and ``rerank`` processes for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from collections import Counter
from typing import Any

from rerank_client import AsyncRerankClient, RerankError

from rerank_server.bench.measure import free_port as free_port  # re-exported for the tests
from rerank_server.process import ServerProcess as _ServerProcess

BIN = Path(sys.executable).parent


def command(name: str) -> str:
    """The path of an installed console script of this environment."""
    return str(BIN / name)


def offline_env() -> dict[str, str]:
    """The environment for child processes: no hub access, quiet libraries."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}


def ServerProcess(*args: str, **kwargs: Any) -> _ServerProcess:
    """A server process with the tests' offline environment."""
    return _ServerProcess(*args, env=offline_env(), **kwargs)


def run_cli(*args: str, stdin: str | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run a console script of this environment to completion."""
    return subprocess.run(
        [command(args[0]), *args[1:]], input=stdin, capture_output=True, text=True, timeout=timeout, env=offline_env()
    )


DOCS = ["Photosynthesis converts light into chemical energy.", "The market fell.", "Chlorophyll absorbs red light."]


async def keep_calling(client: AsyncRerankClient, stop: asyncio.Event, outcomes: Counter[str], callers: int = 6) -> None:
    """``callers`` closed loops of Rerank calls until ``stop``; each outcome counted by status name."""

    async def caller() -> None:
        while not stop.is_set():
            try:
                await client.rerank("how do plants make energy", DOCS)
                outcomes["OK"] += 1
            except RerankError as exc:
                outcomes[exc.code.name] += 1
                await asyncio.sleep(0.01)  # a refused caller backs off a little, as real ones do

    await asyncio.gather(*(caller() for _ in range(callers)))

