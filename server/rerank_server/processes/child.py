"""How a child process of the server (the engine, a front end) runs and ends."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from multiprocessing.connection import Connection
from typing import Any, NoReturn

log = logging.getLogger("rerank_server")


def run_child(serve: Coroutine[Any, Any, int], control: Connection, what: str, failed_code: int, fast_loop: bool = False) -> NoReturn:
    """Run ``serve`` to its exit code; a crash is logged and reported to the supervisor on ``control``
    (as ``failed_code``). Exits with the ports left to the operating system, as a one-process server
    does (see ``RerankServer.stop``), and without the interpreter's slow teardown of threads.

    ``fast_loop`` runs it on uvloop where that is installed (the server's dependencies install it except
    on Windows): for the engine process, whose one event loop serves every front end and holds no gRPC
    server (grpc.aio is built on asyncio's own loop, so front ends keep that). Measured on the 2-core
    build machine, 2 front ends on ``sim:null``, 64 callers x 20 documents, 3 alternating rounds: the
    engine process's CPU a pair 22.6 -> 20.2 us, its event loop's 15.7 -> 13.7.
    """
    try:
        code = run_loop(serve, fast_loop, what)
    except Exception as exc:
        log.exception("%s failed", what)
        control.send(("failed", f"{what} failed: {exc}"))
        code = failed_code
    logging.shutdown()
    os._exit(code)


def run_loop(serve: Coroutine[Any, Any, int], fast_loop: bool, what: str) -> int:
    """Run ``serve`` on uvloop (``fast_loop``, where installed) or asyncio's event loop; its exit code."""
    if fast_loop:
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed: %s runs on asyncio's event loop", what)
        else:
            return uvloop.run(serve)
    return asyncio.run(serve)
