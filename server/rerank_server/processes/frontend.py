"""A front-end process: gRPC and HTTP on the ports it shares with the other front ends; validates,
tokenizes and plans each request, and has the engine process admit and score it (see ``engine.link``).

It listens at once (health NOT_SERVING), connects to the engine once that has loaded the models, and
serves. SIGTERM or SIGINT drains it as a one-process server drains. If the engine process goes away,
health turns NOT_SERVING, what waits on the engine fails with UNAVAILABLE, and the process exits 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from multiprocessing.connection import Connection

from ..engine import ServedModel
from ..engine.link import EngineLink, RemoteBatcher
from ..memory import return_large_buffers
from ..models import ModelLoadError
from ..models.loading import load_planner
from ..service.server import RerankServer
from ..service.settings import ServerConfig
from .child import run_child
from .naming import frontend, name_process

log = logging.getLogger("rerank_server")

ENGINE_GONE_EXIT = 1


def frontend_main(config: ServerConfig, index: int, tokenizer_threads: int, path: str, control: Connection) -> None:
    """Front end ``index``'s entry point; exits 0 once drained, 1 if the engine went away."""
    name_process(frontend(index), config.log_level, config.log_format)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return_large_buffers()
    run_child(_serve(config, tokenizer_threads, path, control), control, frontend(index), 2)


async def _serve(config: ServerConfig, tokenizer_threads: int, path: str, control: Connection) -> int:
    # The engine process serves the metrics port and the models' batches; this one only forwards.
    server = RerankServer(dataclasses.replace(config, metrics_port=None), shared=True, tokenizer_threads=tokenizer_threads)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    control.send(("listening",))
    connecting = asyncio.create_task(EngineLink.connect(path, attempts=lambda: not stop.is_set()))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done() or connecting.exception() is not None:  # stopped (or the engine died) while loading
        connecting.cancel()
        await server.stop(0)
        return 0 if stop.is_set() else ENGINE_GONE_EXIT
    link = connecting.result()
    specs = {spec.name: spec for spec in config.models}
    try:
        for info in link.models:
            planner = await asyncio.to_thread(load_planner, specs[info.name], info, config.trust_remote_code)
            server.add_model(ServedModel(planner, RemoteBatcher(link, info.name), config.batching, server.tokenizers, config.request_limits))
    except ModelLoadError as exc:
        control.send(("failed", str(exc)))
        await server.stop(0)
        return 2
    server.attach(link)
    await server.mark_ready()
    control.send(("ready",))
    lost = asyncio.create_task(link.lost.wait())
    await asyncio.wait({stopping, lost}, return_when=asyncio.FIRST_COMPLETED)
    if link.lost.is_set() and not stop.is_set():
        log.error("the engine process went away: health is NOT_SERVING and this front end exits")
        await server.stop(0, close_port=False)
        return ENGINE_GONE_EXIT
    await server.stop(config.grace_s, close_port=False)
    link.close()
    return 0
