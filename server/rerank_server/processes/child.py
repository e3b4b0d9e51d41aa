"""How a child process of the server (the engine, a front end) runs and ends."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from multiprocessing.connection import Connection
from typing import Any, NoReturn

log = logging.getLogger("rerank_server")


def run_child(serve: Coroutine[Any, Any, int], control: Connection, what: str, failed_code: int) -> NoReturn:
    """Run ``serve`` to its exit code; a crash is logged and reported to the supervisor on ``control``
    (as ``failed_code``). Exits with the ports left to the operating system, as a one-process server
    does (see ``RerankServer.stop``), and without the interpreter's slow teardown of threads."""
    try:
        code = asyncio.run(serve)
    except Exception as exc:
        log.exception("%s failed", what)
        control.send(("failed", f"{what} failed: {exc}"))
        code = failed_code
    logging.shutdown()
    os._exit(code)
