"""The engine process: loads the models onto the device, owns each model's queue and batches, and
serves the front ends over a Unix socket (see ``engine.core``).

It ignores SIGTERM and SIGINT (a terminal's Ctrl-C reaches every process of the group): the supervisor
stops it once every front end has drained, by closing its control pipe, so the calls the front ends
still finish are scored.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from multiprocessing.connection import Connection

from prometheus_client import generate_latest

from ..engine import ModelRegistry, ServedModel, TokenizerPool
from ..engine.callers import CallerNames
from ..engine.core import EngineCore
from ..engine.metrics import Metrics
from ..engine.wire import Header
from ..models import ModelLoadError
from ..models.exported import import_runtime_early
from ..service.settings import ServerConfig
from ..startup import describe, loaded_models
from .child import run_child
from .naming import ENGINE, name_process

log = logging.getLogger("rerank_server")


def engine_main(config: ServerConfig, path: str, control: Connection) -> None:
    """The engine process's entry point: serve until the supervisor closes ``control``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    name_process(ENGINE, config.log_level, config.log_format)
    # glibc's mmap threshold stays adjustable here (see ``memory``): no request body reaches this process,
    # and fixed, every padded batch over 128 KiB was mapped and page-faulted afresh on the collate thread
    # (measured on a simulated H200: the stage threads' CPU a pair 10.6-11.5 us fixed, 4.1-6.5 not).
    import_runtime_early(config.backend, config.models, config.device)
    run_child(_serve(config, path, control), control, "the engine process", 1, fast_loop=True)


async def _serve(config: ServerConfig, path: str, control: Connection) -> int:
    registry = ModelRegistry()
    metrics = Metrics(registry)
    # The engine tokenizes nothing (the front ends do); a served model still names a pool it would use.
    pool = TokenizerPool(1)
    try:
        async for scorers, speed in loaded_models(config):
            model = ServedModel.create(scorers, config.batching, pool, config.request_limits, speed)
            registry.add(model)
            metrics.watch(model)
            model.batcher.start()
    except ModelLoadError as exc:
        control.send(("failed", str(exc)))
        return 2
    metrics_port = metrics.serve(config.host, config.metrics_port) if config.metrics_port is not None else None

    def observe(header: Header) -> None:
        for kind, *fields in header[1]:
            if kind == "request":
                metrics.observe_request(*fields)
            else:
                metrics.observe_truncated(*fields)

    core = EngineCore(registry, CallerNames(config.admission.max_named_callers), observe, lambda: generate_latest(metrics.registry))
    await core.serve(path)
    control.send(("ready", describe(registry), registry.default_name, metrics_port))
    try:
        await asyncio.to_thread(control.recv)  # the supervisor's "stop", or its end
    except (EOFError, OSError):
        pass
    await core.close()
    await registry.aclose(drain=True)
    pool.close()
    return 0
